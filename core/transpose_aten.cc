// The reference transpose: the same ATen calls the reference adapter makes, so
// its bits are the reference's bits. Part of moe_adapter_aten only.
#include <ATen/ATen.h>

#include <cstring>

#include "core/transpose.h"

namespace moe_adapter {
namespace {

at::ScalarType ToScalarType(DType dtype) {
  switch (dtype) {
    case DType::kBF16:
      return at::kBFloat16;
    case DType::kF16:
      return at::kHalf;
    default:
      return at::kFloat;
  }
}

}  // namespace

void TransposeCastAten(const TransposeArgs& a) {
  if (a.rows == 0 || a.cols == 0) return;
  at::Tensor src = at::from_blob(const_cast<void*>(a.src), {a.rows, a.cols}, {a.src_ld, 1},
                                 at::TensorOptions().dtype(ToScalarType(a.src_dtype)));
  // Transpose into a contiguous tensor first, then cast that contiguous tensor:
  // the order of operations of the reference's stack(...).to(dtype).
  at::Tensor t = src.t().contiguous();
  if (a.dst_dtype != a.src_dtype) t = t.to(ToScalarType(a.dst_dtype));
  at::Tensor dst = at::from_blob(a.dst, {a.cols, a.rows}, {a.dst_ld, 1},
                                 at::TensorOptions().dtype(ToScalarType(a.dst_dtype)));
  dst.copy_(t);
  // The project's one deviation from ATen's bits: f32 -> bf16 of a NaN is
  // 0x7FC0 (c10's scalar conversion, the CUDA kernels, ATen without AVX);
  // ATen's AVX2/AVX-512 kernels give 0xFFFF, so the raw reference differs
  // between CPUs and cannot be the contract.
  if (a.src_dtype == DType::kF32 && a.dst_dtype == DType::kBF16) {
    // memcpy: the buffers may be misaligned slices.
    const uint16_t kNaN = 0x7FC0;
    for (int64_t r = 0; r < a.rows; ++r) {
      const char* row = static_cast<const char*>(a.src) + r * a.src_ld * sizeof(float);
      for (int64_t c = 0; c < a.cols; ++c) {
        float v;
        std::memcpy(&v, row + c * sizeof(float), sizeof v);
        if (v != v) std::memcpy(static_cast<char*>(a.dst) + (c * a.dst_ld + r) * sizeof(uint16_t), &kNaN, sizeof kNaN);
      }
    }
  }
}

void SetTransposeImpl(TransposeImpl impl) {
  SetTransposeOverride(impl == TransposeImpl::kAten ? &TransposeCastAten : nullptr);
}

}  // namespace moe_adapter
