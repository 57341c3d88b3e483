#include "server/shm_channel.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/quote.h"
#include "server/shm_wire.h"
#include "server/status_mapping.h"

namespace moe_adapter {
namespace server {
namespace {

// Room for more fds than a request may carry, so that one carrying too many
// is seen (and every one of them closed) rather than cut by the kernel.
constexpr int kMaxFdsReceived = 8;

// The fds of one request; whatever is left is closed.
struct ReceivedFds {
  std::vector<int> fds;
  ~ReceivedFds() {
    for (int fd : fds) ::close(fd);
  }
  // Take(): the next fd, now owned by the caller.
  int Take() {
    const int fd = fds.front();
    fds.erase(fds.begin());
    return fd;
  }
};

void PutU16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}

void Reply(int fd, const absl::Status& status, const std::string& token) {
  uint8_t out[shm_wire::kMaxReplyBytes] = {};
  std::memcpy(out, shm_wire::kMagic, 4);
  out[4] = shm_wire::kVersion;
  PutU16(out + 6, static_cast<uint16_t>(ToGrpcStatus(status).error_code()));
  std::memset(out + 8, '0', shm_wire::kTokenChars);
  if (status.ok()) std::memcpy(out + 8, token.data(), shm_wire::kTokenChars);
  // Messages are built from bounded parts; Printable() keeps the cut valid UTF-8.
  const std::string msg = status.ok() ? "" : Printable(status.message(), shm_wire::kMaxReplyMessageBytes - 3);
  const size_t n = std::min(msg.size(), shm_wire::kMaxReplyMessageBytes);
  PutU16(out + 40, static_cast<uint16_t>(n));
  std::memcpy(out + shm_wire::kReplyHeaderBytes, msg.data(), n);
  // A client that does not read its reply loses it; the server never waits.
  ssize_t ignored = ::send(fd, out, shm_wire::kReplyHeaderBytes + n, MSG_NOSIGNAL | MSG_DONTWAIT);
  (void)ignored;
}

absl::Status Invalid(const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("shared memory: ", why, " (the layout is in docs/server.md)"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ShmChannel>> ShmChannel::Start(const Config& config, RegionRegistry* registry,
                                                              Metrics* metrics) {
  if (absl::Status claimed = ClaimUnixSocketPath(config.path); !claimed.ok()) return claimed;
  std::unique_ptr<ShmChannel> c(new ShmChannel());
  c->config_ = config;
  c->registry_ = registry;
  c->metrics_ = metrics;
  c->listen_fd_ = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (c->listen_fd_ < 0) return absl::UnavailableError(absl::StrCat("socket(AF_UNIX): ", std::strerror(errno)));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (config.path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("shared-memory socket ", Quote(config.path), " is too long"));
  }
  std::memcpy(addr.sun_path, config.path.data(), config.path.size());
  {
    ScopedUmask umask(config.mode);
    if (::bind(c->listen_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
      return absl::UnavailableError(
          absl::StrCat("shared-memory socket ", Quote(config.path), ": bind: ", std::strerror(errno)));
    }
  }
  if (::listen(c->listen_fd_, 64) != 0) {
    return absl::UnavailableError(absl::StrCat("shared-memory socket ", Quote(config.path), ": listen: ",
                                               std::strerror(errno)));
  }
  absl::StatusOr<BoundUnixSocket> bound = BoundUnixSocket::Adopt(config.path, config.mode);
  if (!bound.ok()) return bound.status();
  c->bound_ = *std::move(bound);
  if (::pipe2(c->wake_, O_CLOEXEC | O_NONBLOCK) != 0) return absl::InternalError("pipe2() failed");
  c->thread_ = std::thread([raw = c.get()] { raw->Serve(); });
  return c;
}

ShmChannel::~ShmChannel() { Stop(); }

void ShmChannel::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (thread_.joinable()) {
    const char b = 1;
    ssize_t ignored = ::write(wake_[1], &b, 1);
    (void)ignored;
    thread_.join();
  }
  if (listen_fd_ >= 0) ::close(listen_fd_);
  for (int fd : wake_) {
    if (fd >= 0) ::close(fd);
  }
  if (bound_) bound_->Remove();
}

void ShmChannel::Serve() {
  struct Conn {
    int fd;
    std::chrono::steady_clock::time_point accepted;
  };
  std::vector<Conn> conns;
  std::vector<pollfd> fds;
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    // Wake at the next connection timeout, and at least every second to
    // expire registrations.
    auto wait = std::chrono::milliseconds(1000);
    for (const Conn& c : conns) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(c.accepted + kRequestTimeout - now);
      wait = std::max(std::chrono::milliseconds(0), std::min(wait, left + std::chrono::milliseconds(1)));
    }
    fds.clear();
    fds.push_back({wake_[0], POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    for (const Conn& c : conns) fds.push_back({c.fd, POLLIN, 0});
    const int ready = ::poll(fds.data(), fds.size(), static_cast<int>(wait.count()));
    if (ready < 0 && errno != EINTR) break;
    if (fds[0].revents) break;
    // Connections first (their indices are those of fds), then new ones.
    std::vector<Conn> kept;
    const auto after = std::chrono::steady_clock::now();
    for (size_t i = 0; i < conns.size(); ++i) {
      const short ev = ready > 0 ? fds[i + 2].revents : 0;
      if (ev & POLLIN) {
        Handle(conns[i].fd);
        ::close(conns[i].fd);
      } else if (ev & (POLLHUP | POLLERR | POLLNVAL) || after - conns[i].accepted >= kRequestTimeout) {
        ::close(conns[i].fd);  // said nothing in time, or went away
      } else {
        kept.push_back(conns[i]);
      }
    }
    conns.swap(kept);
    if (ready > 0 && (fds[1].revents & POLLIN)) {
      for (;;) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) break;  // EAGAIN: no more; anything else: try again next round
        if (conns.size() >= kMaxConnections) {
          // Silent clients cannot crowd out the next one: the oldest goes.
          ::close(conns.front().fd);
          conns.erase(conns.begin());
        }
        conns.push_back({fd, std::chrono::steady_clock::now()});
      }
    }
    registry_->Expire();
  }
  for (const Conn& c : conns) ::close(c.fd);
}

void ShmChannel::Handle(int fd) {
  uint8_t req[shm_wire::kRequestBytes + 1];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsReceived)];
  iovec iov{req, sizeof(req)};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  const ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n <= 0) return;  // went away without a request
  ReceivedFds received;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int rfd;
      std::memcpy(&rfd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      received.fds.push_back(rfd);
    }
  }
  std::string token;
  absl::Status status = [&]() -> absl::Status {
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      return absl::PermissionDeniedError("shared memory: the peer's credentials are unknown (SO_PEERCRED)");
    }
    if (std::find(config_.allowed_uids.begin(), config_.allowed_uids.end(), cred.uid) == config_.allowed_uids.end()) {
      return absl::PermissionDeniedError(absl::StrCat("shared memory: uid ", cred.uid,
                                                      " may not register regions (--shared-memory-uids)"));
    }
    if (static_cast<size_t>(n) != shm_wire::kRequestBytes || (msg.msg_flags & MSG_TRUNC)) {
      return Invalid(absl::StrCat("a request is ", shm_wire::kRequestBytes, " bytes, got ",
                                  (msg.msg_flags & MSG_TRUNC) ? "more" : absl::StrCat(n)));
    }
    if (std::memcmp(req, shm_wire::kMagic, 4) != 0) return Invalid("the request does not start with \"MOES\"");
    if (req[4] != shm_wire::kVersion) {
      return Invalid(absl::StrCat("request version ", req[4], "; this server speaks version ", shm_wire::kVersion));
    }
    const uint8_t regions = req[5];
    if (regions == 0 || (regions & ~(shm_wire::kInputRegion | shm_wire::kOutputRegion)) || req[6] || req[7]) {
      return Invalid("the request names no region, or sets reserved bits");
    }
    const size_t want = ((regions & shm_wire::kInputRegion) ? 1 : 0) + ((regions & shm_wire::kOutputRegion) ? 1 : 0);
    if ((msg.msg_flags & MSG_CTRUNC) || received.fds.size() != want) {
      return Invalid(absl::StrCat("the request names ", want, " region(s) and carries ",
                                  (msg.msg_flags & MSG_CTRUNC) ? "too many" : absl::StrCat(received.fds.size()),
                                  " fd(s) (SCM_RIGHTS)"));
    }
    RegionSet set;
    if (regions & shm_wire::kInputRegion) {
      absl::StatusOr<std::shared_ptr<MappedRegion>> in =
          MappedRegion::Map(received.Take(), MappedRegion::kRead, config_.max_region_bytes, metrics_, "input");
      if (!in.ok()) return in.status();
      set.input = *std::move(in);
    }
    if (regions & shm_wire::kOutputRegion) {
      absl::StatusOr<std::shared_ptr<MappedRegion>> out =
          MappedRegion::Map(received.Take(), MappedRegion::kReadWrite, config_.max_region_bytes, metrics_, "output");
      if (!out.ok()) return out.status();
      set.output = *std::move(out);
    }
    // One memfd as both would let the server's outputs overwrite inputs it
    // has still to read.
    if (set.input && set.output && set.input->SameFile(*set.output)) {
      return absl::InvalidArgumentError(
          "shared memory: the input and output regions are the same memfd; give the outputs their own");
    }
    absl::StatusOr<std::string> t = registry_->Add(std::move(set));
    if (!t.ok()) return t.status();
    token = *t;
    return absl::OkStatus();
  }();
  Reply(fd, status, token);
  if (metrics_) metrics_->ShmRegistration(ToGrpcStatus(status).error_code());
}

}  // namespace server
}  // namespace moe_adapter
