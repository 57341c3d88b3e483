// File: server/shm_channel.h
//
// The shared-memory side channel (docs/server.md, "Shared memory"; byte
// layout in shm_wire.h): a SOCK_SEQPACKET Unix socket at `<gRPC socket
// path>.shm` where a client on the same host hands over sealed memfds
// (SCM_RIGHTS) and gets back a token for StreamOptions.shared_memory_token.
//
// Each request is checked in this order, each failure a status in the reply
// with every fd received closed: the peer's uid (SO_PEERCRED) is allowed
// (PERMISSION_DENIED), the request is well formed and carries one fd per
// region it names (INVALID_ARGUMENT), each fd is a memfd with F_SEAL_SHRINK |
// F_SEAL_GROW (FAILED_PRECONDITION), its size is within --max-region-bytes
// (INVALID_ARGUMENT), input and output are different memfds
// (INVALID_ARGUMENT). Then the regions are mapped and registered
// (RegionRegistry).
//
// One thread serves every connection without blocking on any: a client that
// connects and says nothing is dropped after kRequestTimeout, at most
// kMaxConnections wait at once (the oldest is dropped for a newer one), and
// registrations are expired on the same thread.
//
// Example:
//   ASSIGN_OR_RETURN(auto channel, ShmChannel::Start(config, &registry, &metrics));
//   ... channel->Stop();  // also on destruction
//
// Thread-safety: Start() and Stop() from one thread.
#ifndef MOE_ADAPTER_SERVER_SHM_CHANNEL_H_
#define MOE_ADAPTER_SERVER_SHM_CHANNEL_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/metrics.h"
#include "server/shm_regions.h"
#include "server/unix_socket.h"

namespace moe_adapter {
namespace server {

class ShmChannel {
 public:
  struct Config {
    std::string path;  // the socket file
    mode_t mode = 0660;
    std::vector<uid_t> allowed_uids;
    uint64_t max_region_bytes = 0;
  };
  static constexpr std::chrono::seconds kRequestTimeout{5};
  static constexpr size_t kMaxConnections = 32;

  // Start(): claims the path (a stale socket file is replaced, anything else
  // refused: server/unix_socket.h), binds with `mode`, serves. `registry` and
  // `metrics` must outlive the channel.
  static absl::StatusOr<std::unique_ptr<ShmChannel>> Start(const Config& config, RegionRegistry* registry,
                                                           Metrics* metrics);
  ~ShmChannel();
  ShmChannel(const ShmChannel&) = delete;
  ShmChannel& operator=(const ShmChannel&) = delete;

  // Stop(): stops serving, closes every connection, removes the socket file.
  void Stop();

 private:
  ShmChannel() = default;
  void Serve();
  // Handle(): answers the one request on `fd` (readable).
  void Handle(int fd);

  Config config_;
  RegionRegistry* registry_ = nullptr;
  Metrics* metrics_ = nullptr;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::optional<BoundUnixSocket> bound_;
  std::thread thread_;
  bool stopped_ = false;
};

}  // namespace server
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_SERVER_SHM_CHANNEL_H_
