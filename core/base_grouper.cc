#include "core/base_grouper.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/accelerator.h"
#include "core/internal/status_macros.h"
#include "core/quote.h"
#include "core/safetensors_format.h"
#include "core/transpose.h"

namespace moe_adapter {

// What a base group keeps per local expert besides its output: the have
// and dtype flags, and (on a device) the inputs' handles.
size_t BaseGrouper::GroupFlagBytes() const {
  const size_t per_expert = sizeof(uint8_t) + sizeof(DType) + (s_.device.accelerator ? sizeof(std::array<Tensor, 2>) : 0);
  return static_cast<size_t>(s_.range.size()) * per_expert;
}

absl::StatusOr<TensorPlan> BaseGrouper::Plan(TensorPlan& plan, const KeyParts& at, KeyRole role) {
  const Geometry& g = s_.opts.geometry;
  const TensorInfo& in = plan.input;
  if (!IsExpertDType(in.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("key ", Quote(in.name), ": expert weights must be F32, BF16 or F16, got ",
                                                   DTypeName(in.dtype)));
  }
  const RolePair& pair = *s_.family.PairFor(role);
  const KeyRole native = pair.grouped;
  // The HF part is its block of the slot [R, C], transposed: [W, R].
  const GroupedSlot slot = BaseSlot(native, g);
  Shape want = {BlockWidth(pair, slot.cols), slot.rows};
  if (in.shape != want) {
    return absl::InvalidArgumentError(ShapeMismatch(
        in.name, absl::StrCat("per-expert ", KeyRoleName(role), " [", slot.block_name, ", ", slot.rows_name, "]"), want,
        in.shape));
  }
  std::string native_key = s_.family.all().Format(native, KeyParts{at.prefix, at.layer, -1});
  if (touched_.insert({at.prefix, at.layer}).second) s_.kept += KeyFootprint(at.prefix.size());
  if (!s_.range.contains(at.expert)) {
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
  const int64_t expert_slot = at.expert - s_.range.begin;
  if (it != groups_.end()) {
    const Group& grp = it->second;
    if (grp.have[expert_slot] & bit) {
      return absl::InvalidArgumentError(absl::StrCat("key ", Quote(in.name), ": duplicate expert tensor"));
    }
    if (grp.have[expert_slot] && grp.part_dtype[expert_slot] != in.dtype) {
      return absl::InvalidArgumentError(absl::StrCat(
          "key ", Quote(in.name), ": ", PartNames(native), " of expert ", at.expert, " have different dtypes (",
          DTypeName(grp.part_dtype[expert_slot]), " vs ", DTypeName(in.dtype), ")"));
    }
    if (!s_.target && grp.out.dtype != in.dtype) {
      return absl::InvalidArgumentError(absl::StrCat(
          "key ", Quote(in.name), ": dtype ", DTypeName(in.dtype), " differs from the other experts of ", Quote(native_key),
          " (", DTypeName(grp.out.dtype), "); pass a target dtype (--dtype) to cast them to one"));
    }
  } else {
    // The new group's output buffer and flags. ValidateOptions() keeps
    // E x H x 2I x 4 within int64; counted with checks all the same.
    const DType out = s_.target.value_or(in.dtype);
    ASSIGN_OR_RETURN(int64_t numel, NumElements({s_.range.size(), slot.rows, slot.cols}, DTypeSize(out)));
    plan.hold_bytes = static_cast<size_t>(numel) * DTypeSize(out) + GroupFlagBytes() + KeyFootprint(native_key.size());
  }
  plan.kind = TensorPlan::Kind::kWhole;
  return plan;
}

absl::Status BaseGrouper::Add(const KeyParts& at, KeyRole role, const Tensor& in, const TensorSink& sink) {
  const RolePair& pair = *s_.family.PairFor(role);
  const KeyRole native = pair.grouped;
  const GroupedSlot slot = BaseSlot(native, s_.opts.geometry);
  std::string native_key = s_.family.all().Format(native, KeyParts{at.prefix, at.layer, -1});
  auto it = groups_.find(native_key);
  if (it == groups_.end()) {
    Group grp;
    const DType out = s_.target.value_or(in.dtype);
    grp.out = Tensor::Allocate(out, {s_.range.size(), slot.rows, slot.cols});
    grp.have.assign(s_.range.size(), 0);
    grp.part_dtype.assign(s_.range.size(), in.dtype);
    grp.missing_parts = s_.range.size() * pair.blocks;
    if (s_.device.accelerator) grp.pending.resize(s_.range.size());
    s_.held += grp.out.nbytes();
    s_.kept += GroupFlagBytes() + KeyFootprint(native_key.size());
    it = groups_.emplace(native_key, std::move(grp)).first;
  }
  Group& grp = it->second;
  const int64_t e = at.expert - s_.range.begin;
  if (grp.have[e] == 0) grp.part_dtype[e] = in.dtype;
  grp.have[e] |= 1 << pair.block;
  --grp.missing_parts;
  const size_t out_elem = DTypeSize(grp.out.dtype);
  if (s_.device.accelerator) {
    grp.pending[e][pair.block] = in;
    s_.held += in.nbytes();
  } else {
    // The part [W, R] -> its block of columns of G[e] [R, C]
    // (gate_e / up_e [I, H] -> columns [0, I) / [I, 2I) of [H, 2I]).
    uint8_t* dst = grp.out.mutable_data() + (e * slot.rows * slot.cols + BlockOffset(pair, slot.cols)) * out_elem;
    TransposeCast({in.data.data(), in.dtype, slot.rows, dst, grp.out.dtype, slot.cols, BlockWidth(pair, slot.cols),
                   slot.rows});
  }
  if (grp.missing_parts > 0) return absl::OkStatus();
  if (s_.device.accelerator) RETURN_IF_ERROR(GroupOnDevice(native, grp));
  Tensor out = std::move(grp.out);
  s_.held -= out.nbytes();
  groups_.erase(it);
  s_.kept -= GroupFlagBytes();  // the key stays, in completed_
  completed_.insert(native_key);
  RETURN_IF_ERROR(s_.registry.Claim(native_key));
  return sink(NamedTensor{std::move(native_key), std::move(out)});
}

// PartNames(): "gate_proj and up_proj" for messages.
std::string BaseGrouper::PartNames(KeyRole native) const {
  std::vector<std::string> names;
  for (const RolePair* p : s_.family.PairsInto(native)) names.emplace_back(KeyRoleName(p->hf));
  return absl::StrJoin(names, " and ");
}

// A complete group in one batched device call (falls back to the CPU for
// a group whose experts mix input dtypes).
absl::Status BaseGrouper::GroupOnDevice(KeyRole native, Group& grp) {
  const int64_t n = s_.range.size(), H = s_.opts.geometry.hidden_size, I = s_.opts.geometry.moe_intermediate_size;
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
    const GroupedSlot slot = BaseSlot(native, s_.opts.geometry);
    for (int64_t e = 0; e < n; ++e) {
      for (const RolePair* pair : s_.family.PairsInto(native)) {
        const Tensor& part = grp.pending[e][pair->block];
        uint8_t* dst = grp.out.mutable_data() + (e * slot.rows * slot.cols + BlockOffset(*pair, slot.cols)) * out_elem;
        TransposeCast({part.data.data(), part.dtype, slot.rows, dst, grp.out.dtype, slot.cols,
                       BlockWidth(*pair, slot.cols), slot.rows});
      }
    }
  } else if (native == KeyRole::kNativeGateUp) {
    RETURN_IF_ERROR(s_.device.accelerator->FromHf(a.data(), b.data(), nullptr, n, H, I, src, grp.out.dtype,
                                                grp.out.mutable_data(), nullptr));
  } else {
    RETURN_IF_ERROR(s_.device.accelerator->FromHf(nullptr, nullptr, a.data(), n, H, I, src, grp.out.dtype, nullptr,
                                                grp.out.mutable_data()));
  }
  for (const auto& p : grp.pending) s_.held -= p[0].nbytes() + p[1].nbytes();
  grp.pending.clear();
  return absl::OkStatus();
}

// The reference's message (spec §10), with the same facts.
absl::Status BaseGrouper::CheckComplete() {
  const Geometry& g = s_.opts.geometry;
  // Counts and the first few keys only: a hostile stream can leave 2^24
  // experts of thousands of layers missing.
  std::vector<std::string> first;
  int64_t n = 0;
  auto missing = [&](KeyRole role, const LayerKey& lk, int64_t e) {
    if (++n <= 5) first.push_back(ShortKey(s_.family.all().Format(role, KeyParts{lk.first, lk.second, e})));
  };
  std::set<int64_t> layers;
  int64_t total = 0;
  for (const LayerKey& lk : touched_) {
    layers.insert(lk.second);
    for (KeyRole native : {KeyRole::kNativeGateUp, KeyRole::kNativeDown}) {
      const std::vector<const RolePair*>& pairs = s_.family.PairsInto(native);
      total += static_cast<int64_t>(pairs.size()) * s_.range.size();
      std::string native_key = s_.family.all().Format(native, KeyParts{lk.first, lk.second, -1});
      if (completed_.count(native_key) || s_.range.size() == 0) continue;
      auto it = groups_.find(native_key);
      for (int64_t e = s_.range.begin; e < s_.range.end; ++e) {
        const uint8_t have = it == groups_.end() ? 0 : it->second.have[e - s_.range.begin];
        for (const RolePair* pair : pairs) {
          if (!(have & (1 << pair->block))) missing(pair->hf, lk, e);
        }
      }
    }
  }
  if (n > 0) {
    IdsList ids;
    for (int64_t e = s_.range.begin; e < s_.range.end; ++e) ids.Add(e);
    return absl::InvalidArgumentError(absl::StrCat(
        "Expert weights missing from checkpoint",
        s_.opts.ep_size > 1 ? absl::StrCat(" (rank ", s_.opts.ep_rank, ")") : std::string(), ": ", n, "/", total,
        " required weights not found. Layers with experts: ", LayersText(layers), ", Required experts: ", ids.Text(),
        ". First few missing keys: [", absl::StrJoin(first, ", "), "]",
        n > 5 ? absl::StrCat(" (and ", n - 5, " more)") : std::string()));
  }
  // With a full config, base weights imply every MoE layer has its experts.
  if (g.has_layer_plan() && !touched_.empty() && !s_.opts.partial_checkpoint) {
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
std::string BaseGrouper::LayersText(const std::set<int64_t>& layers) {
  std::string all = absl::StrCat("[", absl::StrJoin(layers, ", "), "]");
  if (all.size() <= 512) return all;
  IdsList ids;
  for (int64_t l : layers) ids.Add(l);
  return ids.Text();
}

// ShortKey(): a key as the reference lists it, cut (Quote()) when a hostile
// prefix makes it long.
std::string BaseGrouper::ShortKey(std::string key) { return key.size() <= 200 ? key : Quote(key); }

}  // namespace moe_adapter
