// File: core/quote.h
//
// The one way to put text from outside (tensor names, dtype strings, keys,
// path components, JSON values) into an error message. Such text can be
// megabytes long, hold control characters or be invalid UTF-8; echoed whole
// it would blow past gRPC's metadata limit (the client would see
// RESOURCE_EXHAUSTED instead of our INVALID_ARGUMENT) or make the status
// message invalid UTF-8, which gRPC requires it to be.
//
// Example:
//   return absl::InvalidArgumentError(absl::StrCat("tensor ", Quote(name), " is missing"));
//   // tensor "model.layers.0.mlp…" is missing   (when cut)
//
// Thread-safety: pure functions.
#ifndef MOE_ADAPTER_CORE_QUOTE_H_
#define MOE_ADAPTER_CORE_QUOTE_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace moe_adapter {

// The most bytes of (escaped) untrusted text a message shows.
inline constexpr size_t kMaxQuotedBytes = 200;

// Printable(): `s` made safe for a message, without quotes. Valid UTF-8 is
// kept; control characters (C0, DEL, C1), '"' and '\' are escaped (\n, \t,
// \", \\, \xNN, \u0085) and each byte of invalid UTF-8 becomes \xNN, so the
// result is always valid UTF-8. At most `max` bytes of escaped text are kept,
// cut between characters, and "…" (U+2026) is appended when anything was cut.
std::string Printable(absl::string_view s, size_t max = kMaxQuotedBytes);

// Quote(): Printable(s) in double quotes.
std::string Quote(absl::string_view s);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_QUOTE_H_
