// Runs the transpose kernels' device code on the CPU (no GPU needed): every
// CTA and thread of a launch is executed in turn with the same functions the
// __global__ kernels call (transpose_kernels_impl.cuh), with the shared-memory
// kernel split at its barrier. Checks the results bit for bit against the
// scalar reference, checks that nothing outside the destination slab is
// written, and traps misaligned 16-byte accesses. Build it with
// -fsanitize=address to catch out-of-bounds reads too.
//
// Usage: cuda_kernels_emu_test        (exit 0 = all passed)
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/cuda/transpose_kernels.h"
#include "core/cuda/transpose_kernels_impl.cuh"
#include "tests/cuda/test_util.h"

namespace mc = moe_adapter::cuda;
using mc::DeviceTransposeArgs;
using mc::ElemType;
using mc::TransposeVariant;
using mc::impl::KArgs;

namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <class S, class D, int LX, int WX>
void EmuVec(KArgs k) {
  using Tile = mc::impl::VecTile<S, D, LX, WX>;
  k.tiles_r = CeilDiv(k.rows, Tile::kRows);
  k.tiles_c = CeilDiv(k.cols, Tile::kCols);
  const int64_t blocks = k.batch * k.tiles_r * k.tiles_c;
  for (int64_t blk = 0; blk < blocks; ++blk) {
    for (int t = 0; t < mc::impl::kThreads; ++t) mc::impl::VecBlockThread<S, D, LX, WX>(k, blk, t);
  }
}

template <class S, class D>
void EmuTiled(KArgs k) {
  k.tiles_r = CeilDiv(k.rows, mc::impl::kTile);
  k.tiles_c = CeilDiv(k.cols, mc::impl::kTile);
  const int64_t blocks = k.batch * k.tiles_r * k.tiles_c;
  std::vector<uint32_t> tile(mc::impl::kTileWords);
  for (int64_t blk = 0; blk < blocks; ++blk) {
    std::fill(tile.begin(), tile.end(), 0xDEADBEEFu);
    for (int t = 0; t < mc::impl::kThreads; ++t) mc::impl::TiledLoad<S, D>(k, blk, t, tile.data());
    for (int t = 0; t < mc::impl::kThreads; ++t) mc::impl::TiledStore<S, D>(k, blk, t, tile.data());
  }
}

template <class S, class D>
void EmuTyped(const KArgs& k, TransposeVariant v) {
  switch (v) {
    case TransposeVariant::kVectorWide:
      EmuVec<S, D, 8, 1>(k);
      break;
    case TransposeVariant::kVectorTall:
      EmuVec<S, D, 4, 2>(k);
      break;
    default:
      EmuTiled<S, D>(k);
      break;
  }
}

template <class S>
void EmuDst(const KArgs& k, ElemType dst, TransposeVariant v) {
  switch (dst) {
    case ElemType::kF32:
      EmuTyped<S, mc::cvt::F32>(k, v);
      break;
    case ElemType::kBF16:
      EmuTyped<S, mc::cvt::BF16>(k, v);
      break;
    default:
      EmuTyped<S, mc::cvt::F16>(k, v);
      break;
  }
}

void Emulate(const DeviceTransposeArgs& a, TransposeVariant v) {
  KArgs k{a.src, a.dst, a.src_batch_stride, a.src_ld, a.dst_batch_stride, a.dst_ld, a.batch, a.rows, a.cols, 0, 0};
  switch (a.src_type) {
    case ElemType::kF32:
      EmuDst<mc::cvt::F32>(k, a.dst_type, v);
      break;
    case ElemType::kBF16:
      EmuDst<mc::cvt::BF16>(k, a.dst_type, v);
      break;
    default:
      EmuDst<mc::cvt::F16>(k, a.dst_type, v);
      break;
  }
}

struct Shape {
  int64_t batch, rows, cols;
  int64_t src_ld_pad, dst_ld_pad, bs_pad;  // extra elements
};

void* AlignedAlloc(size_t bytes) {
  void* p = nullptr;
  if (posix_memalign(&p, 64, bytes == 0 ? 1 : bytes) != 0) std::abort();
  return p;
}

int g_failures = 0;
int g_cases = 0;

void RunCase(const Shape& s, ElemType st, ElemType dt, TransposeVariant v, uint64_t seed) {
  DeviceTransposeArgs a;
  a.src_type = st;
  a.dst_type = dt;
  a.batch = s.batch;
  a.rows = s.rows;
  a.cols = s.cols;
  a.src_ld = s.cols + s.src_ld_pad;
  a.src_batch_stride = s.rows * a.src_ld + s.bs_pad;
  a.dst_ld = s.rows + s.dst_ld_pad;
  a.dst_batch_stride = s.cols * a.dst_ld + s.bs_pad;
  const size_t src_elems = static_cast<size_t>((s.batch - 1) * a.src_batch_stride + s.rows * a.src_ld);
  const size_t dst_elems = static_cast<size_t>((s.batch - 1) * a.dst_batch_stride + s.cols * a.dst_ld);
  const size_t src_bytes = src_elems * mc::ElemSize(st);
  const size_t dst_bytes = dst_elems * mc::ElemSize(dt);
  void* src = AlignedAlloc(src_bytes);
  void* dst = AlignedAlloc(dst_bytes);
  mc::testing::Fill(src, st, static_cast<int64_t>(src_elems), seed, 1);
  std::memset(dst, 0xA5, dst_bytes);
  a.src = src;
  a.dst = dst;
  const bool vec = v == TransposeVariant::kVectorWide || v == TransposeVariant::kVectorTall;
  if (vec && !mc::VectorPathOk(a)) {
    std::printf("  skip %s %s->%s B=%lld R=%lld C=%lld (layout not vector-eligible)\n", mc::TransposeVariantName(v),
                mc::ElemName(st), mc::ElemName(dt), (long long)s.batch, (long long)s.rows, (long long)s.cols);
    std::free(src);
    std::free(dst);
    return;
  }
  Emulate(a, v);
  std::vector<mc::testing::Mismatch> first;
  const int64_t bad = mc::testing::CheckTranspose(a, src, dst, 1, &first);
  const int64_t stray = mc::testing::CheckUntouched(a, dst, dst_bytes, 0xA5);
  ++g_cases;
  if (bad != 0 || stray != 0) {
    ++g_failures;
    std::printf("  FAIL %s %s->%s B=%lld R=%lld C=%lld pads(%lld,%lld,%lld): %lld wrong, %lld stray bytes\n%s",
                mc::TransposeVariantName(v), mc::ElemName(st), mc::ElemName(dt), (long long)s.batch,
                (long long)s.rows, (long long)s.cols, (long long)s.src_ld_pad, (long long)s.dst_ld_pad,
                (long long)s.bs_pad, (long long)bad, (long long)stray,
                mc::testing::DescribeMismatches(first, st, dt).c_str());
  }
  std::free(src);
  std::free(dst);
}

}  // namespace

int main() {
  const ElemType types[] = {ElemType::kF32, ElemType::kBF16, ElemType::kF16};
  // Vector-eligible shapes (multiples of 8) with tails against the tiles, and
  // odd shapes for the shared-memory kernel (some with padded strides).
  const std::vector<Shape> vec_shapes = {
      {2, 40, 24, 0, 0, 0}, {1, 264, 72, 0, 0, 0}, {3, 8, 8, 0, 0, 0}, {2, 16, 136, 8, 8, 16}, {1, 520, 8, 0, 0, 0},
      {2, 12, 20, 0, 0, 0}, {1, 132, 36, 4, 4, 8}};
  const std::vector<Shape> odd_shapes = {{3, 17, 10, 0, 0, 0},  {3, 5, 17, 0, 0, 0},  {2, 33, 200, 3, 5, 7},
                                         {1, 1, 1, 0, 0, 0},    {4, 5, 3, 1, 2, 3},   {1, 100, 66, 0, 0, 0},
                                         {2, 40, 24, 0, 0, 0}};
  uint64_t seed = 1;
  // Sanity: the vector-eligibility predicate.
  {
    DeviceTransposeArgs a;
    a.src = reinterpret_cast<const void*>(uintptr_t{64});
    a.dst = reinterpret_cast<void*>(uintptr_t{128});
    a.src_type = a.dst_type = ElemType::kBF16;
    a.batch = 2;
    a.rows = 16;
    a.cols = 24;
    a.src_ld = 24;
    a.src_batch_stride = 16 * 24;
    a.dst_ld = 16;
    a.dst_batch_stride = 16 * 24;
    bool ok = mc::VectorPathOk(a);
    a.cols = 20;
    ok = ok && !mc::VectorPathOk(a);
    a.cols = 24;
    a.src = reinterpret_cast<const void*>(uintptr_t{66});
    ok = ok && !mc::VectorPathOk(a);
    ++g_cases;
    if (!ok) {
      ++g_failures;
      std::printf("  FAIL VectorPathOk predicate\n");
    }
  }
  for (TransposeVariant v : {TransposeVariant::kVectorWide, TransposeVariant::kVectorTall,
                             TransposeVariant::kTiledScalar}) {
    const auto& shapes = v == TransposeVariant::kTiledScalar ? odd_shapes : vec_shapes;
    for (const Shape& s : shapes) {
      for (ElemType st : types) {
        for (ElemType dt : types) RunCase(s, st, dt, v, seed++);
      }
    }
  }
  std::printf("%s: %d cases, %d failed\n", g_failures == 0 ? "PASS" : "FAIL", g_cases, g_failures);
  return g_failures == 0 ? 0 : 1;
}
