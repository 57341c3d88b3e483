// GLM-4.5 MoE (spec families.md §2): the plain mixin. E is n_routed_experts,
// layers below first_k_dense_replace are dense, and the MTP layer that
// follows the decoder layers has its experts grouped like any layer. Shared
// experts, router, e_score_correction_bias and q/k/v biases pass through.
#include "core/families/per_expert_mixin.h"

namespace moe_adapter {

ModelFamilySpec Glm4MoeSpec() {
  ModelFamilySpec f = PerExpertMixinSpec("glm4_moe");
  f.model_types = {"glm4_moe"};
  f.architectures = {"Glm4MoeForCausalLM"};
  f.config = {{"n_routed_experts"}, {"hidden_size"}, {"moe_intermediate_size"}, nullptr,
              DenseLayerRule::kFirstKDense};
  f.config.mtp_layers = true;
  return f;
}

}  // namespace moe_adapter
