#include "core/families/per_expert_mixin.h"

namespace moe_adapter {

ModelFamilySpec PerExpertMixinSpec(const char* name) {
  constexpr GateUpOrder kCat = GateUpOrder::kConcatenated;
  constexpr int kShared = RolePair::kShared;
  ModelFamilySpec f;
  f.name = name;
  // No ParamWrapper rows: the reference exports these families' grouped
  // LoRA per expert whatever v4_compatible says (§7). The ParamWrapper keys
  // are known all the same, so that from_hf refuses them by name instead of
  // passing them through.
  f.keys = {
      {KeyRole::kNativeGateUp, "{prefix}layers.{layer}.mlp.experts.gate_and_up_projs"},
      {KeyRole::kNativeDown, "{prefix}layers.{layer}.mlp.experts.down_projs"},
      {KeyRole::kNativeLoraGateUpA, "{prefix}layers.{layer}.mlp.experts.lora_gate_and_up_A"},
      {KeyRole::kNativeLoraGateUpB, "{prefix}layers.{layer}.mlp.experts.lora_gate_and_up_B"},
      {KeyRole::kNativeLoraDownA, "{prefix}layers.{layer}.mlp.experts.lora_down_A"},
      {KeyRole::kNativeLoraDownB, "{prefix}layers.{layer}.mlp.experts.lora_down_B"},
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
  // Table order is output order: gate before up (§6).
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
  f.peft = {{}, {"gate_proj", "up_proj", "down_proj"}};
  f.default_lora_layout = LoraLayout::kPerExpert;
  return f;
}

}  // namespace moe_adapter
