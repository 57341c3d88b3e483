// Expert LoRA layouts (spec §6, §13.1, §15.3). The native grouped LoRA tensors
//   A_gu [E, H, r]   B_gu [E, r, 2I]   A_dn [E, I, r]   B_dn [E, r, H]
// map to PEFT's ParamWrapper tensors (2-D, A rows expert-major e*r+k, B columns
// rank-major k*E+e) by pure permutations, which differ between PEFT <= 0.18
// and >= 0.19.1. Each (layout, ParamWrapper key) is one row of a table.
#ifndef MOE_ADAPTER_CORE_LORA_LAYOUTS_H_
#define MOE_ADAPTER_CORE_LORA_LAYOUTS_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "core/key_mapping.h"
#include "moe_adapter/convert_options.h"
#include "moe_adapter/tensor.h"

namespace moe_adapter {

// IsParamWrapperRole(), IsNativeLoraRole(), IsPerExpertLoraRole().
bool IsParamWrapperRole(KeyRole role);
bool IsNativeLoraRole(KeyRole role);
bool IsPerExpertLoraRole(KeyRole role);

// NativeLoraShape(): the expected native shape of `role` for rank r.
Shape NativeLoraShape(KeyRole role, const Geometry& g, int64_t r);

// ParamWrapperFit(): the rank r when `shape` is what `layout` writes for
// `pw_role` under geometry `g`; nullopt when it is not.
std::optional<int64_t> ParamWrapperFit(KeyRole pw_role, LoraLayout layout, const Shape& shape,
                                       const Geometry& g);

// ParamWrapperExpectation(): "[r*E, H]" style text for error messages.
std::string ParamWrapperExpectation(KeyRole pw_role, LoraLayout layout, const Geometry& g);

// NativeRoleForParamWrapper(): which native tensor a ParamWrapper key holds.
KeyRole NativeRoleForParamWrapper(KeyRole pw_role, LoraLayout layout);
// ParamWrapperRoleForNative(): the inverse.
KeyRole ParamWrapperRoleForNative(KeyRole native_role, LoraLayout layout);

// ParamWrapperToNative(): the native tensor of one ParamWrapper tensor. The
// shape must fit (ParamWrapperFit); errors name the key and both shapes.
absl::StatusOr<Tensor> ParamWrapperToNative(absl::string_view key, KeyRole pw_role,
                                            LoraLayout layout, const Tensor& hf,
                                            const Geometry& g);

// NativeToParamWrapper(): the ParamWrapper tensor of one native LoRA tensor
// whose shape was validated (NativeLoraShape).
Tensor NativeToParamWrapper(KeyRole native_role, LoraLayout layout, const Tensor& native,
                            const Geometry& g);

// PerExpertLoraShape(): expected shape of a per-expert LoRA tensor.
Shape PerExpertLoraShape(KeyRole role, const Geometry& g, int64_t r);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_LORA_LAYOUTS_H_
