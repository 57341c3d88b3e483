// The whole-checkpoint rule of spec §15.2: with a full config, base expert
// weights must be present for every MoE layer.
#include <set>

#include "absl/strings/str_cat.h"
#include "core/internal/status_macros.h"
#include "core/family_registry.h"
#include "core/session_common.h"
#include "moe_adapter/converter.h"

namespace moe_adapter {

absl::Status CheckMoeLayerCoverage(const ConvertOptions& options, const std::vector<std::string>& keys,
                                   bool native_keys) {
  const Geometry& g = options.geometry;
  if (!g.has_layer_plan()) return absl::OkStatus();
  ASSIGN_OR_RETURN(const ModelFamily* family, ResolveFamily(options));
  std::set<int64_t> layers;
  for (const std::string& key : keys) {
    KeyParts parts;
    absl::StatusOr<KeyRole> role = (native_keys ? family->native() : family->hf()).Classify(key, &parts);
    if (!role.ok()) continue;  // the session reports malformed keys with their context
    if (family->IsBaseRole(*role)) layers.insert(parts.layer);
  }
  if (layers.empty()) return absl::OkStatus();
  std::vector<int64_t> absent;
  for (int64_t l = 0; l < *g.num_hidden_layers; ++l) {
    if (g.IsMoeLayer(l) && !layers.count(l)) absent.push_back(l);
  }
  if (absent.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("config.json declares MoE layers with no expert weights in the input: layers ",
                                                 IdsText(absent), " (num_hidden_layers=", *g.num_hidden_layers, ")"));
}

}  // namespace moe_adapter
