// The reference transpose: the same ATen calls the reference adapter makes, so
// its bits are the reference's bits.
#include <ATen/ATen.h>

#include <atomic>

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

std::atomic<TransposeImpl> g_impl{TransposeImpl::kBlocked};

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
}

void SetTransposeImpl(TransposeImpl impl) { g_impl.store(impl); }
TransposeImpl GetTransposeImpl() { return g_impl.load(); }

void TransposeCast(const TransposeArgs& args) {
  if (g_impl.load(std::memory_order_relaxed) == TransposeImpl::kAten) {
    TransposeCastAten(args);
  } else {
    TransposeCastBlocked(args);
  }
}

}  // namespace moe_adapter
