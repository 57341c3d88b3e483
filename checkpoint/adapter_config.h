// The adapter_config.json written beside a converted PEFT adapter (spec
// §15.3): every input field carried over; target_parameters / target_modules
// and peft_version made to match the layout written; r checked against the
// tensors; a config from scratch needs lora_alpha.
#ifndef MOE_ADAPTER_CHECKPOINT_ADAPTER_CONFIG_H_
#define MOE_ADAPTER_CHECKPOINT_ADAPTER_CONFIG_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "moe_adapter/convert_options.h"

namespace moe_adapter {

class ModelFamily;

// AdapterConfigForHf(): the JSON text for an HF adapter in `layout`.
// `input_config` is the input's adapter_config.json (empty: none);
// `rank` is the expert LoRA rank seen in the tensors (nullopt: none seen).
// The target names are `family`'s (core/model_family.h); without it, the
// default family's.
absl::StatusOr<std::string> AdapterConfigForHf(const std::string& input_config, LoraLayout layout,
                                               std::optional<int64_t> rank, std::optional<double> lora_alpha);
absl::StatusOr<std::string> AdapterConfigForHf(const std::string& input_config, LoraLayout layout,
                                               std::optional<int64_t> rank, std::optional<double> lora_alpha,
                                               const ModelFamily& family);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CHECKPOINT_ADAPTER_CONFIG_H_
