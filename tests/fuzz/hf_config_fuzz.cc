// Fuzzes config.json parsing (core/convert_options.cc): ParseHfConfig() on
// the input, then what every conversion does with an accepted geometry:
// ValidateOptions(), the layer plan (IsMoeLayer) and the whole-checkpoint
// layer check (CheckMoeLayerCoverage, as the CLI and the sessions run it).
#include <cstdint>
#include <string>
#include <vector>

#include "moe_adapter/convert_options.h"
#include "moe_adapter/converter.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace moe_adapter;
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<Geometry> g = ParseHfConfig(text);
  if (!g.ok()) {
    FUZZ_CHECK(g.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  FUZZ_CHECK(g->num_experts >= 0 && g->hidden_size >= 0 && g->moe_intermediate_size >= 0);
  FUZZ_CHECK(g->decoder_sparse_step >= 1);
  if (g->config_dtype) FUZZ_CHECK(IsExpertDType(*g->config_dtype));
  ConvertOptions options;
  options.geometry = *g;
  if (!ValidateOptions(options).ok()) return 0;
  for (int64_t l = -1; l < 8; ++l) (void)g->IsMoeLayer(l);
  // One layer's experts present: every other MoE layer of the plan is missing.
  const std::vector<std::string> hf = {"model.layers.0.mlp.experts.0.gate_proj.weight"};
  const std::vector<std::string> native = {"model.layers.0.mlp.experts.gate_and_up_projs"};
  (void)CheckMoeLayerCoverage(options, hf, /*native_keys=*/false);
  (void)CheckMoeLayerCoverage(options, native, /*native_keys=*/true);
  return 0;
}
