// The limits on how a client may hold the real server binary, and what the
// server reports when a stream ends: idle streams are ended and free their
// slots (a slow reader is not idle), the `code` of
// moe_adapter_requests_total is the code the client saw for every way a
// stream ends, and the bearer-token rules (placeholder refused at start,
// plaintext warning, constant-time comparison).
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "moe_adapter/client.h"
#include "moe_adapter/crc32c.h"
#include "server/token_rules.h"
#include "tests/server/server_test_util.h"

namespace moe_adapter::server_testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;

// Server: the binary with /metrics on an ephemeral port.
class Server {
 public:
  explicit Server(std::vector<std::string> args, const std::string& listen = "127.0.0.1:0")
      : process_(MOE_SERVER_PATH, std::move(args), listen, "127.0.0.1:0") {
    port_ = process_.Port();
    if (port_ != 0) metrics_port_ = process_.MetricsPort();
    std::string host = listen.substr(0, listen.rfind(':'));
    target_ = absl::StrCat(host == "0.0.0.0" ? "127.0.0.1" : host, ":", port_);
  }
  bool up() const { return port_ != 0 && metrics_port_ != 0; }
  const std::string& target() const { return target_; }
  std::string log() const { return ReadFileOrDie(process_.log()); }

  // Metric(): the value of the series named exactly `series` ("" labels
  // included), 0 when it is absent.
  double Metric(const std::string& series) const {
    absl::StatusOr<std::string> body = HttpGet(metrics_port_, "/metrics");
    if (!body.ok()) return -1;
    for (absl::string_view line : absl::StrSplit(*body, '\n')) {
      double v;
      if (absl::ConsumePrefix(&line, series + " ") && absl::SimpleAtod(line, &v)) return v;
    }
    return 0;
  }
  double Requests(const std::string& rpc, const std::string& code) const {
    return Metric(absl::StrCat("moe_adapter_requests_total{code=\"", code, "\",rpc=\"", rpc, "\"}"));
  }
  // WaitFor(): polls `series` until it equals `want` (the server counts a
  // stream in OnDone, just after its client has the status); true if it did.
  bool WaitFor(const std::string& series, double want) const {
    for (int i = 0; i < 500; ++i) {
      if (Metric(series) == want) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  bool WaitForRequests(const std::string& rpc, const std::string& code, double want) const {
    return WaitFor(absl::StrCat("moe_adapter_requests_total{code=\"", code, "\",rpc=\"", rpc, "\"}"), want);
  }
  // Serving(): the health service answers SERVING, and no stream is left
  // holding a slot or a byte.
  void ExpectServingAndEmpty() const {
    ClientOptions co;
    co.target = target_;
    co.deadline = absl::Seconds(5);
    absl::StatusOr<std::unique_ptr<RemoteClient>> client = RemoteClient::Connect(co);
    ASSERT_TRUE(client.ok()) << client.status();
    EXPECT_TRUE((*client)->Health().ok());
    EXPECT_TRUE(WaitFor("moe_adapter_active_streams", 0)) << Metric("moe_adapter_active_streams");
    EXPECT_TRUE(WaitFor("moe_adapter_buffered_bytes", 0)) << Metric("moe_adapter_buffered_bytes");
  }

 private:
  ServerProcess process_;
  int port_ = 0;
  int metrics_port_ = 0;
  std::string target_;
};

// SmallWindow(): channel arguments that keep the client's HTTP/2 receive
// window at 64 KiB, so outputs the client does not read hold the server's
// writes back instead of filling the client's buffers.
grpc::ChannelArguments SmallWindow() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 << 10);
  return args;
}

// RawCall: one raw conversion stream, driven message by message.
class RawCall {
 public:
  RawCall(const std::string& target, const std::string& token = "",
          std::chrono::milliseconds deadline = std::chrono::seconds(30),
          const grpc::ChannelArguments& args = grpc::ChannelArguments())
      : stub_(v1::MoeAdapter::NewStub(grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args))) {
    if (!token.empty()) ctx_.AddMetadata("authorization", "Bearer " + token);
    ctx_.set_deadline(std::chrono::system_clock::now() + deadline);
    stream_ = stub_->ToHF(&ctx_);
  }
  bool Write(const v1::ConvertRequest& m) { return stream_->Write(m); }
  bool Read(v1::ConvertResponse* r) { return stream_->Read(r); }
  void WritesDone() { stream_->WritesDone(); }
  void Cancel() { ctx_.TryCancel(); }
  // Finish(): reads what is left, then the status.
  grpc::Status Finish() {
    v1::ConvertResponse r;
    while (stream_->Read(&r)) {
    }
    return stream_->Finish();
  }

 private:
  std::unique_ptr<v1::MoeAdapter::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::ConvertRequest, v1::ConvertResponse>> stream_;
};

// A pass-through tensor (forwarded unchanged by ToHF): its header, then its
// bytes in `chunk`-byte messages.
std::vector<v1::ConvertRequest> PassThrough(size_t bytes, size_t chunk) {
  std::string data(bytes, '\0');
  for (size_t i = 0; i < bytes; ++i) data[i] = static_cast<char>(i * 7 + 1);
  std::vector<v1::ConvertRequest> out = {
      HeaderMsg("model.norm.weight", "F32", {static_cast<int64_t>(bytes / 4)}, bytes, Crc32c(data.data(), bytes))};
  for (size_t at = 0; at < bytes; at += chunk) out.push_back(ChunkMsg(data.substr(at, chunk)));
  return out;
}

// A legitimate stream: options, one tensor, half-close; OK with its summary.
grpc::Status Legitimate(const std::string& target, const std::string& token = "") {
  std::vector<v1::ConvertRequest> msgs = {OptionsMsg(4, 8, 6)};
  for (v1::ConvertRequest& m : PassThrough(32, 32)) msgs.push_back(std::move(m));
  std::vector<v1::ConvertResponse> responses;
  grpc::Status s = RawStream(target, "ToHF", msgs, &responses, token);
  if (s.ok() && (responses.empty() || !responses.back().has_summary())) {
    return grpc::Status(grpc::StatusCode::INTERNAL, "no summary");
  }
  return s;
}

// ---- idle streams ------------------------------------------------------------------

TEST(StreamLimitsTest, IdleStreamsAreEndedAndFreeTheirSlots) {
  Server s({"--max-concurrent-streams", "4", "--stream-idle-timeout", "1s"});
  ASSERT_TRUE(s.up()) << s.log();
  // Four clients send their options, then nothing; the first one also the
  // start of an expert tensor, so the server holds a slab buffer for it.
  std::vector<grpc::Status> idle(4);
  std::vector<double> lasted(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      RawCall call(s.target());
      const auto t0 = Clock::now();
      if (i == 0) {
        call.Write(OptionsMsg(2, 512, 512));
        call.Write(HeaderMsg("model.layers.0.mlp.experts.gate_and_up_projs", "F32", {2, 512, 1024}, 4 << 20, 0));
        call.Write(ChunkMsg(std::string(64 << 10, 'x')));
      } else {
        call.Write(OptionsMsg(4, 8, 6));
      }
      idle[i] = call.Finish();
      lasted[i] = std::chrono::duration<double>(Clock::now() - t0).count();
    });
  }
  ASSERT_TRUE(s.WaitFor("moe_adapter_active_streams", 4));
  for (int i = 0; i < 100 && s.Metric("moe_adapter_buffered_bytes") < (2 << 20); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_GE(s.Metric("moe_adapter_buffered_bytes"), 2 << 20) << "the first stream should hold its slab";
  // Every slot is held: a fifth client is refused while they last...
  grpc::Status refused = Legitimate(s.target());
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_THAT(refused.error_message(), HasSubstr("--max-concurrent-streams"));
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(idle[i].error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << idle[i].error_message();
    EXPECT_THAT(idle[i].error_message(), HasSubstr("no message from the client for 1s (--stream-idle-timeout)"));
    EXPECT_GT(lasted[i], 0.9);
    EXPECT_LT(lasted[i], 5.0);
  }
  // ...and served once the idle ones are gone.
  grpc::Status served = Legitimate(s.target());
  EXPECT_TRUE(served.ok()) << served.error_message();
  EXPECT_TRUE(s.WaitForRequests("ToHF", "DEADLINE_EXCEEDED", 4)) << s.Requests("ToHF", "DEADLINE_EXCEEDED");
  EXPECT_TRUE(s.WaitForRequests("ToHF", "RESOURCE_EXHAUSTED", 1));
  EXPECT_TRUE(s.WaitForRequests("ToHF", "OK", 1));
  EXPECT_EQ(s.Requests("ToHF", "CANCELLED"), 0);
  s.ExpectServingAndEmpty();
}

TEST(StreamLimitsTest, OptionsMustArriveInTime) {
  Server s({"--stream-options-timeout", "1s", "--stream-idle-timeout", "60s"});
  ASSERT_TRUE(s.up()) << s.log();
  RawCall call(s.target());  // opens the stream, sends nothing
  const auto t0 = Clock::now();
  grpc::Status st = call.Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr("no options from the client within 1s"));
  EXPECT_THAT(st.error_message(), HasSubstr("--stream-options-timeout"));
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
  EXPECT_TRUE(s.WaitForRequests("ToHF", "DEADLINE_EXCEEDED", 1));
  s.ExpectServingAndEmpty();
}

// A client that takes its outputs slowly (pausing, but never for the
// timeout) keeps its stream, however long the stream lasts. Each expert slab
// in gives 2 MiB out at once, and with a small receive window the server
// reads nothing from the client while the client drains them (over a
// second): that wait is the client's reading, not idleness.
TEST(StreamLimitsTest, SlowReaderIsNotIdle) {
  Server s({"--stream-idle-timeout", "1s", "--max-chunk-bytes", "64KiB"});
  ASSERT_TRUE(s.up()) << s.log();
  RawCall call(s.target(), "", std::chrono::seconds(30), SmallWindow());
  // gate_and_up_projs [E=2, H=512, 2I=1024] f32: two 2 MiB slabs.
  std::string data(4 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i % 251);
  std::vector<v1::ConvertRequest> msgs = {
      OptionsMsg(2, 512, 512), HeaderMsg("model.layers.0.mlp.experts.gate_and_up_projs", "F32", {2, 512, 1024},
                                         data.size(), Crc32c(data.data(), data.size()))};
  for (size_t at = 0; at < data.size(); at += 64 << 10) msgs.push_back(ChunkMsg(data.substr(at, 64 << 10)));
  std::thread writer([&] {
    for (const v1::ConvertRequest& m : msgs) {
      if (!call.Write(m)) break;
    }
    call.WritesDone();
  });
  const auto t0 = Clock::now();
  uint64_t bytes = 0;
  int tensors = 0;
  bool summary = false;
  v1::ConvertResponse r;
  for (int n = 0; call.Read(&r); ++n) {
    bytes += r.chunk().size();
    tensors += r.has_header();
    summary = summary || r.has_summary();
    std::this_thread::sleep_for(std::chrono::milliseconds(n % 30 == 29 ? 400 : 40));
  }
  writer.join();
  grpc::Status st = call.Finish();
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(summary);
  EXPECT_EQ(tensors, 4);  // gate and up of each expert
  EXPECT_EQ(bytes, 4u << 20);
  EXPECT_GT(Clock::now() - t0, std::chrono::seconds(2)) << "the stream should outlast the timeout";
  EXPECT_TRUE(s.WaitForRequests("ToHF", "OK", 1));
  s.ExpectServingAndEmpty();
}

// A client that stops taking outputs (and so, held back, sends nothing either)
// is idle too; the server cannot Finish with a write stuck, so it cancels.
TEST(StreamLimitsTest, ClientThatStopsReadingIsCancelled) {
  Server s({"--stream-idle-timeout", "1s", "--max-chunk-bytes", "64KiB"});
  ASSERT_TRUE(s.up()) << s.log();
  RawCall call(s.target(), "", std::chrono::seconds(30), SmallWindow());
  call.Write(OptionsMsg(4, 8, 6));
  const auto t0 = Clock::now();
  for (const v1::ConvertRequest& m : PassThrough(8 << 20, 64 << 10)) {
    if (!call.Write(m)) break;  // fails once the server has cancelled
  }
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(10));
  grpc::Status st = call.Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::CANCELLED) << st.error_message();
  EXPECT_TRUE(s.WaitForRequests("ToHF", "CANCELLED", 1)) << s.Requests("ToHF", "CANCELLED");
  s.ExpectServingAndEmpty();
}

// ---- the metric's code is the client's ---------------------------------------------

TEST(StreamLimitsTest, OversizedMessageIsResourceExhaustedForBoth) {
  Server s({"--max-chunk-bytes", "64KiB"});
  ASSERT_TRUE(s.up()) << s.log();
  // The limit is --max-chunk-bytes + 1 MiB; this chunk message is 2 MiB.
  RawCall call(s.target());
  call.Write(OptionsMsg(4, 8, 6));
  call.Write(HeaderMsg("model.norm.weight", "F32", {1 << 19}, 2 << 20, 0));
  call.Write(ChunkMsg(std::string(2 << 20, 'x')));
  grpc::Status st = call.Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  EXPECT_THAT(st.error_message(), HasSubstr("--max-chunk-bytes"));
  // Also as the first message, half-closed at once.
  st = RawStream(s.target(), "ToHF", {ChunkMsg(std::string(2 << 20, 'x'))});
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  EXPECT_TRUE(s.WaitForRequests("ToHF", "RESOURCE_EXHAUSTED", 2)) << s.Requests("ToHF", "RESOURCE_EXHAUSTED");
  EXPECT_EQ(s.Requests("ToHF", "CANCELLED"), 0);
  s.ExpectServingAndEmpty();
}

TEST(StreamLimitsTest, CancelAndDeadlineAreCountedAsTheClientSawThem) {
  Server s({});
  ASSERT_TRUE(s.up()) << s.log();
  {
    RawCall call(s.target());
    call.Write(OptionsMsg(4, 8, 6));
    ASSERT_TRUE(s.WaitFor("moe_adapter_active_streams", 1));
    call.Cancel();
    grpc::Status st = call.Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::CANCELLED) << st.error_message();
  }
  EXPECT_TRUE(s.WaitForRequests("ToHF", "CANCELLED", 1));
  {
    RawCall call(s.target(), "", std::chrono::milliseconds(500));
    call.Write(OptionsMsg(4, 8, 6));
    grpc::Status st = call.Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << st.error_message();
  }
  EXPECT_TRUE(s.WaitForRequests("ToHF", "DEADLINE_EXCEEDED", 1));
  EXPECT_EQ(s.Requests("ToHF", "CANCELLED"), 1);
  s.ExpectServingAndEmpty();
}

// ---- tokens ------------------------------------------------------------------------

TEST(StreamLimitsTest, MissingOrWrongTokenIsUnauthenticatedForBoth) {
  TempDir tmp;
  WriteFileOrDie(tmp.path() + "/token", "a-real-secret-0123456789\n");
  Server s({"--auth-token-file", tmp.path() + "/token"});
  ASSERT_TRUE(s.up()) << s.log();
  for (const std::string token : {"", "a-real-secret-0123456788", "a-real-secret", "a-real-secret-01234567890"}) {
    grpc::Status st = Legitimate(s.target(), token);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << token << ": " << st.error_message();
  }
  EXPECT_TRUE(Legitimate(s.target(), "a-real-secret-0123456789").ok());
  EXPECT_TRUE(s.WaitForRequests("ToHF", "UNAUTHENTICATED", 4)) << s.Requests("ToHF", "UNAUTHENTICATED");
  EXPECT_TRUE(s.WaitForRequests("ToHF", "OK", 1));
  // Loopback plaintext: no warning.
  EXPECT_THAT(s.log(), Not(HasSubstr("warning")));
  s.ExpectServingAndEmpty();
}

TEST(StreamLimitsTest, PlaceholderTokenIsRefusedAtStart) {
  TempDir tmp;
  // The token committed in deploy/k8s/base/secret-auth.yaml.
  WriteFileOrDie(tmp.path() + "/token", "CHANGE-ME-placeholder-token-not-a-secret\n");
  ServerProcess p(MOE_SERVER_PATH, {"--auth-token-file", tmp.path() + "/token"});
  EXPECT_EQ(p.Port(), 0);
  EXPECT_EQ(p.Wait(std::chrono::seconds(20)), 1);
  const std::string log = ReadFileOrDie(p.log());
  EXPECT_THAT(log, HasSubstr("placeholder token"));
  EXPECT_THAT(log, HasSubstr("CHANGE-ME"));
  EXPECT_THAT(log, Not(HasSubstr("not-a-secret"))) << "the token itself is never printed";
}

TEST(StreamLimitsTest, PlaintextTokenOffLoopbackIsWarnedOnce) {
  TempDir tmp;
  WriteFileOrDie(tmp.path() + "/token", "a-real-secret-0123456789\n");
  {
    Server s({"--auth-token-file", tmp.path() + "/token"}, "0.0.0.0:0");
    ASSERT_TRUE(s.up()) << s.log();
    const std::string log = s.log();
    const size_t first = log.find("warning:");
    ASSERT_NE(first, std::string::npos) << log;
    EXPECT_EQ(log.find("warning:", first + 1), std::string::npos) << log;
    EXPECT_THAT(log, HasSubstr("plaintext on 0.0.0.0:0"));
    EXPECT_THAT(log, Not(HasSubstr("a-real-secret")));
    EXPECT_TRUE(Legitimate(s.target(), "a-real-secret-0123456789").ok());
  }
  {
    // 127.0.0.2 is loopback (127.0.0.0/8): no warning.
    Server s({"--auth-token-file", tmp.path() + "/token"}, "127.0.0.2:0");
    ASSERT_TRUE(s.up()) << s.log();
    EXPECT_THAT(s.log(), Not(HasSubstr("warning")));
  }
  {
    Server s({}, "0.0.0.0:0");  // no token: nothing to warn about
    ASSERT_TRUE(s.up()) << s.log();
    EXPECT_THAT(s.log(), Not(HasSubstr("warning")));
  }
}

TEST(TokenRulesTest, SameSecret) {
  using server::SameSecret;
  EXPECT_TRUE(SameSecret("a-real-secret", "a-real-secret"));
  EXPECT_TRUE(SameSecret("", ""));
  EXPECT_FALSE(SameSecret("a-real-secreT", "a-real-secret"));
  EXPECT_FALSE(SameSecret("b-real-secret", "a-real-secret"));
  EXPECT_FALSE(SameSecret("a-real-secre", "a-real-secret"));   // a prefix
  EXPECT_FALSE(SameSecret("a-real-secrett", "a-real-secret"));  // longer
  EXPECT_FALSE(SameSecret("", "a-real-secret"));
  EXPECT_FALSE(SameSecret("a-real-secret", ""));
  const std::string with_nul("a\0b", 3), other_nul("a\0c", 3);
  EXPECT_FALSE(SameSecret(with_nul, other_nul));
  EXPECT_FALSE(SameSecret(absl::string_view("a", 1), with_nul));
  EXPECT_TRUE(SameSecret(with_nul, std::string("a\0b", 3)));
}

TEST(TokenRulesTest, PlaceholdersAndLoopback) {
  using server::IsLoopbackListen;
  using server::IsPlaceholderToken;
  EXPECT_TRUE(IsPlaceholderToken("CHANGE-ME-placeholder-token-not-a-secret"));
  EXPECT_TRUE(IsPlaceholderToken("x-change-me-x"));
  EXPECT_FALSE(IsPlaceholderToken("3f9a0c5e"));
  for (const char* yes : {"127.0.0.1:50051", "127.0.0.2:0", "127.255.0.1:1", "localhost:50051", "[::1]:50051",
                          "[::ffff:127.0.0.1]:1", "unix:/run/moe.sock", "ipv4:127.0.0.1:1"}) {
    EXPECT_TRUE(IsLoopbackListen(yes)) << yes;
  }
  for (const char* no : {"0.0.0.0:50051", "[::]:50051", "10.0.0.7:50051", "128.0.0.1:1", "example.com:50051",
                         "[::ffff:10.0.0.1]:1", "[fe80::1]:1"}) {
    EXPECT_FALSE(IsLoopbackListen(no)) << no;
  }
}

}  // namespace
}  // namespace moe_adapter::server_testing
