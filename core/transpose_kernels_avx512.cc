// The AVX-512BW tier (with VL). Same scheme as the AVX2 tier
// (transpose_kernels_avx2.cc): whole tiles are cast and transposed in
// registers. Function-level target attributes keep the library itself
// baseline x86-64; DetectTransposeIsa() picks at run time.
#include "core/transpose_kernels_tiers.h"

#include "core/transpose_kernels_simd.h"  // first: silences GCC 12 <immintrin.h> warnings

#include <algorithm>

#include "core/cast.h"

#define MOE_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,f16c")))

namespace moe_adapter {
namespace internal {
namespace {

// 32 x 32 tiles of 16-bit lanes (16 x 16 for f32 -> f32). Masked
// loads and stores cover partial tiles, so there is no scalar edge code.
// Whole tiles may stream: a destination row of a tile is one or two full lines.

MOE_AVX512 inline __m512i A5Bf16Hi(__m512i u, __m512i nan_hi) {
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i t = _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), lsb);
  const __m512 x = _mm512_castsi512_ps(u);
  return _mm512_mask_blend_epi32(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), t, nan_hi);
}

alignas(64) constexpr uint16_t kOddU16[32] = {1,  3,  5,  7,  9,  11, 13, 15, 17, 19, 21,
                                              23, 25, 27, 29, 31, 33, 35, 37, 39, 41, 43,
                                              45, 47, 49, 51, 53, 55, 57, 59, 61, 63};

MOE_AVX512 inline __m512i A5PackHi16(__m512i a, __m512i b) {
  return _mm512_permutex2var_epi16(a, _mm512_load_si512(kOddU16), b);
}

MOE_AVX512 inline __m512i A5F16(__m512 a, __m512 b) {
  const __m256i ha = _mm512_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256i hb = _mm512_cvtps_ph(b, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512i h = _mm512_inserti64x4(_mm512_castsi256_si512(ha), hb, 1);
  const __mmask32 nan = static_cast<__mmask32>(_mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q)) |
                        static_cast<__mmask32>(_mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q)) << 16;
  return _mm512_mask_blend_epi16(nan, h, _mm512_and_si512(h, _mm512_set1_epi16(-512)));  // 0xFE00
}

MOE_AVX512 inline __m512 A5WidenBF16(__m256i h) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

struct A5Consts {
  __m512i bf16_nan_hi;
  __m512i bf16_scalar_hi;
};

// Loads: up to 32 source elements (mask m when not kFull) as 32 u16 lanes.
template <bool kFull>
MOE_AVX512 inline __m512i A5Load32Bits(const char* p, __mmask16 m) {
  return kFull ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi32(m, p);
}
template <bool kFull>
MOE_AVX512 inline __m512i A5Load16Bits(const char* p, __mmask32 m) {
  return kFull ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi16(m, p);
}

struct A5LoadU16 {
  static constexpr int kBytes = 2;
  template <bool kFull>
  MOE_AVX512 static __m512i Load(const char* p, __mmask32 m, const A5Consts&) {
    return A5Load16Bits<kFull>(p, m);
  }
};
struct A5LoadF32AsBF16 {
  static constexpr int kBytes = 4;
  template <bool kFull>
  MOE_AVX512 static __m512i Load(const char* p, __mmask32 m, const A5Consts& k) {
    const __m512i a = A5Load32Bits<kFull>(p, static_cast<__mmask16>(m));
    const __m512i b = A5Load32Bits<kFull>(p + 64, static_cast<__mmask16>(m >> 16));
    return A5PackHi16(A5Bf16Hi(a, k.bf16_nan_hi), A5Bf16Hi(b, k.bf16_nan_hi));
  }
};
struct A5LoadF32AsF16 {
  static constexpr int kBytes = 4;
  template <bool kFull>
  MOE_AVX512 static __m512i Load(const char* p, __mmask32 m, const A5Consts&) {
    const __m512i a = A5Load32Bits<kFull>(p, static_cast<__mmask16>(m));
    const __m512i b = A5Load32Bits<kFull>(p + 64, static_cast<__mmask16>(m >> 16));
    return A5F16(_mm512_castsi512_ps(a), _mm512_castsi512_ps(b));
  }
};
struct A5LoadBF16AsF16 {
  static constexpr int kBytes = 2;
  template <bool kFull>
  MOE_AVX512 static __m512i Load(const char* p, __mmask32 m, const A5Consts&) {
    const __m512i v = A5Load16Bits<kFull>(p, m);
    return A5F16(A5WidenBF16(_mm512_castsi512_si256(v)),
                 A5WidenBF16(_mm512_extracti64x4_epi64(v, 1)));
  }
};
struct A5LoadF16AsBF16 {
  static constexpr int kBytes = 2;
  template <bool kFull>
  MOE_AVX512 static __m512i Load(const char* p, __mmask32 m, const A5Consts& k) {
    const __m512i v = A5Load16Bits<kFull>(p, m);
    const __m512i a = _mm512_castps_si512(_mm512_cvtph_ps(_mm512_castsi512_si256(v)));
    const __m512i b = _mm512_castps_si512(_mm512_cvtph_ps(_mm512_extracti64x4_epi64(v, 1)));
    return A5PackHi16(A5Bf16Hi(a, k.bf16_scalar_hi), A5Bf16Hi(b, k.bf16_scalar_hi));
  }
};

// One 64-byte destination row of a whole tile (a whole line when streaming).
MOE_AVX512 inline void A5StoreLine(char* p, __m512i v, bool stream) {
  if (stream) {
    _mm512_stream_si512(reinterpret_cast<__m512i*>(p), v);
  } else {
    _mm512_storeu_si512(p, v);
  }
}

// Stores: 32 u16 lanes as destination elements; when not kFull, only the
// lanes in m (partial tiles never stream).
struct A5StoreU16 {
  static constexpr int kBytes = 2;
  template <bool kFull>
  MOE_AVX512 static void Store(char* p, __m512i v, __mmask32 m, bool stream) {
    if (kFull) {
      A5StoreLine(p, v, stream);
    } else {
      _mm512_mask_storeu_epi16(p, m, v);
    }
  }
};
template <bool kFull>
MOE_AVX512 inline void A5StoreF32Pair(char* p, __m512 a, __m512 b, __mmask32 m, bool stream) {
  if (kFull) {
    A5StoreLine(p, _mm512_castps_si512(a), stream);
    A5StoreLine(p + 64, _mm512_castps_si512(b), stream);
  } else {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>(m), a);
    _mm512_mask_storeu_ps(p + 64, static_cast<__mmask16>(m >> 16), b);
  }
}
struct A5StoreBF16AsF32 {
  static constexpr int kBytes = 4;
  template <bool kFull>
  MOE_AVX512 static void Store(char* p, __m512i v, __mmask32 m, bool stream) {
    A5StoreF32Pair<kFull>(p, A5WidenBF16(_mm512_castsi512_si256(v)),
                          A5WidenBF16(_mm512_extracti64x4_epi64(v, 1)), m, stream);
  }
};
struct A5StoreF16AsF32 {
  static constexpr int kBytes = 4;
  template <bool kFull>
  MOE_AVX512 static void Store(char* p, __m512i v, __mmask32 m, bool stream) {
    A5StoreF32Pair<kFull>(p, _mm512_cvtph_ps(_mm512_castsi512_si256(v)),
                          _mm512_cvtph_ps(_mm512_extracti64x4_epi64(v, 1)), m, stream);
  }
};

// Block swaps of 256, 128, 64, 32 and 16 bits between register pairs at
// `stride`; see A2Transpose16x16x16 for the scheme.
template <int kRegs, int kStride>
MOE_AVX512 inline void A5Swap256(__m512i* v) {
#pragma GCC unroll 32
  for (int i = 0; i < kRegs; ++i) {
    if (i & kStride) continue;
    const __m512i a = v[i], b = v[i + kStride];
    v[i] = _mm512_shuffle_i64x2(a, b, 0x44);
    v[i + kStride] = _mm512_shuffle_i64x2(a, b, 0xEE);
  }
}
template <int kRegs, int kStride>
MOE_AVX512 inline void A5Swap128(__m512i* v) {
  const __m512i lo = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
  const __m512i hi = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
#pragma GCC unroll 32
  for (int i = 0; i < kRegs; ++i) {
    if (i & kStride) continue;
    const __m512i a = v[i], b = v[i + kStride];
    v[i] = _mm512_permutex2var_epi64(a, lo, b);
    v[i + kStride] = _mm512_permutex2var_epi64(a, hi, b);
  }
}
template <int kRegs, int kStride>
MOE_AVX512 inline void A5Swap64(__m512i* v) {
#pragma GCC unroll 32
  for (int i = 0; i < kRegs; ++i) {
    if (i & kStride) continue;
    const __m512i a = v[i], b = v[i + kStride];
    v[i] = _mm512_unpacklo_epi64(a, b);
    v[i + kStride] = _mm512_unpackhi_epi64(a, b);
  }
}
template <int kRegs, int kStride>
MOE_AVX512 inline void A5Swap32(__m512i* v) {
#pragma GCC unroll 32
  for (int i = 0; i < kRegs; ++i) {
    if (i & kStride) continue;
    const __m512i a = v[i], b = v[i + kStride];
    v[i] = _mm512_mask_blend_epi32(0xAAAA, a, _mm512_slli_epi64(b, 32));
    v[i + kStride] = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(a, 32), b);
  }
}
template <int kRegs, int kStride>
MOE_AVX512 inline void A5Swap16(__m512i* v) {
#pragma GCC unroll 32
  for (int i = 0; i < kRegs; ++i) {
    if (i & kStride) continue;
    const __m512i a = v[i], b = v[i + kStride];
    v[i] = _mm512_mask_blend_epi16(0xAAAAAAAA, a, _mm512_slli_epi32(b, 16));
    v[i + kStride] = _mm512_mask_blend_epi16(0xAAAAAAAA, _mm512_srli_epi32(a, 16), b);
  }
}

template <class L, class S, bool kFull>
MOE_AVX512 inline void A5Tile16(const char* s, int64_t sld, char* d, int64_t dld, int rn, int cn,
                                bool stream, const A5Consts& k) {
  const __mmask32 cm = cn >= 32 ? ~__mmask32{0} : (__mmask32{1} << cn) - 1;
  const __mmask32 rm = rn >= 32 ? ~__mmask32{0} : (__mmask32{1} << rn) - 1;
  __m512i v[32];
#pragma GCC unroll 32
  for (int i = 0; i < 32; ++i) {
    v[i] = (kFull || i < rn) ? L::template Load<kFull>(s + i * sld, cm, k) : _mm512_setzero_si512();
  }
  A5Swap256<32, 16>(v);
  A5Swap128<32, 8>(v);
  A5Swap64<32, 4>(v);
  A5Swap32<32, 2>(v);
  A5Swap16<32, 1>(v);
#pragma GCC unroll 32
  for (int j = 0; j < 32; ++j) {
    if (!kFull && j >= cn) break;
    S::template Store<kFull>(d + j * dld, v[j], rm, stream);
  }
}

template <class L, class S>
MOE_AVX512 void Avx512Kernel16(const TransposeBlock& b) {
  const A5Consts k{_mm512_set1_epi32(static_cast<int>(uint32_t{b.bf16_nan} << 16)),
                   _mm512_set1_epi32(static_cast<int>(uint32_t{cast::kBF16NaNScalar} << 16))};
  const char* src = static_cast<const char*>(b.src);
  char* dst = static_cast<char*>(b.dst);
  const int64_t sld = b.src_ld * L::kBytes, dld = b.dst_ld * S::kBytes;
  for (int64_t r0 = 0; r0 < b.rows; r0 += 32) {
    const int rn = static_cast<int>(std::min<int64_t>(32, b.rows - r0));
    for (int64_t c0 = 0; c0 < b.cols; c0 += 32) {
      const int cn = static_cast<int>(std::min<int64_t>(32, b.cols - c0));
      const char* s = src + r0 * sld + c0 * L::kBytes;
      char* d = dst + c0 * dld + r0 * S::kBytes;
      if (rn == 32 && cn == 32) {
        A5Tile16<L, S, true>(s, sld, d, dld, 32, 32, b.stream, k);
      } else {
        A5Tile16<L, S, false>(s, sld, d, dld, rn, cn, false, k);
      }
    }
  }
  if (b.stream) _mm_sfence();  // streamed lines must land before the block is reported done
}

template <bool kFull>
MOE_AVX512 inline void A5Tile32(const char* s, int64_t sld, char* d, int64_t dld, int rn, int cn,
                                bool stream) {
  const __mmask16 cm = static_cast<__mmask16>(cn >= 16 ? 0xFFFF : (1u << cn) - 1);
  const __mmask16 rm = static_cast<__mmask16>(rn >= 16 ? 0xFFFF : (1u << rn) - 1);
  __m512i v[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) {
    v[i] = (kFull || i < rn) ? A5Load32Bits<kFull>(s + i * sld, cm) : _mm512_setzero_si512();
  }
  A5Swap256<16, 8>(v);
  A5Swap128<16, 4>(v);
  A5Swap64<16, 2>(v);
  A5Swap32<16, 1>(v);
#pragma GCC unroll 16
  for (int j = 0; j < 16; ++j) {
    if (!kFull && j >= cn) break;
    if (kFull) {
      A5StoreLine(d + j * dld, v[j], stream);
    } else {
      _mm512_mask_storeu_epi32(d + j * dld, rm, v[j]);
    }
  }
}

MOE_AVX512 void Avx512Kernel32(const TransposeBlock& b) {
  const char* src = static_cast<const char*>(b.src);
  char* dst = static_cast<char*>(b.dst);
  const int64_t sld = b.src_ld * 4, dld = b.dst_ld * 4;
  for (int64_t r0 = 0; r0 < b.rows; r0 += 16) {
    const int rn = static_cast<int>(std::min<int64_t>(16, b.rows - r0));
    for (int64_t c0 = 0; c0 < b.cols; c0 += 16) {
      const int cn = static_cast<int>(std::min<int64_t>(16, b.cols - c0));
      const char* s = src + r0 * sld + c0 * 4;
      char* d = dst + c0 * dld + r0 * 4;
      if (rn == 16 && cn == 16) {
        A5Tile32<true>(s, sld, d, dld, 16, 16, b.stream);
      } else {
        A5Tile32<false>(s, sld, d, dld, rn, cn, false);
      }
    }
  }
  if (b.stream) _mm_sfence();
}

}  // namespace

const TransposeKernelTable kAvx512TransposeKernels = {
    {Avx512Kernel32, Avx512Kernel16<A5LoadF32AsBF16, A5StoreU16>,
     Avx512Kernel16<A5LoadF32AsF16, A5StoreU16>},
    {Avx512Kernel16<A5LoadU16, A5StoreBF16AsF32>, Avx512Kernel16<A5LoadU16, A5StoreU16>,
     Avx512Kernel16<A5LoadBF16AsF16, A5StoreU16>},
    {Avx512Kernel16<A5LoadU16, A5StoreF16AsF32>, Avx512Kernel16<A5LoadF16AsBF16, A5StoreU16>,
     Avx512Kernel16<A5LoadU16, A5StoreU16>},
};

}  // namespace internal
}  // namespace moe_adapter
