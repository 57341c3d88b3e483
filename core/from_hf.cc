// HF (per-expert) -> native (grouped) session: spec §5, §6, §7.1, §10, §15.
// Per-expert tensors are transposed straight into their group's output buffer,
// so the session holds exactly the incomplete groups.
#include <algorithm>
#include <array>
#include <map>
#include <cstring>
#include <set>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "core/accelerator.h"
#include "core/expert_parallel.h"
#include "core/internal/status_macros.h"
#include "core/key_mapping.h"
#include "core/family_registry.h"
#include "core/lora_layouts.h"
#include "core/model_family.h"
#include "core/peft_version.h"
#include "core/permute.h"
#include "core/safetensors_format.h"
#include "core/session_common.h"
#include "core/transpose.h"
#include "moe_adapter/converter.h"
#include "core/quote.h"

namespace moe_adapter {

using safetensors::Quote;
namespace {

// A grouped base tensor being assembled: [E_local, H, 2I] or [E_local, I, H].
struct BaseGroup {
  Tensor out;
  // On a device, inputs wait here (shared, not copied) until the group is
  // complete, then convert in one batched call: [slot][0 = gate/down, 1 = up].
  std::vector<std::array<Tensor, 2>> pending;
  // Per local expert: bit 0 = gate (or down), bit 1 = up.
  std::vector<uint8_t> have;
  std::vector<DType> part_dtype;  // dtype of the first part seen per expert
  int64_t missing_parts = 0;
};

// The grouped LoRA outputs; a LoRA rank is shared by A and B of one
// projection: outputs 0, 1 (gate/up) and 2, 3 (down).
constexpr KeyRole kLoraOutRoles[4] = {KeyRole::kNativeLoraGateUpA, KeyRole::kNativeLoraGateUpB,
                                      KeyRole::kNativeLoraDownA, KeyRole::kNativeLoraDownB};
constexpr int kMaxLoraSubs = 8;

int OutIndex(KeyRole grouped) {
  for (int i = 0; i < 4; ++i) {
    if (kLoraOutRoles[i] == grouped) return i;
  }
  return -1;
}

// One layer's per-expert LoRA being regrouped (spec §6.2 reverse, §15.3).
// A "sub" is one per-expert LoRA pair of the family (LoraSubs below).
struct LoraGroup {
  Tensor out[4];                 // A_gu [E,H,r], B_gu [E,r,2I], A_dn [E,I,r], B_dn [E,r,H]
  int64_t rank[2] = {-1, -1};    // gate/up projection, down projection
  std::vector<uint8_t> have[kMaxLoraSubs];
  int64_t count[kMaxLoraSubs] = {};
  bool emitted[4] = {false, false, false, false};
  DType dtype = DType::kF32;
  bool dtype_set = false;
};

// LoraSubs(): the family's per-expert LoRA pairs in table order.
std::vector<const RolePair*> LoraSubs(const ModelFamily& family) {
  std::vector<const RolePair*> subs;
  for (const RolePair& p : family.spec().pairs) {
    if (OutIndex(p.grouped) >= 0 && subs.size() < kMaxLoraSubs) subs.push_back(&p);
  }
  return subs;
}

bool IsLoraA(KeyRole grouped) {
  return grouped == KeyRole::kNativeLoraGateUpA || grouped == KeyRole::kNativeLoraDownA;
}

using LayerKey = std::pair<std::string, int64_t>;  // (prefix, layer)

class FromHfSession final : public FromHfConverter {
 public:
  FromHfSession(const ConvertOptions& o, const ModelFamily& family, std::optional<LoraLayout> pw_layout,
                const Device& device)
      : opts_(o),
        device_(device),
        family_(family),
        lora_subs_(LoraSubs(family)),
        range_(EpRange(o.geometry.num_experts, o.ep_size, o.ep_rank)),
        target_(o.dtype ? o.dtype : o.geometry.config_dtype),
        pw_layout_(pw_layout) {
    if (range_.size() == 0) warnings_.push_back(EmptyRangeWarning(o, range_.size()));
  }

  absl::StatusOr<TensorPlan> Plan(const TensorInfo& in) override {
    RETURN_IF_ERROR(inputs_.Claim(in.name));
    TensorPlan plan;
    plan.input = in;
    if (absl::EndsWith(in.name, "_scale_inv")) {
      return absl::UnimplementedError(absl::StrCat(
          "key ", Quote(in.name),
          ": FP8 checkpoints are not supported yet (block scales *_scale_inv would be needed to dequantise)"));
    }
    KeyParts parts;
    ASSIGN_OR_RETURN(KeyRole role, family_.hf().Classify(in.name, &parts));
    plan.role = static_cast<int>(role);
    plan.prefix = parts.prefix;
    plan.layer = parts.layer;
    plan.expert = parts.expert;
    if (role == KeyRole::kOther) {
      plan.kind = TensorPlan::Kind::kPassThrough;
      return plan;
    }
    const Geometry& g = opts_.geometry;
    RETURN_IF_ERROR(CheckMoeLayer(g, in.name, parts.layer));
    if (IsParamWrapperRole(role)) return PlanParamWrapper(plan, role);
    if (parts.expert >= g.num_experts) {
      return absl::InvalidArgumentError(absl::StrCat("key ", Quote(in.name), ": expert id ", parts.expert,
                                                     " is out of range, the model has E=", g.num_experts,
                                                     " experts (ids 0..", g.num_experts - 1, ")"));
    }
    if (IsPerExpertLoraRole(role)) return PlanLoraPerExpert(plan, role);
    return PlanBase(plan, role);
  }

  absl::Status ClaimPassThrough(const TensorPlan& plan) override { return registry_.ClaimPassThrough(plan); }

  absl::Status Add(const TensorPlan& plan, const Tensor& in, const TensorSink& sink) override {
    if (in.dtype != plan.input.dtype || in.shape != plan.input.shape) {
      return absl::InvalidArgumentError(absl::StrCat("key ", Quote(plan.input.name), ": data does not match its header"));
    }
    const KeyRole role = static_cast<KeyRole>(plan.role);
    switch (plan.kind) {
      case TensorPlan::Kind::kDrop:
        return absl::OkStatus();
      case TensorPlan::Kind::kPassThrough:
        RETURN_IF_ERROR(registry_.Claim(plan.input.name));
        return sink(NamedTensor{plan.input.name, in});
      case TensorPlan::Kind::kSlabs:
        return absl::InternalError("from_hf has no slab plans");
      case TensorPlan::Kind::kWhole:
        break;
    }
    if (IsParamWrapperRole(role)) return AddParamWrapper(plan, role, in, sink);
    if (IsPerExpertLoraRole(role)) return AddLoraPerExpert(plan, role, in, sink);
    return AddBase(plan, role, in, sink);
  }

  absl::Status Finish(const TensorSink& sink) override {
    RETURN_IF_ERROR(CheckBaseComplete());
    RETURN_IF_ERROR(CheckLoraComplete());
    if (!deferred_.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot tell the LoRA layout of this adapter: all ", deferred_.size(),
          " expert ParamWrapper tensors (first ", Quote(deferred_.front().name),
          ") fit both peft-v0.18 and peft-v0.19 (their shapes coincide when H == 2I or H == I); pass "
          "--lora-layout peft-v0.19|peft-v0.18, or the adapter_config.json (its peft_version decides)"));
    }
    (void)sink;
    return absl::OkStatus();
  }

  size_t HeldBytes() const override { return held_; }
  size_t KeptBytes() const override { return inputs_.bytes() + registry_.bytes() + kept_; }

  std::map<std::string, std::string> OutputMetadata() const override {
    if (opts_.ep_size <= 1) return {};
    return EpMetadata(opts_.geometry.num_experts, opts_.ep_size, opts_.ep_rank);
  }

  std::vector<std::string> Warnings() const override { return warnings_; }

 private:
  // ---- base expert weights -------------------------------------------------

  // What a base group keeps per local expert besides its output: the have
  // and dtype flags, and (on a device) the inputs' handles.
  size_t GroupFlagBytes() const {
    const size_t per_expert = sizeof(uint8_t) + sizeof(DType) + (device_.accelerator ? sizeof(std::array<Tensor, 2>) : 0);
    return static_cast<size_t>(range_.size()) * per_expert;
  }

  absl::StatusOr<TensorPlan> PlanBase(TensorPlan& plan, KeyRole role) {
    const Geometry& g = opts_.geometry;
    const TensorInfo& in = plan.input;
    if (!IsExpertDType(in.dtype)) {
      return absl::InvalidArgumentError(absl::StrCat("key ", Quote(in.name), ": expert weights must be F32, BF16 or F16, got ",
                                                     DTypeName(in.dtype)));
    }
    const RolePair& pair = *family_.PairFor(role);
    const KeyRole native = pair.grouped;
    // The HF part is its block of the slot [R, C], transposed: [W, R].
    const GroupedSlot slot = BaseSlot(native, g);
    Shape want = {BlockWidth(pair, slot.cols), slot.rows};
    if (in.shape != want) {
      return absl::InvalidArgumentError(ShapeMismatch(
          in.name, absl::StrCat("per-expert ", KeyRoleName(role), " [", slot.block_name, ", ", slot.rows_name, "]"), want,
          in.shape));
    }
    std::string native_key = family_.all().Format(native, KeyParts{plan.prefix, plan.layer, -1});
    if (touched_.insert({plan.prefix, plan.layer}).second) kept_ += KeyFootprint(plan.prefix.size());
    if (!range_.contains(plan.expert)) {
      // Another rank's expert: valid, not ours (spec §7.1); Plan() already
      // refused a second one under the same key.
      plan.kind = TensorPlan::Kind::kDrop;
      return plan;
    }
    if (completed_.count(native_key)) {
      return absl::InvalidArgumentError(absl::StrCat("key ", Quote(in.name), ": duplicate expert tensor, group ",
                                                     Quote(native_key), " is already complete"));
    }
    auto it = groups_.find(native_key);
    const int bit = 1 << pair.block;
    const int64_t expert_slot = plan.expert - range_.begin;
    if (it != groups_.end()) {
      const BaseGroup& grp = it->second;
      if (grp.have[expert_slot] & bit) {
        return absl::InvalidArgumentError(absl::StrCat("key ", Quote(in.name), ": duplicate expert tensor"));
      }
      if (grp.have[expert_slot] && grp.part_dtype[expert_slot] != in.dtype) {
        return absl::InvalidArgumentError(absl::StrCat(
            "key ", Quote(in.name), ": ", PartNames(native), " of expert ", plan.expert, " have different dtypes (",
            DTypeName(grp.part_dtype[expert_slot]), " vs ", DTypeName(in.dtype), ")"));
      }
      if (!target_ && grp.out.dtype != in.dtype) {
        return absl::InvalidArgumentError(absl::StrCat(
            "key ", Quote(in.name), ": dtype ", DTypeName(in.dtype), " differs from the other experts of ", Quote(native_key),
            " (", DTypeName(grp.out.dtype), "); pass a target dtype (--dtype) to cast them to one"));
      }
    } else {
      // The new group's output buffer and flags. ValidateOptions() keeps
      // E x H x 2I x 4 within int64; counted with checks all the same.
      const DType out = target_.value_or(in.dtype);
      ASSIGN_OR_RETURN(int64_t numel, NumElements({range_.size(), slot.rows, slot.cols}, DTypeSize(out)));
      plan.hold_bytes = static_cast<size_t>(numel) * DTypeSize(out) + GroupFlagBytes() + KeyFootprint(native_key.size());
    }
    plan.kind = TensorPlan::Kind::kWhole;
    return plan;
  }

  absl::Status AddBase(const TensorPlan& plan, KeyRole role, const Tensor& in, const TensorSink& sink) {
    const RolePair& pair = *family_.PairFor(role);
    const KeyRole native = pair.grouped;
    const GroupedSlot slot = BaseSlot(native, opts_.geometry);
    std::string native_key = family_.all().Format(native, KeyParts{plan.prefix, plan.layer, -1});
    auto it = groups_.find(native_key);
    if (it == groups_.end()) {
      BaseGroup grp;
      const DType out = target_.value_or(in.dtype);
      grp.out = Tensor::Allocate(out, {range_.size(), slot.rows, slot.cols});
      grp.have.assign(range_.size(), 0);
      grp.part_dtype.assign(range_.size(), in.dtype);
      grp.missing_parts = range_.size() * pair.blocks;
      if (device_.accelerator) grp.pending.resize(range_.size());
      held_ += grp.out.nbytes();
      kept_ += GroupFlagBytes() + KeyFootprint(native_key.size());
      it = groups_.emplace(native_key, std::move(grp)).first;
    }
    BaseGroup& grp = it->second;
    const int64_t e = plan.expert - range_.begin;
    if (grp.have[e] == 0) grp.part_dtype[e] = in.dtype;
    grp.have[e] |= 1 << pair.block;
    --grp.missing_parts;
    const size_t out_elem = DTypeSize(grp.out.dtype);
    if (device_.accelerator) {
      grp.pending[e][pair.block] = in;
      held_ += in.nbytes();
    } else {
      // The part [W, R] -> its block of columns of G[e] [R, C]
      // (gate_e / up_e [I, H] -> columns [0, I) / [I, 2I) of [H, 2I]).
      uint8_t* dst = grp.out.mutable_data() + (e * slot.rows * slot.cols + BlockOffset(pair, slot.cols)) * out_elem;
      TransposeCast({in.data.data(), in.dtype, slot.rows, dst, grp.out.dtype, slot.cols, BlockWidth(pair, slot.cols),
                     slot.rows});
    }
    if (grp.missing_parts > 0) return absl::OkStatus();
    if (device_.accelerator) RETURN_IF_ERROR(GroupOnDevice(native, grp));
    Tensor out = std::move(grp.out);
    held_ -= out.nbytes();
    groups_.erase(it);
    kept_ -= GroupFlagBytes();  // the key stays, in completed_
    completed_.insert(native_key);
    RETURN_IF_ERROR(registry_.Claim(native_key));
    return sink(NamedTensor{std::move(native_key), std::move(out)});
  }

  // PartNames(): "gate_proj and up_proj" for messages.
  std::string PartNames(KeyRole native) const {
    std::vector<std::string> names;
    for (const RolePair* p : family_.PairsInto(native)) names.emplace_back(KeyRoleName(p->hf));
    return absl::StrJoin(names, " and ");
  }

  // A complete group in one batched device call (falls back to the CPU for
  // a group whose experts mix input dtypes).
  absl::Status GroupOnDevice(KeyRole native, BaseGroup& grp) {
    const int64_t n = range_.size(), H = opts_.geometry.hidden_size, I = opts_.geometry.moe_intermediate_size;
    const DType src = grp.pending[0][0].dtype;
    bool uniform = true;
    std::vector<const void*> a(n), b(n);
    for (int64_t e = 0; e < n; ++e) {
      a[e] = grp.pending[e][0].data.data();
      b[e] = grp.pending[e][1].data.data();
      uniform = uniform && grp.pending[e][0].dtype == src && (native != KeyRole::kNativeGateUp || grp.pending[e][1].dtype == src);
    }
    const size_t out_elem = DTypeSize(grp.out.dtype);
    if (!uniform) {
      const GroupedSlot slot = BaseSlot(native, opts_.geometry);
      for (int64_t e = 0; e < n; ++e) {
        for (const RolePair* pair : family_.PairsInto(native)) {
          const Tensor& part = grp.pending[e][pair->block];
          uint8_t* dst = grp.out.mutable_data() + (e * slot.rows * slot.cols + BlockOffset(*pair, slot.cols)) * out_elem;
          TransposeCast({part.data.data(), part.dtype, slot.rows, dst, grp.out.dtype, slot.cols,
                         BlockWidth(*pair, slot.cols), slot.rows});
        }
      }
    } else if (native == KeyRole::kNativeGateUp) {
      RETURN_IF_ERROR(device_.accelerator->FromHf(a.data(), b.data(), nullptr, n, H, I, src, grp.out.dtype,
                                                  grp.out.mutable_data(), nullptr));
    } else {
      RETURN_IF_ERROR(device_.accelerator->FromHf(nullptr, nullptr, a.data(), n, H, I, src, grp.out.dtype, nullptr,
                                                  grp.out.mutable_data()));
    }
    for (const auto& p : grp.pending) held_ -= p[0].nbytes() + p[1].nbytes();
    grp.pending.clear();
    return absl::OkStatus();
  }

  // The reference's message (spec §10), with the same facts.
  absl::Status CheckBaseComplete() {
    const Geometry& g = opts_.geometry;
    // Counts and the first few keys only: a hostile stream can leave 2^24
    // experts of thousands of layers missing.
    std::vector<std::string> first;
    int64_t n = 0;
    auto missing = [&](KeyRole role, const LayerKey& lk, int64_t e) {
      if (++n <= 5) first.push_back(ShortKey(family_.all().Format(role, KeyParts{lk.first, lk.second, e})));
    };
    std::set<int64_t> layers;
    int64_t total = 0;
    for (const LayerKey& lk : touched_) {
      layers.insert(lk.second);
      for (KeyRole native : {KeyRole::kNativeGateUp, KeyRole::kNativeDown}) {
        const std::vector<const RolePair*> pairs = family_.PairsInto(native);
        total += static_cast<int64_t>(pairs.size()) * range_.size();
        std::string native_key = family_.all().Format(native, KeyParts{lk.first, lk.second, -1});
        if (completed_.count(native_key) || range_.size() == 0) continue;
        auto it = groups_.find(native_key);
        for (int64_t e = range_.begin; e < range_.end; ++e) {
          const uint8_t have = it == groups_.end() ? 0 : it->second.have[e - range_.begin];
          for (const RolePair* pair : pairs) {
            if (!(have & (1 << pair->block))) missing(pair->hf, lk, e);
          }
        }
      }
    }
    if (n > 0) {
      IdsList ids;
      for (int64_t e = range_.begin; e < range_.end; ++e) ids.Add(e);
      return absl::InvalidArgumentError(absl::StrCat(
          "Expert weights missing from checkpoint",
          opts_.ep_size > 1 ? absl::StrCat(" (rank ", opts_.ep_rank, ")") : std::string(), ": ", n, "/", total,
          " required weights not found. Layers with experts: ", LayersText(layers), ", Required experts: ", ids.Text(),
          ". First few missing keys: [", absl::StrJoin(first, ", "), "]",
          n > 5 ? absl::StrCat(" (and ", n - 5, " more)") : std::string()));
    }
    // With a full config, base weights imply every MoE layer has its experts.
    if (g.has_layer_plan() && !touched_.empty() && !opts_.partial_checkpoint) {
      IdsList absent;
      for (int64_t l = 0; l < *g.num_hidden_layers; ++l) {
        if (g.IsMoeLayer(l) && !layers.count(l)) absent.Add(l);
      }
      if (!absent.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "config.json declares MoE layers with no expert weights in the input: layers ", absent.Text(),
            " (num_hidden_layers=", *g.num_hidden_layers, ")"));
      }
    }
    return absl::OkStatus();
  }

  // LayersText(): "[0, 1, 2]" like the reference while that is short (every
  // real model), IdsList's summary otherwise.
  static std::string LayersText(const std::set<int64_t>& layers) {
    std::string all = absl::StrCat("[", absl::StrJoin(layers, ", "), "]");
    if (all.size() <= 512) return all;
    IdsList ids;
    for (int64_t l : layers) ids.Add(l);
    return ids.Text();
  }

  // ShortKey(): a key as the reference lists it, cut (Quote()) when a hostile
  // prefix makes it long.
  static std::string ShortKey(std::string key) { return key.size() <= 200 ? key : Quote(key); }

  // ---- per-expert LoRA -----------------------------------------------------

  absl::StatusOr<TensorPlan> PlanLoraPerExpert(TensorPlan& plan, KeyRole role) {
    const TensorInfo& in = plan.input;
    if (in.shape.size() != 2) {
      return absl::InvalidArgumentError(absl::StrCat("key ", Quote(in.name), ": per-expert LoRA ", KeyRoleName(role),
                                                     " must be 2-D, got ", ShapeString(in.shape)));
    }
    const int sub = SubOf(role);
    const int out_idx = OutIndex(lora_subs_[sub]->grouped);
    // HF lora_A is [r, in], lora_B [out, r].
    const int64_t r = IsLoraA(lora_subs_[sub]->grouped) ? in.shape[0] : in.shape[1];
    Shape want = PerExpertLoraShape(role, opts_.geometry, r);
    if (r <= 0 || in.shape != want) {
      return absl::InvalidArgumentError(
          ShapeMismatch(in.name, absl::StrCat("per-expert LoRA ", KeyRoleName(role)), want, in.shape));
    }
    LayerKey lk{plan.prefix, plan.layer};
    auto it = lora_.find(lk);
    if (it != lora_.end()) {
      const LoraGroup& grp = it->second;
      const int proj = out_idx / 2;
      if (grp.rank[proj] >= 0 && grp.rank[proj] != r) {
        return absl::InvalidArgumentError(absl::StrCat("key ", Quote(in.name), ": LoRA rank ", r,
                                                       " differs from rank ", grp.rank[proj],
                                                       " of the other ", proj == 0 ? "gate/up" : "down",
                                                       " LoRA tensors of this layer"));
      }
      if (grp.dtype_set && grp.dtype != in.dtype) {
        return absl::InvalidArgumentError(absl::StrCat("key ", Quote(in.name), ": dtype ", DTypeName(in.dtype),
                                                       " differs from the layer's other LoRA tensors (",
                                                       DTypeName(grp.dtype), ")"));
      }
      if (!grp.have[sub].empty() && grp.have[sub][plan.expert]) {
        return absl::InvalidArgumentError(absl::StrCat("key ", Quote(in.name), ": duplicate expert tensor"));
      }
      if (grp.emitted[out_idx]) {
        return absl::InvalidArgumentError(absl::StrCat("key ", Quote(in.name), ": duplicate expert tensor (group already complete)"));
      }
      if (grp.out[out_idx].data.data() == nullptr) {
        ASSIGN_OR_RETURN(plan.hold_bytes, LoraOutBytes(in.name, out_idx, r, in.dtype));
      }
    } else {
      ASSIGN_OR_RETURN(size_t out_bytes, LoraOutBytes(in.name, out_idx, r, in.dtype));
      plan.hold_bytes = out_bytes + LoraFlagBytes() + KeyFootprint(plan.prefix.size());
    }
    plan.kind = TensorPlan::Kind::kWhole;
    return plan;
  }

  // LoraOutBytes(): a grouped LoRA output [E, ., .] of rank `r`; E x H x r
  // can overflow for a hostile r (checked), unlike the input [r, H] itself.
  absl::StatusOr<size_t> LoraOutBytes(const std::string& key, int out, int64_t r, DType dt) const {
    Shape s = NativeLoraShape(kLoraOutRoles[out], opts_.geometry, r);
    absl::StatusOr<int64_t> numel = NumElements(s, DTypeSize(dt));
    if (!numel.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("key ", Quote(key), ": its grouped LoRA output is too large: ", numel.status().message()));
    }
    return static_cast<size_t>(*numel) * DTypeSize(dt);
  }

  // What a layer's LoRA group keeps besides its outputs: have-flags of E per sub.
  size_t LoraFlagBytes() const { return lora_subs_.size() * static_cast<size_t>(opts_.geometry.num_experts); }

  // SubOf(): the index of per-expert LoRA role `role` in lora_subs_.
  int SubOf(KeyRole role) const {
    for (size_t i = 0; i < lora_subs_.size(); ++i) {
      if (lora_subs_[i]->hf == role) return static_cast<int>(i);
    }
    return -1;
  }

  absl::Status AddLoraPerExpert(const TensorPlan& plan, KeyRole role, const Tensor& in, const TensorSink& sink) {
    const Geometry& g = opts_.geometry;
    const int64_t E = g.num_experts;
    const int sub = SubOf(role);
    const RolePair& pair = *lora_subs_[sub];
    const int out_idx = OutIndex(pair.grouped);
    const int64_t r = IsLoraA(pair.grouped) ? in.shape[0] : in.shape[1];
    auto [lit, fresh] = lora_.try_emplace(LayerKey{plan.prefix, plan.layer});
    if (fresh) kept_ += LoraFlagBytes() + KeyFootprint(plan.prefix.size());
    LoraGroup& grp = lit->second;
    if (!grp.dtype_set) {
      grp.dtype = in.dtype;
      grp.dtype_set = true;
    }
    grp.rank[out_idx / 2] = r;
    if (grp.have[sub].empty()) grp.have[sub].assign(E, 0);
    Tensor& out = grp.out[out_idx];
    if (out.data.data() == nullptr) {
      out = Tensor::Allocate(in.dtype, NativeLoraShape(pair.grouped, g, r));
      held_ += out.nbytes();
    }
    const size_t elem = DTypeSize(in.dtype);
    const int64_t e = plan.expert;
    const int64_t rows = in.shape[0], cols = in.shape[1];
    const int64_t slot_cols = out.shape[2];
    const int64_t slot_elems = out.shape[1] * slot_cols;
    uint8_t* slot = out.mutable_data() + e * slot_elems * elem;
    if (pair.block == RolePair::kShared && SharedSlotFilled(grp, sub, e)) {
      // gate/up lora_A [r, H] share one grouped A_gu[e] = A^T [H, r]: the
      // second to arrive must equal the first, bit for bit (spec §15.3).
      std::vector<uint8_t> tmp(static_cast<size_t>(slot_elems) * elem);
      TransposeBytes(in.data.data(), cols, tmp.data(), slot_cols, rows, cols, elem);
      if (std::memcmp(tmp.data(), slot, tmp.size()) != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "key ", Quote(plan.input.name), ": ", SharedNames(pair.grouped), " of expert ", e, " in layer ",
            plan.layer, " differ; the grouped format shares one lora_A between gate and up"));
      }
    } else {
      // Each part [W, r] (or [r, W]) is its block of the slot, transposed
      // (gate/up lora_B [I, r] -> columns [0, I) / [I, 2I) of B_gu[e] [r, 2I]).
      TransposeBytes(in.data.data(), cols, slot + BlockOffset(pair, slot_cols) * elem, slot_cols, rows, cols, elem);
    }
    grp.have[sub][e] = 1;
    ++grp.count[sub];
    // Emit an output once every sub feeding it has all E experts.
    for (size_t s = 0; s < lora_subs_.size(); ++s) {
      if (lora_subs_[s]->grouped == pair.grouped && grp.count[s] != E) return absl::OkStatus();
    }
    std::string key = family_.all().Format(pair.grouped, KeyParts{plan.prefix, plan.layer, -1});
    Tensor done = std::move(out);
    out = Tensor();
    held_ -= done.nbytes();
    grp.emitted[out_idx] = true;
    RETURN_IF_ERROR(registry_.Claim(key));
    return sink(NamedTensor{std::move(key), std::move(done)});
  }

  // SharedSlotFilled(): another sub sharing sub's slot already wrote expert e.
  bool SharedSlotFilled(const LoraGroup& grp, int sub, int64_t e) const {
    for (size_t s = 0; s < lora_subs_.size(); ++s) {
      if (static_cast<int>(s) != sub && lora_subs_[s]->grouped == lora_subs_[sub]->grouped &&
          !grp.have[s].empty() && grp.have[s][e]) {
        return true;
      }
    }
    return false;
  }

  // SharedNames(): "gate_proj.lora_A and up_proj.lora_A" for messages.
  std::string SharedNames(KeyRole grouped) const {
    std::vector<std::string> names;
    for (const RolePair* p : lora_subs_) {
      if (p->grouped == grouped) names.emplace_back(KeyRoleName(p->hf));
    }
    return absl::StrJoin(names, " and ");
  }

  absl::Status CheckLoraComplete() {
    const int64_t E = opts_.geometry.num_experts;
    const size_t n = lora_subs_.size();
    for (const auto& [lk, grp] : lora_) {
      // gate and up come together (one shared A, one B across 2I); A with B.
      bool proj_seen[2] = {false, false};
      for (size_t s = 0; s < n; ++s) proj_seen[OutIndex(lora_subs_[s]->grouped) / 2] |= grp.count[s] > 0;
      for (size_t s = 0; s < n; ++s) {
        const KeyRole hf = lora_subs_[s]->hf;
        if (!proj_seen[OutIndex(lora_subs_[s]->grouped) / 2] || grp.count[s] == E) continue;
        IdsList absent;  // E may be 2^24: only what the message shows is kept
        for (int64_t e = 0; e < E; ++e) {
          if (grp.have[s].empty() || !grp.have[s][e]) absent.Add(e);
        }
        std::string example = family_.all().Format(hf, KeyParts{lk.first, lk.second, absent.front()});
        return absl::InvalidArgumentError(absl::StrCat(
            "per-expert LoRA of layer ", lk.second, " is incomplete: ", KeyRoleName(hf), " has ", grp.count[s],
            " of E=", E, " experts, missing ids ", absent.Text(), " (first missing key ", Quote(example), ")"));
      }
    }
    return absl::OkStatus();
  }

  // ---- ParamWrapper LoRA ---------------------------------------------------

  absl::StatusOr<TensorPlan> PlanParamWrapper(TensorPlan& plan, KeyRole role) {
    const TensorInfo& in = plan.input;
    const Geometry& g = opts_.geometry;
    if (opts_.lora_layout == LoraLayout::kPerExpert) {
      return absl::InvalidArgumentError(absl::StrCat("key ", Quote(in.name),
                                                     ": a ParamWrapper LoRA tensor, but the LoRA layout was given as "
                                                     "per-expert; pass --lora-layout peft-v0.19 or peft-v0.18"));
    }
    plan.kind = TensorPlan::Kind::kWhole;
    if (pw_layout_) {
      if (!ParamWrapperFit(pw_rows_, role, *pw_layout_, in.shape, g)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "key ", Quote(in.name), ": ParamWrapper LoRA tensor has shape ", ShapeString(in.shape), ", expected ",
            ParamWrapperExpectation(pw_rows_, role, *pw_layout_, g), " for layout ", LoraLayoutName(*pw_layout_), " (",
            pw_layout_source_, ")"));
      }
      return plan;
    }
    const ShapeFit fit = FitParamWrapperShape(pw_rows_, role, in.shape, g);
    const bool v18 = fit.v18.has_value(), v19 = fit.v19.has_value();
    if (!v18 && !v19) {
      return absl::InvalidArgumentError(absl::StrCat(
          "key ", Quote(in.name), ": ParamWrapper LoRA tensor has shape ", ShapeString(in.shape), ", expected ",
          ParamWrapperExpectation(pw_rows_, role, LoraLayout::kPeftV019, g), " (peft-v0.19) or ",
          ParamWrapperExpectation(pw_rows_, role, LoraLayout::kPeftV018, g), " (peft-v0.18)"));
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

  absl::Status AddParamWrapper(const TensorPlan& plan, KeyRole role, const Tensor& in, const TensorSink& sink) {
    std::optional<LoraLayout> layout = pw_layout_ ? pw_layout_ : shape_layout_;
    if (!layout) {
      deferred_.push_back(Deferred{plan.input.name, role, plan.prefix, plan.layer, in});
      held_ += in.nbytes();
      kept_ += KeyFootprint(plan.input.name.size());
      return absl::OkStatus();
    }
    // A decisive tensor arrived: convert the ones that waited for it first.
    std::vector<Deferred> waiting;
    waiting.swap(deferred_);
    for (Deferred& d : waiting) {
      held_ -= d.tensor.nbytes();
      kept_ -= KeyFootprint(d.name.size());
      RETURN_IF_ERROR(EmitParamWrapper(d.name, d.role, d.prefix, d.layer, *layout, d.tensor, sink));
    }
    return EmitParamWrapper(plan.input.name, role, plan.prefix, plan.layer, *layout, in, sink);
  }

  absl::Status EmitParamWrapper(const std::string& name, KeyRole role, const std::string& prefix, int64_t layer,
                                LoraLayout layout, const Tensor& in, const TensorSink& sink) {
    ASSIGN_OR_RETURN(Tensor native, ParamWrapperToNative(pw_rows_, name, role, layout, in, opts_.geometry));
    std::string key = family_.all().Format(NativeRoleForParamWrapper(pw_rows_, role, layout), KeyParts{prefix, layer, -1});
    RETURN_IF_ERROR(registry_.Claim(key));
    return sink(NamedTensor{std::move(key), std::move(native)});
  }

  struct Deferred {
    std::string name;
    KeyRole role;
    std::string prefix;
    int64_t layer;
    Tensor tensor;
  };

  ConvertOptions opts_;
  Device device_;
  const ModelFamily& family_;
  std::vector<const RolePair*> lora_subs_;  // the family's per-expert LoRA pairs
  absl::Span<const PwRow> pw_rows_ = family_.spec().param_wrapper_rows;
  ExpertRange range_;
  std::optional<DType> target_;
  InputRegistry inputs_;
  OutputRegistry registry_;
  std::map<std::string, BaseGroup> groups_;
  std::set<std::string> completed_;
  std::set<LayerKey> touched_;
  std::map<LayerKey, LoraGroup> lora_;
  std::optional<LoraLayout> pw_layout_;  // from the option or adapter_config.json
 public:
  std::string pw_layout_source_;
 private:
  std::optional<LoraLayout> shape_layout_;  // decided by a tensor only one layout fits
  std::string shape_layout_key_;
  std::vector<Deferred> deferred_;
  size_t held_ = 0;
  // Bookkeeping beyond the registries: completed_, touched_, groups' and
  // LoRA groups' keys and flags, deferred names (KeptBytes()).
  size_t kept_ = 0;
  std::vector<std::string> warnings_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<FromHfConverter>> FromHfConverter::Create(const ConvertOptions& options,
                                                                         const Device& device) {
  RETURN_IF_ERROR(ValidateOptions(options));
  std::optional<LoraLayout> layout;
  std::string source;
  if (options.lora_layout && *options.lora_layout != LoraLayout::kPerExpert) {
    layout = options.lora_layout;
    source = "given as an option";
  } else if (!options.lora_layout && !options.adapter_config_json.empty()) {
    ASSIGN_OR_RETURN(layout, LayoutFromAdapterConfig(options.adapter_config_json, &source));
  }
  ASSIGN_OR_RETURN(const ModelFamily* family, ResolveFamily(options));
  auto session = std::make_unique<FromHfSession>(options, *family, layout, device);
  session->pw_layout_source_ = source;
  return std::unique_ptr<FromHfConverter>(std::move(session));
}

absl::Status FromHfConverter::Add(const NamedTensor& input, const TensorSink& sink) {
  ASSIGN_OR_RETURN(TensorPlan plan, Plan(input.info()));
  return Add(plan, input.tensor, sink);
}

}  // namespace moe_adapter
