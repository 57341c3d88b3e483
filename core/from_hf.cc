// HF (per-expert) -> native (grouped) session: spec §5, §6, §7.1, §10, §15.
// The session routes each key by its family role to the part that does the
// job: base experts (core/base_grouper.h), per-expert LoRA
// (core/lora_regrouper.h), ParamWrapper LoRA and its layout
// (core/lora_layout_detection.h); everything else passes through.
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/base_grouper.h"
#include "core/expert_parallel.h"
#include "core/family_registry.h"
#include "core/family_renames.h"
#include "core/fp8_from_hf.h"
#include "core/from_hf_state.h"
#include "core/grouped_rename.h"
#include "core/internal/status_macros.h"
#include "core/lora_layout_detection.h"
#include "core/lora_layouts.h"
#include "core/lora_regrouper.h"
#include "core/quote.h"
#include "core/session_common.h"
#include "moe_adapter/converter.h"

namespace moe_adapter {
namespace {

class FromHfSession final : public FromHfConverter {
 public:
  FromHfSession(const ConvertOptions& o, const ModelFamily& family, std::optional<LoraLayout> declared,
                std::string source, const Device& device)
      : s_(o, family, device), base_(s_), lora_(s_), param_wrapper_(s_, declared, std::move(source)) {
    if (s_.range.size() == 0) warnings_.push_back(EmptyRangeWarning(o, s_.range.size()));
  }

  absl::StatusOr<TensorPlan> Plan(const TensorInfo& in) override {
    RETURN_IF_ERROR(inputs_.Claim(in.name));
    TensorPlan plan;
    plan.input = in;
    if (absl::EndsWith(in.name, "_scale_inv")) {
      // Never dropped: the weight beside it would be wrong without it.
      return absl::UnimplementedError(absl::StrCat(
          "key ", Quote(in.name), ": FP8 checkpoints are not supported yet for model family ", Quote(s_.family.name()),
          " (block scales *_scale_inv would be needed to dequantise)"));
    }
    auto route = std::make_shared<TensorRoute>();
    ASSIGN_OR_RETURN(route->role, s_.family.hf().Classify(in.name, &route->at));
    const KeyRole role = route->role;
    if (role == KeyRole::kOther) {
      ASSIGN_OR_RETURN(PassThroughOutput out, PassThroughOutputFor(s_.family, in, /*to_hf=*/false));
      plan.kind = out.Rewrites(in) ? TensorPlan::Kind::kWhole : TensorPlan::Kind::kPassThrough;
      plan.route = std::move(route);
      return plan;
    }
    const KeyParts& at = route->at;
    plan.route = std::move(route);
    const Geometry& g = s_.opts.geometry;
    RETURN_IF_ERROR(CheckMoeLayer(g, in.name, at.layer));
    if (IsParamWrapperRole(role) && s_.family.spec().param_wrapper_rows.empty()) {
      // Never passed through as if it were not an expert LoRA tensor.
      return absl::InvalidArgumentError(absl::StrCat(
          "key ", Quote(in.name), ": a PEFT ParamWrapper expert LoRA tensor, but model family ",
          Quote(s_.family.name()), " has no ParamWrapper LoRA (its expert LoRA is per expert: ",
          "...experts.{e}.gate_proj.lora_A.weight, ...)"));
    }
    if (IsParamWrapperRole(role)) return param_wrapper_.Plan(plan, role);
    if (at.expert >= g.num_experts) {
      return absl::InvalidArgumentError(absl::StrCat("key ", Quote(in.name), ": expert id ", at.expert,
                                                     " is out of range, the model has E=", g.num_experts,
                                                     " experts (ids 0..", g.num_experts - 1, ")"));
    }
    if (IsPerExpertLoraRole(role)) return lora_.Plan(plan, at, role);
    return base_.Plan(plan, at, role);
  }

  absl::Status ClaimPassThrough(const TensorPlan& plan) override { return s_.registry.ClaimPassThrough(plan); }

  absl::Status Add(const TensorPlan& plan, const Tensor& in, const TensorSink& sink) override {
    ASSIGN_OR_RETURN(const bool done, EmitUnconverted(plan, in, s_.registry, sink));
    if (done) return absl::OkStatus();
    if (plan.kind == TensorPlan::Kind::kSlabs) return absl::InternalError("from_hf has no slab plans");
    if (!plan.route) {
      return absl::InvalidArgumentError(absl::StrCat("key ", Quote(plan.input.name), ": its plan was not made by Plan()"));
    }
    const KeyRole role = plan.route->role;
    const KeyParts& at = plan.route->at;
    if (role == KeyRole::kOther) {  // a renamed or upcast pass-through
      ASSIGN_OR_RETURN(PassThroughOutput out, PassThroughOutputFor(s_.family, plan.input, /*to_hf=*/false));
      NamedTensor t = RewritePassThrough(out, in);
      RETURN_IF_ERROR(s_.registry.Claim(t.name));
      return sink(std::move(t));
    }
    if (IsParamWrapperRole(role)) return param_wrapper_.Add(plan, at, role, in, sink);
    if (IsPerExpertLoraRole(role)) return lora_.Add(plan, at, role, in, sink);
    return base_.Add(at, role, in, sink);
  }

  absl::Status Finish(const TensorSink& sink) override {
    RETURN_IF_ERROR(base_.CheckComplete());
    RETURN_IF_ERROR(lora_.CheckComplete());
    RETURN_IF_ERROR(param_wrapper_.Finish());
    (void)sink;
    return absl::OkStatus();
  }

  size_t HeldBytes() const override { return s_.held; }
  size_t KeptBytes() const override { return inputs_.bytes() + s_.registry.bytes() + s_.kept; }

  std::map<std::string, std::string> OutputMetadata() const override {
    if (s_.opts.ep_size <= 1) return {};
    return EpMetadata(s_.opts.geometry.num_experts, s_.opts.ep_size, s_.opts.ep_rank);
  }

  std::vector<std::string> Warnings() const override { return warnings_; }

 private:
  FromHfState s_;
  InputRegistry inputs_;
  BaseGrouper base_;
  LoraRegrouper lora_;
  ParamWrapperLora param_wrapper_;
  std::vector<std::string> warnings_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<FromHfConverter>> FromHfConverter::Create(const ConvertOptions& options,
                                                                         const Device& device) {
  RETURN_IF_ERROR(ValidateOptions(options));
  std::string source;
  ASSIGN_OR_RETURN(std::optional<LoraLayout> declared, DeclaredLoraLayout(options, &source));
  ASSIGN_OR_RETURN(const ModelFamily* family, ResolveFamily(options));
  if (family->spec().hf_grouped) return NewGroupedFromHf(options, *family);
  auto session = std::make_unique<FromHfSession>(options, *family, declared, std::move(source), device);
  if (family->spec().fp8_block_scales) return WithFp8Dequantization(std::move(session), options);
  return std::unique_ptr<FromHfConverter>(std::move(session));
}

absl::Status FromHfConverter::Add(const NamedTensor& input, const TensorSink& sink) {
  ASSIGN_OR_RETURN(TensorPlan plan, Plan(input.info()));
  return Add(plan, input.tensor, sink);
}

}  // namespace moe_adapter
