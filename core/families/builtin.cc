// The families every build knows. A new family: its file under
// core/families/, its spec function declared and listed here (the first
// entry is the default family), its .cc in core/CMakeLists.txt.
#include "core/family_registry.h"

namespace moe_adapter {

ModelFamilySpec Qwen3MoeSpec();  // core/families/qwen3_moe.cc

std::vector<ModelFamilySpec> BuiltinFamilySpecs() { return {Qwen3MoeSpec()}; }

}  // namespace moe_adapter
