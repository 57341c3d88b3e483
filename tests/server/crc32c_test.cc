// CRC32C: published vectors (RFC 3720 B.4, the "123456789" check value), both
// implementations against each other at every length and alignment (through
// the SSE4.2 path's block sizes), and Extend() over any split.
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "moe_adapter/crc32c.h"

namespace moe_adapter {
namespace {

TEST(Crc32cTest, KnownVectors) {
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(Crc32c("", 0), 0u);
  std::vector<uint8_t> zeros(32, 0), ones(32, 0xFF), inc(32), dec(32);
  for (int i = 0; i < 32; ++i) {
    inc[i] = static_cast<uint8_t>(i);
    dec[i] = static_cast<uint8_t>(31 - i);
  }
  EXPECT_EQ(Crc32c(zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(Crc32c(inc.data(), 32), 0x46DD794Eu);
  EXPECT_EQ(Crc32c(dec.data(), 32), 0x113FDB5Cu);
}

TEST(Crc32cTest, BothImplementationsAgreeAtEveryLengthAndAlignment) {
  std::mt19937 rng(7);
  std::vector<uint8_t> buf(4096 + 16);
  for (uint8_t& b : buf) b = static_cast<uint8_t>(rng());
  for (size_t align = 0; align < 8; ++align) {
    for (size_t n = 0; n < 300; ++n) {
      const uint32_t portable = crc32c_internal::ExtendPortable(0, buf.data() + align, n);
      if (crc32c_internal::HaveSse42()) {
        ASSERT_EQ(crc32c_internal::ExtendSse42(0, buf.data() + align, n), portable) << n << " @" << align;
      }
      ASSERT_EQ(Crc32c(buf.data() + align, n), portable);
    }
  }
  EXPECT_EQ(crc32c_internal::ExtendPortable(0, "123456789", 9), 0xE3069283u);
}

// The SSE4.2 path hashes blocks of 3 * 8192 and then 3 * 256 bytes as three
// interleaved chains (prefetching when a further long block follows), and the
// rest with one chain; every length through two long blocks plus a few short
// ones crosses each of those boundaries at each alignment. The reference is
// grown a byte at a time, so that checking every length stays linear.
TEST(Crc32cTest, Sse42AgreesAcrossItsBlockBoundaries) {
  if (!crc32c_internal::HaveSse42()) GTEST_SKIP() << "no SSE4.2";
  constexpr size_t kLong = 8192, kShort = 256;
  constexpr size_t kMaxLen = 6 * kLong + 4 * 3 * kShort + 64;
  std::mt19937 rng(13);
  std::vector<uint8_t> buf(kMaxLen + 8);
  for (uint8_t& b : buf) b = static_cast<uint8_t>(rng());
  for (size_t align = 0; align < 8; ++align) {
    const uint8_t* p = buf.data() + align;
    const uint32_t start = align == 0 ? 0u : static_cast<uint32_t>(rng());
    uint32_t expected = start;
    for (size_t n = 0; n <= kMaxLen; ++n) {
      if (n > 0) expected = crc32c_internal::ExtendPortable(expected, p + n - 1, 1);
      ASSERT_EQ(crc32c_internal::ExtendSse42(start, p, n), expected) << n << " @" << align;
    }
    ASSERT_EQ(crc32c_internal::ExtendPortable(start, p, kMaxLen), expected) << align;
    ASSERT_EQ(Crc32cExtend(start, p, kMaxLen), expected) << align;
  }
}

TEST(Crc32cTest, Sse42AgreesOnLargeBuffers) {
  if (!crc32c_internal::HaveSse42()) GTEST_SKIP() << "no SSE4.2";
  std::mt19937 rng(17);
  std::vector<uint8_t> buf((size_t{1} << 20) + 64);
  for (uint8_t& b : buf) b = static_cast<uint8_t>(rng());
  for (int i = 0; i < 64; ++i) {
    const size_t offset = rng() % 64;
    const size_t n = i == 0 ? buf.size() - 64 : rng() % (buf.size() - 64);
    const uint32_t start = static_cast<uint32_t>(rng());
    ASSERT_EQ(crc32c_internal::ExtendSse42(start, buf.data() + offset, n),
              crc32c_internal::ExtendPortable(start, buf.data() + offset, n))
        << n << " @" << offset;
  }
}

TEST(Crc32cTest, ExtendOverAnySplitEqualsTheWhole) {
  std::string s(1000, '\0');
  std::mt19937 rng(11);
  for (char& c : s) c = static_cast<char>(rng());
  const uint32_t whole = Crc32c(s.data(), s.size());
  for (size_t cut = 0; cut <= s.size(); cut += 37) {
    Crc32cHasher h;
    h.Update(s.data(), cut);
    h.Update(s.data() + cut, s.size() - cut);
    EXPECT_EQ(h.value(), whole) << cut;
  }
}

}  // namespace
}  // namespace moe_adapter
