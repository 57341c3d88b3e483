#include "core/permute.h"

#include <cstring>

namespace moe_adapter {
namespace {

template <size_t N>
void TransposeFixed(const uint8_t* src, int64_t src_ld, uint8_t* dst, int64_t dst_ld, int64_t rows,
                    int64_t cols) {
  constexpr int64_t kBlock = 32;
  for (int64_t r0 = 0; r0 < rows; r0 += kBlock) {
    const int64_t r1 = r0 + kBlock < rows ? r0 + kBlock : rows;
    for (int64_t c0 = 0; c0 < cols; c0 += kBlock) {
      const int64_t c1 = c0 + kBlock < cols ? c0 + kBlock : cols;
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = c0; c < c1; ++c) {
          std::memcpy(dst + (c * dst_ld + r) * N, src + (r * src_ld + c) * N, N);
        }
      }
    }
  }
}

}  // namespace

void TransposeBytes(const uint8_t* src, int64_t src_ld, uint8_t* dst, int64_t dst_ld, int64_t rows,
                    int64_t cols, size_t elem) {
  switch (elem) {
    case 1: return TransposeFixed<1>(src, src_ld, dst, dst_ld, rows, cols);
    case 2: return TransposeFixed<2>(src, src_ld, dst, dst_ld, rows, cols);
    case 4: return TransposeFixed<4>(src, src_ld, dst, dst_ld, rows, cols);
    case 8: return TransposeFixed<8>(src, src_ld, dst, dst_ld, rows, cols);
    default:
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
          std::memcpy(dst + (c * dst_ld + r) * elem, src + (r * src_ld + c) * elem, elem);
        }
      }
  }
}

void Permute3(const uint8_t* src, size_t elem, const std::array<int64_t, 3>& in,
              const std::array<int, 3>& perm, uint8_t* dst) {
  const std::array<int64_t, 3> in_stride = {in[1] * in[2], in[2], 1};
  const std::array<int64_t, 3> out = {in[perm[0]], in[perm[1]], in[perm[2]]};
  const std::array<int64_t, 3> s = {in_stride[perm[0]], in_stride[perm[1]], in_stride[perm[2]]};
  if (s[2] == 1) {
    // Innermost dim stays innermost: whole rows move at once.
    const size_t row = static_cast<size_t>(out[2]) * elem;
    for (int64_t a = 0; a < out[0]; ++a) {
      for (int64_t b = 0; b < out[1]; ++b) {
        std::memcpy(dst + ((a * out[1] + b) * out[2]) * elem, src + (a * s[0] + b * s[1]) * elem,
                    row);
      }
    }
    return;
  }
  for (int64_t a = 0; a < out[0]; ++a) {
    for (int64_t b = 0; b < out[1]; ++b) {
      uint8_t* d = dst + ((a * out[1] + b) * out[2]) * elem;
      const uint8_t* base = src + (a * s[0] + b * s[1]) * elem;
      for (int64_t c = 0; c < out[2]; ++c) std::memcpy(d + c * elem, base + c * s[2] * elem, elem);
    }
  }
}

}  // namespace moe_adapter
