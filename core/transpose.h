// Expert-slab transposes with an optional dtype cast: the only arithmetic a
// conversion does. Two implementations share one contract:
//   - TransposeCastAten(): the checked reference, built on ATen exactly as the
//     reference adapter computes (transpose, make contiguous, then .to(dtype)).
//   - TransposeCastBlocked(): the fast path (cache-blocked, SIMD, threaded).
// They must agree bit for bit on every input, NaN and Inf included.
#ifndef MOE_ADAPTER_CORE_TRANSPOSE_H_
#define MOE_ADAPTER_CORE_TRANSPOSE_H_

#include <cstdint>

#include "moe_adapter/dtype.h"

namespace moe_adapter {

// TransposeArgs: dst[c * dst_ld + r] = cast(src[r * src_ld + c]) for
// 0 <= r < rows, 0 <= c < cols. Strides are in elements of each side's dtype.
// src and dst dtypes are F32, BF16 or F16 and may differ; buffers never overlap.
struct TransposeArgs {
  const void* src = nullptr;
  DType src_dtype = DType::kF32;
  int64_t src_ld = 0;
  void* dst = nullptr;
  DType dst_dtype = DType::kF32;
  int64_t dst_ld = 0;
  int64_t rows = 0;
  int64_t cols = 0;
};

// The reference (ATen) implementation. It lives in the separate library
// moe_adapter_aten (tests and benchmarks), so production binaries do not
// load libtorch.
void TransposeCastAten(const TransposeArgs& args);

// The fast implementation. Uses the process-wide worker pool (see
// SetConversionThreads()) for large slabs.
void TransposeCastBlocked(const TransposeArgs& args);

// What the core calls: the fast path, unless an override is installed.
void TransposeCast(const TransposeArgs& args);

// SetTransposeOverride(): routes every TransposeCast() to `fn` (nullptr: back
// to the fast path). For tests comparing implementations end to end.
using TransposeFn = void (*)(const TransposeArgs&);
void SetTransposeOverride(TransposeFn fn);

// Convenience over SetTransposeOverride(); defined in moe_adapter_aten.
enum class TransposeImpl { kBlocked, kAten };
void SetTransposeImpl(TransposeImpl impl);

// Number of threads the fast path may use (default: hardware concurrency).
void SetConversionThreads(int n);
int ConversionThreads();

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_TRANSPOSE_H_
