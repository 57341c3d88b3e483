// File: moe_adapter/inspect.h
//
// What a checkpoint holds, from its headers only (no tensor data is read):
// its format (HF per-expert, native grouped, ParamWrapper LoRA and its layout,
// per-expert LoRA, native LoRA), the geometry its shapes imply, and counts.
#ifndef MOE_ADAPTER_INSPECT_H_
#define MOE_ADAPTER_INSPECT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "moe_adapter/convert_options.h"

namespace moe_adapter {

struct CheckpointInfo {
  std::string family;                // the model family whose key names were read ("qwen3_moe", ...)
  // e.g. {"hf-per-expert"} or {"paramwrapper-lora"}; "fp8-block-scaled" when
  // F8_E4M3 weights carry *_scale_inv block scales (DeepSeek-V3 FP8)
  std::vector<std::string> formats;
  std::optional<std::string> lora_layout;  // "peft-v0.19", "peft-v0.18", "per-expert", "ambiguous (...)"
  std::string lora_layout_source;          // how it was told
  std::optional<int64_t> num_experts, hidden_size, moe_intermediate_size, lora_rank;
  std::vector<int64_t> expert_layers;      // layers holding expert tensors
  int64_t tensors = 0;
  int64_t shards = 0;
  uint64_t bytes = 0;
  std::map<std::string, int64_t> dtypes;   // dtype -> tensor count
  std::map<std::string, int64_t> roles;    // role name -> tensor count
};

// InspectCheckpoint(): `geometry` (e.g. from --config or the directory's
// config.json) lets ParamWrapper layouts be told apart by shape;
// `adapter_config_json` (may be empty) by peft_version.
absl::StatusOr<CheckpointInfo> InspectCheckpoint(const std::string& path, const std::optional<Geometry>& geometry,
                                                 const std::string& adapter_config_json);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_INSPECT_H_
