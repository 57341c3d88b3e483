#include "core/fp8_from_hf.h"

#include <map>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/internal/status_macros.h"
#include "core/quant/fp8_pairing.h"
#include "core/quote.h"
#include "core/session_common.h"
#include "core/tensor_route.h"

namespace moe_adapter {
namespace {

// The routes of this stage's own plans, told from the session's by identity
// (the session never sees these plans).
const std::shared_ptr<const TensorRoute>& ScaleRoute() {
  static const auto* route = new std::shared_ptr<const TensorRoute>(std::make_shared<TensorRoute>());
  return *route;
}
const std::shared_ptr<const TensorRoute>& Fp8WeightRoute() {
  static const auto* route = new std::shared_ptr<const TensorRoute>(std::make_shared<TensorRoute>());
  return *route;
}

std::string WeightOf(const std::string& scale) { return scale.substr(0, scale.size() - kFp8ScaleSuffix.size()); }

absl::Status NotFp8(const std::string& weight, DType dtype) {
  return absl::InvalidArgumentError(absl::StrCat(
      "key ", Quote(weight), ": has a block scale ", Quote(absl::StrCat(weight, kFp8ScaleSuffix)), " but is ",
      DTypeName(dtype), ", not F8_E4M3: only FP8 weights are dequantised (a scale is never applied to any other dtype)"));
}

class Fp8FromHf final : public FromHfConverter {
 public:
  Fp8FromHf(std::unique_ptr<FromHfConverter> session, DType dtype)
      : session_(std::move(session)), dtype_(dtype), pairing_(dtype) {}

  absl::StatusOr<TensorPlan> Plan(const TensorInfo& in) override {
    const bool scale = IsFp8Scale(in.name);
    if (!scale && in.dtype != DType::kF8E4M3) {
      // Checked from the headers, before any data: a scale must never meet
      // a plain weight, whichever arrives first.
      if (scales_.count(in.name)) return NotFp8(in.name, in.dtype);
      if (plain_dtype_.emplace(in.name, in.dtype).second) plain_bytes_ += KeyFootprint(in.name.size());
      return session_->Plan(in);
    }
    RETURN_IF_ERROR(own_.Claim(in.name));
    TensorPlan plan;
    plan.input = in;
    plan.kind = TensorPlan::Kind::kWhole;
    ASSIGN_OR_RETURN(int64_t numel, NumElements(in.shape, DTypeSize(in.dtype) + DTypeSize(dtype_)));
    if (scale) {
      const std::string weight = WeightOf(in.name);
      if (auto it = plain_dtype_.find(weight); it != plain_dtype_.end()) return NotFp8(weight, it->second);
      scales_.insert(weight);
      scale_bytes_ += KeyFootprint(weight.size());
      plan.route = ScaleRoute();
      plan.hold_bytes = static_cast<size_t>(numel) * DTypeSize(in.dtype);
    } else {
      // The weight may wait for its scale, and its dequantised copy exists
      // until the session has taken it.
      plan.route = Fp8WeightRoute();
      plan.hold_bytes = static_cast<size_t>(numel) * (DTypeSize(in.dtype) + DTypeSize(dtype_));
    }
    return plan;
  }

  absl::Status Add(const TensorPlan& plan, const Tensor& in, const TensorSink& sink) override {
    if (plan.route != ScaleRoute() && plan.route != Fp8WeightRoute()) return session_->Add(plan, in, sink);
    if (in.dtype != plan.input.dtype || in.shape != plan.input.shape) {
      return absl::InvalidArgumentError(absl::StrCat("key ", Quote(plan.input.name), ": data does not match its header"));
    }
    ASSIGN_OR_RETURN(std::vector<NamedTensor> ready, pairing_.Add(NamedTensor{plan.input.name, in}));
    for (NamedTensor& t : ready) {
      ASSIGN_OR_RETURN(TensorPlan next, session_->Plan(t.info()));
      RETURN_IF_ERROR(session_->Add(next, t.tensor, sink));
    }
    return absl::OkStatus();
  }

  absl::Status ClaimPassThrough(const TensorPlan& plan) override { return session_->ClaimPassThrough(plan); }

  absl::Status Finish(const TensorSink& sink) override {
    RETURN_IF_ERROR(pairing_.Finish());
    return session_->Finish(sink);
  }

  size_t HeldBytes() const override { return session_->HeldBytes() + pairing_.HeldBytes(); }
  size_t KeptBytes() const override {
    return session_->KeptBytes() + own_.bytes() + plain_bytes_ + scale_bytes_;
  }
  std::map<std::string, std::string> OutputMetadata() const override { return session_->OutputMetadata(); }
  std::vector<std::string> Warnings() const override { return session_->Warnings(); }

 private:
  std::unique_ptr<FromHfConverter> session_;
  DType dtype_;
  Fp8Dequantizer pairing_;
  InputRegistry own_;    // FP8 weights and scales (the session sees only their results)
  std::map<std::string, DType> plain_dtype_;  // every other input (the session refuses duplicates)
  size_t plain_bytes_ = 0;
  std::set<std::string> scales_;  // weights whose scale was announced
  size_t scale_bytes_ = 0;
};

}  // namespace

DType Fp8DequantDType(const ConvertOptions& options) {
  if (options.dtype) return *options.dtype;
  if (options.geometry.config_dtype) return *options.geometry.config_dtype;
  return DType::kBF16;
}

absl::Status CheckFp8ExportOption(const ConvertOptions& options, const ModelFamily& family) {
  if (!options.quantization || !family.spec().fp8_block_scales) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "quantization: model family ", Quote(family.name()),
      " has no quantised to_hf export (the reference's quantization=True writes unscaled FP8 casts with all-ones "
      "scales for a loader template); convert without it"));
}

std::unique_ptr<FromHfConverter> WithFp8Dequantization(std::unique_ptr<FromHfConverter> session,
                                                       const ConvertOptions& options) {
  return std::make_unique<Fp8FromHf>(std::move(session), Fp8DequantDType(options));
}

}  // namespace moe_adapter
