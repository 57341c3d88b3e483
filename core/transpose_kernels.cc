// Which tier runs: the CPU's best (DetectTransposeIsa()) unless a test pinned a
// lower one, and the kernel of that tier for a dtype pair. The tiers
// themselves are transpose_kernels_{scalar,avx2,avx512}.cc.
#include "core/transpose_kernels.h"

#include <cpuid.h>

#include <atomic>

#include "core/transpose_kernels_tiers.h"

namespace moe_adapter {
namespace internal {
namespace {

int Index(DType t) {
  switch (t) {
    case DType::kF32:
      return 0;
    case DType::kBF16:
      return 1;
    case DType::kF16:
      return 2;
    default:
      return -1;
  }
}

// -1: not pinned.
std::atomic<int> g_pinned_isa{-1};

}  // namespace

TransposeBlockFn GetTransposeKernel(TransposeIsa isa, DType src, DType dst) {
  const int s = Index(src), d = Index(dst);
  if (s < 0 || d < 0) return nullptr;
  switch (isa) {
    case TransposeIsa::kAvx512:
      return kAvx512TransposeKernels[s][d];
    case TransposeIsa::kAvx2:
      return kAvx2TransposeKernels[s][d];
    default:
      return kScalarTransposeKernels[s][d];
  }
}

TransposeIsa DetectTransposeIsa() {
  static const TransposeIsa isa = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl")) {
      return TransposeIsa::kAvx512;
    }
    // Every AVX2 CPU shipped has F16C, but the OS-visible bit is what counts.
    // CPUID.1:ECX.F16C read directly: clang before 15 has no "f16c" for
    // __builtin_cpu_supports, and the fuzz build (tests/fuzz) uses clang 14.
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
    if (__builtin_cpu_supports("avx2") && f16c) {
      return TransposeIsa::kAvx2;
    }
    return TransposeIsa::kScalar;
  }();
  return isa;
}

TransposeIsa ActiveTransposeIsa() {
  const int pinned = g_pinned_isa.load(std::memory_order_relaxed);
  const TransposeIsa best = DetectTransposeIsa();
  if (pinned < 0 || pinned > static_cast<int>(best)) return best;
  return static_cast<TransposeIsa>(pinned);
}

void SetTransposeIsaForTesting(TransposeIsa isa) { g_pinned_isa.store(static_cast<int>(isa)); }

void ResetTransposeIsaForTesting() { g_pinned_isa.store(-1); }

}  // namespace internal
}  // namespace moe_adapter
