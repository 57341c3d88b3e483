// from_hf's ParamWrapper LoRA and how its layout is told (spec §15.3): from
// the option, else adapter_config.json's peft_version, else the tensors'
// shapes (FitParamWrapperShape). Tensors whose shapes fit both layouts wait
// until one that fits only one arrives; if none does, Finish() asks for the
// layout.
#ifndef MOE_ADAPTER_CORE_LORA_LAYOUT_DETECTION_H_
#define MOE_ADAPTER_CORE_LORA_LAYOUT_DETECTION_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/from_hf_state.h"

namespace moe_adapter {

// DeclaredLoraLayout(): the ParamWrapper layout the options decide (the
// option, else adapter_config.json), nullopt when the shapes must; sets
// `source` to a phrase for messages.
absl::StatusOr<std::optional<LoraLayout>> DeclaredLoraLayout(const ConvertOptions& options, std::string* source);

class ParamWrapperLora {
 public:
  ParamWrapperLora(FromHfState& state, std::optional<LoraLayout> declared, std::string source)
      : s_(state), rows_(state.family.spec().param_wrapper_rows), declared_(declared), source_(std::move(source)) {}

  absl::StatusOr<TensorPlan> Plan(TensorPlan& plan, KeyRole role);
  absl::Status Add(const TensorPlan& plan, const KeyParts& at, KeyRole role, const Tensor& in, const TensorSink& sink);
  // Finish(): kFailedPrecondition when every tensor fit both layouts.
  absl::Status Finish() const;

 private:
  struct Deferred {
    std::string name;
    KeyRole role;
    std::string prefix;
    int64_t layer;
    Tensor tensor;
  };

  absl::Status Emit(const std::string& name, KeyRole role, const std::string& prefix, int64_t layer,
                    LoraLayout layout, const Tensor& in, const TensorSink& sink);

  FromHfState& s_;
  absl::Span<const PwRow> rows_;
  std::optional<LoraLayout> declared_;  // from the option or adapter_config.json
  std::string source_;
  std::optional<LoraLayout> shape_layout_;  // decided by a tensor only one layout fits
  std::string shape_layout_key_;
  std::vector<Deferred> deferred_;
};

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_LORA_LAYOUT_DETECTION_H_
