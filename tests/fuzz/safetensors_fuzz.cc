// Fuzzes the safetensors reader (core/safetensors_reader, safetensors_format):
// SafetensorsFile::Open() on a file made from the input, then every accessor
// a conversion uses, checking that each tensor lies inside the mapping.
//
// Input: [u64 little-endian D][rest]. D < 2^63: the file is the 8-byte length
// of `rest`, `rest` as the JSON header, then D % 1 GiB zero bytes of data
// (sparse), so that a mutation of the JSON keeps the file well framed. D with
// the top bit set: `rest` is the whole file, raw (the header-length checks).
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/safetensors_reader.h"
#include "tests/fuzz/fuzz_util.h"

namespace moe_adapter {
namespace {

constexpr uint64_t kRawFile = uint64_t{1} << 63;
constexpr uint64_t kMaxData = uint64_t{1} << 30;

void Exercise(const SafetensorsFile& f) {
  const uint8_t* begin = f.mapped_data();
  const uint8_t* end = begin + f.file_size();
  FUZZ_CHECK(f.num_tensors() == f.tensors().size());
  for (size_t i = 0; i < f.num_tensors(); ++i) {
    const NamedTensor t = f.GetAt(i);
    const Bytes& b = t.tensor.data;
    FUZZ_CHECK(b.data() >= begin && b.size() <= static_cast<size_t>(end - b.data()));
    absl::StatusOr<int64_t> numel = NumElements(t.tensor.shape, DTypeSize(t.tensor.dtype));
    FUZZ_CHECK(numel.ok());
    FUZZ_CHECK(static_cast<uint64_t>(*numel) * DTypeSize(t.tensor.dtype) == b.size());
    // Read the first and last byte (a mapping that were too short would fault).
    if (b.size() > 0) {
      volatile uint8_t sink = b.data()[0];
      sink = b.data()[b.size() - 1];
      (void)sink;
    }
    absl::StatusOr<size_t> index = f.IndexOf(t.name);
    FUZZ_CHECK(index.ok() && *index == i);
    FUZZ_CHECK(f.Contains(t.name));
    f.ReleasePages(i);
  }
  for (const auto& [key, value] : f.metadata()) FUZZ_CHECK(key.size() + value.size() < f.file_size());
  FUZZ_CHECK(!f.Get("\x01 no such tensor").ok());
}

}  // namespace
}  // namespace moe_adapter

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace moe_adapter;
  if (size < 8) return 0;
  const uint64_t d = fuzz::LoadLe64(data);
  const uint8_t* rest = data + 8;
  const size_t rest_size = size - 8;
  fuzz::MemFile file;
  if (d & kRawFile) {
    FUZZ_CHECK(fuzz::WriteAll(file.fd(), rest, rest_size));
  } else {
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(uint64_t{rest_size} >> (8 * i));
    FUZZ_CHECK(fuzz::WriteAll(file.fd(), len, sizeof(len)));
    FUZZ_CHECK(fuzz::WriteAll(file.fd(), rest, rest_size));
    FUZZ_CHECK(::ftruncate(file.fd(), static_cast<off_t>(8 + rest_size + d % kMaxData)) == 0);
  }
  absl::StatusOr<std::shared_ptr<SafetensorsFile>> f = SafetensorsFile::Open(file.path());
  if (f.ok()) {
    Exercise(**f);
  } else {
    FUZZ_CHECK(f.status().code() == absl::StatusCode::kInvalidArgument);
  }
  return 0;
}
