// What happens to the keys a family does not convert (spec families.md §3):
// they pass through, except where the family renames them (a substring, the
// first matching rule only, as the reference does) or forces them to F32
// (Qwen3-Next's Gated-DeltaNet A_log / dt_bias, upcast in both directions).
// A pass-through that changes neither name nor dtype is streamed unchanged;
// one that does is converted whole (these tensors are small).
#ifndef MOE_ADAPTER_CORE_FAMILY_RENAMES_H_
#define MOE_ADAPTER_CORE_FAMILY_RENAMES_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/model_family.h"
#include "moe_adapter/tensor.h"

namespace moe_adapter {

// PassThroughOutput: the output of a pass-through input.
struct PassThroughOutput {
  std::string key;      // the output key (the input's unless renamed)
  bool upcast = false;  // written as F32
  // Rewrites(): the output differs from the input, so it cannot be streamed
  // through byte for byte.
  bool Rewrites(const TensorInfo& in) const { return key != in.name || (upcast && in.dtype != DType::kF32); }
};

// PassThroughOutputFor(): what input `in` (a key of no family role) becomes
// in direction to_hf (native -> HF) or from_hf. INVALID_ARGUMENT naming the
// key when it must be upcast but is not a float tensor (F32, BF16, F16).
absl::StatusOr<PassThroughOutput> PassThroughOutputFor(const ModelFamily& family, const TensorInfo& in, bool to_hf);

// RewritePassThrough(): `in` under out.key, cast to F32 when out.upcast (the
// exact widening ATen's .to(float32) does).
NamedTensor RewritePassThrough(const PassThroughOutput& out, const Tensor& in);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_FAMILY_RENAMES_H_
