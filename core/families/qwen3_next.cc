// Qwen3-Next (spec families.md §3): the mixin, E is num_experts, Qwen3's
// dense-layer rule; the HF shared expert is singular (".mlp.shared_expert.")
// where the native model has ".mlp.shared_experts.", and the Gated-DeltaNet
// A_log / dt_bias live under "_fp32_params." natively and are F32 both ways.
#include "core/families/per_expert_mixin.h"

namespace moe_adapter {

ModelFamilySpec Qwen3NextSpec() {
  ModelFamilySpec f = PerExpertMixinSpec("qwen3_next");
  f.model_types = {"qwen3_next"};
  f.architectures = {"Qwen3NextForCausalLM"};
  f.config = {{"num_experts"}, {"hidden_size"}, {"moe_intermediate_size"}, nullptr, DenseLayerRule::kSparseStep};
  // shared_expert_gate keeps its name: ".mlp.shared_expert." does not match it.
  f.renames = {
      {".mlp.shared_expert.", ".mlp.shared_experts."},
      {".linear_attn.A_log", ".linear_attn._fp32_params.A_log"},
      {".linear_attn.dt_bias", ".linear_attn._fp32_params.dt_bias"},
  };
  f.fp32_params = {".linear_attn.A_log", ".linear_attn.dt_bias"};
  return f;
}

}  // namespace moe_adapter
