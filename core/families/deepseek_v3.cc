// DeepSeek-V3 (spec families.md §1, contract §11): the mixin, E is
// n_routed_experts, layers below first_k_dense_replace are dense, the MTP
// layer after the decoder layers converts like any layer, and FP8 block-scaled
// checkpoints are dequantised on from_hf (core/fp8_from_hf.h).
#include "core/families/per_expert_mixin.h"

namespace moe_adapter {

ModelFamilySpec DeepSeekV3Spec() {
  ModelFamilySpec f = PerExpertMixinSpec("deepseek_v3");
  f.model_types = {"deepseek_v3"};
  f.architectures = {"DeepseekV3ForCausalLM"};
  f.config = {{"n_routed_experts"}, {"hidden_size"}, {"moe_intermediate_size"}, nullptr,
              DenseLayerRule::kFirstKDense};
  f.config.mtp_layers = true;
  f.fp8_block_scales = true;
  return f;
}

}  // namespace moe_adapter
