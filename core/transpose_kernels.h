// Single-threaded transpose-cast kernels for one block of a slab, one per dtype
// pair and instruction set. TransposeCastBlocked() (transpose_blocked.cc) cuts
// a slab into blocks and hands them to these on the worker pool.
#ifndef MOE_ADAPTER_CORE_TRANSPOSE_KERNELS_H_
#define MOE_ADAPTER_CORE_TRANSPOSE_KERNELS_H_

#include <cstdint>

#include "moe_adapter/dtype.h"

namespace moe_adapter {
namespace internal {

// Ordered: a higher level may use everything a lower one does.
enum class TransposeIsa { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

// dst[c * dst_ld + r] = cast(src[r * src_ld + c]) for r < rows, c < cols, as
// in TransposeArgs (strides in elements).
struct TransposeBlock {
  const void* src = nullptr;
  int64_t src_ld = 0;
  void* dst = nullptr;
  int64_t dst_ld = 0;
  int64_t rows = 0;
  int64_t cols = 0;
  // Bypass the cache for whole destination lines. Only set when dst and
  // dst_ld * element size are multiples of 64 bytes; the kernel fences.
  bool stream = false;
  // What an f32 NaN becomes in bf16 (a project policy: see cast.h).
  uint16_t bf16_nan = 0xFFFF;
};

using TransposeBlockFn = void (*)(const TransposeBlock&);

// The kernel for src -> dst (F32, BF16, F16 each) on `isa`; nullptr for other
// dtypes. The caller must have checked that the CPU supports `isa`.
TransposeBlockFn GetTransposeKernel(TransposeIsa isa, DType src, DType dst);

// The best level this CPU (and OS) supports.
TransposeIsa DetectTransposeIsa();

// The level TransposeCastBlocked() uses: the detected one unless a test pinned
// a lower one, so that one host can check every path against the reference.
TransposeIsa ActiveTransposeIsa();
// Pins the level (clamped to DetectTransposeIsa()); affects all threads.
void SetTransposeIsaForTesting(TransposeIsa isa);
// Back to detection.
void ResetTransposeIsaForTesting();

}  // namespace internal
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_TRANSPOSE_KERNELS_H_
