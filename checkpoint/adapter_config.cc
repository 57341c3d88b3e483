#include "checkpoint/adapter_config.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/family_registry.h"
#include "core/json_limits.h"
#include "core/peft_version.h"
#include "nlohmann/json.hpp"

namespace moe_adapter {
namespace {

using json = nlohmann::json;

void AddToList(json& cfg, const char* field, const std::vector<const char*>& names) {
  if (!cfg.contains(field) || !cfg[field].is_array()) {
    // PEFT also accepts a single string (a regex); keep it and add a list only when absent.
    if (cfg.contains(field) && cfg[field].is_string()) return;
    cfg[field] = json::array();
  }
  for (const char* n : names) {
    if (std::find(cfg[field].begin(), cfg[field].end(), n) == cfg[field].end()) cfg[field].push_back(n);
  }
}

}  // namespace

absl::StatusOr<std::string> AdapterConfigForHf(const std::string& input_config, LoraLayout layout,
                                               std::optional<int64_t> rank, std::optional<double> lora_alpha) {
  return AdapterConfigForHf(input_config, layout, rank, lora_alpha, DefaultFamily());
}

absl::StatusOr<std::string> AdapterConfigForHf(const std::string& input_config, LoraLayout layout,
                                               std::optional<int64_t> rank, std::optional<double> lora_alpha,
                                               const ModelFamily& family) {
  const PeftTargets& targets = family.spec().peft;
  json cfg;
  if (!input_config.empty()) {
    // What this writes must read back as `layout`: an input whose
    // peft_version is not a version would be kept and refused on reading.
    std::string source;
    absl::StatusOr<std::optional<LoraLayout>> readable = LayoutFromAdapterConfig(input_config, &source);
    if (!readable.ok()) return readable.status();
    absl::StatusOr<json> parsed = ParseJson(input_config, "adapter_config.json", kMaxConfigJsonBytes);
    if (!parsed.ok()) return parsed.status();
    if (!parsed->is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat("adapter_config.json: not a JSON object, found ", JsonTypeName(*parsed)));
    }
    cfg = std::move(*parsed);
    if (rank && cfg.contains("r") && cfg["r"].is_number_integer() && cfg["r"].get<int64_t>() != *rank &&
        (!cfg.contains("rank_pattern") || cfg["rank_pattern"].empty())) {
      return absl::InvalidArgumentError(absl::StrCat("adapter_config.json says r=", cfg["r"].get<int64_t>(),
                                                     " but the expert LoRA tensors have rank ", *rank));
    }
    if (lora_alpha) cfg["lora_alpha"] = *lora_alpha;
  } else {
    if (!lora_alpha) {
      return absl::InvalidArgumentError(
          "the input adapter has no adapter_config.json: pass --lora-alpha (the LoRA scale is alpha/r and a "
          "wrong one would load silently), or --adapter-config");
    }
    cfg = {{"peft_type", "LORA"}, {"task_type", nullptr}, {"base_model_name_or_path", nullptr},
           {"bias", "none"},      {"fan_in_fan_out", false}, {"inference_mode", true},
           {"lora_dropout", 0.0}, {"use_dora", false},       {"use_rslora", false},
           {"target_modules", json::array()}};
    cfg["lora_alpha"] = *lora_alpha;
  }
  if (rank && !cfg.contains("r")) cfg["r"] = *rank;
  std::string version = cfg.contains("peft_version") && cfg["peft_version"].is_string()
                            ? cfg["peft_version"].get<std::string>()
                            : std::string();
  switch (layout) {
    case LoraLayout::kPeftV019: {
      AddToList(cfg, "target_parameters", targets.param_wrapper);
      auto v = ParsePeftVersion(version);
      if (!v || *v < std::array<int, 3>{0, 19, 1}) cfg["peft_version"] = "0.19.1";
      break;
    }
    case LoraLayout::kPeftV018:
      AddToList(cfg, "target_parameters", targets.param_wrapper);
      cfg["peft_version"] = "0.18.1";
      break;
    case LoraLayout::kPerExpert:
      AddToList(cfg, "target_modules", targets.per_expert);
      // The per-expert split has no ParamWrapper targets.
      if (cfg.contains("target_parameters") && cfg["target_parameters"].is_array()) {
        json kept = json::array();
        for (const json& t : cfg["target_parameters"]) {
          const bool ours = t.is_string() && std::find(targets.param_wrapper.begin(), targets.param_wrapper.end(),
                                                       t.get<std::string>()) != targets.param_wrapper.end();
          if (!ours) kept.push_back(t);
        }
        cfg["target_parameters"] = kept.empty() ? json(nullptr) : kept;
      }
      break;
  }
  return cfg.dump(2) + "\n";
}

}  // namespace moe_adapter
