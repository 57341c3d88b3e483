// Bodies of the transpose kernels, written as __host__ __device__ functions of
// (block index, thread index) so that cuda_kernels_emu_test can run the exact
// same code on the CPU, block by block, without a GPU. transpose_kernels.cu
// wraps them in __global__ kernels. Internal header: include only from .cu files.
#ifndef MOE_ADAPTER_CORE_CUDA_TRANSPOSE_KERNELS_IMPL_CUH_
#define MOE_ADAPTER_CORE_CUDA_TRANSPOSE_KERNELS_IMPL_CUH_

#include <cstdint>
#include <cstring>
#if !defined(__CUDA_ARCH__)
#include <cstdio>
#include <cstdlib>
#endif

#include "core/cuda/elem_convert.cuh"

// Unroll hint for the device pass only (the host compiler of the emulation
// build would warn about an unknown pragma).
#if defined(__CUDA_ARCH__)
#define MA_UNROLL _Pragma("unroll")
#else
#define MA_UNROLL
#endif

namespace moe_adapter {
namespace cuda {
namespace impl {

constexpr int kThreads = 256;  // threads per CTA for every kernel

// Kernel arguments (element strides). tiles_r/tiles_c: tiles per batch item.
struct KArgs {
  const void* src;
  void* dst;
  int64_t src_bs, src_ld, dst_bs, dst_ld;
  int64_t batch, rows, cols;
  int64_t tiles_r, tiles_c;
};

struct Vec16 {
  uint32_t w[4];
};

MA_HD Vec16 Load16(const void* p) {
  Vec16 v;
#if defined(__CUDA_ARCH__)
  const uint4 x = __ldg(reinterpret_cast<const uint4*>(p));
  v.w[0] = x.x;
  v.w[1] = x.y;
  v.w[2] = x.z;
  v.w[3] = x.w;
#else
  if (reinterpret_cast<uintptr_t>(p) % 16 != 0) {
    std::fprintf(stderr, "emulation: misaligned 16-byte load at %p\n", p);
    std::abort();
  }
  std::memcpy(v.w, p, 16);
#endif
  return v;
}

MA_HD void Store16(void* p, const Vec16& v) {
#if defined(__CUDA_ARCH__)
  // Explicit 16-byte store (a plain uint4 assignment was split into 4-byte
  // stores by the compiler).
  asm volatile("st.global.v4.u32 [%0], {%1, %2, %3, %4};" ::"l"(p), "r"(v.w[0]), "r"(v.w[1]), "r"(v.w[2]),
               "r"(v.w[3])
               : "memory");
#else
  if (reinterpret_cast<uintptr_t>(p) % 16 != 0) {
    std::fprintf(stderr, "emulation: misaligned 16-byte store at %p\n", p);
    std::abort();
  }
  std::memcpy(p, v.w, 16);
#endif
}

MA_HD void Load8(const void* p, uint32_t* w) {
#if defined(__CUDA_ARCH__)
  const uint2 x = __ldg(reinterpret_cast<const uint2*>(p));
  w[0] = x.x;
  w[1] = x.y;
#else
  if (reinterpret_cast<uintptr_t>(p) % 8 != 0) {
    std::fprintf(stderr, "emulation: misaligned 8-byte load at %p\n", p);
    std::abort();
  }
  std::memcpy(w, p, 8);
#endif
}

template <class T>
MA_HD T LoadScalar(const T* p) {
#if defined(__CUDA_ARCH__)
  return __ldg(p);
#else
  return *p;
#endif
}

// ---------------------------------------------------------------------------
// Register-block kernel. Each thread moves one VxV block: V row segments of V
// elements are read with 8/16-byte loads (all issued before any use), transposed
// in registers (pure renaming for 4-byte types, byte permutes for 2-byte ones)
// with the cast applied per element, and written as V row segments of the
// destination with 16-byte stores. A warp is LX threads across columns and
// 32/LX down rows, so every warp access covers whole 32-byte sectors (64 or 128
// contiguous bytes per row); a CTA is WX x (8/WX) warps. Requires the layout
// checked by VectorPathOk(); rows/cols tails beyond the tile are skipped per
// thread (a whole VxV block is either inside or outside).
template <class S, class D>
struct VecShape {
  // V = 16 / sizeof(dst element): every destination row segment is exactly one
  // 16-byte store, so each warp store instruction writes whole 32-byte sectors
  // (with 32-byte f32 segments split into two stores, a 2-byte -> f32 cast ran
  // at ~0.6x of copy bandwidth: each store half-filled its sectors). The source
  // segment is V * sizeof(src) = 8, 16 or 32 bytes (one 8-byte load, or one or
  // two 16-byte loads; reads of half sectors are served by L1).
  static constexpr int V = sizeof(typename D::Bits) == 4 ? 4 : 8;
  static constexpr int kSrcRowBytes = V * static_cast<int>(sizeof(typename S::Bits));
  static constexpr int kSrcWords = kSrcRowBytes / 4;
  static constexpr int kDstWords = V * static_cast<int>(sizeof(typename D::Bits)) / 4;
};

template <class S, class D, int LX, int WX>
struct VecTile {
  static constexpr int V = VecShape<S, D>::V;
  static constexpr int LY = 32 / LX;
  static constexpr int WY = (kThreads / 32) / WX;
  static constexpr int kCols = WX * LX * V;  // tile width (elements of a src row)
  static constexpr int kRows = WY * LY * V;  // tile height
};

template <class S>
MA_HD uint32_t ElemOf(const uint32_t* row_words, int i) {
  if (sizeof(typename S::Bits) == 2) {
    return (row_words[i >> 1] >> ((i & 1) * 16)) & 0xFFFFu;
  }
  return row_words[i];
}

template <class S, class D, int LX, int WX>
MA_HD void VecBlockThread(const KArgs& a, int64_t block, int tid) {
  using SB = typename S::Bits;
  using DB = typename D::Bits;
  using Tile = VecTile<S, D, LX, WX>;
  constexpr int V = Tile::V;
  constexpr int SW = VecShape<S, D>::kSrcWords;
  constexpr int DW = VecShape<S, D>::kDstWords;
  static_assert((SW == 2 || SW % 4 == 0) && DW == 4, "row segments: 8/16/32-byte loads, one 16-byte store");

  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int tx = (warp % WX) * LX + lane % LX;
  const int ty = (warp / WX) * Tile::LY + lane / LX;

  const int64_t tiles_per_b = a.tiles_r * a.tiles_c;
  const int64_t b = block / tiles_per_b;
  const int64_t rem = block - b * tiles_per_b;
  const int64_t tr = rem / a.tiles_c;
  const int64_t tc = rem - tr * a.tiles_c;
  const int64_t r0 = tr * Tile::kRows + static_cast<int64_t>(ty) * V;
  const int64_t c0 = tc * Tile::kCols + static_cast<int64_t>(tx) * V;
  if (b >= a.batch || r0 >= a.rows || c0 >= a.cols) return;

  const SB* src = static_cast<const SB*>(a.src) + b * a.src_bs + r0 * a.src_ld + c0;
  DB* dst = static_cast<DB*>(a.dst) + b * a.dst_bs + c0 * a.dst_ld + r0;

  uint32_t w[V][SW];
MA_UNROLL
  for (int j = 0; j < V; ++j) {
    if (SW == 2) {
      Load8(src + j * a.src_ld, w[j]);
    } else {
MA_UNROLL
      for (int q = 0; q < SW / 4; ++q) {
        const Vec16 v = Load16(src + j * a.src_ld + q * (16 / sizeof(SB)));
        w[j][4 * q + 0] = v.w[0];
        w[j][4 * q + 1] = v.w[1];
        w[j][4 * q + 2] = v.w[2];
        w[j][4 * q + 3] = v.w[3];
      }
    }
  }
MA_UNROLL
  for (int i = 0; i < V; ++i) {
    uint32_t o[DW];
MA_UNROLL
    for (int m = 0; m < DW; ++m) {
      if (sizeof(DB) == 2) {
        const uint32_t lo = cvt::Convert<S, D>::Run(static_cast<SB>(ElemOf<S>(w[2 * m], i)));
        const uint32_t hi = cvt::Convert<S, D>::Run(static_cast<SB>(ElemOf<S>(w[2 * m + 1], i)));
        o[m] = (lo & 0xFFFFu) | (hi << 16);
      } else {
        o[m] = cvt::Convert<S, D>::Run(static_cast<SB>(ElemOf<S>(w[m], i)));
      }
    }
MA_UNROLL
    for (int q = 0; q < DW / 4; ++q) {
      Vec16 v;
      v.w[0] = o[4 * q + 0];
      v.w[1] = o[4 * q + 1];
      v.w[2] = o[4 * q + 2];
      v.w[3] = o[4 * q + 3];
      Store16(dst + i * a.dst_ld + q * (16 / sizeof(DB)), v);
    }
  }
}

// ---------------------------------------------------------------------------
// Shared-memory tile kernel for any layout: a 32x32 tile, one element per
// access (coalesced along rows of src, then along rows of dst), converted on
// the way into a padded 32x33 word tile (no bank conflicts). Phase 1 loads,
// the caller synchronises the CTA, phase 2 stores.
constexpr int kTile = 32;
constexpr int kTileWords = kTile * (kTile + 1);

MA_HD void TiledDecode(const KArgs& a, int64_t block, int64_t* b, int64_t* r_base, int64_t* c_base) {
  const int64_t tiles_per_b = a.tiles_r * a.tiles_c;
  *b = block / tiles_per_b;
  const int64_t rem = block - *b * tiles_per_b;
  const int64_t tr = rem / a.tiles_c;
  *r_base = tr * kTile;
  *c_base = (rem - tr * a.tiles_c) * kTile;
}

template <class S, class D>
MA_HD void TiledLoad(const KArgs& a, int64_t block, int tid, uint32_t* tile) {
  using SB = typename S::Bits;
  int64_t b, rb, cb;
  TiledDecode(a, block, &b, &rb, &cb);
  if (b >= a.batch) return;
  const int tx = tid % kTile;
  const int ty = tid / kTile;
  const SB* src = static_cast<const SB*>(a.src) + b * a.src_bs;
MA_UNROLL
  for (int k = 0; k < kTile; k += kThreads / kTile) {
    const int64_t r = rb + ty + k;
    const int64_t c = cb + tx;
    if (r < a.rows && c < a.cols) {
      tile[(ty + k) * (kTile + 1) + tx] = cvt::Convert<S, D>::Run(LoadScalar(src + r * a.src_ld + c));
    }
  }
}

template <class S, class D>
MA_HD void TiledStore(const KArgs& a, int64_t block, int tid, const uint32_t* tile) {
  using DB = typename D::Bits;
  int64_t b, rb, cb;
  TiledDecode(a, block, &b, &rb, &cb);
  if (b >= a.batch) return;
  const int tx = tid % kTile;
  const int ty = tid / kTile;
  DB* dst = static_cast<DB*>(a.dst) + b * a.dst_bs;
MA_UNROLL
  for (int k = 0; k < kTile; k += kThreads / kTile) {
    const int64_t c = cb + ty + k;
    const int64_t r = rb + tx;
    if (r < a.rows && c < a.cols) {
      dst[c * a.dst_ld + r] = static_cast<DB>(tile[tx * (kTile + 1) + ty + k]);
    }
  }
}

}  // namespace impl
}  // namespace cuda
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_CUDA_TRANSPOSE_KERNELS_IMPL_CUH_
