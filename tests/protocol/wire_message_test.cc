// The byte-buffer messages (protocol/wire_message.h): what EncodeChunk() sends
// is the proto's message to any protobuf peer, a protobuf peer's messages
// decode to the same thing, chunk bytes are never copied on the way out and
// are handed over in gRPC's own slices on the way in, and the tensor memory
// lives exactly as long as gRPC needs it.
#include "protocol/wire_message.h"
#include "protocol/options_codec.h"

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace moe_adapter::wire {
namespace {

using ::testing::HasSubstr;

std::string Flatten(const grpc::ByteBuffer& b) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(b.Dump(&slices).ok());
  std::string out;
  for (const grpc::Slice& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

std::string ToString(const Payload& p) {
  std::string s(p.size(), '\0');
  p.CopyTo(reinterpret_cast<uint8_t*>(s.data()));
  return s;
}

// SplitInto(): `bytes` as a buffer of slices cut at `cuts`, the way gRPC hands
// a received message over (its read buffers rarely align with the message).
grpc::ByteBuffer SplitInto(const std::string& bytes, std::vector<size_t> cuts) {
  std::vector<grpc::Slice> slices;
  size_t from = 0;
  cuts.push_back(bytes.size());
  for (size_t to : cuts) {
    slices.emplace_back(bytes.data() + from, to - from);
    from = to;
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

Bytes Pattern(size_t n) {
  Bytes b = Bytes::Allocate(n);
  for (size_t i = 0; i < n; ++i) b.mutable_data()[i] = static_cast<uint8_t>(i * 7 + 3);
  return b;
}

TEST(WireMessageTest, EncodedChunksAreTheProtosMessages) {
  const Bytes data = Pattern(300000);  // a length needing a 3-byte varint
  for (size_t n : {size_t{0}, size_t{1}, size_t{127}, size_t{128}, size_t{16384}, size_t{299000}}) {
    const std::string want(reinterpret_cast<const char*>(data.data()) + 1000, n);
    v1::ConvertRequest req;
    ASSERT_TRUE(req.ParseFromString(Flatten(EncodeChunk(kRequestChunkField, data, 1000, n)))) << n;
    EXPECT_EQ(req.kind_case(), v1::ConvertRequest::kChunk) << n;
    EXPECT_EQ(req.chunk(), want) << n;
    v1::ConvertResponse resp;
    ASSERT_TRUE(resp.ParseFromString(Flatten(EncodeChunkCopy(kResponseChunkField, data.data() + 1000, n)))) << n;
    EXPECT_EQ(resp.kind_case(), v1::ConvertResponse::kChunk) << n;
    EXPECT_EQ(resp.chunk(), want) << n;
  }
}

TEST(WireMessageTest, ChunksAreSentFromTheTensorsMemory) {
  const Bytes data = Pattern(4096);
  grpc::ByteBuffer b = EncodeChunk(kResponseChunkField, data, 100, 2000);
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(b.Dump(&slices).ok());
  ASSERT_EQ(slices.size(), 2u);
  EXPECT_EQ(slices[1].begin(), data.data() + 100) << "the payload slice is the tensor's memory, not a copy";
  EXPECT_EQ(slices[1].size(), 2000u);
}

TEST(WireMessageTest, TheBufferKeepsTheTensorAlive) {
  std::weak_ptr<std::string> watch;
  grpc::ByteBuffer b;
  {
    auto storage = std::make_shared<std::string>(1000, 'x');
    watch = storage;
    Bytes data = Bytes::Wrap(storage->data(), storage->size(), storage);
    b = EncodeChunk(kRequestChunkField, data, 0, 1000);
  }
  EXPECT_FALSE(watch.expired()) << "gRPC still holds the message";
  Inbound<v1::ConvertRequest> in;
  ASSERT_TRUE(Decode(&b, &in).ok());
  EXPECT_EQ(ToString(in.chunk), std::string(1000, 'x'));
  EXPECT_FALSE(watch.expired()) << "the received slices are the same memory";
  in.chunk = Payload();
  EXPECT_TRUE(watch.expired()) << "released with the last slice";
}

TEST(WireMessageTest, ChunksDecodeFromAnySlicing) {
  v1::ConvertRequest req;
  std::string payload(70000, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i % 251);
  req.set_chunk(payload);
  const std::string bytes = req.SerializeAsString();  // tag, 3-byte varint, data
  for (std::vector<size_t> cuts : std::vector<std::vector<size_t>>{
           {}, {1}, {2}, {3}, {4}, {1, 2, 3}, {4, 5, 69000}, {100, 30000, 69999}}) {
    grpc::ByteBuffer b = SplitInto(bytes, cuts);
    Inbound<v1::ConvertRequest> in;
    ASSERT_TRUE(Decode(&b, &in).ok());
    ASSERT_TRUE(in.is_chunk);
    EXPECT_EQ(in.chunk.size(), payload.size());
    EXPECT_EQ(ToString(in.chunk), payload) << "cut at " << (cuts.empty() ? 0 : cuts[0]);
    EXPECT_EQ(b.Length(), 0u) << "Decode() empties the buffer";
  }
}

TEST(WireMessageTest, OtherMessagesAndOtherEncodingsGoThroughProtobuf) {
  // Small messages.
  v1::ConvertResponse summary;
  summary.mutable_summary()->set_tensors_in(7);
  grpc::ByteBuffer b = EncodeMessage(summary);
  Inbound<v1::ConvertResponse> in;
  ASSERT_TRUE(Decode(&b, &in).ok());
  EXPECT_FALSE(in.is_chunk);
  EXPECT_EQ(in.message.summary().tensors_in(), 7);

  // A chunk followed by an unknown field (a newer peer): protobuf's reading.
  v1::ConvertResponse chunk;
  chunk.set_chunk("abcdef");
  std::string bytes = chunk.SerializeAsString() + std::string("\x78\x05", 2);  // field 15, varint 5
  grpc::ByteBuffer odd = SplitInto(bytes, {3});
  ASSERT_TRUE(Decode(&odd, &in).ok());
  ASSERT_TRUE(in.is_chunk);
  EXPECT_EQ(ToString(in.chunk), "abcdef");

  // A header, then a chunk in the same message: the oneof's last field wins.
  v1::ConvertResponse header;
  header.mutable_header()->set_name("w");
  bytes = header.SerializeAsString() + chunk.SerializeAsString();
  grpc::ByteBuffer both = SplitInto(bytes, {});
  ASSERT_TRUE(Decode(&both, &in).ok());
  ASSERT_TRUE(in.is_chunk);
  EXPECT_EQ(ToString(in.chunk), "abcdef");

  // An empty message, and an empty chunk.
  grpc::ByteBuffer empty;
  ASSERT_TRUE(Decode(&empty, &in).ok());
  EXPECT_FALSE(in.is_chunk);
  EXPECT_EQ(in.message.kind_case(), v1::ConvertResponse::KIND_NOT_SET);
  grpc::ByteBuffer empty_chunk = EncodeChunkCopy(kResponseChunkField, "", 0);
  ASSERT_TRUE(Decode(&empty_chunk, &in).ok());
  EXPECT_TRUE(in.is_chunk);
  EXPECT_TRUE(in.chunk.empty());
}

TEST(WireMessageTest, TruncatedOrGarbledMessagesAreErrors) {
  v1::ConvertRequest req;
  req.set_chunk(std::string(1000, 'z'));
  const std::string bytes = req.SerializeAsString();
  grpc::ByteBuffer truncated = SplitInto(bytes.substr(0, 500), {10});
  Inbound<v1::ConvertRequest> in;
  absl::Status s = Decode(&truncated, &in);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("moe_adapter.v1.ConvertRequest"));
  grpc::ByteBuffer garbage = SplitInto(std::string("\x1a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12), {});
  EXPECT_FALSE(Decode(&garbage, &in).ok()) << "an over-long varint";
  // The fast path only takes a message that is exactly one chunk field.
  grpc::ByteBuffer longer = SplitInto(bytes + "\x1a", {});
  EXPECT_FALSE(Decode(&longer, &in).ok());
}

// The model family travels by name (the geometry is numbers on the wire), and
// the MTP layers of the layer plan with it.
TEST(OptionsCodecTest, FamilyAndMtpLayersRoundTrip) {
  absl::StatusOr<Geometry> g = ParseHfConfig(
      R"({"model_type": "glm4_moe", "n_routed_experts": 4, "hidden_size": 8, "moe_intermediate_size": 4,
          "num_hidden_layers": 3, "first_k_dense_replace": 1})");
  ASSERT_TRUE(g.ok()) << g.status();
  ConvertOptions o;
  o.geometry = *g;
  v1::StreamOptions w = StreamOptionsToWire(o, 1024);
  EXPECT_EQ(w.family(), "glm4_moe");
  EXPECT_EQ(w.geometry().mtp_layers(), 1);
  absl::StatusOr<StreamConfig> back = StreamConfigFromWire(w, 1024, 1 << 20);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->options.family, "glm4_moe");
  EXPECT_TRUE(back->options.geometry.IsMoeLayer(3));  // the MTP layer
  EXPECT_FALSE(back->options.geometry.IsMoeLayer(0));

  w.set_family("mixtral");
  EXPECT_THAT(StreamConfigFromWire(w, 1024, 1 << 20).status().message(), HasSubstr("unknown model family"));
  w.set_family(std::string(1000, 'x'));
  EXPECT_THAT(StreamConfigFromWire(w, 1024, 1 << 20).status().message(), HasSubstr("family of 1000 bytes"));
}

}  // namespace
}  // namespace moe_adapter::wire
