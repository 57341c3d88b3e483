// What adapter_config.json's `peft_version` says about the ParamWrapper layout
// (spec §15.3): >= 0.19.1 -> peft-v0.19; <= 0.18.x -> peft-v0.18; 0.19.0 (its
// layout depended on the transformers version) or absent -> undecided.
#ifndef MOE_ADAPTER_CORE_PEFT_VERSION_H_
#define MOE_ADAPTER_CORE_PEFT_VERSION_H_

#include <array>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "moe_adapter/convert_options.h"

namespace moe_adapter {

// ParsePeftVersion(): (major, minor, patch) of "0.21.0", "0.19.1.dev0", "v0.18".
std::optional<std::array<int, 3>> ParsePeftVersion(absl::string_view version);

// LayoutFromAdapterConfig(): the layout the config decides, or nullopt; sets
// `source` to a phrase for messages. Errors only for a config that is not a
// JSON object or a peft_version that is not a version string.
absl::StatusOr<std::optional<LoraLayout>> LayoutFromAdapterConfig(absl::string_view config_json,
                                                                   std::string* source);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_PEFT_VERSION_H_
