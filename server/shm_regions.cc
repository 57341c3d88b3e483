#include "server/shm_regions.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/checked_math.h"
#include "core/quote.h"
#include "server/shm_wire.h"

namespace moe_adapter {
namespace server {
namespace {

// Closes the fd unless released.
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

absl::Status Precondition(const char* which, const std::string& why) {
  return absl::FailedPreconditionError(absl::StrCat("shared memory: the ", which, " region ", why));
}

}  // namespace

absl::StatusOr<std::shared_ptr<MappedRegion>> MappedRegion::Map(int fd, Access access, uint64_t max_bytes,
                                                                 Metrics* metrics, const char* which) {
  FdCloser closer{fd};
  // F_GET_SEALS works on memfds (and other shmem files, which cannot carry
  // the seals below); anything else (a regular file, a pipe, a socket) fails.
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0) {
    return Precondition(which, absl::StrCat("is not a memfd (F_GET_SEALS: ", std::strerror(errno),
                                            "); create it with memfd_create(MFD_ALLOW_SEALING)"));
  }
  for (const auto& [seal, name] : {std::pair<int, const char*>{F_SEAL_SHRINK, "F_SEAL_SHRINK"},
                                   std::pair<int, const char*>{F_SEAL_GROW, "F_SEAL_GROW"}}) {
    if (!(seals & seal)) {
      return Precondition(which, absl::StrCat("lacks the seal ", name,
                                              " (required: F_SEAL_SHRINK | F_SEAL_GROW, so that its size cannot "
                                              "change under the server's mapping)"));
    }
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return Precondition(which, "is not a regular memfd");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size == 0 || size > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("shared memory: the ", which, " region is ", size,
                                                   " bytes; it must be in [1, ", max_bytes,
                                                   "] (--max-region-bytes)"));
  }
  // Every page must be allocated already (written, or fallocate()d): a page
  // the server's access faulted in would be allocated by, and charged to,
  // the server. (SEEK_HOLE and mincore() cannot tell: shmem reports
  // fallocate()d pages that were never written as holes.)
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t allocated = static_cast<uint64_t>(st.st_blocks) * 512;
  if (allocated < (size + page - 1) / page * page) {
    return Precondition(which, absl::StrCat("has ", allocated, " of its ", size,
                                            " bytes allocated; fallocate() (or write) the memfd first, so that its "
                                            "pages are the client's"));
  }
  const int prot = access == kReadWrite ? PROT_READ | PROT_WRITE : PROT_READ;
  // MAP_POPULATE: the page tables are filled here, in one pass, instead of
  // by one fault per page during the conversion (measured: a 1 GiB region
  // populated in 0.12 s, faulted in page by page in 2.0 s, on a loaded VM).
  // The pages are the client's already (checked above); the page tables,
  // 0.2% of the region, are the server's. Above kPopulateBytes the side
  // channel's one thread would be held too long: those fault in as used.
  constexpr uint64_t kPopulateBytes = uint64_t{16} << 30;
  const int flags = MAP_SHARED | (size <= kPopulateBytes ? MAP_POPULATE : 0);
  void* p = ::mmap(nullptr, size, prot, flags, fd, 0);
  if (p == MAP_FAILED) {
    const int e = errno;
    if (e == ENOMEM) {
      return absl::ResourceExhaustedError(
          absl::StrCat("shared memory: the ", which, " region of ", size, " bytes cannot be mapped: out of address space"));
    }
    return Precondition(which, absl::StrCat("cannot be mapped ", access == kReadWrite ? "read-write" : "read-only",
                                            ": ", std::strerror(e),
                                            access == kReadWrite ? " (an output region needs an fd opened read-write "
                                                                   "and no F_SEAL_WRITE / F_SEAL_FUTURE_WRITE)"
                                                                 : ""));
  }
  std::shared_ptr<MappedRegion> r(new MappedRegion());
  r->fd_ = fd;
  closer.fd = -1;
  r->data_ = static_cast<uint8_t*>(p);
  r->size_ = size;
  r->dev_ = st.st_dev;
  r->ino_ = st.st_ino;
  r->metrics_ = metrics;
  r->which_ = which;
  if (metrics) metrics->ShmRegionMapped(size);
  return r;
}

MappedRegion::~MappedRegion() {
  ::munmap(data_, size_);
  ::close(fd_);
  if (metrics_) metrics_->ShmRegionUnmapped(size_);
}

absl::Status MappedRegion::CheckRange(uint64_t offset, uint64_t n, const std::string& what) const {
  const std::optional<uint64_t> end = checked::Add<uint64_t>({offset, n});
  if (!end || *end > size_) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", n, " bytes at offset ", offset, " of the ", which_,
                                                   " region go beyond its ", size_, " bytes"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> RegionRegistry::Add(RegionSet set) {
  uint8_t random[16];
  size_t got = 0;
  while (got < sizeof(random)) {
    const ssize_t n = ::getrandom(random + got, sizeof(random) - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::InternalError("getrandom() failed");
    got += static_cast<size_t>(n);
  }
  std::string token;
  for (uint8_t b : random) absl::StrAppendFormat(&token, "%02x", b);
  std::lock_guard<std::mutex> lock(mu_);
  if (entries_.size() >= kMaxPending) {
    return absl::ResourceExhaustedError(absl::StrCat("shared memory: ", kMaxPending,
                                                     " registrations wait for a stream already; use or let expire "
                                                     "some first"));
  }
  entries_[token] = Entry{std::move(set), std::chrono::steady_clock::now()};
  return token;
}

absl::StatusOr<RegionSet> RegionRegistry::Take(absl::string_view token) {
  if (token.size() != shm_wire::kTokenChars ||
      !std::all_of(token.begin(), token.end(), [](char c) { return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f'); })) {
    return absl::InvalidArgumentError(absl::StrCat("options: shared_memory_token ", Quote(token), " is not ",
                                                   shm_wire::kTokenChars, " lowercase hex digits"));
  }
  Expire();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(std::string(token));
  if (it == entries_.end()) {
    return absl::FailedPreconditionError(
        "options: shared_memory_token is unknown, already used or expired (a token serves one stream and expires "
        "after --stream-options-timeout); register the regions again on the side channel");
  }
  RegionSet set = std::move(it->second.set);
  entries_.erase(it);
  return set;
}

void RegionRegistry::Expire() {
  std::vector<Entry> dropped;  // unmapped outside the lock
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (now - it->second.added >= ttl_) {
        dropped.push_back(std::move(it->second));
        it = entries_.erase(it);
      } else {
        ++it;
      }
    }
  }
}

void RegionRegistry::Clear() {
  std::map<std::string, Entry> dropped;
  std::lock_guard<std::mutex> lock(mu_);
  dropped.swap(entries_);
}

size_t RegionRegistry::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

}  // namespace server
}  // namespace moe_adapter
