// Native (grouped) -> HF (per-expert) session: spec §4, §6, §7.2, §15.
#include <set>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/accelerator.h"
#include "core/expert_parallel.h"
#include "core/family_renames.h"
#include "core/fp8_from_hf.h"
#include "core/internal/status_macros.h"
#include "core/key_mapping.h"
#include "core/lora_layouts.h"
#include "core/permute.h"
#include "core/family_registry.h"
#include "core/grouped_rename.h"
#include "core/model_family.h"
#include "core/safetensors_format.h"
#include "core/session_common.h"
#include "core/tensor_route.h"
#include "core/transpose.h"
#include "moe_adapter/converter.h"
#include "core/quote.h"

namespace moe_adapter {

using safetensors::Quote;
namespace {

class ToHfSession final : public ToHfConverter {
 public:
  ToHfSession(const ConvertOptions& o, const ModelFamily& family, const Device& device)
      : opts_(o),
        device_(device),
        family_(family),
        exclude_(o.exclude_key_regex),
        range_(EpRange(o.geometry.num_experts, o.ep_size, o.ep_rank)),
        layout_(LoraLayoutToWrite(o, family)) {
    if (range_.size() == 0) warnings_.push_back(EmptyRangeWarning(o, range_.size()));
  }

  absl::StatusOr<TensorPlan> Plan(const TensorInfo& in) override {
    RETURN_IF_ERROR(inputs_.Claim(in.name));
    TensorPlan plan;
    plan.input = in;
    auto route = std::make_shared<TensorRoute>();
    ASSIGN_OR_RETURN(route->role, family_.native().Classify(in.name, &route->at));
    const KeyRole role = route->role;
    if (role == KeyRole::kOther) {
      // The exclude regex sees the final HF key (after a family's rename).
      ASSIGN_OR_RETURN(PassThroughOutput out, PassThroughOutputFor(family_, in, /*to_hf=*/true));
      plan.kind = exclude_.Excludes(out.key) ? TensorPlan::Kind::kDrop
                  : out.Rewrites(in)         ? TensorPlan::Kind::kWhole
                                             : TensorPlan::Kind::kPassThrough;
      plan.route = std::move(route);
      return plan;
    }
    const KeyParts& parts = route->at;
    plan.route = std::move(route);
    const Geometry& g = opts_.geometry;
    RETURN_IF_ERROR(CheckMoeLayer(g, in.name, parts.layer));
    if (role == KeyRole::kNativeGateUp || role == KeyRole::kNativeDown) {
      if (!IsExpertDType(in.dtype)) {
        return absl::InvalidArgumentError(absl::StrCat("key ", Quote(in.name), ": expert weights must be F32, BF16 or F16, got ",
                                                       DTypeName(in.dtype)));
      }
      const int64_t H = g.hidden_size, I = g.moe_intermediate_size;
      Shape want = role == KeyRole::kNativeGateUp ? Shape{range_.size(), H, 2 * I}
                                                  : Shape{range_.size(), I, H};
      if (in.shape != want) {
        std::string what = role == KeyRole::kNativeGateUp ? "grouped gate_and_up_projs [E_local, H, 2I]"
                                                          : "grouped down_projs [E_local, I, H]";
        std::string ep = opts_.ep_size > 1 ? absl::StrCat(" (E_local = ", range_.size(), " experts ", range_.begin,
                                                           ":", range_.end, " of rank ", opts_.ep_rank, "/",
                                                           opts_.ep_size, ")")
                                           : "";
        return absl::InvalidArgumentError(ShapeMismatch(in.name, what, want, in.shape) + ep);
      }
      plan.kind = TensorPlan::Kind::kSlabs;
      plan.num_slabs = range_.size();
      // The input's shape passed NumElements(), so one slab of it cannot
      // overflow; checked all the same, as every size from client numbers.
      ASSIGN_OR_RETURN(int64_t slab_numel, NumElements({want[1], want[2]}, DTypeSize(in.dtype)));
      plan.slab_bytes = static_cast<size_t>(slab_numel) * DTypeSize(in.dtype);
      covered_.insert({parts.layer, static_cast<int>(role)});
      return plan;
    }
    // Native LoRA: full E on dim 0 (never EP-split), rank from the shape.
    if (in.shape.size() != 3 || in.shape[0] != g.num_experts) {
      return absl::InvalidArgumentError(absl::StrCat(
          "key ", Quote(in.name), ": native LoRA ", KeyRoleName(role), " must be 3-D with E=", g.num_experts,
          " experts first (LoRA is never expert-parallel split), got ", ShapeString(in.shape)));
    }
    const int64_t r = (role == KeyRole::kNativeLoraGateUpA || role == KeyRole::kNativeLoraDownA) ? in.shape[2]
                                                                                                  : in.shape[1];
    Shape want = NativeLoraShape(role, g, r);
    if (r <= 0 || in.shape != want) {
      return absl::InvalidArgumentError(
          ShapeMismatch(in.name, absl::StrCat("native LoRA ", KeyRoleName(role)), want, in.shape));
    }
    plan.kind = TensorPlan::Kind::kWhole;
    return plan;
  }

  absl::Status ConvertSlab(const TensorPlan& plan, int64_t index, const uint8_t* slab,
                           const TensorSink& sink) override {
    if (plan.kind != TensorPlan::Kind::kSlabs || !plan.route || index < 0 || index >= plan.num_slabs) {
      return absl::InvalidArgumentError(absl::StrCat("key ", Quote(plan.input.name), ": slab ", index, " out of range"));
    }
    const Geometry& g = opts_.geometry;
    const DType src = plan.input.dtype;
    const DType dst = opts_.dtype.value_or(src);
    KeyParts parts{plan.route->at.prefix, plan.route->at.layer, range_.begin + index};
    const KeyRole role = plan.route->role;
    if (device_.accelerator) {
      // One expert slab on the device (a server streams slab by slab).
      Shape shape = {1, BaseSlot(role, g).rows, BaseSlot(role, g).cols};
      Tensor whole{plan.input.dtype, std::move(shape), Bytes::Wrap(slab, plan.slab_bytes, nullptr)};
      TensorPlan one = plan;
      one.num_slabs = 1;
      ExpertRange saved = range_;
      range_.begin += index;
      absl::Status s = ConvertOnDevice(one, whole, sink);
      range_ = saved;
      return s;
    }
    // The slot G[e] is [R, C] (gate_up [H, 2I], down [I, H]); each HF part
    // is its block of W columns, transposed to [W, R].
    const GroupedSlot slot = BaseSlot(role, g);
    for (const RolePair* pair : family_.PairsInto(role)) {
      std::string key = family_.all().Format(pair->hf, parts);
      if (exclude_.Excludes(key)) continue;
      RETURN_IF_ERROR(registry_.Claim(key));
      const int64_t W = BlockWidth(*pair, slot.cols);
      Tensor t = Tensor::Allocate(dst, {W, slot.rows});
      TransposeCast({slab + BlockOffset(*pair, slot.cols) * DTypeSize(src), src, slot.cols, t.mutable_data(), dst,
                     slot.rows, slot.rows, W});
      RETURN_IF_ERROR(sink(NamedTensor{std::move(key), std::move(t)}));
    }
    return absl::OkStatus();
  }

  absl::Status ClaimPassThrough(const TensorPlan& plan) override { return registry_.ClaimPassThrough(plan); }

  absl::Status ConvertWhole(const TensorPlan& plan, const Tensor& in, const TensorSink& sink) override {
    ASSIGN_OR_RETURN(const bool done, EmitUnconverted(plan, in, registry_, sink));
    if (done) return absl::OkStatus();
    if (!plan.route) {
      return absl::InvalidArgumentError(absl::StrCat("key ", Quote(plan.input.name), ": its plan was not made by Plan()"));
    }
    switch (plan.kind) {
      case TensorPlan::Kind::kDrop:
      case TensorPlan::Kind::kPassThrough:
        return absl::OkStatus();  // handled above
      case TensorPlan::Kind::kSlabs:
        if (device_.accelerator && plan.num_slabs > 0) return ConvertOnDevice(plan, in, sink);
        for (int64_t i = 0; i < plan.num_slabs; ++i) {
          RETURN_IF_ERROR(ConvertSlab(plan, i, in.data.data() + i * plan.slab_bytes, sink));
        }
        return absl::OkStatus();
      case TensorPlan::Kind::kWhole:
        if (plan.route && plan.route->role == KeyRole::kOther) {  // a renamed or upcast pass-through
          ASSIGN_OR_RETURN(PassThroughOutput out, PassThroughOutputFor(family_, plan.input, /*to_hf=*/true));
          NamedTensor t = RewritePassThrough(out, in);
          return Emit(std::move(t.name), std::move(t.tensor), sink);
        }
        return layout_ == LoraLayout::kPerExpert ? LoraPerExpert(plan, in, sink) : LoraParamWrapper(plan, in, sink);
    }
    return absl::OkStatus();
  }

  absl::Status Finish() override {
    const Geometry& g = opts_.geometry;
    if (!g.has_layer_plan() || covered_.empty() || opts_.partial_checkpoint) return absl::OkStatus();
    // The first five only: num_hidden_layers may be 2^24.
    std::vector<std::string> missing;
    size_t n = 0;
    for (int64_t l = 0; l < *g.num_hidden_layers; ++l) {
      if (!g.IsMoeLayer(l)) continue;
      for (KeyRole role : {KeyRole::kNativeGateUp, KeyRole::kNativeDown}) {
        if (!covered_.count({l, static_cast<int>(role)}) && ++n <= 5) {
          missing.push_back(family_.all().Format(role, KeyParts{"", l, -1}));
        }
      }
    }
    if (n == 0) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "config.json declares MoE layers whose grouped expert tensors are missing from the input: ", n,
        " missing, first: [", absl::StrJoin(missing, ", "), "]"));
  }

  std::vector<std::string> Warnings() const override { return warnings_; }

  size_t KeptBytes() const override {
    return inputs_.bytes() + registry_.bytes() + covered_.size() * kKeyOverheadBytes;
  }

 private:
  absl::Status Emit(std::string key, Tensor t, const TensorSink& sink) {
    if (exclude_.Excludes(key)) return absl::OkStatus();
    RETURN_IF_ERROR(registry_.Claim(key));
    return sink(NamedTensor{std::move(key), std::move(t)});
  }

  // A whole grouped tensor in one batched device call; outputs are then
  // emitted in the same order as the slab path.
  absl::Status ConvertOnDevice(const TensorPlan& plan, const Tensor& in, const TensorSink& sink) {
    const Geometry& g = opts_.geometry;
    const int64_t H = g.hidden_size, I = g.moe_intermediate_size, n = plan.num_slabs;
    const DType dst = opts_.dtype.value_or(in.dtype);
    const KeyRole role = plan.route->role;
    const bool gate_up = role == KeyRole::kNativeGateUp;
    std::vector<Tensor> first(n), second(gate_up ? n : 0);
    std::vector<void*> p1(n), p2(gate_up ? n : 0);
    for (int64_t e = 0; e < n; ++e) {
      first[e] = Tensor::Allocate(dst, gate_up ? Shape{I, H} : Shape{H, I});
      p1[e] = first[e].mutable_data();
      if (gate_up) {
        second[e] = Tensor::Allocate(dst, {I, H});
        p2[e] = second[e].mutable_data();
      }
    }
    if (gate_up) {
      RETURN_IF_ERROR(device_.accelerator->ToHf(in.data.data(), nullptr, n, H, I, in.dtype, dst, p1.data(), p2.data(),
                                                nullptr));
    } else {
      RETURN_IF_ERROR(
          device_.accelerator->ToHf(nullptr, in.data.data(), n, H, I, in.dtype, dst, nullptr, nullptr, p1.data()));
    }
    // The kernels write the parts in block order: gate (or down), then up.
    const std::vector<const RolePair*>& pairs = family_.PairsInto(role);
    for (int64_t e = 0; e < n; ++e) {
      KeyParts parts{plan.route->at.prefix, plan.route->at.layer, range_.begin + e};
      RETURN_IF_ERROR(Emit(family_.all().Format(pairs[0]->hf, parts), std::move(first[e]), sink));
      if (gate_up) RETURN_IF_ERROR(Emit(family_.all().Format(pairs[1]->hf, parts), std::move(second[e]), sink));
    }
    return absl::OkStatus();
  }

  absl::Status LoraParamWrapper(const TensorPlan& plan, const Tensor& in, const TensorSink& sink) {
    const KeyRole role = plan.route->role;
    KeyParts parts{plan.route->at.prefix, plan.route->at.layer, -1};
    const absl::Span<const PwRow> rows = family_.spec().param_wrapper_rows;
    std::string key = family_.all().Format(ParamWrapperRoleForNative(rows, role, layout_), parts);
    if (exclude_.Excludes(key)) return absl::OkStatus();
    return Emit(std::move(key), NativeToParamWrapper(rows, role, layout_, in, opts_.geometry), sink);
  }

  // Legacy per-expert split (spec §6.2): per expert, each pair's block of
  // the slot, transposed; a shared slot (the gate/up A) is written under
  // every name that shares it.
  absl::Status LoraPerExpert(const TensorPlan& plan, const Tensor& in, const TensorSink& sink) {
    const KeyRole role = plan.route->role;
    const size_t elem = DTypeSize(in.dtype);
    const int64_t E = in.shape[0], d1 = in.shape[1], d2 = in.shape[2];
    const std::vector<const RolePair*>& pairs = family_.PairsInto(role);
    for (int64_t e = 0; e < E; ++e) {
      const uint8_t* slab = in.data.data() + e * d1 * d2 * elem;
      KeyParts parts{plan.route->at.prefix, plan.route->at.layer, e};
      Tensor shared;
      for (const RolePair* pair : pairs) {
        std::string key = family_.all().Format(pair->hf, parts);
        if (pair->block == RolePair::kShared && shared.data.data() != nullptr) {
          RETURN_IF_ERROR(Emit(std::move(key), Tensor{shared.dtype, shared.shape,
                                                      Bytes::CopyOf(shared.data.data(), shared.nbytes())}, sink));
          continue;
        }
        const int64_t W = BlockWidth(*pair, d2);
        Tensor t = Tensor::Allocate(in.dtype, {W, d1});
        TransposeBytes(slab + BlockOffset(*pair, d2) * elem, d2, t.mutable_data(), d1, d1, W, elem);
        if (pair->block == RolePair::kShared) shared = t;
        RETURN_IF_ERROR(Emit(std::move(key), std::move(t), sink));
      }
    }
    return absl::OkStatus();
  }

  ConvertOptions opts_;
  Device device_;
  const ModelFamily& family_;
  ExcludeFilter exclude_;
  ExpertRange range_;
  LoraLayout layout_;
  InputRegistry inputs_;
  OutputRegistry registry_;
  std::set<std::pair<int64_t, int>> covered_;
  std::vector<std::string> warnings_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ToHfConverter>> ToHfConverter::Create(const ConvertOptions& options,
                                                                     const Device& device) {
  RETURN_IF_ERROR(ValidateOptions(options));
  ASSIGN_OR_RETURN(const ModelFamily* family, ResolveFamily(options));
  RETURN_IF_ERROR(CheckFp8ExportOption(options, *family));
  if (family->spec().hf_grouped) return NewGroupedToHf(options, *family);
  return std::unique_ptr<ToHfConverter>(new ToHfSession(options, *family, device));
}

absl::Status ToHfConverter::Convert(const NamedTensor& input, const TensorSink& sink) {
  ASSIGN_OR_RETURN(TensorPlan plan, Plan(input.info()));
  return ConvertWhole(plan, input.tensor, sink);
}

}  // namespace moe_adapter
