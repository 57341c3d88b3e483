#include "core/lora_layout_detection.h"

#include "absl/strings/str_cat.h"
#include "core/internal/status_macros.h"
#include "core/lora_layouts.h"
#include "core/peft_version.h"
#include "core/quote.h"
#include "core/safetensors_format.h"

namespace moe_adapter {

absl::StatusOr<std::optional<LoraLayout>> DeclaredLoraLayout(const ConvertOptions& options, std::string* source) {
  if (options.lora_layout && *options.lora_layout != LoraLayout::kPerExpert) {
    *source = "given as an option";
    return options.lora_layout;
  }
  if (!options.lora_layout && !options.adapter_config_json.empty()) {
    return LayoutFromAdapterConfig(options.adapter_config_json, source);
  }
  return std::optional<LoraLayout>();
}

absl::StatusOr<TensorPlan> ParamWrapperLora::Plan(TensorPlan& plan, KeyRole role) {
  const TensorInfo& in = plan.input;
  const Geometry& g = s_.opts.geometry;
  if (s_.opts.lora_layout == LoraLayout::kPerExpert) {
    return absl::InvalidArgumentError(absl::StrCat("key ", Quote(in.name),
                                                   ": a ParamWrapper LoRA tensor, but the LoRA layout was given as "
                                                   "per-expert; pass --lora-layout peft-v0.19 or peft-v0.18"));
  }
  plan.kind = TensorPlan::Kind::kWhole;
  if (declared_) {
    if (!ParamWrapperFit(rows_, role, *declared_, in.shape, g)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "key ", Quote(in.name), ": ParamWrapper LoRA tensor has shape ", ShapeString(in.shape), ", expected ",
          ParamWrapperExpectation(rows_, role, *declared_, g), " for layout ", LoraLayoutName(*declared_), " (",
          source_, ")"));
    }
    return plan;
  }
  const ShapeFit fit = FitParamWrapperShape(rows_, role, in.shape, g);
  const bool v18 = fit.v18.has_value(), v19 = fit.v19.has_value();
  if (!v18 && !v19) {
    return absl::InvalidArgumentError(absl::StrCat(
        "key ", Quote(in.name), ": ParamWrapper LoRA tensor has shape ", ShapeString(in.shape), ", expected ",
        ParamWrapperExpectation(rows_, role, LoraLayout::kPeftV019, g), " (peft-v0.19) or ",
        ParamWrapperExpectation(rows_, role, LoraLayout::kPeftV018, g), " (peft-v0.18)"));
  }
  if (v18 != v19) {
    const LoraLayout fits = v19 ? LoraLayout::kPeftV019 : LoraLayout::kPeftV018;
    if (shape_layout_ && *shape_layout_ != fits) {
      return absl::InvalidArgumentError(absl::StrCat(
          "key ", Quote(in.name), ": its shape ", ShapeString(in.shape), " fits only ", LoraLayoutName(fits),
          " but ", Quote(shape_layout_key_), " fits only ", LoraLayoutName(*shape_layout_),
          ": the adapter mixes layouts"));
    }
    shape_layout_ = fits;
    shape_layout_key_ = in.name;
  } else if (!shape_layout_) {
    ASSIGN_OR_RETURN(int64_t numel, NumElements(in.shape, DTypeSize(in.dtype)));
    plan.hold_bytes = static_cast<size_t>(numel) * DTypeSize(in.dtype) + KeyFootprint(in.name.size());
  }
  return plan;
}

absl::Status ParamWrapperLora::Add(const TensorPlan& plan, const KeyParts& at, KeyRole role, const Tensor& in,
                             const TensorSink& sink) {
  std::optional<LoraLayout> layout = declared_ ? declared_ : shape_layout_;
  if (!layout) {
    deferred_.push_back(Deferred{plan.input.name, role, at.prefix, at.layer, in});
    s_.held += in.nbytes();
    s_.kept += KeyFootprint(plan.input.name.size());
    return absl::OkStatus();
  }
  // A decisive tensor arrived: convert the ones that waited for it first.
  std::vector<Deferred> waiting;
  waiting.swap(deferred_);
  for (Deferred& d : waiting) {
    s_.held -= d.tensor.nbytes();
    s_.kept -= KeyFootprint(d.name.size());
    RETURN_IF_ERROR(Emit(d.name, d.role, d.prefix, d.layer, *layout, d.tensor, sink));
  }
  return Emit(plan.input.name, role, at.prefix, at.layer, *layout, in, sink);
}

absl::Status ParamWrapperLora::Emit(const std::string& name, KeyRole role, const std::string& prefix, int64_t layer,
                              LoraLayout layout, const Tensor& in, const TensorSink& sink) {
  ASSIGN_OR_RETURN(Tensor native, ParamWrapperToNative(rows_, name, role, layout, in, s_.opts.geometry));
  std::string key = s_.family.all().Format(NativeRoleForParamWrapper(rows_, role, layout), KeyParts{prefix, layer, -1});
  RETURN_IF_ERROR(s_.registry.Claim(key));
  return sink(NamedTensor{std::move(key), std::move(native)});
}

absl::Status ParamWrapperLora::Finish() const {
  if (deferred_.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "cannot tell the LoRA layout of this adapter: all ", deferred_.size(), " expert ParamWrapper tensors (first ",
      Quote(deferred_.front().name),
      ") fit both peft-v0.18 and peft-v0.19 (their shapes coincide when H == 2I or H == I); pass "
      "--lora-layout peft-v0.19|peft-v0.18, or the adapter_config.json (its peft_version decides)"));
}

}  // namespace moe_adapter
