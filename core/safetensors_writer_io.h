// The syscalls the safetensors writers share, each checked, errors naming
// the path (safetensors::ErrnoStatus()).
#ifndef MOE_ADAPTER_CORE_SAFETENSORS_WRITER_IO_H_
#define MOE_ADAPTER_CORE_SAFETENSORS_WRITER_IO_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moe_adapter {
namespace safetensors {

// WriteAll(): all `size` bytes at the current offset of `fd`.
absl::Status WriteAll(int fd, const void* data, size_t size, absl::string_view path);

// Closes `fd` (after fsync when asked); a close error is a write error on
// some filesystems (NFS), so it is reported.
absl::Status SyncAndClose(int fd, bool sync, absl::string_view path);

// CreateOutput(): `path` created or truncated, write-only.
absl::StatusOr<int> CreateOutput(const std::string& path);

}  // namespace safetensors
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_SAFETENSORS_WRITER_IO_H_
