// File: server/shm_regions.h
//
// Client memory regions of the shared-memory data plane (docs/server.md,
// "Shared memory"): MappedRegion is one sealed memfd the side channel
// (shm_channel.h) validated and mapped; RegionRegistry keeps what a client
// registered under a random single-use token until a stream takes it
// (StreamOptions.shared_memory_token) or the token expires.
//
// Lifetime: a region is unmapped, and its fd closed, when its last owner lets
// go: the registry (an expired or never-used token, shutdown) or the stream
// that took it (which drops it when it is destroyed, however it ended), and
// gRPC slices that still view it.
//
// Why the seals: the client keeps its own fd. Without F_SEAL_SHRINK it could
// truncate the file under the server's mapping, and the server's next access
// would be SIGBUS; without F_SEAL_GROW a region's size could change after it
// was checked.
//
// Example:
//   ASSIGN_OR_RETURN(auto in, MappedRegion::Map(fd, MappedRegion::kRead, max, metrics, "input"));
//   std::string token = registry.Add({in, nullptr});
//   ... in a stream: ASSIGN_OR_RETURN(RegionSet set, registry.Take(token));
//
// Thread-safety: MappedRegion is immutable after Map() (its bytes are the
// client's); RegionRegistry is thread-safe.
#ifndef MOE_ADAPTER_SERVER_SHM_REGIONS_H_
#define MOE_ADAPTER_SERVER_SHM_REGIONS_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/metrics.h"

namespace moe_adapter {
namespace server {

class MappedRegion {
 public:
  enum Access { kRead, kReadWrite };
  // Map(): takes ownership of `fd` (closed on error). FAILED_PRECONDITION
  // when it is not a memfd, lacks F_SEAL_SHRINK or F_SEAL_GROW, has pages not
  // allocated yet (they would be charged to the server when it touches
  // them), or cannot be mapped with `access` (an fd opened read-only,
  // F_SEAL_WRITE on an output); INVALID_ARGUMENT when its size is 0 or above
  // `max_bytes`. `which`
  // ("input", "output") names it in messages.
  static absl::StatusOr<std::shared_ptr<MappedRegion>> Map(int fd, Access access, uint64_t max_bytes,
                                                           Metrics* metrics, const char* which);
  ~MappedRegion();
  MappedRegion(const MappedRegion&) = delete;
  MappedRegion& operator=(const MappedRegion&) = delete;

  uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  bool SameFile(const MappedRegion& other) const { return dev_ == other.dev_ && ino_ == other.ino_; }

  // CheckRange(): INVALID_ARGUMENT unless [offset, offset + n) lies in the
  // region (checked arithmetic). `what` names the tensor in messages.
  absl::Status CheckRange(uint64_t offset, uint64_t n, const std::string& what) const;
  const char* which() const { return which_; }

 private:
  MappedRegion() = default;

  int fd_ = -1;
  uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  Metrics* metrics_ = nullptr;
  const char* which_ = "";
};

// RegionSet: what one registration holds; either may be null.
struct RegionSet {
  std::shared_ptr<MappedRegion> input;
  std::shared_ptr<MappedRegion> output;
};

class RegionRegistry {
 public:
  // Registrations not taken within `ttl` expire.
  explicit RegionRegistry(std::chrono::nanoseconds ttl) : ttl_(ttl) {}

  // Add(): a fresh token (32 lowercase hex digits, 128 random bits) for
  // `set`. RESOURCE_EXHAUSTED when kMaxPending registrations wait already.
  absl::StatusOr<std::string> Add(RegionSet set);
  // Take(): the regions of `token`, which is then forgotten (single use).
  // INVALID_ARGUMENT for a malformed token; FAILED_PRECONDITION for one that
  // is unknown, used or expired.
  absl::StatusOr<RegionSet> Take(absl::string_view token);
  // Expire(): drops registrations older than the ttl (their regions unmap
  // unless a stream holds them).
  void Expire();
  // Clear(): drops every registration (shutdown).
  void Clear();
  size_t pending() const;

  static constexpr size_t kMaxPending = 64;

 private:
  struct Entry {
    RegionSet set;
    std::chrono::steady_clock::time_point added;
  };
  const std::chrono::nanoseconds ttl_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
};

}  // namespace server
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_SERVER_SHM_REGIONS_H_
