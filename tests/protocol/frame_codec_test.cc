// The wire framing: header checks before allocation, chunk accounting, CRC.
#include "protocol/frame_codec.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "moe_adapter/crc32c.h"

namespace moe_adapter::wire {
namespace {

using ::testing::HasSubstr;

v1::TensorHeader Header(const std::string& name, const std::string& dtype, std::vector<int64_t> shape,
                        uint64_t len, uint32_t crc = 0) {
  v1::TensorHeader h;
  h.set_name(name);
  h.set_dtype(dtype);
  for (int64_t d : shape) h.add_shape(d);
  h.set_byte_length(len);
  h.set_crc32c(crc);
  return h;
}

TEST(FrameCodecTest, ParseHeaderChecksEverythingItClaims) {
  EXPECT_TRUE(ParseHeader(Header("w", "BF16", {2, 3}, 12)).ok());
  EXPECT_TRUE(ParseHeader(Header("scalar", "F32", {}, 4)).ok());
  EXPECT_TRUE(ParseHeader(Header("empty", "F32", {0, 7}, 0)).ok());
  EXPECT_THAT(ParseHeader(Header("w", "BF17", {2}, 4)).status().message(), HasSubstr("unknown dtype \"BF17\""));
  EXPECT_THAT(ParseHeader(Header("w", "F32", {2}, 9)).status().message(), HasSubstr("byte_length 9"));
  EXPECT_THAT(ParseHeader(Header("w", "F32", {-1, 2}, 0)).status().message(), HasSubstr("\"w\""));
  EXPECT_FALSE(ParseHeader(Header("w", "F64", {int64_t{1} << 62, 4}, 0)).ok());
  EXPECT_FALSE(ParseHeader(Header("w", "F64", {int64_t{1} << 61}, 0)).ok()) << "x8 overflows int64";
  EXPECT_FALSE(ParseHeader(Header("", "F32", {1}, 4)).ok());
}

// Every string and list of a header is bounded (wire_limits.h) before it is
// kept or quoted; messages quote at most 200 bytes of it.
TEST(FrameCodecTest, ParseHeaderBoundsEveryStringAndList) {
  const std::string at_limit(kMaxTensorNameBytes, 'n');
  EXPECT_TRUE(ParseHeader(Header(at_limit, "U8", {0}, 0), kMaxTensorNameBytes).ok());
  absl::Status name = ParseHeader(Header(at_limit + "n", "U8", {0}, 0), kMaxTensorNameBytes).status();
  EXPECT_THAT(name.message(), HasSubstr("name of 4097 bytes exceeds the limit of 4096 bytes"));
  EXPECT_LT(name.message().size(), 400u) << "the name is quoted cut";
  EXPECT_TRUE(ParseHeader(Header(at_limit + "n", "U8", {0}, 0)).ok()) << "an output key may be a little longer";
  FrameReader server_side(8, kMaxTensorNameBytes);
  EXPECT_FALSE(server_side.Begin(Header(at_limit + "n", "U8", {0}, 0)).ok());

  EXPECT_THAT(ParseHeader(Header("w", std::string(33, 'B'), {0}, 0)).status().message(),
              HasSubstr("dtype string of 33 bytes exceeds the limit of 32 bytes"));
  EXPECT_THAT(ParseHeader(Header("w", "U8", std::vector<int64_t>(9, 1), 1)).status().message(),
              HasSubstr("rank 9 exceeds the limit of 8"));
  EXPECT_TRUE(ParseHeader(Header("w", "U8", std::vector<int64_t>(8, 1), 1)).ok());

  v1::TensorHeader md = Header("w", "U8", {0}, 0);
  (*md.mutable_metadata())[std::string(257, 'k')] = "v";
  EXPECT_THAT(ParseHeader(md).status().message(), HasSubstr("metadata key of 257 bytes"));
  md.clear_metadata();
  (*md.mutable_metadata())["k"] = std::string(4097, 'v');
  EXPECT_THAT(ParseHeader(md).status().message(), HasSubstr("metadata value of key \"k\" of 4097 bytes"));
  md.clear_metadata();
  for (int i = 0; i < 65; ++i) (*md.mutable_metadata())[std::to_string(i)] = "v";
  EXPECT_THAT(ParseHeader(md).status().message(), HasSubstr("65 metadata entries exceed the limit of 64"));
  md.clear_metadata();
  for (int i = 0; i < 16; ++i) (*md.mutable_metadata())[std::to_string(i)] = std::string(4096, 'v');
  EXPECT_THAT(ParseHeader(md).status().message(), HasSubstr("exceeds the limit of 65536 bytes"));
}

TEST(FrameCodecTest, RoundTripThroughMakeHeader) {
  TensorInfo info{"model.norm.weight", DType::kF16, {3, 5}};
  absl::StatusOr<FrameHeader> h = ParseHeader(MakeHeader(info, 30, 0xabcd, {{"k", "v"}}));
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->info.name, info.name);
  EXPECT_EQ(h->info.dtype, DType::kF16);
  EXPECT_EQ(h->info.shape, info.shape);
  EXPECT_EQ(h->crc32c, 0xabcdu);
  EXPECT_EQ(h->metadata.at("k"), "v");
}

TEST(FrameCodecTest, ReaderAccountsChunksAndVerifiesTheCrc) {
  const std::string data = "0123456789abcdef";
  FrameReader r(6);
  ASSERT_TRUE(r.Begin(Header("t", "U8", {16}, 16, Crc32c(data.data(), 16))).ok());
  uint64_t off = 0;
  for (size_t pos = 0; pos < 16; pos += 6) {
    absl::StatusOr<uint64_t> o = r.Chunk(absl::string_view(data).substr(pos, 6));
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(*o, off);
    off += std::min<size_t>(6, 16 - pos);
  }
  EXPECT_TRUE(r.complete());
  EXPECT_TRUE(r.End().ok());
  EXPECT_TRUE(r.Close().ok());
}

TEST(FrameCodecTest, ReaderRefusesFramingDefects) {
  FrameReader r(8);
  EXPECT_FALSE(r.Chunk("x").ok()) << "chunk before any header";
  ASSERT_TRUE(r.Begin(Header("t", "U8", {10}, 10, 0)).ok());
  EXPECT_THAT(r.Chunk("123456789").status().message(), HasSubstr("exceeds the chunk size"));
  ASSERT_TRUE(r.Chunk("12345678").ok());
  EXPECT_THAT(r.Chunk("123").status().message(), HasSubstr("beyond"));
  EXPECT_THAT(r.Close().message(), HasSubstr("truncated"));
  EXPECT_THAT(r.Begin(Header("u", "U8", {1}, 1)).status().message(), HasSubstr("\"t\" is truncated"));
  ASSERT_TRUE(r.Chunk("12").ok());
  ASSERT_TRUE(r.complete());
  EXPECT_THAT(r.End().message(), HasSubstr("CRC32C mismatch"));
}

}  // namespace
}  // namespace moe_adapter::wire
