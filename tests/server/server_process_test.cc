// The real moe-adapter-server binary, started as a child process: serves and
// converts a golden case, TLS with client certificates (mTLS) and a bearer
// token, and SIGTERM during a stream (the stream completes, exit status 0).
#include <atomic>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "moe_adapter/client.h"
#include "tests/server/server_test_util.h"

extern char** environ;

namespace moe_adapter::server_testing {
namespace {

using ::testing::HasSubstr;

TEST(ServerProcessTest, ServesAGoldenCaseAndStopsOnSigterm) {
  ServerProcess p(MOE_SERVER_PATH, {"--max-stream-memory", "256MiB"});
  const int port = p.Port();
  ASSERT_NE(port, 0) << ReadFileOrDie(p.log());
  ClientOptions co;
  co.target = absl::StrCat("127.0.0.1:", port);
  auto client = *RemoteClient::Connect(co);
  EXPECT_TRUE(client->Health().ok());
  absl::StatusOr<RemoteServerInfo> info = client->GetInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->max_stream_memory_bytes, 256u << 20);
  for (const char* name : {"full_to_hf_bfloat16", "full_from_hf_float32"}) {
    const json c = CaseNamed(name);
    const TensorList in = LoadSafetensors(GoldenDir() + "/" + c["in_file"].get<std::string>());
    const bool to_hf = c["op"] == "to_hf";
    Result want = to_hf ? CoreToHf(OptionsFor(c), in) : CoreFromHf(OptionsFor(c), in);
    Result got = Remote(*client, to_hf ? RemoteRpc::kToHf : RemoteRpc::kFromHf, OptionsFor(c), in);
    ASSERT_TRUE(got.status.ok()) << got.status;
    EXPECT_EQ(Diff(got.outputs, want.outputs, to_hf), "") << name;
  }
  // An idle client connection would hold the drain until gRPC's 5 s backup
  // poller notices the GOAWAY; a closed one lets the server stop at once.
  client.reset();
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(std::chrono::seconds(20)), 0) << ReadFileOrDie(p.log());
}

TEST(ServerProcessTest, UsageErrorsExitTwo) {
  ServerProcess p(MOE_SERVER_PATH, {"--device", "tpu"});
  EXPECT_EQ(p.Wait(std::chrono::seconds(20)), 2);
  EXPECT_THAT(ReadFileOrDie(p.log()), HasSubstr("cpu, cuda, cuda:N or auto"));
}

// --device cuda needs a usable GPU: without one the server refuses to start
// with the reason; --device auto falls back to the CPU and says so.
TEST(ServerProcessTest, DeviceSelection) {
  ServerProcess cuda(MOE_SERVER_PATH, {"--device", "cuda"});
  const int port = cuda.Port();
  if (port == 0) {
    EXPECT_NE(cuda.Wait(std::chrono::seconds(20)), 0);
    EXPECT_THAT(ReadFileOrDie(cuda.log()), HasSubstr("CUDA"));
  } else {
    ClientOptions o;
    o.target = absl::StrCat("127.0.0.1:", port);
    auto info = (*RemoteClient::Connect(o))->GetInfo();
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_THAT(info->device, HasSubstr("cuda:0"));
  }
  ServerProcess autodev(MOE_SERVER_PATH, {"--device", "auto"});
  const int auto_port = autodev.Port();
  ASSERT_GT(auto_port, 0) << ReadFileOrDie(autodev.log());
  ClientOptions o;
  o.target = absl::StrCat("127.0.0.1:", auto_port);
  auto info = (*RemoteClient::Connect(o))->GetInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->device == "cpu", port == 0) << info->device;
}

TEST(ServerProcessTest, MutualTlsWithToken) {
  if (Which("openssl").empty()) GTEST_SKIP() << "openssl CLI not installed";
  TempDir tmp;
  const std::string& dir = tmp.path();
  absl::StatusOr<TestCerts> certs = MakeTestCerts(dir);
  ASSERT_TRUE(certs.ok()) << certs.status();
  WriteFileOrDie(dir + "/token", "tls-token-123\n");
  ServerProcess p(MOE_SERVER_PATH, {"--tls-cert", certs->server_cert, "--tls-key", certs->server_key, "--tls-client-ca", certs->ca,
                   "--auth-token-file", dir + "/token"});
  const int port = p.Port();
  ASSERT_NE(port, 0) << ReadFileOrDie(p.log());
  EXPECT_THAT(ReadFileOrDie(p.log()), HasSubstr("[mTLS]"));

  ClientOptions co;
  co.target = absl::StrCat("localhost:", port);
  co.tls_root_certs_pem = ReadFileOrDie(certs->ca);
  co.tls_client_cert_pem = ReadFileOrDie(certs->client_cert);
  co.tls_client_key_pem = ReadFileOrDie(certs->client_key);
  co.bearer_token = "tls-token-123";
  co.deadline = absl::Seconds(20);
  auto client = *RemoteClient::Connect(co);
  const json c = CaseNamed("full_to_hf_float32");
  const TensorList in = LoadSafetensors(GoldenDir() + "/" + c["in_file"].get<std::string>());
  Result got = Remote(*client, RemoteRpc::kToHf, OptionsFor(c), in);
  ASSERT_TRUE(got.status.ok()) << got.status;
  EXPECT_EQ(Diff(got.outputs, CoreToHf(OptionsFor(c), in).outputs, true), "");

  // Health: the certificate is needed (mTLS), the token is not.
  ClientOptions probe = co;
  probe.bearer_token.clear();
  EXPECT_TRUE((*RemoteClient::Connect(probe))->Health().ok());
  EXPECT_EQ((*RemoteClient::Connect(probe))->GetInfo().status().code(), absl::StatusCode::kUnauthenticated);
  ClientOptions wrong = co;
  wrong.bearer_token = "tls-token-124";
  EXPECT_THAT((*RemoteClient::Connect(wrong))->GetInfo().status().message(), HasSubstr("refused the token"));
  // Without a client certificate the handshake fails.
  ClientOptions no_cert = co;
  no_cert.tls_client_cert_pem.clear();
  no_cert.tls_client_key_pem.clear();
  no_cert.deadline = absl::Seconds(5);
  absl::Status s = (*RemoteClient::Connect(no_cert))->Health();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_THAT(s.message(), HasSubstr("cannot reach server"));
  // Plaintext against TLS fails too.
  ClientOptions plain;
  plain.target = co.target;
  plain.deadline = absl::Seconds(5);
  EXPECT_FALSE((*RemoteClient::Connect(plain))->Health().ok());

  client.reset();
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(std::chrono::seconds(20)), 0) << ReadFileOrDie(p.log());
}

TEST(ServerProcessTest, SigtermDuringAStreamLetsItComplete) {
  ServerProcess p(MOE_SERVER_PATH, {"--shutdown-grace", "20s"});
  const int port = p.Port();
  ASSERT_NE(port, 0) << ReadFileOrDie(p.log());
  ClientOptions co;
  co.target = absl::StrCat("127.0.0.1:", port);
  co.chunk_bytes = 64;
  auto client = *RemoteClient::Connect(co);
  const json c = CaseNamed("full_to_hf_float32");
  const TensorList in = LoadSafetensors(GoldenDir() + "/" + c["in_file"].get<std::string>());
  TensorList got;
  std::atomic<int> received{0};
  auto session = *client->Open(RemoteRpc::kToHf, OptionsFor(c), [&](NamedTensor t) {
    got.push_back(std::move(t));
    received.fetch_add(1);
    return absl::OkStatus();
  });
  const size_t half = in.size() / 2;
  for (size_t i = 0; i < half; ++i) ASSERT_TRUE(session->Send(in[i]).ok());
  // Sent is not yet started: small writes can wait in the HTTP/2 window. An
  // output back proves the server is inside this stream.
  for (int i = 0; i < 1000 && received.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_GT(received.load(), 0);
  p.Signal(SIGTERM);
  // The drain has begun: new streams are refused while this one goes on.
  // Probes come on their own connection, as Kubernetes' do.
  auto prober = *RemoteClient::Connect(co);
  bool refused = false;
  for (int i = 0; i < 200 && !refused; ++i) {
    refused = !prober->Health().ok();
    if (!refused) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(refused) << "health should stop answering SERVING after SIGTERM";
  for (size_t i = half; i < in.size(); ++i) {
    absl::Status sent = session->Send(in[i]);
    ASSERT_TRUE(sent.ok()) << sent << "\n" << ReadFileOrDie(p.log());
  }
  absl::StatusOr<RemoteSummary> summary = session->Finish();
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(Diff(got, CoreToHf(OptionsFor(c), in).outputs, true), "");
  EXPECT_EQ(p.Wait(std::chrono::seconds(20)), 0) << ReadFileOrDie(p.log());
  EXPECT_THAT(ReadFileOrDie(p.log()), HasSubstr("SIGTERM: draining"));
}

}  // namespace
}  // namespace moe_adapter::server_testing
