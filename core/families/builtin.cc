// The families every build knows. A new family: its file under
// core/families/, its spec function declared and listed here (the first
// entry is the default family), its .cc in core/CMakeLists.txt.
#include "core/family_registry.h"

namespace moe_adapter {

ModelFamilySpec Qwen3MoeSpec();    // core/families/qwen3_moe.cc
ModelFamilySpec Glm4MoeSpec();     // core/families/glm4_moe.cc
ModelFamilySpec DeepSeekV3Spec();  // core/families/deepseek_v3.cc
ModelFamilySpec Qwen3NextSpec();   // core/families/qwen3_next.cc
ModelFamilySpec GptOssSpec();      // core/families/gpt_oss.cc
ModelFamilySpec Qwen3VlMoeSpec();  // core/families/qwen3_vl_moe.cc

std::vector<ModelFamilySpec> BuiltinFamilySpecs() {
  return {Qwen3MoeSpec(), Glm4MoeSpec(), DeepSeekV3Spec(), Qwen3NextSpec(), GptOssSpec(), Qwen3VlMoeSpec()};
}

}  // namespace moe_adapter
