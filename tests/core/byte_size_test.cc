#include "core/byte_size.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace moe_adapter {
namespace {

using ::testing::HasSubstr;

TEST(ByteSizeTest, UnitsAreDecimalOrBinaryAsWritten) {
  EXPECT_EQ(*ParseByteSize("0"), 0u);
  EXPECT_EQ(*ParseByteSize("1024"), 1024u);
  EXPECT_EQ(*ParseByteSize("4KB"), 4000u);
  EXPECT_EQ(*ParseByteSize("4kib"), 4096u);
  EXPECT_EQ(*ParseByteSize("4k"), 4096u);
  EXPECT_EQ(*ParseByteSize("5GB"), 5000000000u);
  EXPECT_EQ(*ParseByteSize("6GiB"), 6ull << 30);
  EXPECT_EQ(*ParseByteSize("2T"), 2ull << 40);
  EXPECT_EQ(*ParseByteSize("7 B"), 7u) << "space before the unit";
  EXPECT_EQ(*ParseByteSize("  3MiB\n"), 3u << 20);
}

TEST(ByteSizeTest, FractionsAreExact) {
  EXPECT_EQ(*ParseByteSize("1.5GiB"), 1610612736u);
  EXPECT_EQ(*ParseByteSize("0.1GB"), 100000000u) << "no binary floating point on the way";
  EXPECT_EQ(*ParseByteSize(".5KiB"), 512u);
  EXPECT_EQ(*ParseByteSize("1.5"), 1u) << "a fraction of a byte is dropped";
  EXPECT_EQ(*ParseByteSize("2."), 2u);
}

TEST(ByteSizeTest, RejectsWhatIsNotASize) {
  for (const char* bad : {"", ".", "-1", "1e9", "12 parsecs", "GB", "1.2.3", "0x10", "5 G B"}) {
    absl::StatusOr<uint64_t> n = ParseByteSize(bad);
    ASSERT_FALSE(n.ok()) << bad;
    EXPECT_EQ(n.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(n.status().message(), HasSubstr("is not a size")) << bad;
  }
}

TEST(ByteSizeTest, OverflowIsAnErrorNotAWrap) {
  EXPECT_EQ(*ParseByteSize("18446744073709551615"), UINT64_MAX);
  EXPECT_THAT(ParseByteSize("18446744073709551616").status().message(), HasSubstr("not a size"));
  EXPECT_THAT(ParseByteSize("16777216TiB").status().message(), HasSubstr("too large"));
  EXPECT_EQ(*ParseByteSize("16777215.99999999999999999999TiB"), UINT64_MAX)
      << "long fractions are cut, never overflow";
  EXPECT_THAT(ParseByteSize("18446744073709551615.5KB").status().message(), HasSubstr("too large"));
}

TEST(ByteSizeTest, EchoesAtMostABoundedQuote) {
  const std::string huge(1 << 20, 'x');
  absl::StatusOr<uint64_t> n = ParseByteSize(huge);
  ASSERT_FALSE(n.ok());
  EXPECT_LT(n.status().message().size(), 400u);
}

}  // namespace
}  // namespace moe_adapter
