// Scalar element conversions shared by the CUDA kernels, the CPU emulation test
// and the CPU reference inside cuda_kernels_check. Everything works on bit
// patterns with integer arithmetic only, so host and device give the same bits
// (no FTZ, no FMA contraction, no hardware NaN canonicalisation).
//
// The results reproduce torch's c10 scalar conversions bit for bit:
//   f32 -> bf16 : c10::detail::round_to_nearest_even(): RNE; any NaN -> 0x7FC0
//                 (sign and payload dropped).
//   f32 -> f16  : c10::detail::fp16_ieee_from_fp32_value(): RNE, overflow to
//                 +-Inf, f16 subnormals exact; NaN -> sign | 0x7E00.
//   bf16 -> f32 : bits << 16 (exact; NaN payload and signalling bit kept).
//   f16 -> f32  : exact; a NaN keeps sign and payload and gets the quiet bit
//                 (what c10::detail::fp16_ieee_to_fp32_value() gives on x86/ARM,
//                 and what F16C vcvtph2ps gives).
//   bf16 <-> f16: through f32 (exact), then as above, like torch's .to().
//   same dtype  : the bits, unchanged (a plain copy; NaN payloads kept).
// Checked exhaustively against c10 (all 2^32 f32 and all 2^16 16-bit inputs).
#ifndef MOE_ADAPTER_CORE_CUDA_ELEM_CONVERT_CUH_
#define MOE_ADAPTER_CORE_CUDA_ELEM_CONVERT_CUH_

#include <cstdint>

#if defined(__CUDACC__)
#define MA_HD __host__ __device__ __forceinline__
#else
#define MA_HD inline
#endif

namespace moe_adapter {
namespace cuda {
namespace cvt {

// Element type tags. Bits is the storage type of one element.
struct F32 {
  using Bits = uint32_t;
  static constexpr int kCode = 0;
};
struct BF16 {
  using Bits = uint16_t;
  static constexpr int kCode = 1;
};
struct F16 {
  using Bits = uint16_t;
  static constexpr int kCode = 2;
};

MA_HD int Clz32(uint32_t x) {
#if defined(__CUDA_ARCH__)
  return __clz(static_cast<int>(x));
#else
  return x == 0 ? 32 : __builtin_clz(x);
#endif
}

MA_HD uint32_t Bf16ToF32(uint16_t h) { return static_cast<uint32_t>(h) << 16; }

MA_HD uint32_t F16ToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  const uint32_t man = h & 0x3FFu;
  if (exp == 0x1Fu) {  // Inf or NaN (NaN: quiet bit set, payload kept)
    return sign | 0x7F800000u | (man << 13) | (man != 0 ? 0x00400000u : 0u);
  }
  if (exp == 0) {
    if (man == 0) return sign;  // +-0
    // Subnormal: man * 2^-24. Normalise: p = index of the top set bit (0..9).
    const int p = 31 - Clz32(man);
    const uint32_t e32 = static_cast<uint32_t>(p + 103);  // (p - 24) + 127
    const uint32_t m32 = (man << (23 - p)) & 0x7FFFFFu;
    return sign | (e32 << 23) | m32;
  }
  return sign | ((exp + 112u) << 23) | (man << 13);
}

MA_HD uint16_t F32ToBf16(uint32_t u) {
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0u;  // NaN
  const uint32_t bias = ((u >> 16) & 1u) + 0x7FFFu;
  return static_cast<uint16_t>((u + bias) >> 16);
}

MA_HD uint16_t F32ToF16(uint32_t u) {
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u);  // NaN
  if (a >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // >= 65520: Inf
  if (a >= 0x38800000u) {  // f16 normal range (>= 2^-14)
    uint32_t r = a - 0x38000000u;  // re-bias the exponent (127 -> 15)
    r += 0xFFFu + ((r >> 13) & 1u);
    return static_cast<uint16_t>(sign | (r >> 13));
  }
  if (a < 0x33000000u) return static_cast<uint16_t>(sign);  // < 2^-25 (f32 subnormals too)
  // f16 subnormal: round(a * 2^24) to nearest even; exponent 102..112.
  const uint32_t exp = a >> 23;
  const uint32_t mant = (a & 0x7FFFFFu) | 0x800000u;
  const uint32_t shift = 126u - exp;  // 14..24
  uint32_t m = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (m & 1u))) ++m;
  return static_cast<uint16_t>(sign | m);
}

// Convert<S, D>::Run(bits of S) -> bits of D.
template <class S, class D>
struct Convert;
template <>
struct Convert<F32, F32> {
  MA_HD static uint32_t Run(uint32_t x) { return x; }
};
template <>
struct Convert<BF16, BF16> {
  MA_HD static uint16_t Run(uint16_t x) { return x; }
};
template <>
struct Convert<F16, F16> {
  MA_HD static uint16_t Run(uint16_t x) { return x; }
};
template <>
struct Convert<BF16, F32> {
  MA_HD static uint32_t Run(uint16_t x) { return Bf16ToF32(x); }
};
template <>
struct Convert<F16, F32> {
  MA_HD static uint32_t Run(uint16_t x) { return F16ToF32(x); }
};
template <>
struct Convert<F32, BF16> {
  MA_HD static uint16_t Run(uint32_t x) { return F32ToBf16(x); }
};
template <>
struct Convert<F32, F16> {
  MA_HD static uint16_t Run(uint32_t x) { return F32ToF16(x); }
};
template <>
struct Convert<BF16, F16> {
  MA_HD static uint16_t Run(uint16_t x) { return F32ToF16(Bf16ToF32(x)); }
};
template <>
struct Convert<F16, BF16> {
  MA_HD static uint16_t Run(uint16_t x) { return F32ToBf16(F16ToF32(x)); }
};

// Runtime-dispatched scalar conversion (type codes as ElemType: 0 f32, 1 bf16,
// 2 f16); used by the CPU reference. Input/output are raw bits widened to 32.
MA_HD uint32_t ConvertBits(int src_code, int dst_code, uint32_t x) {
  uint32_t f;  // as f32 bits
  if (src_code == dst_code) return x;
  if (src_code == 0) {
    f = x;
  } else if (src_code == 1) {
    f = Bf16ToF32(static_cast<uint16_t>(x));
  } else {
    f = F16ToF32(static_cast<uint16_t>(x));
  }
  if (dst_code == 0) return f;
  if (dst_code == 1) return F32ToBf16(f);
  return F32ToF16(f);
}

}  // namespace cvt
}  // namespace cuda
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_CUDA_ELEM_CONVERT_CUH_
