// Helpers shared by the libFuzzer harnesses of tests/fuzz.
#ifndef MOE_ADAPTER_TESTS_FUZZ_FUZZ_UTIL_H_
#define MOE_ADAPTER_TESTS_FUZZ_FUZZ_UTIL_H_

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"

namespace moe_adapter {
namespace fuzz {

// FUZZ_CHECK(cond): a broken invariant is a crash, so libFuzzer saves the input.
#define FUZZ_CHECK(cond)                                                              \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)

// A status message the server sends must reach the client: gRPC refuses
// metadata (the message travels in grpc-message) over 8 KiB by default, and
// the client would see RESOURCE_EXHAUSTED instead of the error. Untrusted text
// in a message is quoted truncated (at most 200 characters, then "..."), so
// a valid message stays far below this.
inline constexpr size_t kMaxStatusMessageBytes = 8 << 10;

// CheckStatusMessageFits(): aborts (so the input is kept) on a status
// message over kMaxStatusMessageBytes, showing how it starts.
inline void CheckStatusMessageFits(const absl::Status& s) {
  if (s.message().size() <= kMaxStatusMessageBytes) return;
  std::fprintf(stderr, "status message of %zu bytes exceeds %zu (untrusted text echoed whole?): %.300s...\n",
               s.message().size(), kMaxStatusMessageBytes, std::string(s.message()).c_str());
  std::abort();
}

inline uint64_t LoadLe64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

inline bool WriteAll(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// MemFile: an anonymous in-memory file, for readers that take a path
// (/proc/self/fd/N opens it again). Nothing touches the disk.
class MemFile {
 public:
  MemFile() : fd_(::memfd_create("moe-fuzz", MFD_CLOEXEC)) {
    if (fd_ < 0) {
      std::perror("memfd_create");
      std::abort();
    }
  }
  ~MemFile() { ::close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;

  int fd() const { return fd_; }
  std::string path() const { return "/proc/self/fd/" + std::to_string(fd_); }

 private:
  int fd_;
};

}  // namespace fuzz
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_TESTS_FUZZ_FUZZ_UTIL_H_
