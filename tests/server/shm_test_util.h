// A test-side client of the shared-memory data plane (docs/server.md, "Shared
// memory"): sealed memfds, the side channel's request and reply
// (server/shm_wire.h), and ToHF / FromHF / ConvertTensor streams whose inputs
// lie in an input memfd and/or whose outputs come back in an output memfd,
// spoken with the generated protobuf stub (no client library).
#ifndef MOE_ADAPTER_TESTS_SERVER_SHM_TEST_UTIL_H_
#define MOE_ADAPTER_TESTS_SERVER_SHM_TEST_UTIL_H_

#include <fcntl.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "moe_adapter/convert_options.h"
#include "moe_adapter/v1/adapter.pb.h"
#include "tests/server/server_test_util.h"

namespace moe_adapter::server_testing {

inline constexpr int kRegionSeals = F_SEAL_SHRINK | F_SEAL_GROW;

// Memfd: a memfd of `size` bytes, mapped read-write here, its pages
// allocated (fallocate) unless `allocate` is false, then sealed with `seals`.
class Memfd {
 public:
  explicit Memfd(uint64_t size, int seals = kRegionSeals, bool allocate = true);
  ~Memfd();
  Memfd(const Memfd&) = delete;
  Memfd& operator=(const Memfd&) = delete;

  int fd() const { return fd_; }
  uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  // Close(): drops this process's fd and mapping (the server's stay valid).
  void Close();

 private:
  int fd_ = -1;
  uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

// Reply: the side channel's answer.
struct Reply {
  int code = -1;  // a grpc::StatusCode; -1: no reply (the server closed)
  std::string message;
  std::string token;
};

// RequestBytes(): a well-formed request naming the regions.
std::string RequestBytes(bool input, bool output);
// Register(): sends `request` with `fds` (SCM_RIGHTS) to the side channel at
// `path` and reads the reply.
Reply Register(const std::string& path, const std::string& request, const std::vector<int>& fds);
// RegisterRegions(): the usual request for the given memfds (either may be null).
Reply RegisterRegions(const std::string& path, const Memfd* input, const Memfd* output);

// RegionBytes(): room for `tensors` laid out 64-byte aligned.
uint64_t RegionBytes(const TensorList& tensors);

// ShmRun: what a shared-memory stream gave.
struct ShmRun {
  grpc::Status status;
  TensorList outputs;                       // read back from the region or the chunks
  std::vector<v1::TensorHeader> headers;    // the output headers as sent
  v1::StreamSummary summary;
  // Chunked outputs whose bytes do not match their header's CRC32C.
  std::vector<std::string> bad_crcs;
};

// ShmStream(): one `rpc` ("ToHF", "FromHF", "ConvertTensor") stream to
// `target` with `options` and `token` (may be empty). Inputs are written
// into `input` (64-byte aligned) before the stream opens and announced by
// region_offset headers (CRC32C given when `with_crc`) when it is not null,
// else sent in chunks. `chunk`: the stream's chunk size (0: the server's
// default; chunked inputs then go in 1 MiB chunks). Outputs are read from
// `output` when their header has a region_offset. `after_first` runs once
// the first input tensor was sent.
ShmRun ShmStream(const std::string& target, const std::string& rpc, const ConvertOptions& options,
                 const std::string& token, const TensorList& inputs, Memfd* input, const Memfd* output,
                 bool with_crc = false, size_t chunk = 0, const std::function<void()>& after_first = nullptr);

// OptionsWithToken(): the options message of `options`, with `token`.
v1::ConvertRequest OptionsWithToken(const ConvertOptions& options, const std::string& token, uint64_t chunk = 0);

// MappedMemfds(): lines of /proc/<pid>/maps that map a memfd.
std::vector<std::string> MappedMemfds(pid_t pid);
// OpenFds(): how many fds `pid` has open.
int OpenFds(pid_t pid);

}  // namespace moe_adapter::server_testing

#endif  // MOE_ADAPTER_TESTS_SERVER_SHM_TEST_UTIL_H_
