// <immintrin.h> for the SIMD tiers (transpose_kernels_avx2.cc and
// transpose_kernels_avx512.cc); include it before anything else that pulls it.
// GCC 12's AVX-512 headers trip -Wuninitialized on their own
// _mm512_undefined_*() (GCC PR 105593, fixed in 12.3); the location is the
// header, so the pragma has to precede it. It stays in force for the rest of
// the including file, as it did when the tiers were one file.
#ifndef MOE_ADAPTER_CORE_TRANSPOSE_KERNELS_SIMD_H_
#define MOE_ADAPTER_CORE_TRANSPOSE_KERNELS_SIMD_H_

#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#endif  // MOE_ADAPTER_CORE_TRANSPOSE_KERNELS_SIMD_H_
