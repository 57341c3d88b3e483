// The server in-process on 127.0.0.1:0, driven through the client library
// (and raw streams for malformed input): golden cases through every RPC give
// exactly the core's results; a > 2 GiB grouped tensor streams within the
// per-stream budget; every kind of bad input gets its status; cancel and
// deadline free the stream's buffers; 32 concurrent streams; /metrics passes
// promtool.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <thread>

#include <grpcpp/generic/generic_stub.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "core/buffer_cache.h"
#include "moe_adapter/client.h"
#include "moe_adapter/converter.h"
#include "moe_adapter/crc32c.h"
#include "server/memory_budget.h"
#include "server/metrics.h"
#include "server/server.h"
#include "server/unix_socket.h"
#include "tests/server/server_test_util.h"

namespace moe_adapter::server_testing {
namespace {

using server::AdapterServer;
using server::ServerOptions;
using ::testing::HasSubstr;

constexpr uint64_t kStreamBudget = 128ull << 20;

ServerOptions TestServerOptions() {
  ServerOptions o;
  o.listen = {"127.0.0.1:0"};
  o.metrics_listen = "";
  o.max_stream_memory = kStreamBudget;
  o.max_total_memory = 4ull << 30;
  return o;
}

std::unique_ptr<AdapterServer> StartOrDie(const ServerOptions& o) {
  absl::StatusOr<std::unique_ptr<AdapterServer>> s = AdapterServer::Start(o);
  if (!s.ok()) {
    ADD_FAILURE() << s.status();
    std::abort();
  }
  return std::move(*s);
}

std::string Target(const AdapterServer& s) { return absl::StrCat("127.0.0.1:", s.port()); }

std::unique_ptr<RemoteClient> ClientFor(const AdapterServer& s, ClientOptions o = {}) {
  o.target = Target(s);
  return *RemoteClient::Connect(o);
}

// Waits until the server holds no stream bytes (cancel/deadline cleanup runs
// after the client already has its status).
bool WaitForZeroBuffered(const AdapterServer& s) {
  for (int i = 0; i < 500; ++i) {
    if (s.BufferedBytes() == 0 && s.ActiveStreams() == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// One server for the suite. It serves no /metrics: a prometheus Exposer
// takes ~2 s to stop, and ctest runs every test in its own process.
class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = StartOrDie(TestServerOptions()).release(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void TearDown() override { EXPECT_TRUE(WaitForZeroBuffered(*server_)) << server_->BufferedBytes(); }

  static AdapterServer& server() { return *server_; }
  static std::unique_ptr<RemoteClient> Client(ClientOptions o = {}) { return ClientFor(*server_, o); }
  static grpc::Status Raw(const std::string& rpc, const std::vector<v1::ConvertRequest>& msgs,
                          std::vector<v1::ConvertResponse>* out = nullptr) {
    return RawStream(Target(*server_), rpc, msgs, out);
  }

  static AdapterServer* server_;
};
AdapterServer* ServerTest::server_ = nullptr;

TEST_F(ServerTest, GetInfoAndHealth) {
  auto client = Client();
  absl::StatusOr<RemoteServerInfo> info = client->GetInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->device, "cpu");
  EXPECT_FALSE(info->version.empty());
  EXPECT_EQ(info->max_chunk_bytes, 4u << 20);
  EXPECT_EQ(info->max_stream_memory_bytes, kStreamBudget);
  EXPECT_EQ(info->max_concurrent_streams, 64u);
  EXPECT_THAT(info->lora_layouts, ::testing::ElementsAre("peft-v0.19", "peft-v0.18", "per-expert"));
  EXPECT_THAT(info->wire_dtypes, ::testing::Contains("F8_E4M3"));
  EXPECT_THAT(info->rpcs, ::testing::ElementsAre("ToHF", "FromHF", "ConvertTensor"));
  ASSERT_FALSE(info->families.empty());
  EXPECT_EQ(info->families.front(), "qwen3_moe");  // the default first
  EXPECT_THAT(info->families, ::testing::IsSupersetOf({"glm4_moe", "deepseek_v3", "qwen3_next"}));
  EXPECT_TRUE(client->Health().ok());
  EXPECT_TRUE(client->Health("moe_adapter.v1.MoeAdapter").ok());
  EXPECT_EQ(client->Health("no.such.Service").code(), absl::StatusCode::kNotFound);
}

// Reflection (v1alpha, the version Debian's gRPC serves) lists the service.
TEST_F(ServerTest, ReflectionListsTheService) {
  auto channel = grpc::CreateChannel(Target(server()), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::CompletionQueue cq;
  auto wait = [&cq](intptr_t want) {
    void* tag;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(reinterpret_cast<intptr_t>(tag), want);
    return ok;
  };
  auto call = stub.PrepareCall(&ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(wait(1));
  // ServerReflectionRequest{list_services: ""}: field 7, length-delimited, empty.
  grpc::Slice slice(std::string("\x3a\x00", 2));
  grpc::ByteBuffer request(&slice, 1);
  call->Write(request, reinterpret_cast<void*>(2));
  ASSERT_TRUE(wait(2));
  call->WritesDone(reinterpret_cast<void*>(3));
  ASSERT_TRUE(wait(3));
  grpc::ByteBuffer response;
  call->Read(&response, reinterpret_cast<void*>(4));
  ASSERT_TRUE(wait(4));
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_THAT(bytes, HasSubstr("moe_adapter.v1.MoeAdapter"));
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  wait(5);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

// Every golden case through ToHF (to_hf, derived peft-v0.19, single-tensor
// cases too), in 4 MiB chunks and in 100-byte chunks that split slabs.
TEST_F(ServerTest, GoldenCasesThroughToHf) {
  for (size_t chunk : {size_t{4} << 20, size_t{100}}) {
    ClientOptions co;
    co.chunk_bytes = chunk;
    auto client = Client(co);
    int n = 0;
    for (const std::string op : {"to_hf", "derived_peft019_to_hf", "convert_single_tensor_to_hf"}) {
      for (const json& c : ReplayableCases(op)) {
        if (c["op"] != op) continue;
        SCOPED_TRACE(absl::StrCat(c["name"].get<std::string>(), " chunk=", chunk));
        TensorList in = LoadSafetensors(GoldenDir() + "/" + c["in_file"].get<std::string>());
        ConvertOptions o = OptionsFor(c);
        Result want = CoreToHf(o, in);
        Result got = Remote(*client, RemoteRpc::kToHf, o, in);
        ASSERT_EQ(got.status.code(), want.status.code()) << got.status << " vs core " << want.status;
        if (!want.status.ok()) continue;
        EXPECT_EQ(Diff(got.outputs, want.outputs, /*ordered=*/true), "");
        EXPECT_EQ(got.warnings, want.warnings);
        ++n;
      }
    }
    EXPECT_GT(n, 40);
  }
}

// Clients generated from the .proto (here C++ protobuf messages through the
// typed stub) interoperate with the server's byte-buffer methods: chunk
// messages that protobuf encodes canonically take the no-copy path, those
// with an extra (unknown) field go through protobuf's parser; the responses
// parse as ConvertResponse messages.
TEST_F(ServerTest, ProtobufClientsInteroperate) {
  const TensorList in = LoadSafetensors(GoldenDir() + "/full_to_hf_bfloat16.in.safetensors");
  ConvertOptions geometry;
  geometry.geometry.num_experts = 4;
  geometry.geometry.hidden_size = 8;
  geometry.geometry.moe_intermediate_size = 6;
  const Result want = CoreToHf(geometry, in);
  ASSERT_TRUE(want.status.ok()) << want.status;
  std::vector<v1::ConvertRequest> msgs = {OptionsMsg(4, 8, 6)};
  int chunks = 0;
  for (const NamedTensor& t : in) {
    const Bytes& d = t.tensor.data;
    msgs.push_back(HeaderMsg(t.name, std::string(DTypeName(t.tensor.dtype)), t.tensor.shape, d.size(),
                             Crc32c(d.data(), d.size())));
    for (size_t off = 0; off < d.size(); off += 7) {
      v1::ConvertRequest c =
          ChunkMsg(std::string(reinterpret_cast<const char*>(d.data()) + off, std::min<size_t>(7, d.size() - off)));
      if (++chunks % 2) c.GetReflection()->MutableUnknownFields(&c)->AddVarint(15, 5);
      msgs.push_back(std::move(c));
    }
  }
  std::vector<v1::ConvertResponse> responses;
  const grpc::Status s = Raw("ToHF", msgs, &responses);
  ASSERT_TRUE(s.ok()) << s.error_message();
  TensorList got;
  size_t filled = 0;
  for (const v1::ConvertResponse& r : responses) {
    if (r.has_header()) {
      absl::StatusOr<DType> dtype = ParseDType(r.header().dtype());
      ASSERT_TRUE(dtype.ok()) << dtype.status();
      got.push_back({r.header().name(),
                     Tensor::Allocate(*dtype, Shape(r.header().shape().begin(), r.header().shape().end()))});
      filled = 0;
    } else if (r.kind_case() == v1::ConvertResponse::kChunk) {
      ASSERT_FALSE(got.empty());
      ASSERT_LE(filled + r.chunk().size(), got.back().tensor.nbytes());
      std::memcpy(got.back().tensor.mutable_data() + filled, r.chunk().data(), r.chunk().size());
      filled += r.chunk().size();
    }
  }
  ASSERT_TRUE(responses.back().has_summary());
  EXPECT_EQ(responses.back().summary().tensors_out(), static_cast<int64_t>(want.outputs.size()));
  EXPECT_EQ(Diff(got, want.outputs, /*ordered=*/true), "");
}

TEST_F(ServerTest, GoldenCasesThroughFromHf) {
  for (size_t chunk : {size_t{4} << 20, size_t{100}}) {
    ClientOptions co;
    co.chunk_bytes = chunk;
    auto client = Client(co);
    int n = 0, errors = 0;
    for (const json& c : ReplayableCases("from_hf")) {
      if (c["op"] != "from_hf") continue;
      SCOPED_TRACE(absl::StrCat(c["name"].get<std::string>(), " chunk=", chunk));
      TensorList in = LoadSafetensors(GoldenDir() + "/" + c["in_file"].get<std::string>());
      ConvertOptions o = OptionsFor(c);
      Result want = CoreFromHf(o, in);
      Result got = Remote(*client, RemoteRpc::kFromHf, o, in);
      ASSERT_EQ(got.status.code(), want.status.code()) << got.status << " vs core " << want.status;
      if (!want.status.ok()) {
        ++errors;
        continue;
      }
      EXPECT_EQ(Diff(got.outputs, want.outputs, /*ordered=*/false), "");
      EXPECT_EQ(got.metadata, want.metadata);
      EXPECT_EQ(got.warnings, want.warnings);
      ++n;
    }
    EXPECT_GT(n, 20);
    EXPECT_GT(errors, 3);
  }
}

TEST_F(ServerTest, GoldenCasesThroughConvertTensor) {
  auto client = Client();
  int n = 0;
  for (const std::string op : {"convert_single_tensor_to_hf", "to_hf"}) {
    for (const json& c : ReplayableCases(op)) {
      const std::string name = c["name"];
      if (c["op"] != op || (op == "to_hf" && name.rfind("full_to_hf", 0) != 0)) continue;
      TensorList in = LoadSafetensors(GoldenDir() + "/" + c["in_file"].get<std::string>());
      ConvertOptions o = OptionsFor(c);
      for (const NamedTensor& t : in) {  // one stream per tensor
        SCOPED_TRACE(absl::StrCat(name, " ", t.name));
        Result want = CoreToHf(o, {t}, /*single_tensor=*/true);
        Result got = Remote(*client, RemoteRpc::kConvertTensor, o, {t});
        ASSERT_EQ(got.status.code(), want.status.code()) << got.status << " vs core " << want.status;
        EXPECT_EQ(Diff(got.outputs, want.outputs, /*ordered=*/true), "");
        ++n;
      }
    }
  }
  EXPECT_GT(n, 50);
}

// ---- a grouped tensor beyond 2 GiB ----------------------------------------------

// Element (e, h, j) of the grouped gate_and_up_projs [E, H, 2I], as bf16 bits.
inline uint16_t Pattern(int64_t e, int64_t h, int64_t j) {
  return static_cast<uint16_t>(e * 7919 + h * 31 + j * 17);
}

void FillPattern(uint16_t* dst, int64_t first, int64_t n, int64_t H, int64_t J) {
  int64_t e = first / (H * J), h = (first / J) % H, j = first % J;
  for (int64_t k = 0; k < n; ++k) {
    dst[k] = Pattern(e, h, j);
    if (++j == J) {
      j = 0;
      if (++h == H) {
        h = 0;
        ++e;
      }
    }
  }
}

TEST_F(ServerTest, GroupedTensorBeyond2GiBStreamsWithinTheStreamBudget) {
  const int64_t E = 64, H = 4096, I = 2304, J = 2 * I;
  const uint64_t total = static_cast<uint64_t>(E * H * J) * 2;  // bf16
  ASSERT_GT(total, 2ull << 30);
  const uint64_t slab = static_cast<uint64_t>(H * J) * 2;
  const size_t piece_elems = 2u << 20;  // 4 MiB of bf16 per generated piece
  std::vector<uint16_t> piece(piece_elems);
  const auto t0 = std::chrono::steady_clock::now();

  // The CRC goes in the header, so the bytes are generated twice (never held).
  Crc32cHasher crc;
  for (uint64_t elem = 0; elem < total / 2; elem += piece_elems) {
    const int64_t n = std::min<int64_t>(piece_elems, total / 2 - elem);
    FillPattern(piece.data(), elem, n, H, J);
    crc.Update(piece.data(), n * 2);
  }

  std::atomic<bool> done{false};
  std::atomic<uint64_t> max_buffered{0};
  std::thread sampler([&] {
    while (!done) {
      uint64_t b = server().BufferedBytes();
      uint64_t m = max_buffered.load();
      while (b > m && !max_buffered.compare_exchange_weak(m, b)) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });

  std::atomic<int> outputs{0};
  std::atomic<int> bad{0};
  auto sink = [&](NamedTensor t) {
    // model.layers.0.mlp.experts.<e>.<gate|up>_proj.weight, [I, H]
    const std::string prefix = "model.layers.0.mlp.experts.";
    const size_t dot = t.name.find('.', prefix.size());
    const int64_t e = std::stoll(t.name.substr(prefix.size(), dot - prefix.size()));
    const bool up = absl::StrContains(t.name, "up_proj");
    if (t.tensor.shape != Shape{I, H} || t.tensor.dtype != DType::kBF16) ++bad;
    const uint16_t* v = reinterpret_cast<const uint16_t*>(t.tensor.data.data());
    std::mt19937 rng(static_cast<uint32_t>(e * 2 + up));
    for (int s = 0; s < 256; ++s) {
      const int64_t i = rng() % I, h = rng() % H;
      if (v[i * H + h] != Pattern(e, h, (up ? I : 0) + i)) ++bad;
    }
    ++outputs;
    return absl::OkStatus();
  };
  auto client = Client();
  ConvertOptions o;
  o.geometry.num_experts = E;
  o.geometry.hidden_size = H;
  o.geometry.moe_intermediate_size = I;
  absl::StatusOr<std::unique_ptr<RemoteSession>> session = client->Open(RemoteRpc::kToHf, o, sink);
  ASSERT_TRUE(session.ok()) << session.status();
  ASSERT_TRUE((*session)->BeginTensor({"model.layers.0.mlp.experts.gate_and_up_projs", DType::kBF16, {E, H, J}},
                                      crc.value())
                  .ok());
  for (uint64_t elem = 0; elem < total / 2; elem += piece_elems) {
    const int64_t n = std::min<int64_t>(piece_elems, total / 2 - elem);
    FillPattern(piece.data(), elem, n, H, J);
    absl::Status s = (*session)->SendBytes(piece.data(), n * 2);
    ASSERT_TRUE(s.ok()) << s;
  }
  absl::StatusOr<RemoteSummary> summary = (*session)->Finish();
  done = true;
  sampler.join();
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(outputs.load(), 2 * E);
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(summary->bytes_in, total);
  EXPECT_EQ(summary->bytes_out, total);
  EXPECT_LT(max_buffered.load(), kStreamBudget) << "buffered bytes exceeded the per-stream budget";
  EXPECT_GE(max_buffered.load(), slab) << "the sampler should have seen at least one slab held";
  EXPECT_LT(summary->peak_buffered_bytes, kStreamBudget);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[   INFO   ] %.2f GiB through ToHF in %.1f s; peak held %.1f MiB (slab %.1f MiB, budget %.0f MiB)\n",
              total / double(1ull << 30), secs, max_buffered.load() / 1048576.0, slab / 1048576.0,
              kStreamBudget / 1048576.0);
}

// ---- bad input: one test each ------------------------------------------------------

TEST_F(ServerTest, OptionsMissing) {
  grpc::Status s = Raw("ToHF", {HeaderMsg("model.norm.weight", "F32", {2}, 8, 0)});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("options"));
  s = Raw("FromHF", {});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
}

TEST_F(ServerTest, OptionsInvalid) {
  grpc::Status s = Raw("ToHF", {OptionsMsg(0, 8, 6)});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("num_experts"));
  v1::ConvertRequest bad_layout = OptionsMsg(4, 8, 6);
  bad_layout.mutable_options()->set_lora_layout("peft-v0.17");
  s = Raw("FromHF", {bad_layout});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("peft-v0.17"));
  v1::ConvertRequest no_geometry;
  no_geometry.mutable_options();
  s = Raw("ToHF", {no_geometry});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("geometry"));
  // Hostile JSON bodies (deep nesting) are errors, not stack overflows.
  v1::ConvertRequest deep;
  deep.mutable_options()->set_config_json(std::string(1 << 20, '['));
  s = Raw("FromHF", {deep});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  v1::ConvertRequest deep_adapter = OptionsMsg(4, 8, 6);
  deep_adapter.mutable_options()->set_adapter_config_json(std::string(1 << 20, '[') + std::string(1 << 20, ']'));
  s = Raw("FromHF", {deep_adapter});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  v1::ConvertRequest big_chunk = OptionsMsg(4, 8, 6);
  big_chunk.mutable_options()->set_chunk_size(64u << 20);
  s = Raw("ToHF", {big_chunk});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("max-chunk-bytes"));
}

TEST_F(ServerTest, TruncatedTensorAtHalfClose) {
  grpc::Status s = Raw("ToHF", {OptionsMsg(4, 8, 6), HeaderMsg("model.norm.weight", "F32", {8}, 32, 0),
                                ChunkMsg(std::string(20, 'x'))});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("\"model.norm.weight\" is truncated"));
  // A header while the previous tensor is incomplete is the same defect.
  s = Raw("FromHF", {OptionsMsg(4, 8, 6), HeaderMsg("model.norm.weight", "F32", {8}, 32, 0),
                     ChunkMsg(std::string(20, 'x')), HeaderMsg("lm_head.weight", "F32", {1}, 4, 0)});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("model.norm.weight"));
}

TEST_F(ServerTest, ChunkBeyondDeclaredLength) {
  const std::string bytes(40, 'x');
  grpc::Status s = Raw("ToHF", {OptionsMsg(4, 8, 6), HeaderMsg("model.norm.weight", "F32", {8}, 32, 0),
                                ChunkMsg(bytes)});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("model.norm.weight"));
  EXPECT_THAT(s.error_message(), HasSubstr("beyond"));
  s = Raw("ToHF", {OptionsMsg(4, 8, 6), ChunkMsg("abc")});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << "a chunk without a header";
}

TEST_F(ServerTest, ChecksumMismatch) {
  const std::string bytes(32, 'x');
  const uint32_t crc = Crc32c(bytes.data(), bytes.size());
  for (const char* rpc : {"ToHF", "FromHF", "ConvertTensor"}) {
    grpc::Status s = Raw(rpc, {OptionsMsg(4, 8, 6), HeaderMsg("model.norm.weight", "F32", {8}, 32, crc ^ 1),
                               ChunkMsg(bytes)});
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << rpc;
    EXPECT_THAT(s.error_message(), HasSubstr("CRC32C mismatch"));
    EXPECT_THAT(s.error_message(), HasSubstr("model.norm.weight"));
  }
  // Also through the client library (a wrong CRC given to BeginTensor).
  auto client = Client();
  ConvertOptions o;
  o.geometry = {4, 8, 6};
  auto session = *client->Open(RemoteRpc::kToHf, o, nullptr);
  ASSERT_TRUE(session->BeginTensor({"model.norm.weight", DType::kF32, {8}}, crc ^ 1).ok());
  (void)session->SendBytes(bytes.data(), bytes.size());
  EXPECT_EQ(session->Finish().status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ServerTest, UnknownDtype) {
  grpc::Status s = Raw("ToHF", {OptionsMsg(4, 8, 6), HeaderMsg("model.norm.weight", "F12", {8}, 32, 0)});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("unknown dtype \"F12\""));
  EXPECT_THAT(s.error_message(), HasSubstr("model.norm.weight"));
}

TEST_F(ServerTest, ShapeWhoseByteCountOverflows) {
  grpc::Status s = Raw("FromHF", {OptionsMsg(4, 8, 6),
                                  HeaderMsg("model.embed_tokens.weight", "F32", {1ll << 40, 1ll << 30}, 0, 0)});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("model.embed_tokens.weight"));
  s = Raw("ToHF", {OptionsMsg(4, 8, 6), HeaderMsg("model.embed_tokens.weight", "F32", {-4, 2}, 0, 0)});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // byte_length that disagrees with the shape
  s = Raw("ToHF", {OptionsMsg(4, 8, 6), HeaderMsg("model.norm.weight", "F32", {8}, 33, 0)});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("byte_length 33"));
}

TEST_F(ServerTest, DeclaredLengthBeyondTheBudgetIsRefusedBeforeAllocating) {
  // FromHF: the first expert of a Qwen3-235B group announces a 3.2 GB group.
  const auto t0 = std::chrono::steady_clock::now();
  grpc::Status s = Raw("FromHF", {OptionsMsg(128, 4096, 1536),
                                  HeaderMsg("model.layers.0.mlp.experts.0.gate_proj.weight", "BF16", {1536, 4096},
                                            1536ull * 4096 * 2, 0)});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(), HasSubstr("model.layers.0.mlp.experts.0.gate_proj.weight"));
  EXPECT_THAT(s.error_message(), HasSubstr("--max-stream-memory"));
  // Nothing was allocated for the group; the refused stream's bookkeeping
  // (its input key) goes when the stream does.
  EXPECT_LT(server().BufferedBytes(), 1u << 20);
  EXPECT_TRUE(WaitForZeroBuffered(server())) << server().BufferedBytes();
  // ToHF: one expert slab (8192 x 16384 bf16 = 256 MiB) beyond the budget.
  s = Raw("ToHF", {OptionsMsg(8, 8192, 8192), HeaderMsg("model.layers.0.mlp.experts.gate_and_up_projs", "BF16",
                                                         {8, 8192, 16384}, 8ull * 8192 * 16384 * 2, 0)});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(), HasSubstr("gate_and_up_projs"));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

TEST_F(ServerTest, BadRegex) {
  v1::ConvertRequest o = OptionsMsg(4, 8, 6);
  o.mutable_options()->set_exclude_key_regex("model\\.(layers");
  grpc::Status s = Raw("ToHF", {o});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("exclude_key_regex"));
}

TEST_F(ServerTest, CoreErrorsKeepTheirCodes) {
  // FP8 block scales: UNIMPLEMENTED.
  grpc::Status s = Raw("FromHF", {OptionsMsg(4, 8, 6), HeaderMsg("model.layers.0.mlp.experts.0.gate_proj.weight_scale_inv",
                                                                 "F32", {1}, 4, 0)});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED) << s.error_message();
  // A ParamWrapper adapter whose shapes fit both layouts (H == I, down only):
  // FAILED_PRECONDITION asking for the layout.
  auto client = Client();
  ConvertOptions o;
  o.geometry = {2, 4, 4};
  auto make = [](const std::string& name, Shape shape) {
    Tensor t = Tensor::Allocate(DType::kF32, shape);
    std::memset(t.mutable_data(), 0, t.nbytes());
    return NamedTensor{name, t};
  };
  Result r = Remote(*client, RemoteRpc::kFromHf, o,
                    {make("base_model.model.model.layers.0.mlp.experts.lora_A.weight", {2, 4}),
                     make("base_model.model.model.layers.0.mlp.experts.lora_B.weight", {4, 2})});
  Result want = CoreFromHf(o, {make("base_model.model.model.layers.0.mlp.experts.lora_A.weight", {2, 4}),
                               make("base_model.model.model.layers.0.mlp.experts.lora_B.weight", {4, 2})});
  EXPECT_EQ(want.status.code(), absl::StatusCode::kFailedPrecondition) << want.status;
  EXPECT_EQ(r.status.code(), absl::StatusCode::kFailedPrecondition) << r.status;
}

TEST_F(ServerTest, ConvertTensorTakesExactlyOneTensor) {
  const std::string b(4, '\0');
  const uint32_t crc = Crc32c(b.data(), 4);
  grpc::Status s = Raw("ConvertTensor", {OptionsMsg(4, 8, 6), HeaderMsg("a.weight", "F32", {1}, 4, crc), ChunkMsg(b),
                                         HeaderMsg("b.weight", "F32", {1}, 4, crc), ChunkMsg(b)});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("exactly one"));
  s = Raw("ConvertTensor", {OptionsMsg(4, 8, 6)});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// Random message sequences: every one ends with a status, none crashes or
// leaks the server's memory.
TEST_F(ServerTest, RandomMessagesNeverCrashTheServer) {
  std::mt19937 rng(1234);
  const std::vector<std::string> names = {"model.layers.0.mlp.experts.gate_and_up_projs",
                                          "model.layers.0.mlp.experts.down_projs",
                                          "model.layers.1.mlp.experts.3.up_proj.weight",
                                          "model.layers.0.mlp.experts.lora_gate_and_up_A",
                                          "model.norm.weight", "", "x.weight_scale_inv"};
  const std::vector<std::string> dtypes = {"F32", "BF16", "F16", "U8", "F8_E4M3", "Q4", ""};
  const char* rpcs[] = {"ToHF", "FromHF", "ConvertTensor"};
  for (int iter = 0; iter < 60; ++iter) {
    std::vector<v1::ConvertRequest> msgs;
    if (rng() % 8) msgs.push_back(OptionsMsg(1 + rng() % 4, 1 + rng() % 8, 1 + rng() % 6));
    const int n = rng() % 8;
    for (int k = 0; k < n; ++k) {
      if (rng() % 2) {
        std::vector<int64_t> shape;
        for (int d = rng() % 4; d > 0; --d) shape.push_back(static_cast<int64_t>(rng() % 10) - 1);
        msgs.push_back(HeaderMsg(names[rng() % names.size()], dtypes[rng() % dtypes.size()], shape, rng() % 200,
                                 rng()));
      } else if (rng() % 5 == 0) {
        msgs.push_back(OptionsMsg(4, 8, 6));
      } else {
        msgs.push_back(ChunkMsg(std::string(rng() % 100, static_cast<char>(rng()))));
      }
    }
    grpc::Status s = Raw(rpcs[rng() % 3], msgs);
    EXPECT_NE(s.error_code(), grpc::StatusCode::INTERNAL) << s.error_message();
    EXPECT_NE(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  }
  EXPECT_TRUE(Client()->Health().ok());
}

// ---- cancel and deadline free the stream's buffers ------------------------------

// Opens ToHF and sends part of one 4 MiB expert slab, so the server holds a slab.
std::unique_ptr<RemoteSession> StreamHoldingASlab(RemoteClient& client, const AdapterServer& server) {
  ConvertOptions o;
  o.geometry = {4, 1024, 512};
  auto session = *client.Open(RemoteRpc::kToHf, o, nullptr);
  EXPECT_TRUE(session->BeginTensor({"model.layers.0.mlp.experts.gate_and_up_projs", DType::kF32, {4, 1024, 1024}}, 0)
                  .ok());
  std::vector<char> part(1 << 20, 1);
  EXPECT_TRUE(session->SendBytes(part.data(), part.size()).ok());
  // The stream's options and keys count too: wait for the slab itself.
  for (int i = 0; i < 500 && server.BufferedBytes() < (4u << 20); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GE(server.BufferedBytes(), 4u << 20) << "the slab should be held";
  return session;
}

TEST_F(ServerTest, ClientCancelMidStreamFreesBuffers) {
  auto client = Client();
  std::unique_ptr<RemoteSession> session = StreamHoldingASlab(*client, server());
  session->Cancel();
  absl::StatusOr<RemoteSummary> r = session->Finish();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled) << r.status();
  EXPECT_TRUE(WaitForZeroBuffered(server())) << server().BufferedBytes();
  EXPECT_THAT(server().metrics().Render(), HasSubstr("code=\"CANCELLED\""));
}

TEST_F(ServerTest, DeadlineMidStreamFreesBuffers) {
  ClientOptions co;
  co.deadline = absl::Milliseconds(700);
  auto client = Client(co);
  std::unique_ptr<RemoteSession> session = StreamHoldingASlab(*client, server());
  std::this_thread::sleep_for(std::chrono::milliseconds(900));
  absl::StatusOr<RemoteSummary> r = session->Finish();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("deadline"));
  EXPECT_TRUE(WaitForZeroBuffered(server())) << server().BufferedBytes();
  EXPECT_THAT(server().metrics().Render(), HasSubstr("code=\"DEADLINE_EXCEEDED\""));
}

// ---- concurrency -------------------------------------------------------------------

TEST_F(ServerTest, ThirtyTwoConcurrentStreamsGiveCorrectResults) {
  const json to_case = ReplayableCases("to_hf").front();
  json from_case;
  for (const json& c : ReplayableCases("from_hf")) {
    if (c["name"] == "full_from_hf_bfloat16") from_case = c;
  }
  ASSERT_FALSE(from_case.is_null());
  const TensorList to_in = LoadSafetensors(GoldenDir() + "/" + to_case["in_file"].get<std::string>());
  const TensorList from_in = LoadSafetensors(GoldenDir() + "/" + from_case["in_file"].get<std::string>());
  const Result to_want = CoreToHf(OptionsFor(to_case), to_in);
  const Result from_want = CoreFromHf(OptionsFor(from_case), from_in);
  ASSERT_TRUE(to_want.status.ok() && from_want.status.ok());

  ClientOptions co;
  co.chunk_bytes = 256;  // many messages per stream, so the streams interleave
  auto client = Client(co);
  constexpr int kStreams = 32;
  std::atomic<int> open{0};
  std::vector<std::string> failures(kStreams);
  std::vector<std::thread> threads;
  for (int k = 0; k < kStreams; ++k) {
    threads.emplace_back([&, k] {
      const bool to_hf = k % 2 == 0;
      TensorList got;
      auto sink = [&](NamedTensor t) {
        got.push_back(std::move(t));
        return absl::OkStatus();
      };
      auto session = client->Open(to_hf ? RemoteRpc::kToHf : RemoteRpc::kFromHf,
                                  OptionsFor(to_hf ? to_case : from_case), sink);
      if (!session.ok()) {
        failures[k] = session.status().ToString();
        return;
      }
      // All 32 are open before any sends a tensor.
      ++open;
      while (open.load() < kStreams) std::this_thread::yield();
      for (const NamedTensor& t : to_hf ? to_in : from_in) {
        absl::Status s = (*session)->Send(t);
        if (!s.ok()) {
          failures[k] = s.ToString();
          return;
        }
      }
      absl::StatusOr<RemoteSummary> sum = (*session)->Finish();
      if (!sum.ok()) {
        failures[k] = sum.status().ToString();
        return;
      }
      failures[k] = Diff(got, to_hf ? to_want.outputs : from_want.outputs, /*ordered=*/to_hf);
    });
  }
  for (std::thread& t : threads) t.join();
  for (int k = 0; k < kStreams; ++k) EXPECT_EQ(failures[k], "") << "stream " << k;
}

// ---- metrics ---------------------------------------------------------------------

TEST(ServerMetricsTest, MetricsEndpointPassesPromtool) {
  ServerOptions so = TestServerOptions();
  so.metrics_listen = "127.0.0.1:0";
  std::unique_ptr<AdapterServer> server_holder = StartOrDie(so);
  AdapterServer& server = *server_holder;
  // Some traffic first, so every family has samples.
  auto client = ClientFor(server);
  const json c = ReplayableCases("to_hf").front();
  Result r = Remote(*client, RemoteRpc::kToHf, OptionsFor(c),
                    LoadSafetensors(GoldenDir() + "/" + c["in_file"].get<std::string>()));
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_TRUE(client->GetInfo().ok());
  ASSERT_NE(server.metrics_port(), 0);
  absl::StatusOr<std::string> body = HttpGet(server.metrics_port(), "/metrics");
  ASSERT_TRUE(body.ok()) << body.status();
  for (const char* name :
       {"moe_adapter_requests_total{", "moe_adapter_tensors_total{", "moe_adapter_bytes_total{",
        "moe_adapter_stream_duration_seconds_bucket{", "moe_adapter_conversion_duration_seconds_bucket{",
        "moe_adapter_active_streams ", "moe_adapter_buffered_bytes ", "moe_adapter_memory_budget_bytes{",
        "moe_adapter_build_info{"}) {
    EXPECT_THAT(*body, HasSubstr(name));
  }
  EXPECT_THAT(*body, HasSubstr("moe_adapter_requests_total{code=\"OK\",rpc=\"ToHF\"}"));
  const std::string promtool = Which("promtool");
  if (promtool.empty()) GTEST_SKIP() << "promtool is not installed (Debian package prometheus)";
  TempDir tmp;
  const std::string& dir = tmp.path();
  WriteFileOrDie(dir + "/metrics.txt", *body);
  const std::string cmd = absl::StrCat(promtool, " check metrics < ", dir, "/metrics.txt > ", dir, "/promtool.log 2>&1");
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << ReadFileOrDie(dir + "/promtool.log");
}

// ---- servers with other settings -----------------------------------------------------

TEST(ServerAuthTest, WrongTokenIsUnauthenticatedAndHealthNeedsNone) {
  TempDir tmp;
  const std::string& dir = tmp.path();
  WriteFileOrDie(dir + "/token", "s3cret-token\n");
  ServerOptions so = TestServerOptions();
  so.auth_token_file = dir + "/token";
  auto server = StartOrDie(so);
  ClientOptions good;
  good.bearer_token = "s3cret-token";
  EXPECT_TRUE(ClientFor(*server, good)->GetInfo().ok());
  ClientOptions wrong;
  wrong.bearer_token = "s3cret-tokeN";
  absl::StatusOr<RemoteServerInfo> info = ClientFor(*server, wrong)->GetInfo();
  EXPECT_EQ(info.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(info.status().message(), HasSubstr("the server refused the token"));
  EXPECT_EQ(ClientFor(*server)->GetInfo().status().code(), absl::StatusCode::kUnauthenticated);
  // Streams too, before any data is read.
  ConvertOptions o;
  o.geometry = {4, 8, 6};
  Result r = Remote(*ClientFor(*server, wrong), RemoteRpc::kToHf, o, {});
  EXPECT_EQ(r.status.code(), absl::StatusCode::kUnauthenticated) << r.status;
  r = Remote(*ClientFor(*server, good), RemoteRpc::kToHf, o, {});
  EXPECT_TRUE(r.status.ok()) << r.status;
  // Probes carry no token.
  EXPECT_TRUE(ClientFor(*server)->Health().ok());
}

TEST(ServerLimitsTest, StreamsBeyondTheLimitAreRefused) {
  ServerOptions so = TestServerOptions();
  so.max_concurrent_streams = 1;
  auto server = StartOrDie(so);
  auto client = ClientFor(*server);
  ConvertOptions o;
  o.geometry = {4, 8, 6};
  auto first = *client->Open(RemoteRpc::kToHf, o, nullptr);
  for (int i = 0; i < 200 && server->ActiveStreams() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(server->ActiveStreams(), 1);
  Result second = Remote(*client, RemoteRpc::kFromHf, o, {});
  EXPECT_EQ(second.status.code(), absl::StatusCode::kResourceExhausted) << second.status;
  EXPECT_THAT(second.status.message(), HasSubstr("--max-concurrent-streams"));
  EXPECT_TRUE(first->Finish().ok());
}

TEST(ServerLimitsTest, TotalBudgetIsSharedByStreams) {
  ServerOptions so = TestServerOptions();
  so.max_stream_memory = 64ull << 20;
  so.max_total_memory = 32ull << 20;
  auto server = StartOrDie(so);
  // One 16 MiB slab needs ~44 MiB with its outputs: within the stream's
  // budget, beyond the total.
  grpc::Status s = RawStream(Target(*server), "ToHF",
                             {OptionsMsg(4, 2048, 2048),
                              HeaderMsg("model.layers.0.mlp.experts.gate_and_up_projs", "BF16", {4, 2048, 4096},
                                        4ull * 2048 * 4096 * 2, 0)});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(), HasSubstr("--max-total-memory"));
}

// Sums of reservations are checked: with budgets near 2^64 (the flags accept
// them), a second stream's request used to wrap past the total and pass.
TEST(ServerLimitsTest, ReservationSumsDoNotWrap) {
  const uint64_t max = ~uint64_t{0};
  server::MemoryBudget budget(max, max - 1, nullptr);
  server::MemoryBudget::Account a(&budget), b(&budget);
  ASSERT_TRUE(a.Reserve(max - 10, "first").ok());
  absl::Status s = b.Reserve(100, "tensor \"second\"");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_THAT(s.message(), HasSubstr("--max-total-memory"));
  EXPECT_TRUE(b.Reserve(5, "third").ok());
}

// With the default budgets, the first expert of a Qwen3-235B-A22B layer
// (E=128, H=4096, I=1536: a 3.2 GB gate/up group) is admitted; the stream
// then ends inside that tensor, so the group itself is never allocated.
TEST(ServerLimitsTest, DefaultBudgetsAdmitAQwen3_235BLayer) {
  ServerOptions so;
  so.listen = {"127.0.0.1:0"};
  so.metrics_listen = "";
  auto server = StartOrDie(so);
  grpc::Status s = RawStream(Target(*server), "FromHF",
                             {OptionsMsg(128, 4096, 1536),
                              HeaderMsg("model.layers.0.mlp.experts.0.gate_proj.weight", "BF16", {1536, 4096},
                                        1536ull * 4096 * 2, 0)});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("truncated"));
}

// The grouped buffers a FromHF stream leaves in the buffer cache (for the
// next layer) are freed once the server has been idle for
// --release-idle-buffers.
TEST(ServerLimitsTest, IdleServerReleasesCachedBuffers) {
  ServerOptions so = TestServerOptions();
  so.release_idle_buffers = absl::Seconds(1);
  auto server = StartOrDie(so);
  auto client = ClientFor(*server);
  buffer_cache::Clear();
  ConvertOptions o;
  o.geometry = {4, 512, 1024};  // bf16 groups of 8 MiB and 4 MiB: cacheable
  TensorList in;
  for (int64_t e = 0; e < 4; ++e) {
    const std::string p = absl::StrCat("model.layers.0.mlp.experts.", e, ".");
    for (const char* proj : {"gate_proj", "up_proj"}) {
      Tensor t = Tensor::Allocate(DType::kBF16, {1024, 512});
      std::memset(t.mutable_data(), 1, t.nbytes());
      in.push_back({p + proj + ".weight", t});
    }
    Tensor d = Tensor::Allocate(DType::kBF16, {512, 1024});
    std::memset(d.mutable_data(), 1, d.nbytes());
    in.push_back({p + "down_proj.weight", d});
  }
  {
    Result r = Remote(*client, RemoteRpc::kFromHf, o, in);
    ASSERT_TRUE(r.status.ok()) << r.status;
    ASSERT_EQ(r.outputs.size(), 2u);
  }
  EXPECT_GE(buffer_cache::CachedBytes(), 12u << 20) << "the groups wait for a next layer";
  bool released = false;
  for (int i = 0; i < 100 && !released; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    released = buffer_cache::CachedBytes() == 0;
  }
  EXPECT_TRUE(released) << buffer_cache::CachedBytes() << " bytes still cached after 10 s idle";
}

// Under a container memory limit, the buffers kept for reuse get only what
// the total budget leaves of it.
TEST(ServerLimitsTest, BufferCacheStaysWithinTheContainerLimit) {
  EXPECT_EQ(server::ParseCgroupMemoryLimit("12884901888\n"), std::optional<uint64_t>(12ull << 30));
  EXPECT_EQ(server::ParseCgroupMemoryLimit("max\n"), std::nullopt) << "cgroup v2, no limit";
  EXPECT_EQ(server::ParseCgroupMemoryLimit("9223372036854771712"), std::nullopt) << "cgroup v1, no limit";
  EXPECT_EQ(server::ParseCgroupMemoryLimit(""), std::nullopt);
  // The k8s manifests: 12Gi limit, --max-total-memory=8GiB.
  EXPECT_EQ(server::BufferCacheCeiling(12ull << 30, 8ull << 30), (4ull << 30) - (256ull << 20));
  EXPECT_EQ(server::BufferCacheCeiling(8ull << 30, 8ull << 30), 0u);

  buffer_cache::Clear();
  buffer_cache::UseAutomaticCap();
  buffer_cache::SetCeiling(6u << 20);
  { Bytes a = Bytes::Allocate(buffer_cache::kMinBytes); }
  { Bytes b = Bytes::Allocate(buffer_cache::kMinBytes + 4096); }
  EXPECT_EQ(buffer_cache::CapBytes(), 6u << 20);
  EXPECT_EQ(buffer_cache::CachedBytes(), buffer_cache::kMinBytes + 4096) << "the older block made room";
  buffer_cache::SetCeiling(SIZE_MAX);
  buffer_cache::Clear();
}

TEST(ServerOptionsTest, FlagsParseAndValidate) {
  absl::StatusOr<server::ServerOptions> o = server::ParseServerFlags(
      {"--listen", "0.0.0.0:1234", "--max-stream-memory=2GiB", "--max-chunk-bytes", "1MiB", "--shutdown-grace", "5s",
       "--metrics-listen="});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->listen, std::vector<std::string>{"0.0.0.0:1234"});
  EXPECT_EQ(o->max_stream_memory, 2ull << 30);
  EXPECT_EQ(o->max_chunk_bytes, 1u << 20);
  EXPECT_EQ(o->shutdown_grace, absl::Seconds(5));
  EXPECT_EQ(o->metrics_listen, "");
  EXPECT_EQ(server::ParseServerFlags({"--release-idle-buffers", "2m"})->release_idle_buffers, absl::Minutes(2));
  EXPECT_EQ(server::ParseServerFlags({"--release-idle-buffers=0"})->release_idle_buffers, absl::ZeroDuration());
  EXPECT_THAT(server::ParseServerFlags({"--release-idle-buffers", "soon"}).status().message(),
              HasSubstr("--release-idle-buffers must be a duration"));
  EXPECT_THAT(server::ParseServerFlags({"--release-idle-buffers", "-1s"}).status().message(),
              HasSubstr("must not be negative"));
  server::ServerOptions d;
  EXPECT_EQ(d.release_idle_buffers, absl::Seconds(60));
  EXPECT_EQ(d.listen, std::vector<std::string>{"127.0.0.1:50051"});
  EXPECT_EQ(d.metrics_listen, "127.0.0.1:9464");
  EXPECT_GE(d.max_stream_memory, 128ull * 4096 * 3072 * 2 + 128ull * 1536 * 4096 * 2)
      << "one Qwen3-235B-A22B layer must fit FromHF";
  EXPECT_THAT(server::ParseServerFlags({"--device", "tpu"}).status().message(), HasSubstr("cpu, cuda, cuda:N or auto"));
  EXPECT_TRUE(server::ParseServerFlags({"--device", "cuda:1"}).ok()) << "a GPU is checked at start, not at parsing";
  EXPECT_FALSE(server::ParseServerFlags({"--tls-cert", "a.pem"}).ok());
  EXPECT_FALSE(server::ParseServerFlags({"--bogus"}).ok());
  EXPECT_FALSE(server::ParseServerFlags({"--max-total-memory", "12 parsecs"}).ok());
}

// --listen repeats (the first replaces the default); unix: addresses are
// checked for what would make gRPC bind another file than the one probed.
TEST(ServerOptionsTest, ListenRepeatsAndUnixSocketMode) {
  absl::StatusOr<server::ServerOptions> o =
      server::ParseServerFlags({"--listen", "127.0.0.1:0", "--listen=unix:///tmp/a.sock", "--unix-socket-mode", "600"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->listen, (std::vector<std::string>{"127.0.0.1:0", "unix:///tmp/a.sock"}));
  EXPECT_EQ(o->unix_socket_mode, 0600u);
  EXPECT_EQ(server::ServerOptions().unix_socket_mode, 0660u);
  EXPECT_EQ(server::ParseServerFlags({})->listen, std::vector<std::string>{"127.0.0.1:50051"});
  EXPECT_EQ(*server::UnixSocketPath("unix:///run/moe/a.sock"), "/run/moe/a.sock");
  EXPECT_EQ(*server::UnixSocketPath("unix:a.sock"), "a.sock");
  EXPECT_FALSE(server::UnixSocketPath("127.0.0.1:1").has_value());
  for (const char* bad : {"8", "0778", "01777", "rw", ""}) {
    EXPECT_THAT(server::ParseServerFlags({"--unix-socket-mode", bad}).status().message(),
                HasSubstr("--unix-socket-mode must be octal")) << bad;
  }
  const std::pair<std::vector<std::string>, std::string> bad_listen[] = {
      {{"--listen", "unix://host/a.sock"}, "has no host"},
      {{"--listen", "unix:"}, "no socket path"},
      {{"--listen", "unix:///tmp/a%20b"}, "percent escapes"},
      {{"--listen", "unix:///" + std::string(120, 'x')}, "holds at most 107"},
      {{"--listen", "127.0.0.1:1", "--listen", "127.0.0.1:1"}, "given twice"},
  };
  for (const auto& [args, why] : bad_listen) {
    EXPECT_THAT(server::ParseServerFlags(args).status().message(), HasSubstr(why)) << args[1];
  }
}

}  // namespace
}  // namespace moe_adapter::server_testing
