#include "server/unix_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/safetensors_format.h"

namespace moe_adapter {
namespace server {
namespace {

constexpr absl::string_view kUnixPrefix = "unix:";

using safetensors::Quote;

std::string Errno(int e) { return std::strerror(e); }

}  // namespace

std::optional<std::string> UnixSocketPath(absl::string_view address) {
  if (!absl::ConsumePrefix(&address, kUnixPrefix)) return std::nullopt;
  // gRPC's server binds what follows "unix:" as given; "unix:///a" names the
  // same file as "/a", written the way clients spell it.
  if (absl::StartsWith(address, "///")) address.remove_prefix(2);
  return std::string(address);
}

absl::Status ValidateUnixAddress(absl::string_view address) {
  absl::string_view rest = address;
  if (!absl::ConsumePrefix(&rest, kUnixPrefix)) return absl::OkStatus();
  const std::string quoted = Quote(address);
  if (rest.empty() || rest == "///") {
    return absl::InvalidArgumentError(absl::StrCat("--listen ", quoted, ": no socket path"));
  }
  // Clients parse the target as a URI (an authority is refused there), while
  // the server binds the text after "unix:" percent-decoded: either would
  // make the two disagree on the file.
  if (absl::StartsWith(rest, "//") && !absl::StartsWith(rest, "///")) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen ", quoted, ": a unix address has no host; use unix:///ABSOLUTE/PATH or unix:RELATIVE/PATH"));
  }
  if (absl::StrContains(rest, '%')) {
    return absl::InvalidArgumentError(absl::StrCat("--listen ", quoted, ": percent escapes are not supported"));
  }
  constexpr size_t kMaxPath = sizeof(sockaddr_un{}.sun_path) - 1;
  if (rest.size() > kMaxPath) {
    return absl::InvalidArgumentError(absl::StrCat("--listen ", quoted, ": the socket path is ", rest.size(),
                                                   " bytes; a Unix socket path holds at most ", kMaxPath));
  }
  return absl::OkStatus();
}

absl::Status ClaimUnixSocketPath(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return absl::UnavailableError(absl::StrCat("unix socket ", Quote(path), ": ", Errno(errno)));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("unix socket ", Quote(path), ": the path exists and is not a socket; not touching it"));
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("socket(AF_UNIX): ", Errno(errno)));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), std::min(path.size(), sizeof(addr.sun_path) - 1));
  const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  const int err = errno;
  ::close(fd);
  if (rc == 0 || err == EAGAIN) {  // EAGAIN: a live listener with a full backlog
    return absl::AlreadyExistsError(
        absl::StrCat("unix socket ", Quote(path), ": address in use (a server is listening on it)"));
  }
  if (err != ECONNREFUSED) {
    return absl::UnavailableError(absl::StrCat("unix socket ", Quote(path), ": cannot probe it: ", Errno(err)));
  }
  // Nobody listens: the file of a server that died without removing it.
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::UnavailableError(
        absl::StrCat("unix socket ", Quote(path), ": cannot remove the stale socket file: ", Errno(errno)));
  }
  return absl::OkStatus();
}

ScopedUmask::ScopedUmask(mode_t mode) : saved_(::umask(~mode & 0777)) {}
ScopedUmask::~ScopedUmask() { ::umask(saved_); }

absl::StatusOr<BoundUnixSocket> BoundUnixSocket::Adopt(const std::string& path, mode_t mode) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) {
    return absl::UnavailableError(absl::StrCat("unix socket ", Quote(path), ": not found after bind"));
  }
  // The umask kept it within `mode` from the start; chmod makes it exact
  // whatever the library's way of creating the file.
  if (::chmod(path.c_str(), mode) != 0) {
    return absl::UnavailableError(absl::StrCat("unix socket ", Quote(path), ": chmod: ", Errno(errno)));
  }
  BoundUnixSocket s;
  s.path_ = path;
  s.dev_ = st.st_dev;
  s.ino_ = st.st_ino;
  return s;
}

void BoundUnixSocket::Remove() const {
  struct stat st;
  if (::lstat(path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == dev_ && st.st_ino == ino_) {
    ::unlink(path_.c_str());
  }
}

}  // namespace server
}  // namespace moe_adapter
