// File: server/unix_socket.h
//
// Unix-domain listen addresses (`unix:///abs/path`, `unix:rel/path`) and the
// socket files behind them: what gRPC 1.51 does not do for us.
//
// gRPC binds `unix:` addresses itself, but before bind() it unlinks whatever
// socket file sits at the path (a live server's included, which would then
// lose every new client without noticing), creates the file with the
// process's umask, and unlinks the path again at shutdown without checking
// that the file is still its own. So the server:
//   1. ClaimUnixSocketPath() before building: a socket file whose server is
//      gone (connect() says ECONNREFUSED) is removed; a live one, or a path
//      that is not a socket (a regular file, a directory, a symlink), is
//      refused and left untouched;
//   2. binds under ScopedUmask, so the file is never more open than
//      --unix-socket-mode, then BoundUnixSocket::Adopt() sets the exact mode
//      and records the file's identity;
//   3. at shutdown, BoundUnixSocket::Remove() unlinks the file only if it is
//      still the one bound (gRPC's own unlink has usually done it already).
//
// Example:
//   if (std::optional<std::string> path = UnixSocketPath(address)) {
//     RETURN_IF_ERROR(ClaimUnixSocketPath(*path));
//   }
#ifndef MOE_ADAPTER_SERVER_UNIX_SOCKET_H_
#define MOE_ADAPTER_SERVER_UNIX_SOCKET_H_

#include <sys/types.h>

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moe_adapter {
namespace server {

// UnixSocketPath(): the file of a `unix:` address ("unix:///run/a.sock" ->
// "/run/a.sock", "unix:a.sock" -> "a.sock"); nullopt for any other address.
// Does not validate: see ValidateUnixAddress().
std::optional<std::string> UnixSocketPath(absl::string_view address);

// ValidateUnixAddress(): kInvalidArgument for a `unix:` address gRPC would
// bind somewhere else than UnixSocketPath() says or not at all: empty path,
// an authority (unix://host/...), percent escapes, a path longer than
// sockaddr_un allows. OK for other addresses.
absl::Status ValidateUnixAddress(absl::string_view address);

// ClaimUnixSocketPath(): see the file comment. Errors: kAlreadyExists (a
// server answers on the socket), kFailedPrecondition (the path exists and is
// not a socket), kUnavailable (the path cannot be probed, or a stale socket
// cannot be removed).
absl::Status ClaimUnixSocketPath(const std::string& path);

// ScopedUmask: sets the process umask so that files created meanwhile get at
// most `mode`'s permission bits; restores it on destruction. The umask is
// process-wide: hold it only around the bind, when no other thread creates
// files.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mode);
  ~ScopedUmask();
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;

 private:
  mode_t saved_;
};

// BoundUnixSocket: a socket file this process bound.
class BoundUnixSocket {
 public:
  // Adopt(): chmod(path, mode) and remember the file. kUnavailable when the
  // path is not a socket (anymore) or chmod fails.
  static absl::StatusOr<BoundUnixSocket> Adopt(const std::string& path, mode_t mode);
  // Remove(): unlinks the path if it is still this socket.
  void Remove() const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

}  // namespace server
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_SERVER_UNIX_SOCKET_H_
