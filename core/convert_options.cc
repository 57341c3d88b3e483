#include "moe_adapter/convert_options.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/checked_math.h"
#include "core/family_registry.h"
#include "core/internal/status_macros.h"
#include "core/safetensors_format.h"
#include "core/json_limits.h"
#include "core/quote.h"
#include "nlohmann/json.hpp"
#include "re2/re2.h"

namespace moe_adapter {
namespace {

using json = nlohmann::json;

// Reads an integer field; absent -> nullopt; present but not a non-negative
// integer -> error naming the field.
absl::StatusOr<std::optional<int64_t>> IntField(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return std::optional<int64_t>();
  if (!it->is_number_integer() || it->get<int64_t>() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.json: field \"", name, "\" must be a non-negative integer, got ", DescribeJson(*it)));
  }
  return std::optional<int64_t>(it->get<int64_t>());
}

// RequiredInt(): the first of `names` present in `j`; an error citing them
// all when none is.
absl::StatusOr<int64_t> RequiredInt(const json& j, const std::vector<const char*>& names) {
  for (const char* name : names) {
    ASSIGN_OR_RETURN(std::optional<int64_t> v, IntField(j, name));
    if (v) return *v;
  }
  std::string alts;
  for (size_t i = 1; i < names.size(); ++i) absl::StrAppend(&alts, i == 1 ? " (or \"" : " or \"", names[i], "\"");
  if (names.size() > 1) alts += ")";
  return absl::InvalidArgumentError(absl::StrCat("config.json: missing required field \"", names.front(), "\"", alts));
}

// SparseStepLayers(): Qwen3's rule, decoder_sparse_step and mlp_only_layers.
absl::Status SparseStepLayers(const json& cfg, Geometry& g) {
  ASSIGN_OR_RETURN(std::optional<int64_t> step, IntField(cfg, "decoder_sparse_step"));
  if (step) {
    if (*step == 0) {
      return absl::InvalidArgumentError("config.json: \"decoder_sparse_step\" must be >= 1, got 0");
    }
    g.decoder_sparse_step = *step;
  }
  auto mo = cfg.find("mlp_only_layers");
  if (mo != cfg.end() && !mo->is_null()) {
    if (!mo->is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.json: \"mlp_only_layers\" must be a list of integers, got ", DescribeJson(*mo)));
    }
    for (const json& v : *mo) {
      if (!v.is_number_integer()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "config.json: \"mlp_only_layers\" must hold integers, got ", DescribeJson(v)));
      }
      g.mlp_only_layers.push_back(v.get<int64_t>());
    }
  }
  return absl::OkStatus();
}

// FirstKDenseLayers(): DeepSeek's rule, layers below first_k_dense_replace
// are dense: the same plan as mlp_only_layers = [0, k), so the geometry (and
// the wire) carry it unchanged.
absl::Status FirstKDenseLayers(const json& cfg, Geometry& g) {
  ASSIGN_OR_RETURN(std::optional<int64_t> k, IntField(cfg, "first_k_dense_replace"));
  if (!k) return absl::OkStatus();
  // Bounded before the list is built: without num_hidden_layers, by the
  // layer count ValidateOptions() allows.
  const int64_t layers = g.num_hidden_layers.value_or(int64_t{1} << 16);
  if (*k > layers) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: \"first_k_dense_replace\" ", *k, " exceeds ",
                                                   g.num_hidden_layers ? "num_hidden_layers " : "the layer limit ",
                                                   layers));
  }
  for (int64_t l = 0; l < *k; ++l) g.mlp_only_layers.push_back(l);
  return absl::OkStatus();
}

// ParseWith(): `root` read through `family`'s config field table.
absl::StatusOr<Geometry> ParseWith(const json& root, const ModelFamily& family) {
  const ConfigFields& fields = family.spec().config;
  const json* cfg = &root;
  if (fields.nested) {
    auto nested = root.find(fields.nested);
    const bool top_has_h = std::any_of(fields.hidden_size.begin(), fields.hidden_size.end(),
                                       [&](const char* name) { return root.contains(name); });
    if (!top_has_h && nested != root.end() && nested->is_object()) cfg = &*nested;
  }
  Geometry g;
  g.config_family = family.name();
  ASSIGN_OR_RETURN(g.num_experts, RequiredInt(*cfg, fields.num_experts));
  ASSIGN_OR_RETURN(g.hidden_size, RequiredInt(*cfg, fields.hidden_size));
  ASSIGN_OR_RETURN(g.moe_intermediate_size, RequiredInt(*cfg, fields.intermediate_size));
  ASSIGN_OR_RETURN(g.num_hidden_layers, IntField(*cfg, "num_hidden_layers"));
  switch (fields.dense_layers) {
    case DenseLayerRule::kNone:
      break;
    case DenseLayerRule::kSparseStep:
      RETURN_IF_ERROR(SparseStepLayers(*cfg, g));
      break;
    case DenseLayerRule::kFirstKDense:
      RETURN_IF_ERROR(FirstKDenseLayers(*cfg, g));
      break;
  }
  if (fields.mtp_layers && g.num_hidden_layers) {
    // GLM-4.5 ships its MTP layer even where the config says 0 of them.
    ASSIGN_OR_RETURN(std::optional<int64_t> mtp, IntField(*cfg, "num_nextn_predict_layers"));
    g.mtp_layers = std::max<int64_t>(1, mtp.value_or(1));
  }
  const json* dtype_level = fields.dtype_at_top ? &root : cfg;
  for (const char* field : {"dtype", "torch_dtype"}) {
    auto it = dtype_level->find(field);
    if (it == dtype_level->end() || !it->is_string()) continue;
    absl::StatusOr<DType> dt = ParseTorchDType(it->get<std::string>());
    if (dt.ok()) {
      g.config_dtype = *dt;
      break;
    }
  }
  return g;
}

}  // namespace

bool Geometry::IsMoeLayer(int64_t l) const {
  if (!has_layer_plan()) return true;
  if (l >= *num_hidden_layers && l - *num_hidden_layers < mtp_layers) return num_experts > 0;
  if (l < 0 || l >= *num_hidden_layers || num_experts <= 0) return false;
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), l) != mlp_only_layers.end()) {
    return false;
  }
  return decoder_sparse_step > 0 && (l + 1) % decoder_sparse_step == 0;
}

absl::StatusOr<Geometry> ParseHfConfig(absl::string_view config_json) { return ParseHfConfig(config_json, ""); }

absl::StatusOr<Geometry> ParseHfConfig(absl::string_view config_json, absl::string_view family) {
  ASSIGN_OR_RETURN(json root, ParseJson(config_json, "config.json", kMaxConfigJsonBytes));
  if (!root.is_object()) return absl::InvalidArgumentError("config.json: not a JSON object");
  const ModelFamily* f = nullptr;
  if (!family.empty()) {
    ASSIGN_OR_RETURN(f, FindFamily(family));
  } else {
    f = FamilyForConfig(root);
  }
  return ParseWith(root, f ? *f : DefaultFamily());
}

absl::StatusOr<LoraLayout> ParseLoraLayout(absl::string_view name) {
  if (name == "peft-v0.19") return LoraLayout::kPeftV019;
  if (name == "peft-v0.18") return LoraLayout::kPeftV018;
  if (name == "per-expert") return LoraLayout::kPerExpert;
  return absl::InvalidArgumentError(absl::StrCat("unknown LoRA layout ", Quote(name),
                                                 ": expected peft-v0.19, peft-v0.18 or per-expert"));
}

absl::string_view LoraLayoutName(LoraLayout layout) {
  switch (layout) {
    case LoraLayout::kPeftV019:
      return "peft-v0.19";
    case LoraLayout::kPeftV018:
      return "peft-v0.18";
    case LoraLayout::kPerExpert:
      return "per-expert";
  }
  return "?";
}

absl::Status ValidateOptions(const ConvertOptions& o) {
  ASSIGN_OR_RETURN(const ModelFamily* family, ResolveFamily(o));
  if (o.lora_layout && *o.lora_layout != LoraLayout::kPerExpert && family->spec().param_wrapper_rows.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("LoRA layout ", LoraLayoutName(*o.lora_layout), ": model family ",
                                                   Quote(family->name()), " offers no ParamWrapper LoRA; use per-expert"));
  }
  const Geometry& g = o.geometry;
  // Bounds keep every derived byte count far from int64 overflow.
  constexpr int64_t kMaxDim = int64_t{1} << 24;
  struct {
    const char* name;
    int64_t v;
  } dims[] = {{"num_experts", g.num_experts},
              {"hidden_size", g.hidden_size},
              {"moe_intermediate_size", g.moe_intermediate_size}};
  for (const auto& d : dims) {
    if (d.v <= 0 || d.v > kMaxDim) {
      return absl::InvalidArgumentError(absl::StrCat("geometry: ", d.name, " must be in [1, ",
                                                     kMaxDim, "], got ", d.v));
    }
  }
  // Each dim alone fits, but a grouped tensor [E, H, 2I] of F32 must too:
  // 2^24 of each would make its byte count wrap to a small number.
  if (!checked::Mul<int64_t>({g.num_experts, g.hidden_size, 2, g.moe_intermediate_size, 4})) {
    return absl::InvalidArgumentError(absl::StrCat(
        "geometry: a grouped expert tensor [E=", g.num_experts, ", H=", g.hidden_size, ", 2I=",
        2 * g.moe_intermediate_size, "] of float32 has more bytes than int64 can count"));
  }
  // Layer plans are walked layer by layer (coverage checks, messages): real
  // models have at most a few hundred layers, and 2^16 keeps a walk that a
  // client asks for short.
  constexpr int64_t kMaxLayers = int64_t{1} << 16;
  if (g.num_hidden_layers && (*g.num_hidden_layers < 0 || *g.num_hidden_layers > kMaxLayers)) {
    return absl::InvalidArgumentError(absl::StrCat("geometry: num_hidden_layers must be in [0, ", kMaxLayers,
                                                   "], got ", *g.num_hidden_layers));
  }
  if (g.mtp_layers < 0 || g.mtp_layers > kMaxLayers) {
    return absl::InvalidArgumentError(
        absl::StrCat("geometry: mtp_layers (num_nextn_predict_layers) must be in [0, ", kMaxLayers, "], got ",
                     g.mtp_layers));
  }
  if (o.ep_size < 1 || o.ep_size > 65536) {
    return absl::InvalidArgumentError(
        absl::StrCat("ep_size must be in [1, 65536], got ", o.ep_size));
  }
  if (o.ep_rank < 0 || o.ep_rank >= o.ep_size) {
    return absl::InvalidArgumentError(absl::StrCat("ep_rank must be in [0, ep_size=", o.ep_size,
                                                   "), got ", o.ep_rank));
  }
  if (o.dtype && !IsExpertDType(*o.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("dtype must be bfloat16, float16 or float32, got ",
                                                   DTypeName(*o.dtype)));
  }
  if (!o.exclude_key_regex.empty()) {
    RE2::Options ro;
    ro.set_log_errors(false);
    ro.set_max_mem(8 << 20);
    RE2 re(o.exclude_key_regex, ro);
    if (!re.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("exclude_key_regex ", Quote(o.exclude_key_regex),
                       " does not compile (RE2 syntax, no backreferences or lookaround): ",
                       Printable(re.error())));
    }
  }
  if (!o.adapter_config_json.empty()) {
    ASSIGN_OR_RETURN(json j,
                     ParseJson(o.adapter_config_json, "adapter_config.json", kMaxConfigJsonBytes));
    if (!j.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat("adapter_config.json: not a JSON object, found ", JsonTypeName(j)));
    }
  }
  return absl::OkStatus();
}

Geometry ApplyGeometrySizes(Geometry from_config, const GeometrySizes& sizes) {
  if (sizes.num_experts) from_config.num_experts = *sizes.num_experts;
  if (sizes.hidden_size) from_config.hidden_size = *sizes.hidden_size;
  if (sizes.moe_intermediate_size) from_config.moe_intermediate_size = *sizes.moe_intermediate_size;
  return from_config;
}

}  // namespace moe_adapter
