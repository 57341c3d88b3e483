// GPT-OSS's MXFP4 expert weights: `X_blocks` U8 [E, R, G, 16] (two e2m1 codes
// per byte, low nibble first) and `X_scales` U8 [E, R, G] (one power-of-two
// exponent, bias 127, per 32 values), decoded as the reference does (spec
// families.md §4): value[e, r, 32g + 2b]     = FP4(low nibble of byte b)  * 2^(s - 127),
//                   value[e, r, 32g + 2b + 1] = FP4(high nibble of byte b) * 2^(s - 127),
// then transposed to [E, 32G, R] (the native orientation). Every decoded value
// is exact in BF16 and in F32; the power of two is an fp32 value, as in
// torch.ldexp (2^128 is +Inf, so a zero code at scale 255 decodes to NaN).
//
// Example:
//   ASSIGN_OR_RETURN(Shape out_shape, Mxfp4OutputShape(blocks.info(), scales.info()));
//   Tensor out = Tensor::Allocate(DType::kBF16, out_shape);
//   DecodeMxfp4Experts(Mxfp4View::Of(blocks.tensor, scales.tensor), 0, E, DType::kBF16, out.mutable_data());
#ifndef MOE_ADAPTER_CORE_QUANT_MXFP4_H_
#define MOE_ADAPTER_CORE_QUANT_MXFP4_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "moe_adapter/tensor.h"

namespace moe_adapter {

inline constexpr int64_t kMxfp4BytesPerGroup = 16;  // 32 e2m1 values

// Mxfp4OutputShape(): [E, 32G, R] for blocks [E, R, G, 16] and scales
// [E, R, G], both U8; otherwise INVALID_ARGUMENT naming both keys and shapes.
absl::StatusOr<Shape> Mxfp4OutputShape(const TensorInfo& blocks, const TensorInfo& scales);

// Mxfp4View: checked blocks and scales, by raw pointers.
struct Mxfp4View {
  const uint8_t* blocks = nullptr;
  const uint8_t* scales = nullptr;
  int64_t experts = 0;  // E
  int64_t rows = 0;     // R (the output's last dim)
  int64_t groups = 0;   // G (the output's middle dim is 32G)

  static Mxfp4View Of(const Tensor& blocks, const Tensor& scales);
};

// DecodeMxfp4Experts(): experts [e_begin, e_end) decoded and transposed into
// `out` (the whole [E, 32G, R] result, row-major) as `dtype` (BF16 or F32).
// Experts are independent, so callers split them across threads.
void DecodeMxfp4Experts(const Mxfp4View& in, int64_t e_begin, int64_t e_end, DType dtype, void* out);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_QUANT_MXFP4_H_
