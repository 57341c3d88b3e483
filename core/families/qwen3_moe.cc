// The Qwen3-MoE family (spec conversion.md §2, §3, §6): the per-expert mixin
// layout (core/families/per_expert_mixin.h), and the one mixin family whose
// expert LoRA is also offered in PEFT's ParamWrapper layouts (§6.1).
#include "core/families/per_expert_mixin.h"

namespace moe_adapter {

ModelFamilySpec Qwen3MoeSpec() {
  ModelFamilySpec f = PerExpertMixinSpec("qwen3_moe");
  f.model_types = {"qwen3_moe"};
  f.architectures = {"Qwen3MoeForCausalLM"};
  // transformers >= 5 spells E num_local_experts; multimodal wrappers nest
  // the text model's fields under text_config.
  f.config = {{"num_experts", "num_local_experts"},
              {"hidden_size"},
              {"moe_intermediate_size"},
              "text_config",
              DenseLayerRule::kSparseStep};
  f.peft = {{"mlp.experts.gate_up_proj", "mlp.experts.down_proj"}, {"gate_proj", "up_proj", "down_proj"}};
  f.param_wrapper_rows = PeftParamWrapperRows();
  f.default_lora_layout = LoraLayout::kPeftV019;
  return f;
}

}  // namespace moe_adapter
