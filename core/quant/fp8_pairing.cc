#include "core/quant/fp8_pairing.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/quant/fp8_block.h"
#include "core/quote.h"

namespace moe_adapter {
namespace {

absl::string_view WeightOf(absl::string_view scale_name) {
  return scale_name.substr(0, scale_name.size() - kFp8ScaleSuffix.size());
}

absl::Status NotFp8(absl::string_view weight, DType dtype, absl::string_view scale) {
  return absl::InvalidArgumentError(absl::StrCat(Quote(weight), " has a block scale ", Quote(scale), " but is ",
                                                 DTypeName(dtype),
                                                 ", not F8_E4M3: only FP8 weights are dequantised"));
}

}  // namespace

bool IsFp8Scale(absl::string_view name) {
  return name.size() > kFp8ScaleSuffix.size() && absl::EndsWith(name, kFp8ScaleSuffix);
}

absl::StatusOr<NamedTensor> Fp8Dequantizer::Dequantize(const NamedTensor& weight, const NamedTensor& scale) const {
  absl::Status ok = CheckFp8BlockScale(weight.info(), scale.info());
  if (!ok.ok()) return ok;
  NamedTensor out{weight.name, Tensor::Allocate(dtype_, weight.tensor.shape)};
  DequantizeFp8Rows(Fp8BlockView::Of(weight.tensor, scale.tensor), 0, weight.tensor.shape[0], dtype_,
                    out.tensor.mutable_data());
  return out;
}

absl::StatusOr<std::vector<NamedTensor>> Fp8Dequantizer::Add(NamedTensor tensor) {
  std::vector<NamedTensor> ready;
  if (IsFp8Scale(tensor.name)) {
    const std::string weight(WeightOf(tensor.name));
    if (auto plain = plain_.find(weight); plain != plain_.end()) return NotFp8(weight, plain->second, tensor.name);
    if (scales_.count(weight)) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate block scale ", Quote(tensor.name)));
    }
    auto w = weights_.find(weight);
    if (w == weights_.end()) {
      held_bytes_ += tensor.tensor.nbytes() + tensor.name.size();
      scales_.emplace(weight, std::move(tensor));
      return ready;
    }
    absl::StatusOr<NamedTensor> out = Dequantize(w->second, tensor);
    if (!out.ok()) return out.status();
    held_bytes_ -= w->second.tensor.nbytes() + w->first.size();
    weights_.erase(w);
    ready.push_back(std::move(*out));
    return ready;
  }
  auto s = scales_.find(tensor.name);
  if (tensor.tensor.dtype != DType::kF8E4M3) {
    if (s != scales_.end()) return NotFp8(tensor.name, tensor.tensor.dtype, s->second.name);
    held_bytes_ += tensor.name.size();
    plain_.emplace(tensor.name, tensor.tensor.dtype);
    ready.push_back(std::move(tensor));
    return ready;
  }
  if (weights_.count(tensor.name)) {
    return absl::InvalidArgumentError(absl::StrCat("duplicate FP8 weight ", Quote(tensor.name)));
  }
  if (s == scales_.end()) {
    held_bytes_ += tensor.tensor.nbytes() + tensor.name.size();
    std::string name = tensor.name;
    weights_.emplace(std::move(name), std::move(tensor));
    return ready;
  }
  absl::StatusOr<NamedTensor> out = Dequantize(tensor, s->second);
  if (!out.ok()) return out.status();
  held_bytes_ -= s->second.tensor.nbytes() + s->second.name.size();
  scales_.erase(s);
  ready.push_back(std::move(*out));
  return ready;
}

absl::Status Fp8Dequantizer::Finish() const {
  if (!weights_.empty()) {
    const NamedTensor& w = weights_.begin()->second;
    return absl::InvalidArgumentError(absl::StrCat(
        "F8_E4M3 tensor ", Quote(w.name), " has no block scale ", Quote(absl::StrCat(w.name, kFp8ScaleSuffix)),
        " (an FP8 weight is never converted without its scale)",
        weights_.size() > 1 ? absl::StrCat("; ", weights_.size() - 1, " more like it") : ""));
  }
  if (!scales_.empty()) {
    const NamedTensor& s = scales_.begin()->second;
    return absl::InvalidArgumentError(absl::StrCat("block scale ", Quote(s.name), " has no weight ",
                                                   Quote(WeightOf(s.name)),
                                                   scales_.size() > 1 ? absl::StrCat("; ", scales_.size() - 1,
                                                                                     " more like it")
                                                                      : ""));
  }
  return absl::OkStatus();
}

}  // namespace moe_adapter
