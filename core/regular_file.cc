#include "core/regular_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "core/safetensors_format.h"

namespace moe_adapter {

const char* FileTypeName(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "of an unknown file type";
}

absl::Status NotRegularFileError(absl::string_view path, mode_t mode) {
  return absl::InvalidArgumentError(absl::StrCat(path, " is ", FileTypeName(mode), ", not a regular file"));
}

absl::StatusOr<int> OpenRegularFile(const std::string& path, struct stat* st_out) {
  // O_NONBLOCK: a FIFO without a writer would block the open itself.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return safetensors::ErrnoStatus(errno, "cannot open", path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return safetensors::ErrnoStatus(err, "cannot stat", path);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return NotRegularFileError(path, st.st_mode);
  }
  // Regular files ignore O_NONBLOCK; cleared so callers get ordinary reads.
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  if (st_out != nullptr) *st_out = st;
  return fd;
}

absl::StatusOr<std::string> ReadRegularFile(const std::string& path, uint64_t limit) {
  struct stat st;
  absl::StatusOr<int> fd = OpenRegularFile(path, &st);
  if (!fd.ok()) return fd.status();
  std::string out;
  char buf[65536];
  absl::Status s;
  while (true) {
    const ssize_t n = ::read(*fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      s = safetensors::ErrnoStatus(errno, "cannot read", path);
      break;
    }
    if (n == 0) break;
    if (out.size() + static_cast<uint64_t>(n) > limit) {
      s = absl::InvalidArgumentError(absl::StrCat(path, " is larger than ", limit, " bytes"));
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(*fd);
  if (!s.ok()) return s;
  return out;
}

}  // namespace moe_adapter
