#include "core/safetensors_writer_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "core/safetensors_format.h"

namespace moe_adapter {
namespace safetensors {

absl::Status WriteAll(int fd, const void* data, size_t size, absl::string_view path) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    // Linux writes at most ~2 GiB per call; ask for 1 GiB pieces.
    const ssize_t n = ::write(fd, p, std::min<size_t>(size, size_t{1} << 30));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "cannot write", path);
    if (n == 0) return ErrnoStatus(EIO, "cannot write", path);
    p += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status SyncAndClose(int fd, bool sync, absl::string_view path) {
  if (sync && ::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoStatus(err, "cannot fsync", path);
  }
  if (::close(fd) != 0) return ErrnoStatus(errno, "cannot close", path);
  return absl::OkStatus();
}

absl::StatusOr<int> CreateOutput(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, "cannot create", path);
  return fd;
}

}  // namespace safetensors
}  // namespace moe_adapter
