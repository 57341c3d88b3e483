// The Qwen3-MoE family (spec conversion.md §2, §3, §6): per-expert HF
// gate/up/down Linear weights, grouped with gate and up concatenated.
#include "core/model_family.h"

namespace moe_adapter {

ModelFamilySpec Qwen3MoeSpec() {
  constexpr GateUpOrder kCat = GateUpOrder::kConcatenated;
  constexpr int kShared = RolePair::kShared;
  ModelFamilySpec f;
  f.name = "qwen3_moe";
  f.model_types = {"qwen3_moe"};
  f.architectures = {"Qwen3MoeForCausalLM"};
  // Native grouped tensors carry no ".weight" suffix (spec §2); the
  // ParamWrapper gate_up wrapper nests inside the down wrapper, hence
  // "base_layer." (§6.1).
  f.keys = {
      // native (grouped)
      {KeyRole::kNativeGateUp, "{prefix}layers.{layer}.mlp.experts.gate_and_up_projs"},
      {KeyRole::kNativeDown, "{prefix}layers.{layer}.mlp.experts.down_projs"},
      {KeyRole::kNativeLoraGateUpA, "{prefix}layers.{layer}.mlp.experts.lora_gate_and_up_A"},
      {KeyRole::kNativeLoraGateUpB, "{prefix}layers.{layer}.mlp.experts.lora_gate_and_up_B"},
      {KeyRole::kNativeLoraDownA, "{prefix}layers.{layer}.mlp.experts.lora_down_A"},
      {KeyRole::kNativeLoraDownB, "{prefix}layers.{layer}.mlp.experts.lora_down_B"},
      // HF (per-expert and ParamWrapper)
      {KeyRole::kHfGate, "{prefix}layers.{layer}.mlp.experts.{expert}.gate_proj.weight"},
      {KeyRole::kHfUp, "{prefix}layers.{layer}.mlp.experts.{expert}.up_proj.weight"},
      {KeyRole::kHfDown, "{prefix}layers.{layer}.mlp.experts.{expert}.down_proj.weight"},
      {KeyRole::kHfLoraGateA, "{prefix}layers.{layer}.mlp.experts.{expert}.gate_proj.lora_A.weight"},
      {KeyRole::kHfLoraGateB, "{prefix}layers.{layer}.mlp.experts.{expert}.gate_proj.lora_B.weight"},
      {KeyRole::kHfLoraUpA, "{prefix}layers.{layer}.mlp.experts.{expert}.up_proj.lora_A.weight"},
      {KeyRole::kHfLoraUpB, "{prefix}layers.{layer}.mlp.experts.{expert}.up_proj.lora_B.weight"},
      {KeyRole::kHfLoraDownA, "{prefix}layers.{layer}.mlp.experts.{expert}.down_proj.lora_A.weight"},
      {KeyRole::kHfLoraDownB, "{prefix}layers.{layer}.mlp.experts.{expert}.down_proj.lora_B.weight"},
      {KeyRole::kPwGateUpLoraA, "{prefix}layers.{layer}.mlp.experts.base_layer.lora_A.weight"},
      {KeyRole::kPwGateUpLoraB, "{prefix}layers.{layer}.mlp.experts.base_layer.lora_B.weight"},
      {KeyRole::kPwDownLoraA, "{prefix}layers.{layer}.mlp.experts.lora_A.weight"},
      {KeyRole::kPwDownLoraB, "{prefix}layers.{layer}.mlp.experts.lora_B.weight"},
  };
  // Table order is output order: to_hf writes gate before up; from_hf
  // reports an incomplete LoRA group in this order.
  f.pairs = {
      {KeyRole::kHfGate, KeyRole::kNativeGateUp, 0, 2, true, kCat},
      {KeyRole::kHfUp, KeyRole::kNativeGateUp, 1, 2, true, kCat},
      {KeyRole::kHfDown, KeyRole::kNativeDown, 0, 1, true, kCat},
      {KeyRole::kHfLoraGateA, KeyRole::kNativeLoraGateUpA, kShared, 1, true, kCat},
      {KeyRole::kHfLoraUpA, KeyRole::kNativeLoraGateUpA, kShared, 1, true, kCat},
      {KeyRole::kHfLoraGateB, KeyRole::kNativeLoraGateUpB, 0, 2, true, kCat},
      {KeyRole::kHfLoraUpB, KeyRole::kNativeLoraGateUpB, 1, 2, true, kCat},
      {KeyRole::kHfLoraDownA, KeyRole::kNativeLoraDownA, 0, 1, true, kCat},
      {KeyRole::kHfLoraDownB, KeyRole::kNativeLoraDownB, 0, 1, true, kCat},
  };
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
