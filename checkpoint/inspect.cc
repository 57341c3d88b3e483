#include "moe_adapter/inspect.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "core/checkpoint_reader.h"
#include "core/internal/status_macros.h"
#include "core/lora_layouts.h"
#include "core/peft_version.h"
#include "core/family_registry.h"

namespace moe_adapter {

absl::StatusOr<CheckpointInfo> InspectCheckpoint(const std::string& path, const std::optional<Geometry>& geometry,
                                                 const std::string& adapter_config_json) {
  ASSIGN_OR_RETURN(SafetensorsCheckpoint ckpt, SafetensorsCheckpoint::Open(path));
  const ModelFamily* family = &DefaultFamily();
  if (geometry && !geometry->config_family.empty()) {
    ASSIGN_OR_RETURN(family, FindFamily(geometry->config_family));
  }
  CheckpointInfo info;
  info.shards = static_cast<int64_t>(ckpt.shards().size());
  std::set<std::string> formats;
  std::set<int64_t> layers;
  int64_t max_expert = -1;
  std::vector<std::pair<KeyRole, Shape>> pw;
  for (const auto& shard : ckpt.shards()) {
    for (const TensorInfo& t : shard.tensors) {
      ++info.tensors;
      info.bytes += static_cast<uint64_t>(*NumElements(t.shape)) * DTypeSize(t.dtype);
      ++info.dtypes[std::string(DTypeName(t.dtype))];
      KeyParts parts;
      KeyRole role = KeyRole::kOther;
      absl::StatusOr<KeyRole> native = family->native().Classify(t.name, &parts);
      if (native.ok() && *native != KeyRole::kOther) {
        role = *native;
      } else {
        absl::StatusOr<KeyRole> hf = family->hf().Classify(t.name, &parts);
        if (hf.ok()) role = *hf;
      }
      if (role == KeyRole::kOther) continue;
      ++info.roles[std::string(KeyRoleName(role))];
      layers.insert(parts.layer);
      max_expert = std::max(max_expert, parts.expert);
      const Shape& s = t.shape;
      switch (role) {
        case KeyRole::kNativeGateUp:
          formats.insert("native-grouped");
          if (s.size() == 3) {
            info.num_experts = s[0];
            info.hidden_size = s[1];
            info.moe_intermediate_size = s[2] / 2;
          }
          break;
        case KeyRole::kNativeDown:
          formats.insert("native-grouped");
          break;
        case KeyRole::kHfGate:
        case KeyRole::kHfUp:
          formats.insert("hf-per-expert");
          if (s.size() == 2) {
            info.moe_intermediate_size = s[0];
            info.hidden_size = s[1];
          }
          break;
        case KeyRole::kHfDown:
          formats.insert("hf-per-expert");
          break;
        case KeyRole::kNativeLoraGateUpA:
          formats.insert("native-lora");
          if (s.size() == 3) {
            info.num_experts = s[0];
            info.hidden_size = s[1];
            info.lora_rank = s[2];
          }
          break;
        case KeyRole::kNativeLoraGateUpB:
        case KeyRole::kNativeLoraDownA:
        case KeyRole::kNativeLoraDownB:
          formats.insert("native-lora");
          break;
        case KeyRole::kHfLoraGateA:
          formats.insert("per-expert-lora");
          if (s.size() == 2) {
            info.lora_rank = s[0];
            info.hidden_size = s[1];
          }
          break;
        default:
          if (IsPerExpertLoraRole(role)) formats.insert("per-expert-lora");
          if (IsParamWrapperRole(role)) {
            formats.insert("paramwrapper-lora");
            pw.emplace_back(role, s);
          }
          break;
      }
    }
  }
  if (max_expert >= 0 && !info.num_experts) info.num_experts = max_expert + 1;
  info.expert_layers.assign(layers.begin(), layers.end());
  info.formats.assign(formats.begin(), formats.end());
  if (formats.count("per-expert-lora")) {
    info.lora_layout = "per-expert";
    info.lora_layout_source = "key names";
  }
  if (!pw.empty()) {
    std::string source;
    std::optional<LoraLayout> from_config;
    if (!adapter_config_json.empty()) {
      auto l = LayoutFromAdapterConfig(adapter_config_json, &source);
      if (l.ok()) from_config = *l;
    }
    if (from_config) {
      info.lora_layout = std::string(LoraLayoutName(*from_config));
      info.lora_layout_source = source;
    } else if (geometry) {
      bool all18 = true, all19 = true;
      for (const auto& [role, shape] : pw) {
        const ShapeFit fit = FitParamWrapperShape(family->spec().param_wrapper_rows, role, shape, *geometry);
        all18 = all18 && fit.v18.has_value();
        all19 = all19 && fit.v19.has_value();
        if (fit.v19) info.lora_rank = *fit.v19;
        else if (fit.v18) info.lora_rank = *fit.v18;
      }
      info.num_experts = geometry->num_experts;
      info.lora_layout = all18 && all19 ? "ambiguous (both peft-v0.18 and peft-v0.19 fit)"
                         : all19        ? "peft-v0.19"
                         : all18        ? "peft-v0.18"
                                        : "none fits the geometry";
      info.lora_layout_source = "tensor shapes";
    } else {
      info.lora_layout = "unknown (give --config to tell the layout by shape)";
    }
  }
  return info;
}

}  // namespace moe_adapter
