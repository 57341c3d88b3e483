// The scalar tier: every CPU; the templates are in transpose_kernels_scalar.h.
#include "core/transpose_kernels_scalar.h"
#include "core/transpose_kernels_tiers.h"

namespace moe_adapter {
namespace internal {

const TransposeKernelTable kScalarTransposeKernels = {
    {ScalarKernel<CopyU32>, ScalarKernel<CastF32BF16>, ScalarKernel<CastF32F16>},
    {ScalarKernel<CastBF16F32>, ScalarKernel<CopyU16>, ScalarKernel<CastBF16F16>},
    {ScalarKernel<CastF16F32>, ScalarKernel<CastF16BF16>, ScalarKernel<CopyU16>},
};

}  // namespace internal
}  // namespace moe_adapter
