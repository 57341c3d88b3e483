// What the NeMo "mixin" families share (spec families.md §1-§3: DeepSeek-V3,
// GLM-4.5, Qwen3-Next): per-expert HF gate/up/down Linear weights under
// "{prefix}layers.{layer}.mlp.experts.{expert}.", grouped with gate and up
// concatenated, and expert LoRA only in the per-expert layout (they do not
// opt into PEFT's ParamWrapper, §7).
#ifndef MOE_ADAPTER_CORE_FAMILIES_PER_EXPERT_MIXIN_H_
#define MOE_ADAPTER_CORE_FAMILIES_PER_EXPERT_MIXIN_H_

#include "core/model_family.h"

namespace moe_adapter {

// PerExpertMixinSpec(): a family named `name` with the mixin's keys, pairs,
// PEFT targets and LoRA layout; the caller sets what differs (config
// fields, model types, renames, FP8).
ModelFamilySpec PerExpertMixinSpec(const char* name);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_FAMILIES_PER_EXPERT_MIXIN_H_
