#include "core/quant/mxfp4.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/cast.h"
#include "core/quote.h"

namespace moe_adapter {
namespace {

// e2m1: 0, .5, 1, 1.5, 2, 3, 4, 6; codes 8..15 are the negatives (8 is -0).
constexpr float kFp4[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                            -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

absl::Status ShapeError(const TensorInfo& blocks, const TensorInfo& scales, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("MXFP4 ", Quote(blocks.name), " ", DTypeName(blocks.dtype),
                                                 ShapeString(blocks.shape), " and ", Quote(scales.name), " ",
                                                 DTypeName(scales.dtype), ShapeString(scales.shape), ": ", why));
}

// 2^k as fp32, the way torch.ldexp forms it (pow(2, k) in float): exact for
// -149 <= k <= 127, +Inf above, as the subnormal/zero below.
float PowerOfTwo(int k) { return std::ldexp(1.0f, k); }

}  // namespace

absl::StatusOr<Shape> Mxfp4OutputShape(const TensorInfo& blocks, const TensorInfo& scales) {
  if (blocks.dtype != DType::kU8 || scales.dtype != DType::kU8) {
    return ShapeError(blocks, scales, "both must be U8");
  }
  if (blocks.shape.size() != 4 || blocks.shape[3] != kMxfp4BytesPerGroup) {
    return ShapeError(blocks, scales, "blocks must be [E, R, G, 16]");
  }
  if (scales.shape != Shape{blocks.shape[0], blocks.shape[1], blocks.shape[2]}) {
    return ShapeError(blocks, scales, "scales must be [E, R, G] of the blocks' [E, R, G, 16]");
  }
  return Shape{blocks.shape[0], 32 * blocks.shape[2], blocks.shape[1]};
}

Mxfp4View Mxfp4View::Of(const Tensor& blocks, const Tensor& scales) {
  return Mxfp4View{blocks.data.data(), scales.data.data(), blocks.shape[0], blocks.shape[1], blocks.shape[2]};
}

void DecodeMxfp4Experts(const Mxfp4View& in, int64_t e_begin, int64_t e_end, DType dtype, void* out) {
  const int64_t R = in.rows, G = in.groups, K = 32 * G;
  const size_t item = dtype == DType::kF32 ? 4 : 2;
  for (int64_t e = e_begin; e < e_end; ++e) {
    uint8_t* dst = static_cast<uint8_t*>(out) + static_cast<size_t>(e) * K * R * item;
    for (int64_t r = 0; r < R; ++r) {
      const uint8_t* blk = in.blocks + ((e * R + r) * G) * kMxfp4BytesPerGroup;
      const uint8_t* sc = in.scales + (e * R + r) * G;
      for (int64_t g = 0; g < G; ++g) {
        const float f = PowerOfTwo(static_cast<int>(sc[g]) - 127);
        for (int64_t b = 0; b < kMxfp4BytesPerGroup; ++b) {
          const uint8_t byte = blk[g * kMxfp4BytesPerGroup + b];
          const float lo = kFp4[byte & 0xF] * f, hi = kFp4[byte >> 4] * f;
          const int64_t k = 32 * g + 2 * b;  // output row; r is the output column
          uint8_t* p_lo = dst + (k * R + r) * item;
          uint8_t* p_hi = dst + ((k + 1) * R + r) * item;
          if (dtype == DType::kF32) {
            std::memcpy(p_lo, &lo, 4);
            std::memcpy(p_hi, &hi, 4);
          } else {
            uint32_t ul, uh;
            std::memcpy(&ul, &lo, 4);
            std::memcpy(&uh, &hi, 4);
            const uint16_t bl = cast::F32ToBF16(ul, cast::kBF16NaNScalar);
            const uint16_t bh = cast::F32ToBF16(uh, cast::kBF16NaNScalar);
            std::memcpy(p_lo, &bl, 2);
            std::memcpy(p_hi, &bh, 2);
          }
        }
      }
    }
  }
}

}  // namespace moe_adapter
