#include "core/quant/fp8_block.h"

#include <array>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/cast.h"
#include "core/quote.h"

namespace moe_adapter {
namespace {

int64_t CeilBlocks(int64_t n) { return (n + kFp8BlockSize - 1) / kFp8BlockSize; }

const std::array<float, 256>& E4m3Table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int c = 0; c < 256; ++c) {
      const uint32_t bits = E4m3ToF32Bits(static_cast<uint8_t>(c));
      std::memcpy(&t[c], &bits, sizeof(float));
    }
    return t;
  }();
  return table;
}

float LoadF32(const float* p) {
  float v;
  std::memcpy(&v, p, sizeof v);  // the scale may sit at any offset of a mapping
  return v;
}

// One row, one output dtype: the cast is a template parameter so the inner
// loop has no branch on it.
template <typename Store>
void Row(const uint8_t* w, const float* scale_row, int64_t cols, const std::array<float, 256>& lut, Store store) {
  for (int64_t c0 = 0; c0 < cols; c0 += kFp8BlockSize) {
    const float s = LoadF32(scale_row + c0 / kFp8BlockSize);
    const int64_t c1 = c0 + kFp8BlockSize < cols ? c0 + kFp8BlockSize : cols;
    for (int64_t c = c0; c < c1; ++c) store(c, lut[w[c]] * s);
  }
}

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

}  // namespace

uint32_t E4m3ToF32Bits(uint8_t code) {
  const uint32_t sign = static_cast<uint32_t>(code & 0x80u) << 24;
  const uint32_t e = (code >> 3) & 0xFu;
  const uint32_t m = code & 0x7u;
  if (e == 0xF && m == 0x7) return sign | 0x7FC00000u;  // e4m3fn's only NaN
  if (e != 0) return sign | ((e + 120u) << 23) | (m << 20);
  if (m == 0) return sign;
  // Subnormal m/8 * 2^-6: normalise the leading bit p of m (0..2).
  const uint32_t p = 31u - static_cast<uint32_t>(__builtin_clz(m));
  return sign | ((p + 118u) << 23) | ((m << (23u - p)) & 0x7FFFFFu);
}

Shape Fp8ScaleGrid(int64_t rows, int64_t cols) { return {CeilBlocks(rows), CeilBlocks(cols)}; }

absl::Status CheckFp8BlockScale(const TensorInfo& weight, const TensorInfo& scale) {
  if (weight.dtype != DType::kF8E4M3) {
    return absl::InvalidArgumentError(absl::StrCat(Quote(weight.name), " has a block scale ", Quote(scale.name),
                                                   " but is ", DTypeName(weight.dtype),
                                                   ", not F8_E4M3: only FP8 weights are dequantised"));
  }
  if (weight.shape.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(Quote(weight.name), ": an FP8 block-scaled weight must be 2-D, got ",
                                                   ShapeString(weight.shape)));
  }
  if (scale.dtype != DType::kF32) {
    return absl::InvalidArgumentError(
        absl::StrCat(Quote(scale.name), ": a block scale must be F32, got ", DTypeName(scale.dtype)));
  }
  const Shape want = Fp8ScaleGrid(weight.shape[0], weight.shape[1]);
  if (scale.shape != want) {
    return absl::InvalidArgumentError(absl::StrCat(
        Quote(scale.name), ": the scale grid of ", Quote(weight.name), " ", ShapeString(weight.shape),
        " must be ", ShapeString(want), " (ceil(rows/128) x ceil(cols/128)), got ", ShapeString(scale.shape)));
  }
  return absl::OkStatus();
}

Fp8BlockView Fp8BlockView::Of(const Tensor& weight, const Tensor& scale) {
  return Fp8BlockView{weight.data.data(), reinterpret_cast<const float*>(scale.data.data()), weight.shape[0],
                      weight.shape[1]};
}

void DequantizeFp8Rows(const Fp8BlockView& in, int64_t row_begin, int64_t row_end, DType dtype, void* out) {
  const std::array<float, 256>& lut = E4m3Table();
  const int64_t grid_cols = CeilBlocks(in.cols);
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint8_t* w = in.weight + r * in.cols;
    const float* scale_row = in.scale + (r / kFp8BlockSize) * grid_cols;
    switch (dtype) {
      case DType::kF32: {
        uint8_t* dst = static_cast<uint8_t*>(out) + r * in.cols * 4;
        Row(w, scale_row, in.cols, lut, [dst](int64_t c, float v) { std::memcpy(dst + c * 4, &v, 4); });
        break;
      }
      case DType::kBF16: {
        uint8_t* dst = static_cast<uint8_t*>(out) + r * in.cols * 2;
        Row(w, scale_row, in.cols, lut, [dst](int64_t c, float v) {
          // c10::BFloat16(float): the scalar cast, NaN -> 0x7FC0.
          const uint16_t b = cast::F32ToBF16(Bits(v), cast::kBF16NaNScalar);
          std::memcpy(dst + c * 2, &b, 2);
        });
        break;
      }
      case DType::kF16: {
        uint8_t* dst = static_cast<uint8_t*>(out) + r * in.cols * 2;
        Row(w, scale_row, in.cols, lut, [dst](int64_t c, float v) {
          const uint16_t h = cast::F32ToF16(Bits(v));
          std::memcpy(dst + c * 2, &h, 2);
        });
        break;
      }
      default:
        break;  // callers pass a float dtype (checked where the target dtype is chosen)
    }
  }
}

}  // namespace moe_adapter
