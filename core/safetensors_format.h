// File: core/safetensors_format.h
//
// The safetensors on-disk format, as constants and limits shared by the reader
// and the writers, plus the errno -> Status helper both need.
//
// Layout of a file:
//   [8 bytes]  N, the header length, unsigned little-endian
//   [N bytes]  UTF-8 JSON object: {"__metadata__": {str: str}, name: {"dtype": "BF16",
//              "shape": [..], "data_offsets": [begin, end]}, ...}
//   [rest]     the data section; offsets are relative to its start (8 + N)
//
// Example:
//   if (header_len > moe_adapter::safetensors::kMaxHeaderBytes) return error;
//
// Thread-safety: constants and pure functions only.
#ifndef MOE_ADAPTER_CORE_SAFETENSORS_FORMAT_H_
#define MOE_ADAPTER_CORE_SAFETENSORS_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/quote.h"

namespace moe_adapter {
namespace safetensors {

// Size of the little-endian u64 header length that opens every file.
inline constexpr size_t kHeaderLengthBytes = 8;

// The official reader refuses headers above 100 MB (safetensors MAX_HEADER_SIZE);
// a bigger one could only be a hostile file, and refusing it early keeps a
// bogus length from making us parse gigabytes of JSON.
inline constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// The official writer pads the JSON with spaces so that the data section
// starts 8-byte aligned (8 + N is a multiple of 8): an mmap'ed tensor can then
// be read as F64/I64 in place. Readers must accept any N, writers pad.
inline constexpr size_t kDataAlignment = 8;

// The header key that holds the free-form string->string metadata.
inline constexpr absl::string_view kMetadataKey = "__metadata__";

// File name suffixes recognised when a checkpoint is a directory.
inline constexpr absl::string_view kFileSuffix = ".safetensors";
inline constexpr absl::string_view kIndexSuffix = ".safetensors.index.json";

// transformers 4's default max_shard_size ("5GB" = 5 * 10^9 bytes of tensor
// data, headers not counted). See field notes: hub- and parallel-reader-friendly.
inline constexpr uint64_t kDefaultMaxShardBytes = 5'000'000'000;

// Buffer size of the read/write fallback when copy_file_range is unavailable.
inline constexpr size_t kCopyChunkBytes = size_t{8} << 20;

// An index.json is a few MB even for the largest models; anything past this
// is not an index, and reading it whole would be a memory hazard.
inline constexpr uint64_t kMaxIndexBytes = 100'000'000;

// ErrnoStatus(): "<what> <path>: <strerror>" with the code absl maps the errno
// to (ENOENT -> kNotFound, EACCES -> kPermissionDenied, ...).
absl::Status ErrnoStatus(int err, absl::string_view what, absl::string_view path);

// Names in a hostile header can be megabytes long: messages quote them with
// the project's one Quote() (core/quote.h).
using ::moe_adapter::Quote;

}  // namespace safetensors
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_SAFETENSORS_FORMAT_H_
