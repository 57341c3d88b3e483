#include "moe_adapter/tensor.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/buffer_cache.h"
#include "core/checked_math.h"

namespace moe_adapter {

Bytes Bytes::Allocate(size_t size) {
  // Large buffers (grouped experts, expert slabs) get 2 MiB-aligned memory
  // with transparent huge pages requested: 512x fewer page faults on first
  // touch and fewer TLB misses in the strided transposes that fill them.
  constexpr size_t kHuge = size_t{2} << 20;
  static_assert(buffer_cache::kMinBytes >= 2 * kHuge, "cached blocks are huge-page aligned");
  if (size >= 2 * kHuge) {
    void* p = size >= buffer_cache::kMinBytes ? buffer_cache::Take(size) : nullptr;
    if (p != nullptr || ::posix_memalign(&p, kHuge, size) == 0) {
      (void)::madvise(p, size, MADV_HUGEPAGE);
      Bytes b;
      b.data_ = static_cast<uint8_t*>(p);
      b.size_ = size;
      if (size >= buffer_cache::kMinBytes) {
        b.owner_ = std::shared_ptr<void>(p, [size](void* q) { buffer_cache::Give(q, size); });
      } else {
        b.owner_ = std::shared_ptr<void>(p, ::free);
      }
      return b;
    }
  }
  // new[] without value-initialisation: the producer overwrites every byte.
  std::shared_ptr<uint8_t> buf(new uint8_t[size == 0 ? 1 : size], std::default_delete<uint8_t[]>());
  Bytes b;
  b.data_ = buf.get();
  b.size_ = size;
  b.owner_ = std::move(buf);
  return b;
}

Bytes Bytes::Wrap(const void* data, size_t size, std::shared_ptr<const void> owner) {
  Bytes b;
  b.data_ = static_cast<const uint8_t*>(data);
  b.size_ = size;
  b.owner_ = std::move(owner);
  return b;
}

Bytes Bytes::WrapMapped(const void* data, size_t size, std::shared_ptr<const void> owner) {
  Bytes b = Wrap(data, size, std::move(owner));
  b.mapped_ = true;
  return b;
}

void Bytes::ReleasePages(size_t offset, size_t size) const {
  if (!mapped_ || offset >= size_) return;
  if (size > size_ - offset) size = size_ - offset;
  static const uintptr_t kPage = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(data_) + offset;
  const uintptr_t first = (begin + kPage - 1) & ~(kPage - 1);
  const uintptr_t last = (begin + size) & ~(kPage - 1);
  if (last > first) (void)::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

Bytes Bytes::CopyOf(const void* data, size_t size) {
  Bytes b = Allocate(size);
  if (size > 0) std::memcpy(b.mutable_data(), data, size);
  return b;
}

Bytes Bytes::Slice(size_t offset, size_t size) const {
  Bytes b;
  b.owner_ = owner_;
  b.mapped_ = mapped_;
  b.data_ = data_ + offset;
  b.size_ = size;
  return b;
}

absl::StatusOr<int64_t> NumElements(const Shape& shape, size_t itemsize) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("negative dimension in shape ", ShapeString(shape)));
    }
    if (d != 0 && n > kMax / d) {
      return absl::InvalidArgumentError(
          absl::StrCat("shape ", ShapeString(shape), " has more elements than int64 can count"));
    }
    n *= d;
  }
  if (itemsize > 1 && n > kMax / static_cast<int64_t>(itemsize)) {
    return absl::InvalidArgumentError(
        absl::StrCat("shape ", ShapeString(shape), " times itemsize ", itemsize,
                     " overflows int64 bytes"));
  }
  return n;
}

std::string ShapeString(const Shape& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

Tensor Tensor::Allocate(DType dtype, Shape shape) {
  Tensor t;
  t.dtype = dtype;
  // Callers size outputs from validated shapes; a product that still
  // overflowed would allocate a small buffer and be written far past it, so
  // it fails as an allocation the machine cannot satisfy.
  std::optional<size_t> bytes = DTypeSize(dtype);
  for (int64_t d : shape) bytes = d < 0 ? std::nullopt : checked::Mul(bytes, std::optional<size_t>(d));
  if (!bytes) throw std::bad_alloc();
  t.shape = std::move(shape);
  t.data = Bytes::Allocate(*bytes);
  return t;
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

absl::StatusOr<Tensor> MakeTensor(DType dtype, Shape shape, Bytes data) {
  absl::StatusOr<int64_t> n = NumElements(shape, DTypeSize(dtype));
  if (!n.ok()) return n.status();
  const uint64_t want = static_cast<uint64_t>(*n) * DTypeSize(dtype);
  if (want != data.size()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor of dtype ", DTypeName(dtype),
                                                   " and shape ", ShapeString(shape), " needs ",
                                                   want, " bytes, got ", data.size()));
  }
  Tensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.data = std::move(data);
  return t;
}

}  // namespace moe_adapter
