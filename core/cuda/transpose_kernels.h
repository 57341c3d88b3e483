// Device-level API of the expert-slab transpose kernels (raw device pointers).
// No CUDA types here: streams are passed as void* (a cudaStream_t, or nullptr
// for the legacy default stream) and errors come back as the cudaError_t value
// (0 = success) with a message.
//
// The one primitive is a batched 2-D transpose with an optional cast:
//   dst[b, c, r] = cast(src[b, r, c])   for b < batch, r < rows, c < cols
// with element strides src (b, r, c) at src + b*src_batch_stride + r*src_ld + c
// and dst (b, c, r) at dst + b*dst_batch_stride + c*dst_ld + r.
//
// Every expert conversion is one such transpose (spec §4.2/§4.3):
//   ToHf   gate_up: G [E, H, 2I] -> [E, 2I, H]  (rows [0,I) of expert e are
//                   gate_e [I, H], rows [I, 2I) are up_e [I, H])
//          down:    D [E, I, H]  -> [E, H, I]   (down_e [H, I])
//   FromHf is the inverse of each.
#ifndef MOE_ADAPTER_CORE_CUDA_TRANSPOSE_KERNELS_H_
#define MOE_ADAPTER_CORE_CUDA_TRANSPOSE_KERNELS_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace moe_adapter {
namespace cuda {

// Element types of expert tensors. Values are stable (used as codes).
enum class ElemType : int { kF32 = 0, kBF16 = 1, kF16 = 2 };

inline size_t ElemSize(ElemType t) { return t == ElemType::kF32 ? 4 : 2; }
inline const char* ElemName(ElemType t) {
  return t == ElemType::kF32 ? "f32" : (t == ElemType::kBF16 ? "bf16" : "f16");
}

struct DeviceTransposeArgs {
  const void* src = nullptr;
  ElemType src_type = ElemType::kBF16;
  int64_t src_batch_stride = 0;  // elements
  int64_t src_ld = 0;            // elements between rows of src
  void* dst = nullptr;
  ElemType dst_type = ElemType::kBF16;
  int64_t dst_batch_stride = 0;  // elements
  int64_t dst_ld = 0;            // elements between rows of dst (= between columns of src)
  int64_t batch = 0;
  int64_t rows = 0;
  int64_t cols = 0;
};

// Kernel choice. kAuto picks the register-block kernel when the layout allows
// 16-byte vectors (see VectorPathOk) and the shared-memory tile kernel otherwise.
enum class TransposeVariant : int {
  kAuto = 0,
  kVectorWide = 1,    // 8x8 (4x4 into f32) register blocks, warp 8 wide x 4 tall
  kTiledScalar = 2,   // 32x32 shared-memory tile, one element per access; any layout
  kVectorTall = 3,    // register blocks, warp 4 wide x 8 tall
};
const char* TransposeVariantName(TransposeVariant v);

// True when the register-block (16-byte vector) kernels can run on this
// layout: pointers 16-byte aligned, rows and cols multiples of the block edge
// (4 when the destination is f32, else 8), and all strides keep every row
// start 16-byte aligned.
bool VectorPathOk(const DeviceTransposeArgs& a);

// Launches the batched transpose on `stream`. Returns a cudaError_t value
// (0 = launched; errors from the launch itself, e.g. no kernel image for the
// device, or 1 = cudaErrorInvalidValue for bad arguments) and, on error, a
// message in *why when why != nullptr. Asynchronous like any launch.
int LaunchTransposeCast(const DeviceTransposeArgs& a, void* stream,
                        TransposeVariant variant = TransposeVariant::kAuto,
                        std::string* why = nullptr);

// Conveniences over LaunchTransposeCast for a whole layer on the device.
// Either tensor of a pair may be null to skip it. Buffers are contiguous:
//   ToHf:   G [E,H,2I], D [E,I,H]  ->  gate_up [E,2I,H], down [E,H,I]
//   FromHf: gate_up [E,2I,H], down [E,H,I]  ->  G [E,H,2I], D [E,I,H]
int LaunchToHf(const void* G, const void* D, int64_t E, int64_t H, int64_t I,
               ElemType src, ElemType dst, void* out_gate_up, void* out_down, void* stream,
               std::string* why = nullptr);
int LaunchFromHf(const void* gate_up, const void* down, int64_t E, int64_t H, int64_t I,
                 ElemType src, ElemType dst, void* out_G, void* out_D, void* stream,
                 std::string* why = nullptr);

}  // namespace cuda
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_CUDA_TRANSPOSE_KERNELS_H_
