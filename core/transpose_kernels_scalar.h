// The portable transpose-cast: one cast per element, no SIMD. It is the scalar
// tier (transpose_kernels_scalar.cc) and the edges of the AVX2 tiles
// (transpose_kernels_avx2.cc), which instantiate these templates themselves.
#ifndef MOE_ADAPTER_CORE_TRANSPOSE_KERNELS_SCALAR_H_
#define MOE_ADAPTER_CORE_TRANSPOSE_KERNELS_SCALAR_H_

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/cast.h"
#include "core/transpose_kernels.h"

namespace moe_adapter {
namespace internal {
// Internal linkage on purpose: each including file compiles its own copies, so
// GCC inlines the edges into the AVX2 kernels as it did when all tiers were one
// file (the same instructions; external linkage changed them).
namespace {

struct CopyU16 {
  using Src = uint16_t;
  using Dst = uint16_t;
  static Dst Cast(Src x, uint16_t) { return x; }
};
struct CopyU32 {
  using Src = uint32_t;
  using Dst = uint32_t;
  static Dst Cast(Src x, uint16_t) { return x; }
};
struct CastF32BF16 {
  using Src = uint32_t;
  using Dst = uint16_t;
  static Dst Cast(Src x, uint16_t nan) { return cast::F32ToBF16(x, nan); }
};
struct CastF32F16 {
  using Src = uint32_t;
  using Dst = uint16_t;
  static Dst Cast(Src x, uint16_t) { return cast::F32ToF16(x); }
};
struct CastBF16F32 {
  using Src = uint16_t;
  using Dst = uint32_t;
  static Dst Cast(Src x, uint16_t) { return cast::BF16ToF32(x); }
};
struct CastF16F32 {
  using Src = uint16_t;
  using Dst = uint32_t;
  static Dst Cast(Src x, uint16_t) { return cast::F16ToF32(x); }
};
struct CastBF16F16 {
  using Src = uint16_t;
  using Dst = uint16_t;
  static Dst Cast(Src x, uint16_t) { return cast::BF16ToF16(x); }
};
struct CastF16BF16 {
  using Src = uint16_t;
  using Dst = uint16_t;
  static Dst Cast(Src x, uint16_t) { return cast::F16ToBF16(x); }
};

// Rows [r0, r1) x columns [c0, c1) of the block, in 32 x 32 sub-tiles so both
// sides stay in L1. Elements go through memcpy: slices of a safetensors file
// need not be aligned to their dtype.
template <class C>
void ScalarRegion(const TransposeBlock& b, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  using Src = typename C::Src;
  using Dst = typename C::Dst;
  const char* src = static_cast<const char*>(b.src);
  char* dst = static_cast<char*>(b.dst);
  constexpr int64_t kTile = 32;
  for (int64_t rt = r0; rt < r1; rt += kTile) {
    const int64_t re = std::min(rt + kTile, r1);
    for (int64_t ct = c0; ct < c1; ct += kTile) {
      const int64_t ce = std::min(ct + kTile, c1);
      for (int64_t c = ct; c < ce; ++c) {
        char* d = dst + c * b.dst_ld * int64_t{sizeof(Dst)};
        for (int64_t r = rt; r < re; ++r) {
          Src x;
          std::memcpy(&x, src + (r * b.src_ld + c) * int64_t{sizeof(Src)}, sizeof(Src));
          const Dst y = C::Cast(x, b.bf16_nan);
          std::memcpy(d + r * int64_t{sizeof(Dst)}, &y, sizeof(Dst));
        }
      }
    }
  }
}

template <class C>
void ScalarKernel(const TransposeBlock& b) {
  ScalarRegion<C>(b, 0, b.rows, 0, b.cols);
}

}  // namespace
}  // namespace internal
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_TRANSPOSE_KERNELS_SCALAR_H_
