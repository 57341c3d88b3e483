// The batched expert conversions a device other than the CPU performs. Shapes
// follow spec §4: G [n, H, 2I], D [n, I, H]; gate/up [I, H], down [H, I].
#ifndef MOE_ADAPTER_CORE_ACCELERATOR_H_
#define MOE_ADAPTER_CORE_ACCELERATOR_H_

#include <cstdint>

#include "absl/status/status.h"
#include "moe_adapter/device.h"
#include "moe_adapter/dtype.h"

namespace moe_adapter {

class ExpertAccelerator {
 public:
  virtual ~ExpertAccelerator() = default;
  // G [n, H, 2I] -> gate[e], up[e] (each [I, H]); null G skips gate/up, null D skips down.
  virtual absl::Status ToHf(const void* G, const void* D, int64_t n, int64_t H, int64_t I, DType src, DType dst,
                            void* const* gate, void* const* up, void* const* down) = 0;
  // gate[e], up[e], down[e] -> G [n, H, 2I], D [n, I, H]; null outputs are skipped.
  virtual absl::Status FromHf(const void* const* gate, const void* const* up, const void* const* down, int64_t n,
                              int64_t H, int64_t I, DType src, DType dst, void* G, void* D) = 0;
};

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_ACCELERATOR_H_
