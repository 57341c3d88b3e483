// Block kernels. The SIMD ones load a tile of source rows, cast each row in
// registers, transpose the tile in registers and store whole destination rows,
// so every cache line is read once and written once. 16-bit transposes carry
// all pairs but f32 -> f32: an f32 source is narrowed before the transpose, a
// 16-bit one is widened to f32 after it. Function-level target attributes keep
// the library itself baseline x86-64; DetectTransposeIsa() picks at run time.
#include "core/transpose_kernels.h"

// GCC 12's AVX-512 headers trip -Wuninitialized on their own
// _mm512_undefined_*() (GCC PR 105593, fixed in 12.3); the location is the
// header, so the pragma has to precede it.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "core/cast.h"

#define MOE_AVX2 __attribute__((target("avx2,f16c")))
#define MOE_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,f16c")))

namespace moe_adapter {
namespace internal {
namespace {

// ---------------------------------------------------------------------------
// Portable path; also the edges of AVX2 tiles.

struct CopyU16 {
  using Src = uint16_t;
  using Dst = uint16_t;
  static Dst Cast(Src x, uint16_t) { return x; }
};
struct CopyU32 {
  using Src = uint32_t;
  using Dst = uint32_t;
  static Dst Cast(Src x, uint16_t) { return x; }
};
struct CastF32BF16 {
  using Src = uint32_t;
  using Dst = uint16_t;
  static Dst Cast(Src x, uint16_t nan) { return cast::F32ToBF16(x, nan); }
};
struct CastF32F16 {
  using Src = uint32_t;
  using Dst = uint16_t;
  static Dst Cast(Src x, uint16_t) { return cast::F32ToF16(x); }
};
struct CastBF16F32 {
  using Src = uint16_t;
  using Dst = uint32_t;
  static Dst Cast(Src x, uint16_t) { return cast::BF16ToF32(x); }
};
struct CastF16F32 {
  using Src = uint16_t;
  using Dst = uint32_t;
  static Dst Cast(Src x, uint16_t) { return cast::F16ToF32(x); }
};
struct CastBF16F16 {
  using Src = uint16_t;
  using Dst = uint16_t;
  static Dst Cast(Src x, uint16_t) { return cast::BF16ToF16(x); }
};
struct CastF16BF16 {
  using Src = uint16_t;
  using Dst = uint16_t;
  static Dst Cast(Src x, uint16_t) { return cast::F16ToBF16(x); }
};

// Rows [r0, r1) x columns [c0, c1) of the block, in 32 x 32 sub-tiles so both
// sides stay in L1. Elements go through memcpy: slices of a safetensors file
// need not be aligned to their dtype.
template <class C>
void ScalarRegion(const TransposeBlock& b, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  using Src = typename C::Src;
  using Dst = typename C::Dst;
  const char* src = static_cast<const char*>(b.src);
  char* dst = static_cast<char*>(b.dst);
  constexpr int64_t kTile = 32;
  for (int64_t rt = r0; rt < r1; rt += kTile) {
    const int64_t re = std::min(rt + kTile, r1);
    for (int64_t ct = c0; ct < c1; ct += kTile) {
      const int64_t ce = std::min(ct + kTile, c1);
      for (int64_t c = ct; c < ce; ++c) {
        char* d = dst + c * b.dst_ld * int64_t{sizeof(Dst)};
        for (int64_t r = rt; r < re; ++r) {
          Src x;
          std::memcpy(&x, src + (r * b.src_ld + c) * int64_t{sizeof(Src)}, sizeof(Src));
          const Dst y = C::Cast(x, b.bf16_nan);
          std::memcpy(d + r * int64_t{sizeof(Dst)}, &y, sizeof(Dst));
        }
      }
    }
  }
}

template <class C>
void ScalarKernel(const TransposeBlock& b) {
  ScalarRegion<C>(b, 0, b.rows, 0, b.cols);
}

// ---------------------------------------------------------------------------
// AVX2: 16 x 16 tiles of 16-bit lanes (8 x 8 for f32 -> f32), edges scalar.

// Round-to-nearest-even bias added to f32 bits; the bf16 is the high half.
// NaN lanes get nan_hi (the bf16 NaN pattern << 16).
MOE_AVX2 inline __m256i A2Bf16Hi(__m256i u, __m256i nan_hi) {
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i t = _mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7FFF)), lsb);
  const __m256 x = _mm256_castsi256_ps(u);
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  return _mm256_blendv_epi8(t, nan_hi, nan);
}

// High halves of 8 + 8 u32 lanes as 16 u16 lanes, in order (packus works per
// 128-bit lane, hence the qword permute).
MOE_AVX2 inline __m256i A2PackHi16(__m256i a, __m256i b) {
  const __m256i p = _mm256_packus_epi32(_mm256_srli_epi32(a, 16), _mm256_srli_epi32(b, 16));
  return _mm256_permute4x64_epi64(p, 0xD8);
}

// vcvtps2ph rounds like ATen; only NaN differs: it keeps the payload, ATen
// gives sign | 0x7E00, which is what masking the payload off leaves.
MOE_AVX2 inline __m256i A2F16(__m256 a, __m256 b) {
  const __m128i ha = _mm256_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT);
  const __m128i hb = _mm256_cvtps_ph(b, _MM_FROUND_TO_NEAREST_INT);
  const __m256i h = _mm256_inserti128_si256(_mm256_castsi128_si256(ha), hb, 1);
  const __m256i na = _mm256_castps_si256(_mm256_cmp_ps(a, a, _CMP_UNORD_Q));
  const __m256i nb = _mm256_castps_si256(_mm256_cmp_ps(b, b, _CMP_UNORD_Q));
  const __m256i n = _mm256_permute4x64_epi64(_mm256_packs_epi32(na, nb), 0xD8);
  return _mm256_andnot_si256(_mm256_and_si256(n, _mm256_set1_epi16(0x01FF)), h);
}

MOE_AVX2 inline __m256 A2WidenBF16(__m128i h) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

struct A2Consts {
  __m256i bf16_nan_hi;     // the caller's f32 -> bf16 NaN, << 16
  __m256i bf16_scalar_hi;  // f16 -> bf16 always takes ATen's scalar NaN
};

// Loads: 16 source elements as 16 u16 lanes of the destination dtype.
struct A2LoadU16 {
  static constexpr int kBytes = 2;
  MOE_AVX2 static __m256i Load(const char* p, const A2Consts&) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  }
};
struct A2LoadF32AsBF16 {
  static constexpr int kBytes = 4;
  MOE_AVX2 static __m256i Load(const char* p, const A2Consts& k) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32));
    return A2PackHi16(A2Bf16Hi(a, k.bf16_nan_hi), A2Bf16Hi(b, k.bf16_nan_hi));
  }
};
struct A2LoadF32AsF16 {
  static constexpr int kBytes = 4;
  MOE_AVX2 static __m256i Load(const char* p, const A2Consts&) {
    return A2F16(_mm256_loadu_ps(reinterpret_cast<const float*>(p)),
                 _mm256_loadu_ps(reinterpret_cast<const float*>(p + 32)));
  }
};
struct A2LoadBF16AsF16 {
  static constexpr int kBytes = 2;
  MOE_AVX2 static __m256i Load(const char* p, const A2Consts&) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return A2F16(A2WidenBF16(_mm256_castsi256_si128(v)),
                 A2WidenBF16(_mm256_extracti128_si256(v, 1)));
  }
};
struct A2LoadF16AsBF16 {
  static constexpr int kBytes = 2;
  MOE_AVX2 static __m256i Load(const char* p, const A2Consts& k) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m256i a = _mm256_castps_si256(_mm256_cvtph_ps(_mm256_castsi256_si128(v)));
    const __m256i b = _mm256_castps_si256(_mm256_cvtph_ps(_mm256_extracti128_si256(v, 1)));
    return A2PackHi16(A2Bf16Hi(a, k.bf16_scalar_hi), A2Bf16Hi(b, k.bf16_scalar_hi));
  }
};

// Stores: 16 u16 lanes as 16 destination elements.
struct A2StoreU16 {
  static constexpr int kBytes = 2;
  MOE_AVX2 static void Store(char* p, __m256i v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
  }
};
struct A2StoreBF16AsF32 {
  static constexpr int kBytes = 4;
  MOE_AVX2 static void Store(char* p, __m256i v) {
    _mm256_storeu_ps(reinterpret_cast<float*>(p), A2WidenBF16(_mm256_castsi256_si128(v)));
    _mm256_storeu_ps(reinterpret_cast<float*>(p + 32), A2WidenBF16(_mm256_extracti128_si256(v, 1)));
  }
};
struct A2StoreF16AsF32 {
  static constexpr int kBytes = 4;
  MOE_AVX2 static void Store(char* p, __m256i v) {
    _mm256_storeu_ps(reinterpret_cast<float*>(p), _mm256_cvtph_ps(_mm256_castsi256_si128(v)));
    _mm256_storeu_ps(reinterpret_cast<float*>(p + 32),
                     _mm256_cvtph_ps(_mm256_extracti128_si256(v, 1)));
  }
};

// In-register transposes by halving block swaps: at stride s the off-diagonal
// s x s blocks of each 2s x 2s block trade places. Rows come out in order.
MOE_AVX2 inline void A2Transpose16x16x16(__m256i* v) {
#pragma GCC unroll 16
  for (int i = 0; i < 8; ++i) {
    const __m256i a = v[i], b = v[i + 8];
    v[i] = _mm256_permute2x128_si256(a, b, 0x20);
    v[i + 8] = _mm256_permute2x128_si256(a, b, 0x31);
  }
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) {
    if (i & 4) continue;
    const __m256i a = v[i], b = v[i + 4];
    v[i] = _mm256_unpacklo_epi64(a, b);
    v[i + 4] = _mm256_unpackhi_epi64(a, b);
  }
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) {
    if (i & 2) continue;
    const __m256i a = v[i], b = v[i + 2];
    v[i] = _mm256_blend_epi32(a, _mm256_slli_epi64(b, 32), 0xAA);
    v[i + 2] = _mm256_blend_epi32(_mm256_srli_epi64(a, 32), b, 0xAA);
  }
#pragma GCC unroll 16
  for (int i = 0; i < 16; i += 2) {
    const __m256i a = v[i], b = v[i + 1];
    v[i] = _mm256_blend_epi16(a, _mm256_slli_epi32(b, 16), 0xAA);
    v[i + 1] = _mm256_blend_epi16(_mm256_srli_epi32(a, 16), b, 0xAA);
  }
}

MOE_AVX2 inline void A2Transpose8x8x32(__m256i* v) {
#pragma GCC unroll 8
  for (int i = 0; i < 4; ++i) {
    const __m256i a = v[i], b = v[i + 4];
    v[i] = _mm256_permute2x128_si256(a, b, 0x20);
    v[i + 4] = _mm256_permute2x128_si256(a, b, 0x31);
  }
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    if (i & 2) continue;
    const __m256i a = v[i], b = v[i + 2];
    v[i] = _mm256_unpacklo_epi64(a, b);
    v[i + 2] = _mm256_unpackhi_epi64(a, b);
  }
#pragma GCC unroll 8
  for (int i = 0; i < 8; i += 2) {
    const __m256i a = v[i], b = v[i + 1];
    v[i] = _mm256_blend_epi32(a, _mm256_slli_epi64(b, 32), 0xAA);
    v[i + 1] = _mm256_blend_epi32(_mm256_srli_epi64(a, 32), b, 0xAA);
  }
}

template <class C, class L, class S>
MOE_AVX2 void Avx2Kernel16(const TransposeBlock& b) {
  const A2Consts k{_mm256_set1_epi32(static_cast<int>(uint32_t{b.bf16_nan} << 16)),
                   _mm256_set1_epi32(static_cast<int>(uint32_t{cast::kBF16NaNScalar} << 16))};
  const char* src = static_cast<const char*>(b.src);
  char* dst = static_cast<char*>(b.dst);
  const int64_t sld = b.src_ld * L::kBytes, dld = b.dst_ld * S::kBytes;
  const int64_t rows16 = b.rows & ~int64_t{15}, cols16 = b.cols & ~int64_t{15};
  for (int64_t r0 = 0; r0 < rows16; r0 += 16) {
    for (int64_t c0 = 0; c0 < cols16; c0 += 16) {
      const char* s = src + r0 * sld + c0 * L::kBytes;
      __m256i v[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) v[i] = L::Load(s + i * sld, k);
      A2Transpose16x16x16(v);
      char* d = dst + c0 * dld + r0 * S::kBytes;
#pragma GCC unroll 16
      for (int j = 0; j < 16; ++j) S::Store(d + j * dld, v[j]);
    }
  }
  ScalarRegion<C>(b, rows16, b.rows, 0, b.cols);
  ScalarRegion<C>(b, 0, rows16, cols16, b.cols);
}

MOE_AVX2 void Avx2Kernel32(const TransposeBlock& b) {
  const char* src = static_cast<const char*>(b.src);
  char* dst = static_cast<char*>(b.dst);
  const int64_t sld = b.src_ld * 4, dld = b.dst_ld * 4;
  const int64_t rows8 = b.rows & ~int64_t{7}, cols8 = b.cols & ~int64_t{7};
  for (int64_t r0 = 0; r0 < rows8; r0 += 8) {
    for (int64_t c0 = 0; c0 < cols8; c0 += 8) {
      const char* s = src + r0 * sld + c0 * 4;
      __m256i v[8];
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i)
        v[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i * sld));
      A2Transpose8x8x32(v);
      char* d = dst + c0 * dld + r0 * 4;
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + j * dld), v[j]);
    }
  }
  ScalarRegion<CopyU32>(b, rows8, b.rows, 0, b.cols);
  ScalarRegion<CopyU32>(b, 0, rows8, cols8, b.cols);
}

// ---------------------------------------------------------------------------
// AVX-512BW: 32 x 32 tiles of 16-bit lanes (16 x 16 for f32 -> f32). Masked
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

// ---------------------------------------------------------------------------

int Index(DType t) {
  switch (t) {
    case DType::kF32:
      return 0;
    case DType::kBF16:
      return 1;
    case DType::kF16:
      return 2;
    default:
      return -1;
  }
}

using Table = TransposeBlockFn[3][3];  // [src][dst], order F32, BF16, F16

constexpr Table kScalar = {
    {ScalarKernel<CopyU32>, ScalarKernel<CastF32BF16>, ScalarKernel<CastF32F16>},
    {ScalarKernel<CastBF16F32>, ScalarKernel<CopyU16>, ScalarKernel<CastBF16F16>},
    {ScalarKernel<CastF16F32>, ScalarKernel<CastF16BF16>, ScalarKernel<CopyU16>},
};

constexpr Table kAvx2 = {
    {Avx2Kernel32, Avx2Kernel16<CastF32BF16, A2LoadF32AsBF16, A2StoreU16>,
     Avx2Kernel16<CastF32F16, A2LoadF32AsF16, A2StoreU16>},
    {Avx2Kernel16<CastBF16F32, A2LoadU16, A2StoreBF16AsF32>,
     Avx2Kernel16<CopyU16, A2LoadU16, A2StoreU16>,
     Avx2Kernel16<CastBF16F16, A2LoadBF16AsF16, A2StoreU16>},
    {Avx2Kernel16<CastF16F32, A2LoadU16, A2StoreF16AsF32>,
     Avx2Kernel16<CastF16BF16, A2LoadF16AsBF16, A2StoreU16>,
     Avx2Kernel16<CopyU16, A2LoadU16, A2StoreU16>},
};

constexpr Table kAvx512 = {
    {Avx512Kernel32, Avx512Kernel16<A5LoadF32AsBF16, A5StoreU16>,
     Avx512Kernel16<A5LoadF32AsF16, A5StoreU16>},
    {Avx512Kernel16<A5LoadU16, A5StoreBF16AsF32>, Avx512Kernel16<A5LoadU16, A5StoreU16>,
     Avx512Kernel16<A5LoadBF16AsF16, A5StoreU16>},
    {Avx512Kernel16<A5LoadU16, A5StoreF16AsF32>, Avx512Kernel16<A5LoadF16AsBF16, A5StoreU16>,
     Avx512Kernel16<A5LoadU16, A5StoreU16>},
};

// -1: not pinned.
std::atomic<int> g_pinned_isa{-1};

}  // namespace

TransposeBlockFn GetTransposeKernel(TransposeIsa isa, DType src, DType dst) {
  const int s = Index(src), d = Index(dst);
  if (s < 0 || d < 0) return nullptr;
  switch (isa) {
    case TransposeIsa::kAvx512:
      return kAvx512[s][d];
    case TransposeIsa::kAvx2:
      return kAvx2[s][d];
    default:
      return kScalar[s][d];
  }
}

TransposeIsa DetectTransposeIsa() {
  static const TransposeIsa isa = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl")) {
      return TransposeIsa::kAvx512;
    }
    // Every AVX2 CPU shipped has F16C, but the OS-visible bit is what counts.
    // CPUID.1:ECX.F16C read directly: clang before 15 has no "f16c" for
    // __builtin_cpu_supports, and the fuzz build (tests/fuzz) uses clang 14.
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
    if (__builtin_cpu_supports("avx2") && f16c) {
      return TransposeIsa::kAvx2;
    }
    return TransposeIsa::kScalar;
  }();
  return isa;
}

TransposeIsa ActiveTransposeIsa() {
  const int pinned = g_pinned_isa.load(std::memory_order_relaxed);
  const TransposeIsa best = DetectTransposeIsa();
  if (pinned < 0 || pinned > static_cast<int>(best)) return best;
  return static_cast<TransposeIsa>(pinned);
}

void SetTransposeIsaForTesting(TransposeIsa isa) { g_pinned_isa.store(static_cast<int>(isa)); }

void ResetTransposeIsaForTesting() { g_pinned_isa.store(-1); }

}  // namespace internal
}  // namespace moe_adapter
