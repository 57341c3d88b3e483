// CRC32C: published vectors (RFC 3720 B.4, the "123456789" check value), both
// implementations against each other at every length and alignment, and
// Extend() over any split.
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
