// The CLI against real server processes (issue 4, issue 6): sharded checkpoint
// and PEFT adapter round trips through one and two servers, a corrupted shard,
// a wrong token, a dns:/// name resolving to two servers, and `health`.
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/checkpoint_reader.h"
#include "tests/server/server_test_util.h"
#include "tests/testutil/tensor_testutil.h"

namespace moe_adapter::testing {
namespace {

using server_testing::HttpGet;
using server_testing::ServerProcess;

struct CliRun {
  int code;
  std::string out, err;
};

std::string Q(const std::string& s) { return "'" + s + "'"; }

CliRun Cli(const std::vector<std::string>& args) {
  static int n = 0;
  const std::string base = ::testing::TempDir() + "/remote_cli_" + std::to_string(getpid()) + "_" + std::to_string(n++);
  std::vector<std::string> q;
  for (const auto& a : args) q.push_back(Q(a));
  const int st = std::system(absl::StrCat(Q(MOE_CLI_PATH), " ", absl::StrJoin(q, " "), " >", base, ".out 2>", base, ".err").c_str());
  auto slurp = [](const std::string& p) {
    std::ifstream f(p);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  };
  return {WIFEXITED(st) ? WEXITSTATUS(st) : 128, slurp(base + ".out"), slurp(base + ".err")};
}

bool Exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}


std::string Fx(const std::string& rel) { return DataDir() + "/tiny-qwen3-moe/" + rel; }

// Requests a server has answered with OK, from its /metrics.
int OkRequests(int metrics_port) {
  auto body = HttpGet(metrics_port, "/metrics");
  if (!body.ok()) return -1;
  int total = 0;
  std::regex re(R"re(moe_adapter_requests_total\{code="OK",rpc="(ToHF|FromHF)"\} (\d+))re");
  for (std::sregex_iterator it(body->begin(), body->end(), re), end; it != end; ++it) total += std::stoi((*it)[2]);
  return total;
}

class RemoteCli : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moe_remote_cli_XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { std::system(("rm -rf " + Q(dir_)).c_str()); }
  std::string dir_;
};

TEST_F(RemoteCli, ShardedCheckpointRoundTripThroughOneServer) {
  ServerProcess s(MOE_SERVER_PATH, {});
  const std::string addr = absl::StrCat("127.0.0.1:", s.Port());
  CliRun a = Cli({"from-hf", "--input", Fx("hf-bf16-sharded"), "--output", dir_ + "/native", "--server", addr});
  ASSERT_EQ(a.code, 0) << a.err;
  CliRun b = Cli({"to-hf", "--input", dir_ + "/native", "--output", dir_ + "/hf", "--server", addr, "--chunk-size", "1000"});
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_THAT(DiffAsMaps(LoadCheckpoint(dir_ + "/hf"), LoadCheckpoint(Fx("hf-bf16-sharded"))), ::testing::IsEmpty());
  EXPECT_TRUE(Exists(dir_ + "/hf/config.json"));
}

TEST_F(RemoteCli, AdapterAndCheckpointThroughTwoServersUseBoth) {
  ServerProcess s1(MOE_SERVER_PATH, {}, "127.0.0.1:0", "127.0.0.1:0");
  ServerProcess s2(MOE_SERVER_PATH, {}, "127.0.0.1:0", "127.0.0.1:0");
  const std::string a1 = absl::StrCat("127.0.0.1:", s1.Port()), a2 = absl::StrCat("127.0.0.1:", s2.Port());
  CliRun a = Cli({"from-hf", "--input", Fx("hf-bf16-sharded"), "--output", dir_ + "/native", "--server", a1, "--server", a2,
               "--json"});
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_THAT(a.out, ::testing::HasSubstr("\"streams\":2"));
  CliRun b = Cli({"to-hf", "--input", dir_ + "/native", "--output", dir_ + "/hf", "--server", a1, "--server", a2});
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_THAT(DiffAsMaps(LoadCheckpoint(dir_ + "/hf"), LoadCheckpoint(Fx("hf-bf16-sharded"))), ::testing::IsEmpty());
  EXPECT_GE(OkRequests(s1.MetricsPort()), 2);
  EXPECT_GE(OkRequests(s2.MetricsPort()), 2);

  CliRun c = Cli({"from-hf", "--input", Fx("peft-lora"), "--output", dir_ + "/lora", "--config", Fx("hf-fp32/config.json"),
               "--server", a1, "--server", a2});
  ASSERT_EQ(c.code, 0) << c.err;
  CliRun d = Cli({"to-hf", "--input", dir_ + "/lora", "--output", dir_ + "/lora-hf", "--config", Fx("hf-fp32/config.json"),
               "--server", a1, "--server", a2});
  ASSERT_EQ(d.code, 0) << d.err;
  EXPECT_THAT(DiffAsMaps(LoadCheckpoint(dir_ + "/lora-hf"), LoadCheckpoint(Fx("peft-lora"))), ::testing::IsEmpty());
}

TEST_F(RemoteCli, CorruptedShardFailsWithNoOutput) {
  ServerProcess s(MOE_SERVER_PATH, {});
  const std::string in = dir_ + "/in";
  std::system(("cp -r " + Q(Fx("hf-bf16-sharded")) + " " + Q(in) + " && chmod -R u+w " + Q(in)).c_str());
  const std::string shard = in + "/model-00003-of-00006.safetensors";
  std::string bytes;
  {
    std::ifstream f(shard, std::ios::binary);
    bytes.assign((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  }
  bytes[20] = '#';  // breaks the JSON header
  std::ofstream(shard, std::ios::binary | std::ios::trunc) << bytes;
  CliRun r = Cli({"from-hf", "--input", in, "--output", dir_ + "/out", "--server", absl::StrCat("127.0.0.1:", s.Port())});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, ::testing::HasSubstr("model-00003-of-00006.safetensors"));
  EXPECT_FALSE(Exists(dir_ + "/out"));
}

TEST_F(RemoteCli, WrongTokenIsAClearError) {
  const std::string token = dir_ + "/token", wrong = dir_ + "/wrong";
  std::ofstream(token) << "s3cret\n";
  std::ofstream(wrong) << "guess\n";
  ServerProcess s(MOE_SERVER_PATH, {"--auth-token-file", token});
  const std::string addr = absl::StrCat("127.0.0.1:", s.Port());
  CliRun bad = Cli({"from-hf", "--input", Fx("hf-bf16-sharded"), "--output", dir_ + "/out", "--server", addr, "--token-file",
                 wrong});
  EXPECT_EQ(bad.code, 1);
  EXPECT_THAT(bad.err, ::testing::HasSubstr("token"));
  EXPECT_FALSE(Exists(dir_ + "/out"));
  CliRun good = Cli({"from-hf", "--input", Fx("hf-bf16-sharded"), "--output", dir_ + "/out", "--server", addr,
                  "--token-file", token});
  EXPECT_EQ(good.code, 0) << good.err;
  // Health answers without the token (probes carry none).
  CliRun h = Cli({"health", "--server", addr});
  EXPECT_EQ(h.code, 0) << h.err;
  EXPECT_THAT(h.out, ::testing::HasSubstr("SERVING"));
}

TEST_F(RemoteCli, UnreachableServerIsAClearError) {
  CliRun r = Cli({"from-hf", "--input", Fx("hf-bf16-sharded"), "--output", dir_ + "/out", "--server", "127.0.0.1:1",
               "--timeout", "5"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, ::testing::HasSubstr("127.0.0.1:1"));
  EXPECT_FALSE(Exists(dir_ + "/out"));
  CliRun h = Cli({"health", "--server", "127.0.0.1:1", "--timeout", "2"});
  EXPECT_EQ(h.code, 2) << "grpc_health_probe's connection failure";
}

// Scale-out (issue 6): one dns:/// name resolving to two servers, as a
// headless Service's name resolves to its replicas. The name lives in a
// private /etc/hosts (a mount namespace of the CLI alone) mapping it to
// 127.0.0.1 and 127.0.0.2, where two servers listen on the same port.
TEST_F(RemoteCli, DnsNameResolvingToTwoServersSharesTheWork) {
  if (std::system("unshare -m true 2>/dev/null") != 0) GTEST_SKIP() << "no mount namespaces here (unshare -m)";
  ServerProcess s1(MOE_SERVER_PATH, {}, "127.0.0.1:0", "127.0.0.1:0");
  const int port = s1.Port();
  ASSERT_GT(port, 0);
  ServerProcess s2(MOE_SERVER_PATH, {}, absl::StrCat("127.0.0.2:", port), "127.0.0.1:0");
  ASSERT_GT(s2.Port(), 0) << "second server on 127.0.0.2";
  const std::string hosts = dir_ + "/hosts";
  std::ofstream(hosts) << "127.0.0.1 adapter.test\n127.0.0.2 adapter.test\n";
  auto cli_in_ns = [&](const std::vector<std::string>& args) {
    std::vector<std::string> q;
    for (const auto& a : args) q.push_back(Q(a));
    const std::string cmd = absl::StrCat("unshare -m sh -c ", Q(absl::StrCat("mount --bind ", hosts, " /etc/hosts && exec ",
                                                                          MOE_CLI_PATH, " ", absl::StrJoin(q, " "))),
                                         " 2>", dir_, "/err.txt");
    return std::system(cmd.c_str());
  };
  const std::string target = absl::StrCat("dns:///adapter.test:", port);
  ASSERT_EQ(cli_in_ns({"from-hf", "--input", Fx("hf-bf16-sharded"), "--output", dir_ + "/native", "--server", target}), 0);
  ASSERT_EQ(cli_in_ns({"to-hf", "--input", dir_ + "/native", "--output", dir_ + "/hf", "--server", target}), 0);
  EXPECT_THAT(DiffAsMaps(LoadCheckpoint(dir_ + "/hf"), LoadCheckpoint(Fx("hf-bf16-sharded"))), ::testing::IsEmpty());
  EXPECT_EQ(OkRequests(s1.MetricsPort()), 2) << "server 1 took one stream of each conversion";
  EXPECT_EQ(OkRequests(s2.MetricsPort()), 2) << "server 2 took one stream of each conversion";
}

TEST_F(RemoteCli, InspectEveryFormat) {
  struct Case {
    std::string path, format;
  } cases[] = {{Fx("hf-bf16-sharded"), "hf-per-expert"},
               {Fx("peft-lora"), "paramwrapper-lora"},
               {DataDir() + "/golden/full_to_hf_float32.in.safetensors", "native-grouped"},
               {DataDir() + "/golden/lora_v4_to_hf_peftprefix_float32.out.safetensors", "per-expert-lora"},
               {DataDir() + "/golden/lora_v4_to_hf_peftprefix_float32.in.safetensors", "native-lora"}};
  for (const Case& c : cases) {
    CliRun r = Cli({"inspect", c.path, "--json"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.out, ::testing::HasSubstr("\"" + c.format + "\"")) << c.path;
  }
  CliRun pw = Cli({"inspect", Fx("peft-lora"), "--config", Fx("hf-fp32/config.json")});
  EXPECT_THAT(pw.out, ::testing::HasSubstr("peft-v0.19"));
  CliRun hf = Cli({"inspect", Fx("hf-bf16-sharded")});
  EXPECT_THAT(hf.out, ::testing::HasSubstr("E=8 H=32 I=16"));
  EXPECT_EQ(Cli({"inspect", dir_ + "/missing"}).code, 1);
}

}  // namespace
}  // namespace moe_adapter::testing
