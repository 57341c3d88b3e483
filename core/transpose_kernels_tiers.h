// The kernel tables of the three instruction-set tiers, one .cc each, so each
// file holds one tier's code; GetTransposeKernel() (transpose_kernels.cc)
// picks the table.
#ifndef MOE_ADAPTER_CORE_TRANSPOSE_KERNELS_TIERS_H_
#define MOE_ADAPTER_CORE_TRANSPOSE_KERNELS_TIERS_H_

#include "core/transpose_kernels.h"

namespace moe_adapter {
namespace internal {

using TransposeKernelTable = TransposeBlockFn[3][3];  // [src][dst], order F32, BF16, F16

extern const TransposeKernelTable kScalarTransposeKernels;  // transpose_kernels_scalar.cc
extern const TransposeKernelTable kAvx2TransposeKernels;    // transpose_kernels_avx2.cc
extern const TransposeKernelTable kAvx512TransposeKernels;  // transpose_kernels_avx512.cc

}  // namespace internal
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_TRANSPOSE_KERNELS_TIERS_H_
