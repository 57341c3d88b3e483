// File: core/byte_size.h
//
// Sizes typed by people (`--max-shard-size 5GB`, `--max-stream-memory 6GiB`,
// `--chunk-size 4MiB`): one parser for the CLI and the server, so the same
// text means the same number of bytes on both ends.
//
// Example:
//   absl::StatusOr<uint64_t> n = ParseByteSize("1.5GiB");  // 1610612736
//
// Thread-safety: pure function.
#ifndef MOE_ADAPTER_CORE_BYTE_SIZE_H_
#define MOE_ADAPTER_CORE_BYTE_SIZE_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moe_adapter {

// ParseByteSize(): a non-negative number, optionally with a fraction, then an
// optional unit, case-insensitive: B; KB, MB, GB, TB (powers of 1000); KiB,
// MiB, GiB, TiB and the single letters K, M, G, T (powers of 1024). A
// fraction of a byte is dropped ("1.5B" is 1). Surrounding whitespace is
// ignored. INVALID_ARGUMENT (quoting the text) for anything else or a value
// above 2^64 - 1.
absl::StatusOr<uint64_t> ParseByteSize(absl::string_view text);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_BYTE_SIZE_H_
