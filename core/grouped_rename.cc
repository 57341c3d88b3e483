#include "core/grouped_rename.h"

#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/expert_parallel.h"
#include "core/internal/status_macros.h"
#include "core/key_mapping.h"
#include "core/quant/mxfp4.h"
#include "core/quote.h"
#include "core/safetensors_format.h"
#include "core/session_common.h"
#include "core/tensor_route.h"
#include "core/thread_pool.h"
#include "core/transpose.h"

namespace moe_adapter {
namespace {

// Route(): the plan's route, made on first use. The session keeps its own
// table row in TensorRoute::row and the MXFP4 half (or kWholeTensor) in the
// expert slot.
TensorRoute* Route(TensorPlan* plan) {
  if (plan->route == nullptr) plan->route = std::make_shared<TensorRoute>();
  return const_cast<TensorRoute*>(plan->route.get());  // made here, non-const
}

absl::Status NotPlanned(const TensorPlan& plan) {
  return absl::InvalidArgumentError(
      absl::StrCat("key ", Quote(plan.input.name), ": a whole-tensor plan must come from this session's Plan()"));
}

using safetensors::Quote;

bool IsStack(GroupedShape s) { return s != GroupedShape::kRenameOnly; }

// StackShape(): an expert stack of `experts` experts under geometry `g`.
Shape StackShape(GroupedShape s, int64_t experts, const Geometry& g) {
  const int64_t H = g.hidden_size, I = g.moe_intermediate_size;
  switch (s) {
    case GroupedShape::kGateUp:
      return {experts, H, 2 * I};
    case GroupedShape::kDown:
      return {experts, I, H};
    case GroupedShape::kGateUpBias:
      return {experts, 2 * I};
    case GroupedShape::kDownBias:
      return {experts, H};
    case GroupedShape::kRenameOnly:
      break;
  }
  return {};
}

const char* StackShapeText(GroupedShape s) {
  switch (s) {
    case GroupedShape::kGateUp:
      return "[E, H, 2I]";
    case GroupedShape::kDown:
      return "[E, I, H]";
    case GroupedShape::kGateUpBias:
      return "[E, 2I]";
    case GroupedShape::kDownBias:
      return "[E, H]";
    case GroupedShape::kRenameOnly:
      break;
  }
  return "";
}

// Row: one GroupedTensor with both templates compiled; `leaf` is each side's
// text after "{layer}", to catch stack keys outside a layer.
struct Row {
  KeyPattern hf, native;
  std::string hf_leaf, native_leaf;
  GroupedShape shape;
};

std::string Leaf(absl::string_view templ) {
  const size_t at = templ.find("{layer}");
  return std::string(at == absl::string_view::npos ? templ : templ.substr(at + 7));
}

std::vector<Row> CompileRows(const ModelFamily& family) {
  std::vector<Row> rows;
  for (const GroupedTensor& t : family.spec().grouped) {
    rows.push_back(Row{KeyPattern(t.hf), KeyPattern(t.native), Leaf(t.hf), Leaf(t.native), t.shape});
  }
  return rows;
}

// MatchRow(): the index of the row whose `hf_side` template matches `key`
// (its slots in `parts`), -1 when none does; an error for a malformed layer
// number, or for an expert stack's leaf outside "layers.N." (it would
// otherwise pass through unconverted).
absl::StatusOr<int> MatchRow(const std::vector<Row>& rows, absl::string_view key, bool hf_side, KeyParts* parts) {
  for (size_t i = 0; i < rows.size(); ++i) {
    ASSIGN_OR_RETURN(bool hit, (hf_side ? rows[i].hf : rows[i].native).Match(key, parts));
    if (hit) return static_cast<int>(i);
  }
  for (const Row& r : rows) {
    if (IsStack(r.shape) && absl::EndsWith(key, hf_side ? r.hf_leaf : r.native_leaf)) {
      return absl::InvalidArgumentError(absl::StrCat("key ", Quote(key), ": an expert stack outside a layer (expected ",
                                                     Quote((hf_side ? r.hf : r.native).templ()), ")"));
    }
  }
  return -1;
}

// CheckStack(): an expert stack's header against `want` ([E or E_local, ...]).
absl::Status CheckStack(const TensorInfo& in, GroupedShape shape, const Shape& want, absl::string_view experts_name) {
  if (!IsExpertDType(in.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("key ", Quote(in.name), ": expert weights must be F32, BF16 or F16, got ",
                                                   DTypeName(in.dtype)));
  }
  if (in.shape == want) return absl::OkStatus();
  if (in.shape.size() == want.size() && Shape(in.shape.begin() + 1, in.shape.end()) == Shape(want.begin() + 1, want.end())) {
    return absl::InvalidArgumentError(absl::StrCat("key ", Quote(in.name), ": holds ", in.shape[0], " experts, expected ",
                                                   experts_name, "=", want[0], " (shape ", ShapeString(in.shape), ")"));
  }
  return absl::InvalidArgumentError(
      ShapeMismatch(in.name, absl::StrCat("expert stack ", StackShapeText(shape)), want, in.shape));
}

// CastInto(): `n` elements of `src` (dtype `from`) into `dst` (dtype `to`),
// with the project's one cast (TransposeCast of a single row).
void CastInto(const uint8_t* src, DType from, uint8_t* dst, DType to, int64_t n) {
  if (n > 0) TransposeCast({src, from, n, dst, to, 1, 1, n});
}

// Plan routing (TensorPlan's opaque fields): role = row index, expert = part.
constexpr int64_t kWholeTensor = -1;
constexpr int64_t kBlocksHalf = 0;
constexpr int64_t kScalesHalf = 1;
constexpr const char* kHalfSuffix[2] = {"_blocks", "_scales"};

class GroupedFromHf final : public FromHfConverter {
 public:
  GroupedFromHf(const ConvertOptions& o, const ModelFamily& family)
      : opts_(o),
        family_(family),
        rows_(CompileRows(family)),
        range_(EpRange(o.geometry.num_experts, o.ep_size, o.ep_rank)),
        target_(o.dtype ? o.dtype : o.geometry.config_dtype) {
    if (range_.size() == 0) warnings_.push_back(EmptyRangeWarning(o, range_.size()));
  }

  absl::StatusOr<TensorPlan> Plan(const TensorInfo& in) override {
    RETURN_IF_ERROR(inputs_.Claim(in.name));
    TensorPlan plan;
    plan.input = in;
    Route(&plan)->at.expert = kWholeTensor;
    if (absl::EndsWith(in.name, "_scale_inv")) {
      return absl::UnimplementedError(absl::StrCat("key ", Quote(in.name), ": FP8 block scales are not supported for model family ",
                                                   Quote(family_.name()),
                                                   " (its weights would need dequantising; they are never dropped)"));
    }
    if (family_.spec().mxfp4) {
      for (int64_t half : {kBlocksHalf, kScalesHalf}) {
        if (absl::EndsWith(in.name, kHalfSuffix[half])) return PlanHalf(plan, half);
      }
    }
    KeyParts parts;
    ASSIGN_OR_RETURN(int row, MatchRow(rows_, in.name, /*hf_side=*/true, &parts));
    if (row < 0) {
      plan.kind = TensorPlan::Kind::kPassThrough;
      return plan;
    }
    Route(&plan)->row = row;
    Route(&plan)->at.prefix = parts.prefix;
    Route(&plan)->at.layer = parts.layer;
    plan.kind = TensorPlan::Kind::kWhole;
    const GroupedShape shape = rows_[row].shape;
    if (!IsStack(shape)) return plan;
    RETURN_IF_ERROR(CheckMoeLayer(opts_.geometry, in.name, parts.layer));
    RETURN_IF_ERROR(CheckStack(in, shape, StackShape(shape, opts_.geometry.num_experts, opts_.geometry), "E"));
    NoteLayer(shape, parts);
    if (range_.size() == 0) plan.kind = TensorPlan::Kind::kDrop;
    return plan;
  }

  absl::Status ClaimPassThrough(const TensorPlan& plan) override { return registry_.ClaimPassThrough(plan); }

  absl::Status Add(const TensorPlan& plan, const Tensor& in, const TensorSink& sink) override {
    ASSIGN_OR_RETURN(const bool done, EmitUnconverted(plan, in, registry_, sink));
    if (done) return absl::OkStatus();
    if (plan.kind == TensorPlan::Kind::kSlabs) return absl::InternalError("from_hf has no slab plans");
    if (plan.route == nullptr) return NotPlanned(plan);
    if (plan.route->at.expert != kWholeTensor) return AddHalf(plan, in, sink);
    const Row& row = rows_[plan.route->row];
    std::string key = row.native.Format(KeyParts{plan.route->at.prefix, plan.route->at.layer, -1});
    if (!IsStack(row.shape)) return Emit(std::move(key), in, sink);
    return Emit(std::move(key), LocalStack(in), sink);
  }

  absl::Status Finish(const TensorSink& sink) override {
    (void)sink;
    if (!waiting_.empty()) {
      const Waiting& w = waiting_.begin()->second;
      return absl::InvalidArgumentError(absl::StrCat(
          "key ", Quote(w.name), ": MXFP4 ", kHalfSuffix[w.half] + 1, " without its ", kHalfSuffix[1 - w.half] + 1, " (",
          Quote(absl::StrCat(waiting_.begin()->first, kHalfSuffix[1 - w.half])), " is missing)",
          waiting_.size() > 1 ? absl::StrCat("; ", waiting_.size(), " MXFP4 tensors lack their partner") : ""));
    }
    return CheckCoverage();
  }

  size_t HeldBytes() const override { return held_; }
  size_t KeptBytes() const override { return inputs_.bytes() + registry_.bytes() + kept_; }

  std::map<std::string, std::string> OutputMetadata() const override {
    if (opts_.ep_size <= 1) return {};
    return EpMetadata(opts_.geometry.num_experts, opts_.ep_size, opts_.ep_rank);
  }

  std::vector<std::string> Warnings() const override { return warnings_; }

 private:
  struct Waiting {
    std::string name;  // the half's key, for messages
    int64_t half;
    Tensor data;
  };

  absl::Status Emit(std::string key, Tensor t, const TensorSink& sink) {
    RETURN_IF_ERROR(registry_.Claim(key));
    return sink(NamedTensor{std::move(key), std::move(t)});
  }

  // LocalStack(): this rank's experts of a validated stack, in the target
  // dtype; the input's own bytes when nothing changes.
  Tensor LocalStack(const Tensor& in) const {
    const int64_t count = range_.size();
    const int64_t per_expert = in.shape.empty() || in.shape[0] == 0 ? 0 : *NumElements(in.shape) / in.shape[0];
    const size_t in_elem = DTypeSize(in.dtype);
    Shape shape = in.shape;
    shape[0] = count;
    const size_t offset = static_cast<size_t>(range_.begin * per_expert) * in_elem;
    const DType out = target_.value_or(in.dtype);
    if (out == in.dtype) {
      if (count == in.shape[0]) return in;
      return Tensor{in.dtype, std::move(shape), in.data.Slice(offset, static_cast<size_t>(count * per_expert) * in_elem)};
    }
    Tensor t = Tensor::Allocate(out, std::move(shape));
    const size_t out_elem = DTypeSize(out);
    for (int64_t e = 0; e < count; ++e) {
      CastInto(in.data.data() + offset + e * per_expert * in_elem, in.dtype, t.mutable_data() + e * per_expert * out_elem,
               out, per_expert);
    }
    return t;
  }

  // ---- MXFP4 ---------------------------------------------------------------

  absl::StatusOr<TensorPlan> PlanHalf(TensorPlan& plan, int64_t half) {
    const TensorInfo& in = plan.input;
    const std::string base = in.name.substr(0, in.name.size() - std::string(kHalfSuffix[half]).size());
    KeyParts parts;
    ASSIGN_OR_RETURN(int row, MatchRow(rows_, base, /*hf_side=*/true, &parts));
    if (row < 0 || (rows_[row].shape != GroupedShape::kGateUp && rows_[row].shape != GroupedShape::kDown)) {
      return absl::UnimplementedError(absl::StrCat("key ", Quote(in.name), ": MXFP4 ", kHalfSuffix[half] + 1,
                                                   " are supported for the expert weights gate_up_proj and down_proj only"));
    }
    RETURN_IF_ERROR(CheckMoeLayer(opts_.geometry, in.name, parts.layer));
    // The decoded [E, 32G, R] is the stack [E, A, B]: R = B, G = A / 32.
    const GroupedShape shape = rows_[row].shape;
    const Shape stack = StackShape(shape, opts_.geometry.num_experts, opts_.geometry);
    if (stack[1] % 32 != 0) {
      return absl::InvalidArgumentError(absl::StrCat("key ", Quote(in.name), ": MXFP4 packs 32 values per scale, but ",
                                                     StackShapeText(shape), " is ", ShapeString(stack),
                                                     " (dim 1 is not a multiple of 32)"));
    }
    Shape want = {stack[0], stack[2], stack[1] / 32};
    if (half == kBlocksHalf) want.push_back(kMxfp4BytesPerGroup);
    if (in.dtype != DType::kU8) {
      return absl::InvalidArgumentError(absl::StrCat("key ", Quote(in.name), ": MXFP4 ", kHalfSuffix[half] + 1,
                                                     " must be U8, got ", DTypeName(in.dtype)));
    }
    if (in.shape != want) {
      if (in.shape.size() == want.size() && Shape(in.shape.begin() + 1, in.shape.end()) == Shape(want.begin() + 1, want.end())) {
        return absl::InvalidArgumentError(absl::StrCat("key ", Quote(in.name), ": holds ", in.shape[0],
                                                       " experts, expected E=", want[0], " (shape ", ShapeString(in.shape), ")"));
      }
      return absl::InvalidArgumentError(ShapeMismatch(
          in.name, absl::StrCat("MXFP4 ", kHalfSuffix[half] + 1, " of ", StackShapeText(shape)), want, in.shape));
    }
    NoteLayer(shape, parts);
    Route(&plan)->row = row;
    Route(&plan)->at.prefix = parts.prefix;
    Route(&plan)->at.layer = parts.layer;
    Route(&plan)->at.expert = half;
    plan.kind = TensorPlan::Kind::kWhole;
    // The first half to arrive waits for the other.
    if (planned_halves_.insert(base).second) {
      plan.hold_bytes = static_cast<size_t>(*NumElements(in.shape));
      kept_ += KeyFootprint(base.size());
    }
    return plan;
  }

  absl::Status AddHalf(const TensorPlan& plan, const Tensor& in, const TensorSink& sink) {
    const std::string& name = plan.input.name;
    const std::string base = name.substr(0, name.size() - std::string(kHalfSuffix[plan.route->at.expert]).size());
    auto it = waiting_.find(base);
    if (it == waiting_.end()) {
      held_ += in.nbytes();
      kept_ += KeyFootprint(name.size());
      waiting_.emplace(base, Waiting{name, plan.route->at.expert, in});
      return absl::OkStatus();
    }
    Waiting w = std::move(it->second);
    waiting_.erase(it);
    held_ -= w.data.nbytes();
    kept_ -= KeyFootprint(w.name.size());
    const Tensor& blocks = plan.route->at.expert == kBlocksHalf ? in : w.data;
    const Tensor& scales = plan.route->at.expert == kBlocksHalf ? w.data : in;
    const std::string& blocks_name = plan.route->at.expert == kBlocksHalf ? name : w.name;
    const std::string& scales_name = plan.route->at.expert == kBlocksHalf ? w.name : name;
    ASSIGN_OR_RETURN(Shape decoded, Mxfp4OutputShape(TensorInfo{blocks_name, blocks.dtype, blocks.shape},
                                                     TensorInfo{scales_name, scales.dtype, scales.shape}));
    const Row& row = rows_[plan.route->row];
    std::string key = row.native.Format(KeyParts{plan.route->at.prefix, plan.route->at.layer, -1});
    if (range_.size() == 0) return absl::OkStatus();
    // Decoded values are exact in BF16 and F32; F16 goes through F32 and the
    // common cast. Only this rank's experts are decoded.
    const DType out = target_.value_or(DType::kBF16);
    const DType decode_to = out == DType::kF16 ? DType::kF32 : out;
    Mxfp4View view = Mxfp4View::Of(blocks, scales);
    view.blocks += range_.begin * view.rows * view.groups * kMxfp4BytesPerGroup;
    view.scales += range_.begin * view.rows * view.groups;
    view.experts = range_.size();
    decoded[0] = range_.size();
    Tensor t = Tensor::Allocate(decode_to, decoded);
    // Experts are independent: one per pool item (GPT-OSS-120B: 128 of ~32 MB each).
    void* dst = t.mutable_data();
    internal::WorkerPool::Get().ParallelFor(view.experts, ConversionThreads(), [&](int64_t e) {
      DecodeMxfp4Experts(view, e, e + 1, decode_to, dst);
    });
    if (decode_to != out) {
      Tensor cast = Tensor::Allocate(out, decoded);
      CastInto(t.data.data(), decode_to, cast.mutable_data(), out, *NumElements(decoded));
      t = std::move(cast);
    }
    return Emit(std::move(key), std::move(t), sink);
  }

  // ---- coverage (spec §15.2) ----------------------------------------------

  void NoteLayer(GroupedShape shape, const KeyParts& parts) {
    if (shape != GroupedShape::kGateUp && shape != GroupedShape::kDown) return;
    if (seen_.insert({parts.layer, shape == GroupedShape::kGateUp}).second) kept_ += kKeyOverheadBytes;
  }

  // With a full config, every MoE layer needs both expert weights.
  absl::Status CheckCoverage() const {
    const Geometry& g = opts_.geometry;
    if (!g.has_layer_plan() || seen_.empty() || opts_.partial_checkpoint) return absl::OkStatus();
    std::vector<std::string> missing;
    int64_t n = 0;
    for (int64_t l = 0; l < *g.num_hidden_layers; ++l) {
      if (!g.IsMoeLayer(l)) continue;
      for (const Row& row : rows_) {
        if (row.shape != GroupedShape::kGateUp && row.shape != GroupedShape::kDown) continue;
        if (!seen_.count({l, row.shape == GroupedShape::kGateUp}) && ++n <= 5) {
          missing.push_back(row.hf.Format(KeyParts{"", l, -1}));
        }
      }
    }
    if (n == 0) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "config.json declares MoE layers whose expert weights are missing from the input: ", n, " missing, first: [",
        absl::StrJoin(missing, ", "), "] (any prefix)"));
  }

  ConvertOptions opts_;
  const ModelFamily& family_;
  std::vector<Row> rows_;
  ExpertRange range_;
  std::optional<DType> target_;
  InputRegistry inputs_;
  OutputRegistry registry_;
  std::set<std::string> planned_halves_;     // MXFP4 bases with a planned half
  std::map<std::string, Waiting> waiting_;   // MXFP4 halves waiting for their partner, by base key
  std::set<std::pair<int64_t, bool>> seen_;  // (layer, gate/up?) of the expert weights seen
  size_t held_ = 0;
  size_t kept_ = 0;
  std::vector<std::string> warnings_;
};

class GroupedToHf final : public ToHfConverter {
 public:
  GroupedToHf(const ConvertOptions& o, const ModelFamily& family)
      : opts_(o),
        rows_(CompileRows(family)),
        exclude_(o.exclude_key_regex),
        range_(EpRange(o.geometry.num_experts, o.ep_size, o.ep_rank)) {
    if (range_.size() == 0) warnings_.push_back(EmptyRangeWarning(o, range_.size()));
  }

  absl::StatusOr<TensorPlan> Plan(const TensorInfo& in) override {
    RETURN_IF_ERROR(inputs_.Claim(in.name));
    TensorPlan plan;
    plan.input = in;
    KeyParts parts;
    ASSIGN_OR_RETURN(int row, MatchRow(rows_, in.name, /*hf_side=*/false, &parts));
    if (row < 0) {
      plan.kind = exclude_.Excludes(in.name) ? TensorPlan::Kind::kDrop : TensorPlan::Kind::kPassThrough;
      return plan;
    }
    Route(&plan)->row = row;
    Route(&plan)->at.prefix = parts.prefix;
    Route(&plan)->at.layer = parts.layer;
    const GroupedShape shape = rows_[row].shape;
    if (IsStack(shape)) {
      RETURN_IF_ERROR(CheckMoeLayer(opts_.geometry, in.name, parts.layer));
      absl::Status valid = CheckStack(in, shape, StackShape(shape, range_.size(), opts_.geometry), "E_local");
      if (!valid.ok() && opts_.ep_size > 1) {
        return absl::Status(valid.code(), absl::StrCat(valid.message(), " (E_local = experts ", range_.begin, ":",
                                                       range_.end, " of rank ", opts_.ep_rank, "/", opts_.ep_size, ")"));
      }
      RETURN_IF_ERROR(valid);
    }
    const bool excluded = exclude_.Excludes(rows_[row].hf.Format(parts));
    plan.kind = excluded ? TensorPlan::Kind::kDrop : TensorPlan::Kind::kWhole;
    return plan;
  }

  absl::Status ConvertSlab(const TensorPlan& plan, int64_t, const uint8_t*, const TensorSink&) override {
    return absl::InvalidArgumentError(absl::StrCat("key ", Quote(plan.input.name), ": renamed tensors convert whole"));
  }

  absl::Status ClaimPassThrough(const TensorPlan& plan) override { return registry_.ClaimPassThrough(plan); }

  absl::Status ConvertWhole(const TensorPlan& plan, const Tensor& in, const TensorSink& sink) override {
    ASSIGN_OR_RETURN(const bool done, EmitUnconverted(plan, in, registry_, sink));
    if (done) return absl::OkStatus();
    if (plan.kind == TensorPlan::Kind::kSlabs) return absl::InternalError("grouped to_hf has no slab plans");
    if (plan.route == nullptr) return NotPlanned(plan);
    const Row& row = rows_[plan.route->row];
    std::string key = row.hf.Format(KeyParts{plan.route->at.prefix, plan.route->at.layer, -1});
    RETURN_IF_ERROR(registry_.Claim(key));
    Tensor out = in;
    if (IsStack(row.shape) && opts_.dtype && *opts_.dtype != in.dtype) {
      out = Tensor::Allocate(*opts_.dtype, in.shape);
      CastInto(in.data.data(), in.dtype, out.mutable_data(), *opts_.dtype, *NumElements(in.shape));
    }
    return sink(NamedTensor{std::move(key), std::move(out)});
  }

  // Renaming converts any subset of a checkpoint (one tensor, as the
  // reference's convert_single_tensor_to_hf): no whole-checkpoint rule here.
  absl::Status Finish() override { return absl::OkStatus(); }

  std::vector<std::string> Warnings() const override { return warnings_; }
  size_t KeptBytes() const override { return inputs_.bytes() + registry_.bytes(); }

 private:
  ConvertOptions opts_;
  std::vector<Row> rows_;
  ExcludeFilter exclude_;
  ExpertRange range_;
  InputRegistry inputs_;
  OutputRegistry registry_;
  std::vector<std::string> warnings_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<FromHfConverter>> NewGroupedFromHf(const ConvertOptions& options,
                                                                  const ModelFamily& family) {
  return std::unique_ptr<FromHfConverter>(new GroupedFromHf(options, family));
}

absl::StatusOr<std::unique_ptr<ToHfConverter>> NewGroupedToHf(const ConvertOptions& options,
                                                              const ModelFamily& family) {
  if (options.quantization) {
    return absl::InvalidArgumentError(absl::StrCat(
        "quantization: model family ", Quote(family.name()),
        " has no quantised to_hf export (the reference writes all-ones placeholder tensors for a loader template, "
        "which this project does not produce)"));
  }
  return std::unique_ptr<ToHfConverter>(new GroupedToHf(options, family));
}

}  // namespace moe_adapter
