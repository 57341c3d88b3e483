#include "core/quote.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace moe_adapter {
namespace {

constexpr absl::string_view kEllipsis = "\xE2\x80\xA6";  // U+2026

// Length of the well-formed UTF-8 sequence (RFC 3629: no overlongs, no
// surrogates, nothing past U+10FFFF) that starts s[i], or 0 when there is none.
size_t Utf8Length(absl::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b = byte(i);
  if (b < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    n = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    n = 3;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    n = 4;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size() || byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  }
  return n;
}

// The escaped form of the character of `len` bytes at s[i].
std::string Escaped(absl::string_view s, size_t i, size_t len) {
  if (len == 0) return absl::StrFormat("\\x%02X", static_cast<unsigned char>(s[i]));
  if (len == 2 && static_cast<unsigned char>(s[i]) == 0xC2 &&
      static_cast<unsigned char>(s[i + 1]) < 0xA0) {
    return absl::StrFormat("\\u%04X", static_cast<unsigned char>(s[i + 1]));  // C1 control
  }
  if (len > 1) return std::string(s.substr(i, len));
  switch (s[i]) {
    case '\n':
      return "\\n";
    case '\t':
      return "\\t";
    case '\r':
      return "\\r";
    case '"':
      return "\\\"";
    case '\\':
      return "\\\\";
    default:
      break;
  }
  const unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x20 || c == 0x7F) return absl::StrFormat("\\x%02X", c);
  return std::string(1, s[i]);
}

}  // namespace

std::string Printable(absl::string_view s, size_t max) {
  std::string out;
  out.reserve(std::min(s.size(), max) + kEllipsis.size());
  for (size_t i = 0; i < s.size();) {
    const size_t len = Utf8Length(s, i);
    const std::string piece = Escaped(s, i, len);
    if (out.size() + piece.size() > max) {
      absl::StrAppend(&out, kEllipsis);
      return out;
    }
    out += piece;
    i += len == 0 ? 1 : len;
  }
  return out;
}

std::string Quote(absl::string_view s) { return absl::StrCat("\"", Printable(s), "\""); }

}  // namespace moe_adapter
