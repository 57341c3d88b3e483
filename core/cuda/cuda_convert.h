// Host-side API of the CUDA expert converter. Plain C++: no CUDA types, so
// code built without CUDA can include it (link moe_adapter_cuda, which defines
// MOE_ADAPTER_HAVE_CUDA=1 for its users, only when the project was configured
// with CUDA). No exceptions cross this API and nothing aborts: every call
// returns a CudaStatus (code 0 = ok).
//
// Layouts (spec §4.2/§4.3; row-major, per layer):
//   grouped (native): G  [E, H, 2I]  (columns [0,I) gate, [I,2I) up)
//                     D  [E, I, H]
//   HF (per expert):  gate_e [I, H] = G[e][:, 0:I]^T,  up_e [I, H] = G[e][:, I:2I]^T,
//                     down_e [H, I] = D[e]^T
//   The contiguous HF buffers are gate_up [E][gate_e I*H][up_e I*H] (that is
//   [E, 2I, H], the transformers-v5 fused layout) and down [E][H*I].
//
// Example (one layer, bf16 -> bf16):
//   std::string why;
//   if (!moe_adapter::cuda::CudaAvailable(&why)) { /* fall back to the CPU; why says why */ }
//   std::unique_ptr<moe_adapter::cuda::CudaExpertConverter> conv;
//   auto st = moe_adapter::cuda::CudaExpertConverter::Create({}, &conv);
//   if (st.ok()) st = conv->ToHf(G, D, E, H, I, ElemType::kBF16, ElemType::kBF16, out_gate_up, out_down);
//   if (!st.ok()) std::fprintf(stderr, "%s\n", st.message.c_str());
#ifndef MOE_ADAPTER_CORE_CUDA_CUDA_CONVERT_H_
#define MOE_ADAPTER_CORE_CUDA_CUDA_CONVERT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/cuda/transpose_kernels.h"  // ElemType (no CUDA types either)

namespace moe_adapter {
namespace cuda {

// Error codes: a cudaError_t value (> 0) from the runtime, or one of these.
enum CudaStatusCode : int {
  kCudaOk = 0,
  kCudaInvalidArgument = -1,  // bad sizes, null pointers, unknown dtype
  kCudaNoDevice = -2,         // no usable device (the runtime's 35/100/... is in the message)
};

struct CudaStatus {
  int code = kCudaOk;
  std::string message;  // empty when ok
  bool ok() const { return code == kCudaOk; }
  static CudaStatus Ok() { return {}; }
};

// True when a CUDA device can be used. Otherwise false, and *why (if not null)
// reads "no CUDA device: <reason>" (e.g. "cudaErrorInsufficientDriver (35):
// CUDA driver version is insufficient for CUDA runtime version" when there is
// no driver, "cudaErrorNoDevice (100): ..." when there is no GPU).
bool CudaAvailable(std::string* why);

struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;
  int multiprocessors = 0;
  int64_t total_memory = 0;  // bytes
  int64_t l2_bytes = 0;
  int driver_version = 0, runtime_version = 0;  // e.g. 13000
};

// Number of devices (0 with *why set when none is usable).
int CudaDeviceCount(std::string* why);
CudaStatus GetCudaDeviceInfo(int index, CudaDeviceInfo* info);

struct CudaConverterOptions {
  int device = 0;                    // CUDA device index
  int64_t chunk_bytes = 64 << 20;    // target source bytes per pipeline chunk (>= 1 expert)
  int num_buffers = 2;               // pipeline depth: 2 = double buffering (2 streams)
  int host_threads = 0;              // threads staging pageable memory (0 = min(16, cores))
};

// What the last call did (for logging and benchmarks).
struct CudaConvertStats {
  double seconds = 0;         // wall time of the call
  int64_t bytes_in = 0;       // source bytes read from the host
  int64_t bytes_out = 0;      // destination bytes written to the host
  int chunks = 0;             // pipeline chunks
  bool direct_in = false;     // sources were pinned: DMA without a staging copy
  bool direct_out = false;    // destinations were pinned
};

// Converts expert tensors held in host memory through the GPU: a pipeline of
// expert chunks, each copied host->device, transposed (and cast) by one kernel
// launch and copied back, with num_buffers streams so that the copies of one
// chunk overlap the kernel and copies of the next. Pageable host memory goes
// through pinned staging buffers (copied by host_threads threads); host memory
// that is already pinned (AllocPinned(), RegisterHostMemory(), or any
// cudaHostAlloc/cudaHostRegister memory) is transferred directly.
// Call it one layer (or one tensor) at a time; device and pinned buffers are
// kept between calls and grow to the largest chunk seen. Not thread-safe: use
// one converter per thread. Any of the two tensors of a call may be null to
// convert only the other. Synchronous: outputs are complete on return.
class CudaExpertConverter {
 public:
  static CudaStatus Create(const CudaConverterOptions& options, std::unique_ptr<CudaExpertConverter>* out);
  ~CudaExpertConverter();
  CudaExpertConverter(const CudaExpertConverter&) = delete;
  CudaExpertConverter& operator=(const CudaExpertConverter&) = delete;

  // grouped -> HF, contiguous outputs: out_gate_up [E, 2I, H], out_down [E, H, I].
  CudaStatus ToHf(const void* G, const void* D, int64_t E, int64_t H, int64_t I, ElemType src, ElemType dst,
                  void* out_gate_up, void* out_down);
  // grouped -> HF, one output buffer per expert tensor (arrays of E pointers;
  // gate[e], up[e]: [I, H]; down[e]: [H, I]). An array may be null if its
  // input is null (gate and up go together).
  CudaStatus ToHfExperts(const void* G, const void* D, int64_t E, int64_t H, int64_t I, ElemType src,
                         ElemType dst, void* const* gate, void* const* up, void* const* down);
  // HF -> grouped, contiguous inputs gate_up [E, 2I, H] and down [E, H, I].
  CudaStatus FromHf(const void* gate_up, const void* down, int64_t E, int64_t H, int64_t I, ElemType src,
                    ElemType dst, void* out_G, void* out_D);
  // HF -> grouped from one buffer per expert tensor (arrays of E pointers).
  CudaStatus FromHfExperts(const void* const* gate, const void* const* up, const void* const* down, int64_t E,
                           int64_t H, int64_t I, ElemType src, ElemType dst, void* out_G, void* out_D);

  const CudaConvertStats& last_stats() const;
  const CudaConverterOptions& options() const;

 private:
  struct Impl;
  explicit CudaExpertConverter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Page-locked host memory, for inputs/outputs that skip the staging copy.
CudaStatus AllocPinned(size_t bytes, void** out);
void FreePinned(void* p);
// Pins existing host memory (cudaHostRegister; read_only for read-only
// mappings such as an mmapped input file). Unregister before unmapping.
CudaStatus RegisterHostMemory(void* p, size_t bytes, bool read_only);
CudaStatus UnregisterHostMemory(void* p);

}  // namespace cuda
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_CUDA_CUDA_CONVERT_H_
