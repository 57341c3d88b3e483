// The GPT-OSS family (spec families.md §4, §11): the HF checkpoint is already
// grouped, so converting renames keys by their leaf; no tensor is transposed
// or split. Gate/up are interleaved (column 2j gate j, 2j+1 up j) on both
// sides and the renames keep them so. MXFP4 `_blocks`/`_scales` pairs of the
// expert weights are decoded by from_hf.
#include "core/model_family.h"

namespace moe_adapter {

ModelFamilySpec GptOssSpec() {
  ModelFamilySpec f;
  f.name = "gpt_oss";
  f.model_types = {"gpt_oss"};
  f.architectures = {"GptOssForCausalLM"};
  f.hf_grouped = true;
  f.mxfp4 = true;
  f.grouped = {
      {"{prefix}layers.{layer}.mlp.router.weight", "{prefix}layers.{layer}.mlp.gate.weight", GroupedShape::kRenameOnly},
      {"{prefix}layers.{layer}.mlp.router.bias", "{prefix}layers.{layer}.mlp.gate.bias", GroupedShape::kRenameOnly},
      {"{prefix}layers.{layer}.mlp.experts.gate_up_proj", "{prefix}layers.{layer}.mlp.experts.gate_and_up_projs",
       GroupedShape::kGateUp, KeyRole::kHfGroupedGateUp, KeyRole::kNativeGateUp},
      {"{prefix}layers.{layer}.mlp.experts.down_proj", "{prefix}layers.{layer}.mlp.experts.down_projs",
       GroupedShape::kDown, KeyRole::kHfGroupedDown, KeyRole::kNativeDown},
      // The biases keep their names; they are expert stacks all the same.
      {"{prefix}layers.{layer}.mlp.experts.gate_up_proj_bias", "{prefix}layers.{layer}.mlp.experts.gate_up_proj_bias",
       GroupedShape::kGateUpBias},
      {"{prefix}layers.{layer}.mlp.experts.down_proj_bias", "{prefix}layers.{layer}.mlp.experts.down_proj_bias",
       GroupedShape::kDownBias},
  };
  // intermediate_size is the expert width; there are no dense layers.
  f.config = {{"num_local_experts"}, {"hidden_size"}, {"intermediate_size"}, nullptr, DenseLayerRule::kNone};
  // No expert LoRA in the reference: grouped LoRA keys pass through.
  f.default_lora_layout = LoraLayout::kPerExpert;
  return f;
}

}  // namespace moe_adapter
