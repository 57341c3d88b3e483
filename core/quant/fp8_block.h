// DeepSeek-V3's FP8 weights: F8_E4M3 (e4m3fn) values with one fp32 scale per
// 128 x 128 block (`X.weight_scale_inv`, shape ceil(rows/128) x ceil(cols/128)),
// decoded as the reference does (spec families.md §1): element (r, c) becomes
// dtype(float32(w[r, c]) * scale[r / 128, c / 128]) — one fp32 product, then
// one round-to-nearest-even cast to the target dtype (BF16, F16 or F32).
//
// Example:
//   RETURN_IF_ERROR(CheckFp8BlockScale(weight.info(), scale.info()));
//   Tensor out = Tensor::Allocate(DType::kBF16, weight.tensor.shape);
//   DequantizeFp8Rows(Fp8BlockView::Of(weight.tensor, scale.tensor), 0, rows, DType::kBF16, out.mutable_data());
#ifndef MOE_ADAPTER_CORE_QUANT_FP8_BLOCK_H_
#define MOE_ADAPTER_CORE_QUANT_FP8_BLOCK_H_

#include <cstdint>

#include "absl/status/status.h"
#include "moe_adapter/tensor.h"

namespace moe_adapter {

// The block edge DeepSeek-V3 uses; the reference hard-codes it and never
// reads quantization_config.weight_block_size.
inline constexpr int64_t kFp8BlockSize = 128;

// Fp8ScaleGrid(): the scale shape a [rows, cols] weight needs: both dims
// rounded up to whole blocks (edge blocks are partial).
Shape Fp8ScaleGrid(int64_t rows, int64_t cols);

// CheckFp8BlockScale(): OK when `weight` is a 2-D F8_E4M3 tensor and `scale`
// an F32 tensor of exactly Fp8ScaleGrid(weight); otherwise INVALID_ARGUMENT
// naming both keys, the weight shape, the expected grid and the actual one.
// A grid too large is refused too: the reference would use its top-left
// blocks silently (spec families.md §11).
absl::Status CheckFp8BlockScale(const TensorInfo& weight, const TensorInfo& scale);

// Fp8BlockView: a checked weight and its scale grid, by raw pointers.
struct Fp8BlockView {
  const uint8_t* weight = nullptr;  // rows x cols e4m3fn codes
  const float* scale = nullptr;     // grid_rows x grid_cols (unaligned-safe reads)
  int64_t rows = 0;
  int64_t cols = 0;

  static Fp8BlockView Of(const Tensor& weight, const Tensor& scale);
};

// DequantizeFp8Rows(): rows [row_begin, row_end) of the dequantised weight
// into `out` (row-major, `out` points at row 0 of the whole result), as
// `dtype` (BF16, F16 or F32). Rows are independent, so callers split them
// across threads.
void DequantizeFp8Rows(const Fp8BlockView& in, int64_t row_begin, int64_t row_end, DType dtype, void* out);

// E4m3ToF32Bits(): the exact float32 bit pattern of one e4m3fn code (bias 7,
// subnormals m/8 * 2^-6, 0x7F / 0xFF NaN as c10 decodes them, no infinities).
uint32_t E4m3ToF32Bits(uint8_t code);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_QUANT_FP8_BLOCK_H_
