// The AVX2 tier (with F16C). Each kernel loads a tile of source rows, casts
// each row in registers, transposes the tile in registers and stores whole
// destination rows, so every cache line is read once and written once.
// 16-bit transposes carry all pairs but f32 -> f32: an f32 source is narrowed
// before the transpose, a 16-bit one is widened to f32 after it. Function-level
// target attributes keep the library itself baseline x86-64;
// DetectTransposeIsa() picks at run time.
#include "core/transpose_kernels_tiers.h"

#include "core/transpose_kernels_simd.h"  // first: silences GCC 12 <immintrin.h> warnings

#include "core/cast.h"
#include "core/transpose_kernels_scalar.h"

#define MOE_AVX2 __attribute__((target("avx2,f16c")))

namespace moe_adapter {
namespace internal {
namespace {

// 16 x 16 tiles of 16-bit lanes (8 x 8 for f32 -> f32), edges scalar.

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

}  // namespace

const TransposeKernelTable kAvx2TransposeKernels = {
    {Avx2Kernel32, Avx2Kernel16<CastF32BF16, A2LoadF32AsBF16, A2StoreU16>,
     Avx2Kernel16<CastF32F16, A2LoadF32AsF16, A2StoreU16>},
    {Avx2Kernel16<CastBF16F32, A2LoadU16, A2StoreBF16AsF32>,
     Avx2Kernel16<CopyU16, A2LoadU16, A2StoreU16>,
     Avx2Kernel16<CastBF16F16, A2LoadBF16AsF16, A2StoreU16>},
    {Avx2Kernel16<CastF16F32, A2LoadU16, A2StoreF16AsF32>,
     Avx2Kernel16<CastF16BF16, A2LoadF16AsBF16, A2StoreU16>,
     Avx2Kernel16<CopyU16, A2LoadU16, A2StoreU16>},
};

}  // namespace internal
}  // namespace moe_adapter
