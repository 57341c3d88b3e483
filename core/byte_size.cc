#include "core/byte_size.h"

#include <limits>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/quote.h"

namespace moe_adapter {
namespace {

struct Unit {
  const char* name;
  uint64_t factor;
};
constexpr Unit kUnits[] = {
    {"", 1},           {"b", 1},            {"k", 1ull << 10},   {"kib", 1ull << 10}, {"kb", 1000},
    {"m", 1ull << 20}, {"mib", 1ull << 20}, {"mb", 1000000},     {"g", 1ull << 30},   {"gib", 1ull << 30},
    {"gb", 1000000000}, {"t", 1ull << 40},  {"tib", 1ull << 40}, {"tb", 1000000000000ull},
};

// More fractional digits than this cannot change a result below 2^64 bytes
// by a whole byte for any unit above (the largest is 2^40 < 10^13).
constexpr size_t kMaxFractionDigits = 18;

absl::Status NotASize(absl::string_view text) {
  return absl::InvalidArgumentError(
      absl::StrCat(Quote(text), " is not a size (e.g. 4194304, 4MiB, 1.5GB; units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"));
}

absl::Status TooLarge(absl::string_view text) {
  return absl::InvalidArgumentError(absl::StrCat(Quote(text), " is too large (at most 2^64 - 1 bytes)"));
}

size_t CountDigits(absl::string_view t, size_t from) {
  size_t i = from;
  while (i < t.size() && absl::ascii_isdigit(static_cast<unsigned char>(t[i]))) ++i;
  return i - from;
}

}  // namespace

absl::StatusOr<uint64_t> ParseByteSize(absl::string_view text) {
  const absl::string_view t = absl::StripAsciiWhitespace(text);
  const size_t int_digits = CountDigits(t, 0);
  size_t end = int_digits;
  absl::string_view fraction;
  if (end < t.size() && t[end] == '.') {
    const size_t n = CountDigits(t, end + 1);
    fraction = t.substr(end + 1, n);
    end += 1 + n;
  }
  uint64_t whole = 0;
  if (int_digits + fraction.size() == 0 || (int_digits > 0 && !absl::SimpleAtoi(t.substr(0, int_digits), &whole))) {
    return NotASize(text);
  }
  const std::string suffix = absl::AsciiStrToLower(absl::StripLeadingAsciiWhitespace(t.substr(end)));
  for (const Unit& u : kUnits) {
    if (suffix != u.name) continue;
    if (whole > std::numeric_limits<uint64_t>::max() / u.factor) {
      return TooLarge(text);
    }
    uint64_t bytes = whole * u.factor;
    // The fraction in exact integer arithmetic: "0.1GB" is 100000000, not
    // the nearest double times 1e9.
    absl::string_view digits = fraction.substr(0, kMaxFractionDigits);
    unsigned __int128 num = 0, den = 1;
    for (char c : digits) {
      num = num * 10 + static_cast<unsigned>(c - '0');
      den *= 10;
    }
    const unsigned __int128 extra = num * u.factor / den;
    if (extra > std::numeric_limits<uint64_t>::max() - bytes) {
      return TooLarge(text);
    }
    return bytes + static_cast<uint64_t>(extra);
  }
  return NotASize(text);
}

}  // namespace moe_adapter
