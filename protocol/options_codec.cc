#include "protocol/options_codec.h"

#include "absl/strings/str_cat.h"
#include "protocol/wire_limits.h"

namespace moe_adapter {
namespace wire {
namespace {

absl::Status Prefixed(const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat("options: ", s.message()));
}

// CheckBounds(): every string and list of the options within wire_limits.h,
// before any of them is parsed, compiled or quoted.
absl::Status CheckBounds(const v1::StreamOptions& w) {
  const struct {
    const char* field;
    size_t size;
    size_t limit;
  } fields[] = {
      {"config_json", w.config_json().size(), wire::kMaxConfigJsonBytes},
      {"adapter_config_json", w.adapter_config_json().size(), wire::kMaxConfigJsonBytes},
      {"exclude_key_regex", w.exclude_key_regex().size(), wire::kMaxRegexBytes},
      {"lora_layout", w.lora_layout().size(), wire::kMaxOptionNameBytes},
      {"dtype", w.dtype().size(), wire::kMaxOptionNameBytes},
      {"geometry.config_dtype", w.geometry().config_dtype().size(), wire::kMaxOptionNameBytes},
      {"family", w.family().size(), wire::kMaxOptionNameBytes},
  };
  for (const auto& f : fields) {
    if (f.size > f.limit) {
      return absl::InvalidArgumentError(
          absl::StrCat("options: ", f.field, " of ", f.size, " bytes exceeds the limit of ", f.limit, " bytes"));
    }
  }
  if (static_cast<size_t>(w.geometry().mlp_only_layers_size()) > wire::kMaxMlpOnlyLayers) {
    return absl::InvalidArgumentError(absl::StrCat("options: geometry.mlp_only_layers has ",
                                                   w.geometry().mlp_only_layers_size(),
                                                   " entries, more than the limit of ", wire::kMaxMlpOnlyLayers));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<StreamConfig> StreamConfigFromWire(const v1::StreamOptions& w, uint64_t default_chunk,
                                                  uint64_t max_chunk) {
  absl::Status bounded = CheckBounds(w);
  if (!bounded.ok()) return bounded;
  StreamConfig cfg;
  ConvertOptions& o = cfg.options;
  const v1::Geometry& g = w.geometry();
  o.family = w.family();
  // A size of 0 is "not given" (proto3 scalars have no presence).
  GeometrySizes sizes;
  if (g.num_experts() != 0) sizes.num_experts = g.num_experts();
  if (g.hidden_size() != 0) sizes.hidden_size = g.hidden_size();
  if (g.moe_intermediate_size() != 0) sizes.moe_intermediate_size = g.moe_intermediate_size();
  const bool has_trio = sizes.num_experts || sizes.hidden_size || sizes.moe_intermediate_size;
  if (!w.config_json().empty()) {
    absl::StatusOr<Geometry> parsed = ParseHfConfig(w.config_json(), w.family());
    if (!parsed.ok()) return Prefixed(parsed.status());
    o.geometry = ApplyGeometrySizes(*parsed, sizes);
  } else if (has_trio) {
    o.geometry = ApplyGeometrySizes(Geometry{}, sizes);
    if (g.has_num_hidden_layers()) o.geometry.num_hidden_layers = g.num_hidden_layers();
    o.geometry.mlp_only_layers.assign(g.mlp_only_layers().begin(), g.mlp_only_layers().end());
    if (g.decoder_sparse_step() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("options: geometry.decoder_sparse_step must be >= 0, got ", g.decoder_sparse_step()));
    }
    o.geometry.decoder_sparse_step = g.decoder_sparse_step() == 0 ? 1 : g.decoder_sparse_step();
    o.geometry.mtp_layers = g.mtp_layers();
    if (!g.config_dtype().empty()) {
      absl::StatusOr<DType> dt = ParseTorchDType(g.config_dtype());
      if (!dt.ok()) return Prefixed(dt.status());
      o.geometry.config_dtype = *dt;
    }
  } else {
    return absl::InvalidArgumentError(
        "options: no geometry: set geometry {num_experts, hidden_size, moe_intermediate_size} or config_json");
  }
  if (!w.lora_layout().empty()) {
    absl::StatusOr<LoraLayout> l = ParseLoraLayout(w.lora_layout());
    if (!l.ok()) return Prefixed(l.status());
    o.lora_layout = *l;
  }
  if (!w.dtype().empty()) {
    absl::StatusOr<DType> d = ParseTorchDType(w.dtype());
    if (!d.ok()) return Prefixed(d.status());
    o.dtype = *d;
  }
  o.exclude_key_regex = w.exclude_key_regex();
  o.ep_rank = w.ep_rank();
  o.ep_size = w.ep_size() == 0 ? 1 : w.ep_size();
  o.adapter_config_json = w.adapter_config_json();
  o.quantization = w.quantization();
  o.partial_checkpoint = w.partial_checkpoint();
  absl::Status valid = ValidateOptions(o);
  if (!valid.ok()) return Prefixed(valid);

  cfg.chunk_bytes = w.chunk_size() == 0 ? default_chunk : w.chunk_size();
  if (cfg.chunk_bytes > max_chunk) {
    return absl::InvalidArgumentError(absl::StrCat("options: chunk_size ", cfg.chunk_bytes,
                                                   " exceeds the server's --max-chunk-bytes ", max_chunk));
  }
  return cfg;
}

v1::StreamOptions StreamOptionsToWire(const ConvertOptions& o, uint64_t chunk_bytes) {
  v1::StreamOptions w;
  v1::Geometry* g = w.mutable_geometry();
  g->set_num_experts(o.geometry.num_experts);
  g->set_hidden_size(o.geometry.hidden_size);
  g->set_moe_intermediate_size(o.geometry.moe_intermediate_size);
  if (o.geometry.num_hidden_layers) g->set_num_hidden_layers(*o.geometry.num_hidden_layers);
  for (int64_t l : o.geometry.mlp_only_layers) g->add_mlp_only_layers(l);
  g->set_decoder_sparse_step(o.geometry.decoder_sparse_step);
  g->set_mtp_layers(o.geometry.mtp_layers);
  if (o.geometry.config_dtype) g->set_config_dtype(std::string(TorchDTypeName(*o.geometry.config_dtype)));
  if (o.lora_layout) w.set_lora_layout(std::string(LoraLayoutName(*o.lora_layout)));
  if (o.dtype) w.set_dtype(std::string(TorchDTypeName(*o.dtype)));
  w.set_exclude_key_regex(o.exclude_key_regex);
  w.set_ep_rank(o.ep_rank);
  w.set_ep_size(o.ep_size);
  w.set_adapter_config_json(o.adapter_config_json);
  w.set_quantization(o.quantization);
  w.set_partial_checkpoint(o.partial_checkpoint);
  // The family a config.json named travels by name: the geometry on the wire
  // is numbers only.
  w.set_family(o.family.empty() ? o.geometry.config_family : o.family);
  w.set_chunk_size(chunk_bytes);
  return w;
}

}  // namespace wire
}  // namespace moe_adapter
