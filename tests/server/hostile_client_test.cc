// The real moe-adapter-server, small budgets, and a client that breaks every
// rule of the protocol through raw byte streams: lengths that lie, bytes past
// the end, bad checksums, messages out of order or oversized, unknown dtypes,
// ids and dims beyond any model, megabyte names, sizes whose arithmetic wraps
// around, and thousands of tensors with long names.
//
// For each: the exact status code a client with gRPC's default channel
// options receives (never a transport RESOURCE_EXHAUSTED because the status
// message itself was too large), a message under 1 KiB that is valid UTF-8,
// and afterwards the server still serving health, its
// moe_adapter_buffered_bytes gauge back to 0 and its RSS back near where it
// was.
//
// MOE_SERVER_BINARY in the environment runs the suite against another build.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
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
#include "moe_adapter/v1/adapter.grpc.pb.h"
#include "tests/server/server_test_util.h"

namespace moe_adapter::server_testing {
namespace {

using ::testing::HasSubstr;
using v1::ConvertRequest;

constexpr uint64_t kMiB = uint64_t{1} << 20;
// RSS may exceed its level before a case by this much once the case is over
// (gRPC's own buffers, allocator slack); a leak of the stream's bookkeeping
// is hundreds of MB.
constexpr int64_t kRssSlackBytes = 48 * kMiB;

std::string ServerBinary() {
  const char* other = std::getenv("MOE_SERVER_BINARY");
  return other && *other ? other : MOE_SERVER_PATH;
}

// Every message on the wire is valid UTF-8 (the names were: proto3 checks).
bool ValidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = s[i];
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

struct Outcome {
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  std::string message;
  int responses = 0;
};

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
  return os << "code " << o.code << " (" << o.message.size() << "-byte message: " << o.message.substr(0, 300)
            << "), " << o.responses << " responses";
}

class HostileClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess(ServerBinary(),
                                {"--max-stream-memory", "64MiB", "--max-total-memory", "128MiB"}, "127.0.0.1:0",
                                "127.0.0.1:0");
    port_ = server_->Port();
    if (port_ != 0) metrics_port_ = server_->MetricsPort();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(port_, 0) << ReadFileOrDie(server_->log());
    rss_before_ = RssBytes();
  }

  // Afterwards: health, the gauge back to 0, RSS back near its level.
  void TearDown() override {
    if (port_ == 0) return;
    ClientOptions co;
    co.target = Target();
    absl::StatusOr<std::unique_ptr<RemoteClient>> client = RemoteClient::Connect(co);
    ASSERT_TRUE(client.ok()) << client.status();
    EXPECT_TRUE((*client)->Health().ok()) << "the server stopped answering health";
    double buffered = -1;
    for (int i = 0; i < 200 && buffered != 0; ++i) {
      buffered = Gauge("moe_adapter_buffered_bytes");
      if (buffered != 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(buffered, 0) << "moe_adapter_buffered_bytes after the stream";
    const int64_t rss = RssBytes();
#if !defined(__SANITIZE_ADDRESS__)  // ASan's quarantine keeps freed memory resident on purpose
    EXPECT_LE(rss, rss_before_ + kRssSlackBytes)
        << "server RSS " << rss / kMiB << " MiB after the stream, " << rss_before_ / kMiB << " MiB before";
#endif
    std::printf("[   INFO   ] server RSS %.1f MiB before, %.1f MiB after (peak so far %.1f MiB)\n",
                rss_before_ / double(kMiB), rss / double(kMiB), RssBytes("VmHWM:") / double(kMiB));
  }

  static std::string Target() { return absl::StrCat("127.0.0.1:", port_); }

  // RssBytes(): the server's resident memory now (VmRSS) or at its peak so far (VmHWM).
  static int64_t RssBytes(const char* field = "VmRSS:") {
    std::ifstream f(absl::StrCat("/proc/", server_->pid(), "/status"));
    std::string line;
    while (std::getline(f, line)) {
      if (absl::StartsWith(line, field)) {
        std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
        int64_t kb = 0;
        if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &kb)) return kb * 1024;
      }
    }
    return -1;
  }

  static double Gauge(const std::string& name) {
    absl::StatusOr<std::string> body = HttpGet(metrics_port_, "/metrics");
    if (!body.ok()) return -1;
    for (absl::string_view line : absl::StrSplit(*body, '\n')) {
      if (absl::ConsumePrefix(&line, name + " ")) {
        double v = -1;
        if (absl::SimpleAtod(line, &v)) return v;
      }
    }
    return -1;
  }

  // Run(): a raw stream on a channel with gRPC's default options: message
  // `i` of `n` is make(i); reading runs alongside writing (the server stops
  // reading while its output queue is full); half-closes after the last.
  // `gzip`: the client compresses its messages.
  static Outcome Run(const std::string& rpc, int n, const std::function<ConvertRequest(int)>& make,
                     bool gzip = false) {
    auto channel = grpc::CreateChannel(Target(), grpc::InsecureChannelCredentials());
    auto stub = v1::MoeAdapter::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    if (gzip) ctx.set_compression_algorithm(GRPC_COMPRESS_GZIP);
    std::unique_ptr<grpc::ClientReaderWriter<ConvertRequest, v1::ConvertResponse>> stream;
    if (rpc == "ToHF") stream = stub->ToHF(&ctx);
    if (rpc == "FromHF") stream = stub->FromHF(&ctx);
    if (rpc == "ConvertTensor") stream = stub->ConvertTensor(&ctx);
    Outcome out;
    std::thread reader([&] {
      v1::ConvertResponse resp;
      while (stream->Read(&resp)) ++out.responses;
    });
    for (int i = 0; i < n; ++i) {
      if (!stream->Write(make(i))) break;
    }
    stream->WritesDone();
    reader.join();
    grpc::Status st = stream->Finish();
    out.code = st.error_code();
    out.message = st.error_message();
    return out;
  }
  static Outcome Run(const std::string& rpc, const std::vector<ConvertRequest>& msgs) {
    return Run(rpc, static_cast<int>(msgs.size()), [&](int i) { return msgs[i]; });
  }

  // ExpectRefused(): `code`, a message naming `what`, small and UTF-8.
  static void ExpectRefused(const Outcome& o, grpc::StatusCode code, const std::string& what) {
    EXPECT_EQ(o.code, code) << o;
    EXPECT_THAT(o.message, HasSubstr(what)) << o;
    EXPECT_LT(o.message.size(), 1024u) << o;
    EXPECT_TRUE(ValidUtf8(o.message)) << o;
  }

  static ConvertRequest Options(int64_t e = 2, int64_t h = 4, int64_t i = 4) { return OptionsMsg(e, h, i); }

  static ServerProcess* server_;
  static int port_;
  static int metrics_port_;
  int64_t rss_before_ = 0;
};

ServerProcess* HostileClientTest::server_ = nullptr;
int HostileClientTest::port_ = 0;
int HostileClientTest::metrics_port_ = 0;

const grpc::StatusCode kInvalid = grpc::StatusCode::INVALID_ARGUMENT;
const grpc::StatusCode kExhausted = grpc::StatusCode::RESOURCE_EXHAUSTED;
const std::string kMegabyte(1 << 20, 'x');

uint32_t Crc(const std::string& s) { return Crc32c(s.data(), s.size()); }

// ---- framing ---------------------------------------------------------------

TEST_F(HostileClientTest, HugeDeclaredLengthWithNoData) {
  // Pass-through is forwarded as it arrives, so nothing is reserved for it;
  // the stream ends long before 1 TiB arrives.
  ExpectRefused(Run("ToHF", {Options(), HeaderMsg("model.norm.weight", "U8", {int64_t{1} << 40}, uint64_t{1} << 40, 0)}),
                kInvalid, "is truncated");
  // Held whole (LoRA): refused before anything is allocated.
  ExpectRefused(Run("ToHF", {Options(), HeaderMsg("model.layers.0.mlp.experts.lora_down_B", "F32",
                                                  {2, int64_t{1} << 36, 4}, uint64_t{1} << 41, 0)}),
                kExhausted, "--max-stream-memory");
}

TEST_F(HostileClientTest, MoreBytesThanDeclared) {
  ExpectRefused(Run("ToHF", {Options(), HeaderMsg("model.norm.weight", "U8", {4}, 4, 0), ChunkMsg("12345678")}),
                kInvalid, "beyond the declared");
}

TEST_F(HostileClientTest, WrongCrc) {
  ExpectRefused(Run("ToHF", {Options(), HeaderMsg("model.norm.weight", "U8", {4}, 4, Crc("1234") ^ 1), ChunkMsg("1234")}),
                kInvalid, "CRC32C mismatch");
}

TEST_F(HostileClientTest, OversizedChunkAndMessage) {
  const std::string chunk((4 << 20) + 1, 'c');  // over the 4 MiB chunk size, within the 5 MiB message limit
  ExpectRefused(Run("ToHF", {Options(), HeaderMsg("model.norm.weight", "U8", {8 << 20}, 8 << 20, 0), ChunkMsg(chunk)}),
                kInvalid, "exceeds the chunk size");
  const std::string message(6 << 20, 'm');  // over gRPC's receive limit: its own check
  const Outcome o = Run("ToHF", {Options(), HeaderMsg("model.norm.weight", "U8", {8 << 20}, 8 << 20, 0), ChunkMsg(message)});
  EXPECT_EQ(o.code, kExhausted) << o;
  EXPECT_LT(o.message.size(), 1024u) << o;
}

TEST_F(HostileClientTest, CompressedMessagesAreRefusedBeforeTheyInflate) {
  // 256 MiB of zeros gzip to about 250 KB: a server that inflated it would
  // hold 256 MiB for one small message (its size check runs after inflating).
  const std::string zeros(256 << 20, '\0');
  const Outcome o = Run(
      "ToHF", 2, [&](int i) { return i == 0 ? Options() : ChunkMsg(zeros); }, /*gzip=*/true);
  EXPECT_EQ(o.code, grpc::StatusCode::UNIMPLEMENTED) << o;
  EXPECT_LT(o.message.size(), 1024u) << o;
  EXPECT_LT(RssBytes("VmHWM:"), 256 * int64_t(kMiB)) << "the server inflated the message";
}

TEST_F(HostileClientTest, MessagesOutOfOrder) {
  ExpectRefused(Run("ToHF", {ChunkMsg("1234")}), kInvalid, "options");
  ExpectRefused(Run("FromHF", {HeaderMsg("model.norm.weight", "U8", {4}, 4, Crc("1234"))}), kInvalid, "options");
  ExpectRefused(Run("ToHF", {Options(), Options()}), kInvalid, "options sent twice");
  ExpectRefused(Run("ToHF", {Options(), ChunkMsg("1234")}), kInvalid, "without a tensor header");
}

TEST_F(HostileClientTest, UnknownDtype) {
  ExpectRefused(Run("ToHF", {Options(), HeaderMsg("model.norm.weight", "BF17", {2}, 4, 0)}), kInvalid,
                "unknown dtype \"BF17\"");
}

TEST_F(HostileClientTest, HugeIds) {
  ExpectRefused(Run("FromHF", {Options(), HeaderMsg("model.layers.0.mlp.experts.999999999.gate_proj.weight", "BF16",
                                                    {4, 4}, 32, 0)}),
                kInvalid, "out of range");
  ExpectRefused(Run("FromHF", {Options(), HeaderMsg("model.layers.99999999999999999999.mlp.experts.0.gate_proj.weight",
                                                    "BF16", {4, 4}, 32, 0)}),
                kInvalid, "not a canonical decimal");
  ConvertRequest ep = Options();
  ep.mutable_options()->set_ep_size(int64_t{1} << 62);
  ExpectRefused(Run("ToHF", {ep}), kInvalid, "ep_size");
}

// ---- strings: bounded before use, quoted cut in messages --------------------

TEST_F(HostileClientTest, MegabyteNameIsRefusedWithASmallMessage) {
  ExpectRefused(Run("ToHF", {Options(), HeaderMsg("model." + kMegabyte, "U8", {0}, 0, 0)}), kInvalid,
                "name of 1048582 bytes exceeds the limit of 4096 bytes");
  ExpectRefused(Run("FromHF", {Options(), HeaderMsg(kMegabyte, "NOT-A-DTYPE", {0}, 0, 0)}), kInvalid,
                "exceeds the limit of 4096 bytes");
}

TEST_F(HostileClientTest, MegabyteDtypeIsRefusedWithASmallMessage) {
  ExpectRefused(Run("ToHF", {Options(), HeaderMsg("model.norm.weight", kMegabyte, {0}, 0, 0)}), kInvalid,
                "dtype string of 1048576 bytes exceeds the limit of 32 bytes");
}

TEST_F(HostileClientTest, OversizedMetadataIsRefused) {
  ConvertRequest key = HeaderMsg("model.norm.weight", "U8", {0}, 0, 0);
  (*key.mutable_header()->mutable_metadata())[kMegabyte] = "v";
  ExpectRefused(Run("ToHF", {Options(), key}), kInvalid, "metadata key of 1048576 bytes");
  ConvertRequest value = HeaderMsg("model.norm.weight", "U8", {0}, 0, 0);
  (*value.mutable_header()->mutable_metadata())["k"] = kMegabyte;
  ExpectRefused(Run("ToHF", {Options(), value}), kInvalid, "metadata value of key \"k\"");
  ConvertRequest many = HeaderMsg("model.norm.weight", "U8", {0}, 0, 0);
  for (int i = 0; i < 1000; ++i) (*many.mutable_header()->mutable_metadata())[absl::StrCat("k", i)] = "v";
  ExpectRefused(Run("ToHF", {Options(), many}), kInvalid, "1000 metadata entries exceed the limit of 64");
  ConvertRequest total = HeaderMsg("model.norm.weight", "U8", {0}, 0, 0);
  for (int i = 0; i < 20; ++i) (*total.mutable_header()->mutable_metadata())[absl::StrCat("k", i)] = std::string(4000, 'v');
  ExpectRefused(Run("ToHF", {Options(), total}), kInvalid, "exceeds the limit of 65536 bytes");
}

TEST_F(HostileClientTest, OversizedOptionStringsAreRefused) {
  struct Case {
    std::function<void(v1::StreamOptions*)> set;
    std::string field;
  } cases[] = {
      {[](v1::StreamOptions* o) { o->set_config_json(std::string(2 << 20, ' ')); }, "config_json of 2097152 bytes"},
      {[](v1::StreamOptions* o) { o->set_adapter_config_json(std::string(2 << 20, ' ')); }, "adapter_config_json of"},
      {[](v1::StreamOptions* o) { o->set_exclude_key_regex(kMegabyte); }, "exclude_key_regex of 1048576 bytes"},
      {[](v1::StreamOptions* o) { o->set_lora_layout(kMegabyte); }, "lora_layout of 1048576 bytes"},
      {[](v1::StreamOptions* o) { o->set_dtype(kMegabyte); }, "dtype of 1048576 bytes"},
      {[](v1::StreamOptions* o) { o->mutable_geometry()->set_config_dtype(kMegabyte); }, "config_dtype of"},
      {[](v1::StreamOptions* o) {
         for (int i = 0; i < 100000; ++i) o->mutable_geometry()->add_mlp_only_layers(i);
       },
       "mlp_only_layers has 100000 entries"},
  };
  for (const Case& c : cases) {
    ConvertRequest o = Options();
    c.set(o.mutable_options());
    ExpectRefused(Run("ToHF", {o}), kInvalid, c.field);
  }  // Within the bound but not a regex: RE2's error quotes the pattern.
  ConvertRequest regex = Options();
  regex.mutable_options()->set_exclude_key_regex(std::string(4000, '('));
  ExpectRefused(Run("ToHF", {regex}), kInvalid, "does not compile");
}

// ---- sizes: checked arithmetic ----------------------------------------------

TEST_F(HostileClientTest, OverflowingShapes) {
  ExpectRefused(Run("ToHF", {Options(), HeaderMsg("model.norm.weight", "F32", {int64_t{1} << 62, 4}, 0, 0)}), kInvalid,
                "more elements than int64 can count");
  ExpectRefused(Run("ToHF", {Options(), HeaderMsg("model.norm.weight", "F64", {int64_t{1} << 61}, 0, 0)}), kInvalid,
                "overflows int64");
  ExpectRefused(Run("ToHF", {Options(), HeaderMsg("model.norm.weight", "F32", {-4, -4}, 64, 0)}), kInvalid,
                "negative dimension");
  ExpectRefused(Run("ToHF", {Options(), HeaderMsg("model.norm.weight", "U8", {1, 1, 1, 1, 1, 1, 1, 1, 1}, 1, 0)}),
                kInvalid, "rank 9 exceeds the limit of 8");
  ExpectRefused(Run("ToHF", {Options(), HeaderMsg("model.norm.weight", "U8", {4}, ~uint64_t{0}, 0)}), kInvalid,
                "does not match shape");
}

// lora_down_B [E, r, H] whose 3 x byte_length wraps to 2: the reservation
// must see the real size (more than 64 bits can count), not 2 bytes.
TEST_F(HostileClientTest, LoraThreeTimesByteLengthWraps) {
  const int64_t r = 3074457345618258603;  // 6r = 2^64 + 2
  const uint64_t bytes = 2 * static_cast<uint64_t>(r);
  ASSERT_EQ(3 * bytes, 2u);
  ExpectRefused(Run("ToHF", {Options(1, 1, 1), HeaderMsg("model.layers.0.mlp.experts.lora_down_B", "BF16", {1, r, 1},
                                                          bytes, 0)}),
                kExhausted, "than 64 bits can count, more than the per-stream memory budget");
}

TEST_F(HostileClientTest, GeometryWhoseGroupsOverflow) {
  // E x H x 2I = 2^73: the hold size of a group wrapped to 0.
  ExpectRefused(Run("FromHF", {Options(1 << 24, 1 << 24, 1 << 24)}), kInvalid, "more bytes than int64 can count");
  ConvertRequest layers = Options();
  layers.mutable_options()->mutable_geometry()->set_num_hidden_layers(int64_t{1} << 62);
  ExpectRefused(Run("FromHF", {layers}), kInvalid, "num_hidden_layers");
  // Just within int64: a group of 2^61 bytes (E = H = 2^20, I = 2^19, BF16)
  // is counted as such and refused by the budget.
  ExpectRefused(Run("FromHF", {Options(1 << 20, 1 << 20, 1 << 19),
                               HeaderMsg("model.layers.0.mlp.experts.0.gate_proj.weight", "BF16", {1 << 19, 1 << 20},
                                         uint64_t{1} << 40, 0)}),
                kExhausted, ", and 230584300921");  // 2^61 bytes, the flags and key on top
}

// ---- memory: everything a stream keeps counts against its budget -----------

// The case of the report: 300 zero-byte tensors with distinct 1 MiB names.
TEST_F(HostileClientTest, ThreeHundredMegabyteNames) {
  const Outcome o = Run("ToHF", 301, [](int i) {
    if (i == 0) return Options();
    return HeaderMsg(absl::StrCat("model.", i, ".", kMegabyte), "U8", {0}, 0, 0);
  });
  ExpectRefused(o, kInvalid, "exceeds the limit of 4096 bytes");
}

// Names within the limit, but so many that keeping them (input and output
// registries, queued headers) exceeds the 64 MiB stream budget.
TEST_F(HostileClientTest, ManySmallTensorsWithLongNames) {
  const std::string long_name(4000, 'n');
  const Outcome o = Run("ToHF", 20001, [&](int i) {
    if (i == 0) return Options();
    return HeaderMsg(absl::StrCat("model.", i, ".", long_name), "U8", {0}, 0, 0);
  });
  ExpectRefused(o, kExhausted, "per-stream memory budget of 67108864 bytes (--max-stream-memory)");
  EXPECT_THAT(o.message, HasSubstr("the bookkeeping of tensor"));
}

// A megabyte of adapter config is kept by the stream (in three copies): it
// shows in the buffered gauge while the stream is open.
TEST_F(HostileClientTest, KeptOptionsCountWhileTheStreamIsOpen) {
  auto channel = grpc::CreateChannel(Target(), grpc::InsecureChannelCredentials());
  auto stub = v1::MoeAdapter::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto stream = stub->ToHF(&ctx);
  ConvertRequest o = Options();
  o.mutable_options()->set_adapter_config_json("{" + std::string((1 << 20) - 2, ' ') + "}");
  ASSERT_TRUE(stream->Write(o));
  double buffered = 0;
  for (int i = 0; i < 500 && buffered < 3 * kMiB; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    buffered = Gauge("moe_adapter_buffered_bytes");
  }
  EXPECT_GE(buffered, 3 * kMiB);
  stream->WritesDone();
  v1::ConvertResponse resp;
  while (stream->Read(&resp)) {
  }
  EXPECT_TRUE(stream->Finish().ok());
}

}  // namespace
}  // namespace moe_adapter::server_testing
