#include "core/quant/mxfp4.h"

#include <algorithm>
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

namespace {

constexpr int64_t kRowTile = 64;  // output columns per pass: 64 rows of blocks stay in L2

// DecodeTile(): rows [r0, r0 + n) of expert `e`, group `g`: 32 values each,
// into tile[k][r - r0] (k = 0..31), as float.
void DecodeTile(const Mxfp4View& in, int64_t e, int64_t g, int64_t r0, int64_t n, float (*tile)[kRowTile]) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t row = (e * in.rows + r0 + i) * in.groups + g;
    const uint8_t* blk = in.blocks + row * kMxfp4BytesPerGroup;
    const float f = PowerOfTwo(static_cast<int>(in.scales[row]) - 127);
    for (int64_t b = 0; b < kMxfp4BytesPerGroup; ++b) {
      tile[2 * b][i] = kFp4[blk[b] & 0xF] * f;
      tile[2 * b + 1][i] = kFp4[blk[b] >> 4] * f;
    }
  }
}

}  // namespace

void DecodeMxfp4Experts(const Mxfp4View& in, int64_t e_begin, int64_t e_end, DType dtype, void* out) {
  const int64_t R = in.rows, K = 32 * in.groups;
  const size_t item = dtype == DType::kF32 ? 4 : 2;
  float tile[32][kRowTile];
  for (int64_t e = e_begin; e < e_end; ++e) {
    uint8_t* dst = static_cast<uint8_t*>(out) + static_cast<size_t>(e) * K * R * item;
    // Output row k = 32g + j holds, along its R columns, value j of group g
    // of every input row: a tile of input rows gives contiguous runs of it.
    for (int64_t r0 = 0; r0 < R; r0 += kRowTile) {
      const int64_t n = std::min(kRowTile, R - r0);
      for (int64_t g = 0; g < in.groups; ++g) {
        DecodeTile(in, e, g, r0, n, tile);
        for (int64_t j = 0; j < 32; ++j) {
          uint8_t* run = dst + ((32 * g + j) * R + r0) * item;
          if (dtype == DType::kF32) {
            std::memcpy(run, tile[j], n * 4);
            continue;
          }
          for (int64_t i = 0; i < n; ++i) {
            uint32_t u;
            std::memcpy(&u, &tile[j][i], 4);
            const uint16_t b = cast::F32ToBF16(u, cast::kBF16NaNScalar);
            std::memcpy(run + 2 * i, &b, 2);
          }
        }
      }
    }
  }
}

}  // namespace moe_adapter
