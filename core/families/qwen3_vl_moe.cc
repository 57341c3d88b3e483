// The Qwen3-VL-MoE family (spec families.md §5, §11): the HF checkpoint is
// already grouped in the native orientation (gate/up concatenated), so
// converting renames the two expert stacks; from_hf also EP-slices and casts
// them. The text model's fields are under text_config, the dtype at the top.
#include "core/model_family.h"

namespace moe_adapter {

ModelFamilySpec Qwen3VlMoeSpec() {
  ModelFamilySpec f;
  f.name = "qwen3_vl_moe";
  f.model_types = {"qwen3_vl_moe", "qwen3_vl_moe_text"};
  f.architectures = {"Qwen3VLMoeForConditionalGeneration"};
  f.hf_grouped = true;
  f.grouped = {
      {"{prefix}layers.{layer}.mlp.experts.gate_up_proj", "{prefix}layers.{layer}.mlp.experts.gate_and_up_projs",
       GroupedShape::kGateUp, KeyRole::kHfGroupedGateUp, KeyRole::kNativeGateUp},
      {"{prefix}layers.{layer}.mlp.experts.down_proj", "{prefix}layers.{layer}.mlp.experts.down_projs",
       GroupedShape::kDown, KeyRole::kHfGroupedDown, KeyRole::kNativeDown},
  };
  f.config = {{"num_experts"},
              {"hidden_size"},
              {"moe_intermediate_size", "intermediate_size"},
              "text_config",
              DenseLayerRule::kSparseStep,
              /*dtype_at_top=*/true};
  // No expert LoRA in the reference: grouped LoRA keys pass through.
  f.default_lora_layout = LoraLayout::kPerExpert;
  return f;
}

}  // namespace moe_adapter
