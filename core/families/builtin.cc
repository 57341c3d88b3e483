// The families every build knows. A new family: its file under
// core/families/, its spec function declared and listed here (the first
// entry is the default family), its .cc in core/CMakeLists.txt.
#include "core/family_registry.h"

namespace moe_adapter {

ModelFamilySpec Qwen3MoeSpec();    // core/families/qwen3_moe.cc
ModelFamilySpec GptOssSpec();      // core/families/gpt_oss.cc
ModelFamilySpec Qwen3VlMoeSpec();  // core/families/qwen3_vl_moe.cc

std::vector<ModelFamilySpec> BuiltinFamilySpecs() { return {Qwen3MoeSpec(), GptOssSpec(), Qwen3VlMoeSpec()}; }

}  // namespace moe_adapter
