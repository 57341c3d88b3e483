#include "core/session_common.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/safetensors_format.h"
#include "re2/re2.h"
#include "core/quote.h"

namespace moe_adapter {

using safetensors::Quote;

ExcludeFilter::ExcludeFilter(const std::string& regex) {
  if (regex.empty()) return;
  RE2::Options opts;
  opts.set_log_errors(false);
  opts.set_max_mem(8 << 20);
  re_ = std::make_unique<RE2>(regex, opts);
  if (!re_->ok()) re_.reset();
}

ExcludeFilter::~ExcludeFilter() = default;

bool ExcludeFilter::Excludes(absl::string_view key) const {
  if (!re_) return false;
  return re_->Match(re2::StringPiece(key.data(), key.size()), 0, key.size(), RE2::ANCHOR_START,
                    nullptr, 0);
}

absl::Status OutputRegistry::Claim(const std::string& key) {
  if (!keys_.insert(key).second) {
    return absl::InvalidArgumentError(
        absl::StrCat("output key ", Quote(key), " would be written twice (two inputs map to it)"));
  }
  bytes_ += KeyFootprint(key.size());
  return absl::OkStatus();
}

absl::Status OutputRegistry::ClaimPassThrough(const TensorPlan& plan) {
  if (plan.kind != TensorPlan::Kind::kPassThrough) {
    return absl::InternalError(
        absl::StrCat("key ", Quote(plan.input.name), ": ClaimPassThrough() of a plan that is not a pass-through"));
  }
  return Claim(plan.input.name);
}

absl::StatusOr<bool> EmitUnconverted(const TensorPlan& plan, const Tensor& in, OutputRegistry& registry,
                                     const TensorSink& sink) {
  if (in.dtype != plan.input.dtype || in.shape != plan.input.shape) {
    return absl::InvalidArgumentError(absl::StrCat("key ", Quote(plan.input.name), ": data does not match its header"));
  }
  switch (plan.kind) {
    case TensorPlan::Kind::kDrop:
      return true;
    case TensorPlan::Kind::kPassThrough: {
      absl::Status claimed = registry.Claim(plan.input.name);
      if (!claimed.ok()) return claimed;
      absl::Status sent = sink(NamedTensor{plan.input.name, in});
      if (!sent.ok()) return sent;
      return true;
    }
    case TensorPlan::Kind::kSlabs:
    case TensorPlan::Kind::kWhole:
      break;
  }
  return false;
}

absl::Status InputRegistry::Claim(const std::string& key) {
  if (!keys_.insert(key).second) {
    return absl::InvalidArgumentError(absl::StrCat("input key ", Quote(key), " appears twice"));
  }
  bytes_ += KeyFootprint(key.size());
  return absl::OkStatus();
}

std::string EmptyRangeWarning(const ConvertOptions& o, int64_t range_size) {
  if (range_size > 0) return "";
  return absl::StrCat("ep_rank ", o.ep_rank, " of ", o.ep_size, " owns no experts (E=", o.geometry.num_experts,
                      "): no expert tensors are produced");
}

absl::Status CheckMoeLayer(const Geometry& g, absl::string_view key, int64_t layer) {
  if (g.IsMoeLayer(layer)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "key ", Quote(key), ": layer ", layer,
      " is not an MoE layer in config.json (num_hidden_layers, mlp_only_layers, decoder_sparse_step, "
      "first_k_dense_replace, num_nextn_predict_layers)"));
}

std::string IdsText(const std::vector<int64_t>& ids) {
  bool run = ids.size() > 8;
  for (size_t i = 1; run && i < ids.size(); ++i) run = ids[i] == ids[i - 1] + 1;
  if (run) return absl::StrCat("[", ids.front(), "..", ids.back(), "]");
  if (ids.size() > 16) {
    std::vector<int64_t> head(ids.begin(), ids.begin() + 16);
    return absl::StrCat("[", absl::StrJoin(head, ", "), ", ... (", ids.size(), " in all)]");
  }
  return absl::StrCat("[", absl::StrJoin(ids, ", "), "]");
}

void IdsList::Add(int64_t id) {
  if (count_ > 0 && id != last_ + 1) run_ = false;
  if (head_.size() < 16) head_.push_back(id);
  last_ = id;
  ++count_;
}

std::string IdsList::Text() const {
  // The same text as IdsText() of every id added.
  if (run_ && count_ > 8) return absl::StrCat("[", head_.front(), "..", last_, "]");
  if (count_ > 16) return absl::StrCat("[", absl::StrJoin(head_, ", "), ", ... (", count_, " in all)]");
  return absl::StrCat("[", absl::StrJoin(head_, ", "), "]");
}

std::string ShapeMismatch(absl::string_view key, absl::string_view what, const Shape& expected,
                          const Shape& actual) {
  return absl::StrCat("key ", Quote(key), ": ", what, " must have shape ", ShapeString(expected),
                      ", got ", ShapeString(actual));
}

}  // namespace moe_adapter
