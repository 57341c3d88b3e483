#include "core/quant/fp8_block.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/cast.h"
#include "core/quote.h"

namespace moe_adapter {
namespace {

int64_t CeilBlocks(int64_t n) { return (n + kFp8BlockSize - 1) / kFp8BlockSize; }

float LoadF32(const float* p) {
  float v;
  std::memcpy(&v, p, sizeof v);  // the scale may sit at any offset of a mapping
  return v;
}

// E4m3Value(): the code's value without a table, in a form the compiler
// vectorises: the 7 magnitude bits placed at float32's exponent/mantissa
// boundary read as a float that is the value times 2^-120 (e4m3fn's
// subnormals land on float32 subnormals the same way), so one exact multiply
// by 2^120 restores it; then the sign, and 0x7F / 0xFF as NaN.
inline float E4m3Value(uint8_t code) {
  const uint32_t mag = static_cast<uint32_t>(code & 0x7Fu);
  float f;
  const uint32_t placed = mag << 20;
  std::memcpy(&f, &placed, 4);
  f *= 0x1p120f;
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u |= static_cast<uint32_t>(code & 0x80u) << 24;
  u = mag == 0x7Fu ? (u | 0x7FF00000u) : u;  // 480 becomes c10's NaN pattern
  std::memcpy(&f, &u, 4);
  return f;
}

// One block-row segment (at most 128 columns, one scale), one output dtype:
// straight-line code over arrays, so each loop vectorises; cloned per ISA
// level (the loader picks the widest the CPU has), since the baseline
// x86-64 build only has SSE2.
#if defined(__x86_64__) && defined(__GNUC__)
#define MOE_FP8_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MOE_FP8_CLONES
#endif
MOE_FP8_CLONES void SegmentF32(const uint8_t* w, int64_t n, float s, uint8_t* dst) {
  for (int64_t c = 0; c < n; ++c) {
    const float v = E4m3Value(w[c]) * s;
    std::memcpy(dst + 4 * c, &v, 4);
  }
}

MOE_FP8_CLONES void SegmentBf16(const uint8_t* w, int64_t n, float s, uint8_t* dst) {
  for (int64_t c = 0; c < n; ++c) {
    const float v = E4m3Value(w[c]) * s;
    uint32_t u;
    std::memcpy(&u, &v, 4);
    // c10::BFloat16(float), ATen's scalar cast: round to nearest even, NaN -> 0x7FC0.
    const uint16_t rounded = static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    const uint16_t b = cast::IsNaNF32(u) ? cast::kBF16NaNScalar : rounded;
    std::memcpy(dst + 2 * c, &b, 2);
  }
}

void SegmentF16(const uint8_t* w, int64_t n, float s, uint8_t* dst) {
  for (int64_t c = 0; c < n; ++c) {
    const float v = E4m3Value(w[c]) * s;
    uint32_t u;
    std::memcpy(&u, &v, 4);
    const uint16_t h = cast::F32ToF16(u);
    std::memcpy(dst + 2 * c, &h, 2);
  }
}

}  // namespace

uint32_t E4m3ToF32Bits(uint8_t code) {
  const uint32_t sign = static_cast<uint32_t>(code & 0x80u) << 24;
  const uint32_t e = (code >> 3) & 0xFu;
  const uint32_t m = code & 0x7u;
  // e4m3fn's only NaN, with the payload c10's fp8e4m3fn_to_fp32 gives it.
  if (e == 0xF && m == 0x7) return sign | 0x7FF00000u;
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
  const int64_t grid_cols = CeilBlocks(in.cols);
  const size_t item = DTypeSize(dtype);
  void (*segment)(const uint8_t*, int64_t, float, uint8_t*) =
      dtype == DType::kF32 ? SegmentF32 : dtype == DType::kBF16 ? SegmentBf16 : SegmentF16;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint8_t* w = in.weight + r * in.cols;
    const float* scale_row = in.scale + (r / kFp8BlockSize) * grid_cols;
    uint8_t* dst = static_cast<uint8_t*>(out) + static_cast<size_t>(r * in.cols) * item;
    for (int64_t c0 = 0; c0 < in.cols; c0 += kFp8BlockSize) {
      const int64_t n = std::min(kFp8BlockSize, in.cols - c0);
      segment(w + c0, n, LoadF32(scale_row + c0 / kFp8BlockSize), dst + c0 * item);
    }
  }
}

}  // namespace moe_adapter
