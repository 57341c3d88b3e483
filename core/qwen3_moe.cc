#include "core/qwen3_moe.h"

#include <vector>

namespace moe_adapter {
namespace {

// Native grouped tensors carry no ".weight" suffix (spec §2); the ParamWrapper
// gate_up wrapper nests inside the down wrapper, hence "base_layer." (§6.1).
const std::vector<KeyRow>& Rows() {
  static const std::vector<KeyRow> rows = {
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
  return rows;
}

std::vector<KeyRow> Select(bool native) {
  std::vector<KeyRow> out;
  for (const KeyRow& row : Rows()) {
    if ((row.role < KeyRole::kHfGate) == native) out.push_back(row);
  }
  return out;
}

}  // namespace

const ModelFamily& Qwen3MoeFamily() {
  // Leaked on purpose: tables live for the process, no destruction-order issues.
  static const ModelFamily family{"qwen3_moe", new KeyTable(Select(true)),
                                  new KeyTable(Select(false)), new KeyTable(Rows())};
  return family;
}

}  // namespace moe_adapter
