// File: moe_adapter/tensor.h
//
// The tensor type that crosses every module boundary: a dtype, a shape and a
// span of little-endian, row-major bytes whose owner is shared. The bytes may
// live in a heap buffer, an mmap'ed safetensors file or received network
// chunks; a Tensor never copies them on its own.
//
// Example:
//   moe_adapter::Tensor t = moe_adapter::Tensor::Allocate(DType::kBF16, {4, 8});
//   std::memset(t.mutable_data(), 0, t.nbytes());
//   NamedTensor nt{"model.norm.weight", std::move(t)};
//
// Thread-safety: a Tensor is a value; copies share the (immutable) bytes and
// may be used from several threads. mutable_data() is for the sole producer of
// a freshly allocated tensor, before it is shared.
#ifndef MOE_ADAPTER_TENSOR_H_
#define MOE_ADAPTER_TENSOR_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "moe_adapter/dtype.h"

namespace moe_adapter {

// Bytes: a read-only byte span kept alive by a shared owner.
class Bytes {
 public:
  Bytes() = default;

  // Bytes::Allocate(): a new heap buffer of `size` uninitialised bytes.
  static Bytes Allocate(size_t size);

  // Bytes::Wrap(): a view of [data, data+size) that keeps `owner` alive.
  static Bytes Wrap(const void* data, size_t size, std::shared_ptr<const void> owner);

  // Bytes::WrapMapped(): like Wrap() for bytes of a read-only file mapping,
  // whose pages ReleasePages() may drop once consumed.
  static Bytes WrapMapped(const void* data, size_t size, std::shared_ptr<const void> owner);

  // Bytes::CopyOf(): a heap copy of [data, data+size).
  static Bytes CopyOf(const void* data, size_t size);

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  // Writable access for the producer of a buffer made by Allocate().
  uint8_t* mutable_data() { return const_cast<uint8_t*>(data_); }

  // Bytes::Slice(): a sub-span sharing the same owner.
  Bytes Slice(size_t offset, size_t size) const;

  // ReleasePages(): for file-mapped bytes, drops the process's resident pages
  // lying wholly inside [offset, offset+size) (they stay in the page cache and
  // fault back in if read again). A no-op for any other memory.
  void ReleasePages(size_t offset, size_t size) const;

 private:
  bool mapped_ = false;
  std::shared_ptr<const void> owner_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Shape: dimensions, outermost first.
using Shape = std::vector<int64_t>;

// NumElements(): the product of the dims, or an error when a dim is negative
// or the product (times `itemsize`, when given) overflows int64.
absl::StatusOr<int64_t> NumElements(const Shape& shape, size_t itemsize = 1);

// ShapeString(): "[4, 8, 12]".
std::string ShapeString(const Shape& shape);

// TensorInfo: what a header says about a tensor, before any data.
struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
};

// Tensor: dtype + shape + bytes. nbytes() == data.size() is an invariant that
// the constructors in this header and the readers keep.
struct Tensor {
  DType dtype = DType::kF32;
  Shape shape;
  Bytes data;

  // Tensor::Allocate(): uninitialised storage for `shape` (dims must be valid;
  // std::bad_alloc when their byte count overflows).
  static Tensor Allocate(DType dtype, Shape shape);

  int64_t numel() const;
  size_t nbytes() const { return data.size(); }
  uint8_t* mutable_data() { return data.mutable_data(); }
};

// NamedTensor: a tensor and its state-dict key.
struct NamedTensor {
  std::string name;
  Tensor tensor;

  TensorInfo info() const { return TensorInfo{name, tensor.dtype, tensor.shape}; }
};

// MakeTensor(): a Tensor over `data`, checking that its size matches
// dtype x shape (kInvalidArgument otherwise).
absl::StatusOr<Tensor> MakeTensor(DType dtype, Shape shape, Bytes data);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_TENSOR_H_
