// The __global__ wrappers around transpose_kernels_impl.cuh and their launch
// code (see transpose_kernels.h for the contract).
#include "core/cuda/transpose_kernels.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "core/cuda/transpose_kernels_impl.cuh"

namespace moe_adapter {
namespace cuda {
namespace {

using impl::KArgs;

template <class S, class D, int LX, int WX>
__global__ void __launch_bounds__(impl::kThreads) VecKernel(KArgs a, int64_t block0) {
  impl::VecBlockThread<S, D, LX, WX>(a, block0 + blockIdx.x, static_cast<int>(threadIdx.x));
}

template <class S, class D>
__global__ void __launch_bounds__(impl::kThreads) TiledKernel(KArgs a, int64_t block0) {
  __shared__ uint32_t tile[impl::kTileWords];
  const int64_t block = block0 + blockIdx.x;
  impl::TiledLoad<S, D>(a, block, static_cast<int>(threadIdx.x), tile);
  __syncthreads();
  impl::TiledStore<S, D>(a, block, static_cast<int>(threadIdx.x), tile);
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

KArgs MakeKArgs(const DeviceTransposeArgs& a) {
  KArgs k;
  k.src = a.src;
  k.dst = a.dst;
  k.src_bs = a.src_batch_stride;
  k.src_ld = a.src_ld;
  k.dst_bs = a.dst_batch_stride;
  k.dst_ld = a.dst_ld;
  k.batch = a.batch;
  k.rows = a.rows;
  k.cols = a.cols;
  k.tiles_r = 0;
  k.tiles_c = 0;
  return k;
}

// Launches `kernel` over `total` blocks in pieces the grid limit allows.
template <class Kernel>
cudaError_t LaunchBlocks(Kernel kernel, const KArgs& k, int64_t total, cudaStream_t stream) {
  constexpr int64_t kMaxGrid = 0x7FFFFFFF;
  for (int64_t b0 = 0; b0 < total; b0 += kMaxGrid) {
    const int64_t n = total - b0 < kMaxGrid ? total - b0 : kMaxGrid;
    kernel<<<static_cast<unsigned>(n), impl::kThreads, 0, stream>>>(k, b0);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

template <class S, class D, int LX, int WX>
cudaError_t LaunchVec(KArgs k, cudaStream_t stream) {
  using Tile = impl::VecTile<S, D, LX, WX>;
  k.tiles_r = CeilDiv(k.rows, Tile::kRows);
  k.tiles_c = CeilDiv(k.cols, Tile::kCols);
  return LaunchBlocks(VecKernel<S, D, LX, WX>, k, k.batch * k.tiles_r * k.tiles_c, stream);
}

template <class S, class D>
cudaError_t LaunchTyped(const KArgs& k0, TransposeVariant v, cudaStream_t stream) {
  KArgs k = k0;
  switch (v) {
    case TransposeVariant::kVectorWide:
      return LaunchVec<S, D, 8, 1>(k, stream);
    case TransposeVariant::kVectorTall:
      return LaunchVec<S, D, 4, 2>(k, stream);
    default:
      k.tiles_r = CeilDiv(k.rows, impl::kTile);
      k.tiles_c = CeilDiv(k.cols, impl::kTile);
      return LaunchBlocks(TiledKernel<S, D>, k, k.batch * k.tiles_r * k.tiles_c, stream);
  }
}

template <class S>
cudaError_t DispatchDst(const KArgs& k, ElemType dst, TransposeVariant v, cudaStream_t stream) {
  switch (dst) {
    case ElemType::kF32:
      return LaunchTyped<S, cvt::F32>(k, v, stream);
    case ElemType::kBF16:
      return LaunchTyped<S, cvt::BF16>(k, v, stream);
    default:
      return LaunchTyped<S, cvt::F16>(k, v, stream);
  }
}

bool ValidType(ElemType t) {
  return t == ElemType::kF32 || t == ElemType::kBF16 || t == ElemType::kF16;
}

int Fail(std::string* why, int code, const std::string& msg) {
  if (why != nullptr) *why = msg;
  return code;
}

}  // namespace

const char* TransposeVariantName(TransposeVariant v) {
  switch (v) {
    case TransposeVariant::kAuto:
      return "auto";
    case TransposeVariant::kVectorWide:
      return "vec-wide";
    case TransposeVariant::kTiledScalar:
      return "tiled-scalar";
    case TransposeVariant::kVectorTall:
      return "vec-tall";
  }
  return "?";
}

bool VectorPathOk(const DeviceTransposeArgs& a) {
  const int64_t ss = static_cast<int64_t>(ElemSize(a.src_type));
  const int64_t ds = static_cast<int64_t>(ElemSize(a.dst_type));
  const int64_t v = ds == 4 ? 4 : 8;  // VecShape<S, D>::V
  auto aligned = [](int64_t x) { return x % 16 == 0; };
  return a.rows % v == 0 && a.cols % v == 0 &&
         reinterpret_cast<uintptr_t>(a.src) % 16 == 0 && reinterpret_cast<uintptr_t>(a.dst) % 16 == 0 &&
         aligned(a.src_ld * ss) && aligned(a.src_batch_stride * ss) && aligned(a.dst_ld * ds) &&
         aligned(a.dst_batch_stride * ds);
}

int LaunchTransposeCast(const DeviceTransposeArgs& a, void* stream, TransposeVariant variant,
                        std::string* why) {
  if (!ValidType(a.src_type) || !ValidType(a.dst_type)) {
    return Fail(why, cudaErrorInvalidValue, "transpose: element type must be f32, bf16 or f16");
  }
  if (a.batch < 0 || a.rows < 0 || a.cols < 0) {
    return Fail(why, cudaErrorInvalidValue, "transpose: negative size");
  }
  if (a.batch == 0 || a.rows == 0 || a.cols == 0) return cudaSuccess;
  if (a.src == nullptr || a.dst == nullptr) {
    return Fail(why, cudaErrorInvalidValue, "transpose: null buffer");
  }
  if (a.src_ld < a.cols || a.dst_ld < a.rows || (a.batch > 1 && (a.src_batch_stride < a.rows * a.src_ld ||
                                                                  a.dst_batch_stride < a.cols * a.dst_ld))) {
    return Fail(why, cudaErrorInvalidValue, "transpose: strides smaller than the slab");
  }
  const bool vec_ok = VectorPathOk(a);
  if (variant == TransposeVariant::kAuto) {
    variant = vec_ok ? TransposeVariant::kVectorWide : TransposeVariant::kTiledScalar;
  }
  if ((variant == TransposeVariant::kVectorWide || variant == TransposeVariant::kVectorTall) && !vec_ok) {
    return Fail(why, cudaErrorInvalidValue,
                std::string("transpose: layout does not allow the ") + TransposeVariantName(variant) +
                    " kernel (alignment or sizes)");
  }
  const KArgs k = MakeKArgs(a);
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  cudaError_t err;
  switch (a.src_type) {
    case ElemType::kF32:
      err = DispatchDst<cvt::F32>(k, a.dst_type, variant, s);
      break;
    case ElemType::kBF16:
      err = DispatchDst<cvt::BF16>(k, a.dst_type, variant, s);
      break;
    default:
      err = DispatchDst<cvt::F16>(k, a.dst_type, variant, s);
      break;
  }
  if (err != cudaSuccess) {
    return Fail(why, err,
                std::string("transpose kernel launch: ") + cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
  }
  return cudaSuccess;
}

int LaunchToHf(const void* G, const void* D, int64_t E, int64_t H, int64_t I, ElemType src, ElemType dst,
               void* out_gate_up, void* out_down, void* stream, std::string* why) {
  if (G != nullptr) {
    DeviceTransposeArgs a;
    a.src = G;
    a.src_type = src;
    a.src_ld = 2 * I;
    a.src_batch_stride = H * 2 * I;
    a.dst = out_gate_up;
    a.dst_type = dst;
    a.dst_ld = H;
    a.dst_batch_stride = 2 * I * H;
    a.batch = E;
    a.rows = H;
    a.cols = 2 * I;
    const int rc = LaunchTransposeCast(a, stream, TransposeVariant::kAuto, why);
    if (rc != 0) return rc;
  }
  if (D != nullptr) {
    DeviceTransposeArgs a;
    a.src = D;
    a.src_type = src;
    a.src_ld = H;
    a.src_batch_stride = I * H;
    a.dst = out_down;
    a.dst_type = dst;
    a.dst_ld = I;
    a.dst_batch_stride = H * I;
    a.batch = E;
    a.rows = I;
    a.cols = H;
    const int rc = LaunchTransposeCast(a, stream, TransposeVariant::kAuto, why);
    if (rc != 0) return rc;
  }
  return 0;
}

int LaunchFromHf(const void* gate_up, const void* down, int64_t E, int64_t H, int64_t I, ElemType src,
                 ElemType dst, void* out_G, void* out_D, void* stream, std::string* why) {
  if (gate_up != nullptr) {
    DeviceTransposeArgs a;
    a.src = gate_up;
    a.src_type = src;
    a.src_ld = H;
    a.src_batch_stride = 2 * I * H;
    a.dst = out_G;
    a.dst_type = dst;
    a.dst_ld = 2 * I;
    a.dst_batch_stride = H * 2 * I;
    a.batch = E;
    a.rows = 2 * I;
    a.cols = H;
    const int rc = LaunchTransposeCast(a, stream, TransposeVariant::kAuto, why);
    if (rc != 0) return rc;
  }
  if (down != nullptr) {
    DeviceTransposeArgs a;
    a.src = down;
    a.src_type = src;
    a.src_ld = I;
    a.src_batch_stride = H * I;
    a.dst = out_D;
    a.dst_type = dst;
    a.dst_ld = H;
    a.dst_batch_stride = I * H;
    a.batch = E;
    a.rows = H;
    a.cols = I;
    const int rc = LaunchTransposeCast(a, stream, TransposeVariant::kAuto, why);
    if (rc != 0) return rc;
  }
  return 0;
}

}  // namespace cuda
}  // namespace moe_adapter
