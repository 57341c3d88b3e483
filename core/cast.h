// Scalar element casts between F32, BF16 and F16 on raw bit patterns, written to
// reproduce ATen 1.13's CPU `.to(dtype)` of a contiguous tensor bit for bit
// (the reference the fast transpose is checked against). What ATen does, probed
// on libtorch 1.13.1 (Debian), with 1 and 2 OpenMP threads, every position of
// tensors of 1..70001 elements, capabilities DEFAULT, AVX2 and AVX512:
//   f32 -> bf16  round to nearest even; any NaN -> 0xFFFF under AVX2/AVX512
//                (the vector kernel also covers the tail with a partial load),
//                but 0x7FC0 under the DEFAULT (no-AVX) kernel. So the reference
//                itself differs between CPUs; the project always writes 0x7FC0
//                (see transpose_blocked.cc). The pattern is a parameter here.
//   f32 -> f16   round to nearest even, overflow to Inf; NaN -> sign | 0x7E00.
//   bf16 -> f16  exact widening, then as f32 -> f16 (NaN -> sign | 0x7E00).
//   f16 -> bf16  exact widening, then round to nearest even; NaN -> 0x7FC0
//                whatever its sign (this pair takes ATen's scalar path).
//   bf16 -> f32  exact (bits << 16): signalling NaNs stay signalling.
//   f16 -> f32   exact; a NaN keeps sign and payload but is made quiet
//                (ATen's conversion multiplies, which quiets it).
// Same-dtype copies keep every bit.
#ifndef MOE_ADAPTER_CORE_CAST_H_
#define MOE_ADAPTER_CORE_CAST_H_

#include <cstdint>

namespace moe_adapter {
namespace cast {

// The NaN pattern of ATen's vectorized f32 -> bf16 kernel (AVX2 and AVX512).
inline constexpr uint16_t kBF16NaNVector = 0xFFFF;
// The NaN pattern of c10::BFloat16(float), ATen's scalar path.
inline constexpr uint16_t kBF16NaNScalar = 0x7FC0;

inline bool IsNaNF32(uint32_t u) { return (u & 0x7FFFFFFFu) > 0x7F800000u; }

inline uint16_t F32ToBF16(uint32_t u, uint16_t nan_bits) {
  if (IsNaNF32(u)) return nan_bits;
  // Adding 0x7FFF plus the kept LSB rounds half to even; cannot overflow 32
  // bits because every non-NaN pattern is at most 0xFF800000.
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

inline uint16_t F32ToF16(uint32_t u) {
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u);
  // 65520 (0x477FF000) is the halfway point between 65504, whose mantissa is
  // odd, and 65536: it and everything above round to Inf.
  if (a >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);
  if (a >= 0x38800000u) {  // normal in f16 (>= 2^-14): rebias by 112
    const uint32_t m = a - 0x38000000u;
    // A carry out of the mantissa correctly bumps the exponent.
    return static_cast<uint16_t>(sign | ((m + 0xFFFu + ((m >> 13) & 1u)) >> 13));
  }
  // Below 2^-25 everything rounds to zero; 2^-25 itself ties to even zero.
  if (a < 0x33000000u) return static_cast<uint16_t>(sign);
  // f16 subnormal: count units of 2^-24, rounding the dropped bits to even.
  const uint32_t e = a >> 23;                         // 102..112
  const uint32_t mant = (a & 0x7FFFFFu) | 0x800000u;  // implicit bit
  const uint32_t shift = 126u - e;                    // 14..24
  uint32_t q = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (q & 1u))) ++q;  // may reach 0x400: min normal
  return static_cast<uint16_t>(sign | q);
}

inline uint32_t BF16ToF32(uint16_t b) { return static_cast<uint32_t>(b) << 16; }

inline uint32_t F16ToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1Fu;
  const uint32_t m = h & 0x3FFu;
  if (e == 0x1Fu) return sign | 0x7F800000u | (m << 13) | (m != 0 ? 0x400000u : 0u);
  if (e != 0) return sign | ((e + 112u) << 23) | (m << 13);
  if (m == 0) return sign;
  // Subnormal m * 2^-24 with leading bit p becomes a normal with exponent p - 24.
  uint32_t p = 31u - static_cast<uint32_t>(__builtin_clz(m));
  return sign | ((p + 103u) << 23) | ((m << (23u - p)) & 0x7FFFFFu);
}

inline uint16_t BF16ToF16(uint16_t b) { return F32ToF16(BF16ToF32(b)); }

inline uint16_t F16ToBF16(uint16_t h) { return F32ToBF16(F16ToF32(h), kBF16NaNScalar); }

}  // namespace cast
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_CAST_H_
