// File: moe_adapter/convert_options.h
//
// Everything one conversion needs to know, carried by every request (the
// conversion is stateless: nothing carries over between requests, spec §15.1).
//
// Example:
//   moe_adapter::ConvertOptions opts;
//   opts.geometry = *moe_adapter::ParseHfConfig(config_json_text);
//   opts.lora_layout = moe_adapter::LoraLayout::kPeftV019;
//   opts.exclude_key_regex = R"(.*_extra_state.*)";
#ifndef MOE_ADAPTER_CONVERT_OPTIONS_H_
#define MOE_ADAPTER_CONVERT_OPTIONS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "moe_adapter/dtype.h"

namespace moe_adapter {

// Geometry: the model dimensions a conversion validates against.
// E = num_experts, H = hidden_size, I = moe_intermediate_size (spec §1).
struct Geometry {
  int64_t num_experts = 0;
  int64_t hidden_size = 0;
  int64_t moe_intermediate_size = 0;

  // Known only when a full config.json was given: which layers are MoE layers.
  // A layer L is MoE when L is not in mlp_only_layers, num_experts > 0 and
  // (L + 1) % decoder_sparse_step == 0 (spec §2).
  std::optional<int64_t> num_hidden_layers;
  std::vector<int64_t> mlp_only_layers;
  int64_t decoder_sparse_step = 1;
  // Multi-token-prediction layers after the decoder layers (GLM-4.5,
  // DeepSeek-V3): layers num_hidden_layers .. num_hidden_layers + mtp_layers - 1
  // hold routed experts too, but no check requires them (families.md §2).
  int64_t mtp_layers = 0;
  // config.json's `dtype` (transformers 5) or `torch_dtype`, when it names an
  // expert dtype: the default target dtype of from_hf.
  std::optional<DType> config_dtype;
  // The model family config.json names (model_type / architectures), or the
  // default family when it names none known: set by ParseHfConfig(), empty
  // when the geometry came from numbers (see ConvertOptions::family).
  std::string config_family;

  bool has_layer_plan() const { return num_hidden_layers.has_value(); }
  // IsMoeLayer(): true when layer `l` has routed experts (always true without a
  // layer plan).
  bool IsMoeLayer(int64_t l) const;
};

// ParseHfConfig(): the geometry of a Hugging Face config.json body, read
// through the field names of its model family: the one `family` names, or
// (empty) the one the config names by model_type / architectures, else the
// default family "qwen3_moe". For Qwen3-MoE: `num_experts` or
// `num_local_experts` (transformers >= 5), and a nested `text_config`
// (multimodal wrappers). Errors name the missing or ill-typed field, or the
// unknown family.
absl::StatusOr<Geometry> ParseHfConfig(absl::string_view config_json);
absl::StatusOr<Geometry> ParseHfConfig(absl::string_view config_json, absl::string_view family);

// LoraLayout: how expert LoRA tensors are laid out on the HF side (spec §15.3).
enum class LoraLayout {
  kPeftV019,   // ParamWrapper layout loaded by PEFT >= 0.19.1 (to_hf default)
  kPeftV018,   // ParamWrapper layout of PEFT <= 0.18 and the reference snapshot
  kPerExpert,  // legacy per-expert split (reference v4_compatible=True)
};

// ParseLoraLayout(): "peft-v0.19" | "peft-v0.18" | "per-expert".
absl::StatusOr<LoraLayout> ParseLoraLayout(absl::string_view name);
absl::string_view LoraLayoutName(LoraLayout layout);

// ConvertOptions: one request's options. Defaults are the contract's defaults.
struct ConvertOptions {
  Geometry geometry;

  // The model family (key names, config fields, LoRA targets): empty = the
  // one config.json named (geometry.config_family), else the default
  // "qwen3_moe". ValidateOptions() refuses a name no family has.
  std::string family;

  // to_hf: the layout to write (default peft-v0.19). from_hf: how ParamWrapper
  // keys are read; unset = from adapter_config_json's peft_version, else from
  // the shapes, else an error asking for it.
  std::optional<LoraLayout> lora_layout;

  // Target dtype of the base expert tensors. from_hf: default is
  // geometry.config_dtype when set, else the input dtype (see ResolvedDType in
  // the converter). to_hf: no cast unless set.
  std::optional<DType> dtype;

  // to_hf only: output keys that this regex matches at their start (Python
  // re.match semantics, RE2 syntax) are dropped. Empty = keep everything.
  std::string exclude_key_regex;

  // Expert parallelism (spec §7, §15.4): this rank converts only its experts.
  int64_t ep_rank = 0;
  int64_t ep_size = 1;

  // The PEFT adapter_config.json body, when the input is an adapter with one.
  std::string adapter_config_json;

  // Accepted for parity with the reference; changes no value (spec §15.5).
  bool quantization = false;

  // This stream carries only part of a checkpoint (one of several parallel
  // streams): the config-level rule "every MoE layer has its experts" is left
  // to the caller, who sees every key (CheckMoeLayerCoverage()).
  bool partial_checkpoint = false;
};

// ValidateOptions(): kInvalidArgument for inconsistent options (an unknown
// family, non-positive geometry, ep_rank outside [0, ep_size), a regex RE2
// cannot compile, a non-expert dtype, an adapter config that is not a JSON
// object, a ParamWrapper layout for a family that offers none...).
absl::Status ValidateOptions(const ConvertOptions& options);

// GeometrySizes: the expert count and sizes given explicitly (CLI flags, wire
// fields), each unset when not given.
struct GeometrySizes {
  std::optional<int64_t> num_experts;
  std::optional<int64_t> hidden_size;
  std::optional<int64_t> moe_intermediate_size;
};

// ApplyGeometrySizes(): the one precedence rule of every front end: the
// geometry from config.json (or a default Geometry when there is none), with
// each size given explicitly in its place.
Geometry ApplyGeometrySizes(Geometry from_config, const GeometrySizes& sizes);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CONVERT_OPTIONS_H_
