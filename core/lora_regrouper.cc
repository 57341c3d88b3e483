#include "core/lora_regrouper.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/internal/status_macros.h"
#include "core/lora_layouts.h"
#include "core/permute.h"
#include "core/quote.h"
#include "core/safetensors_format.h"

namespace moe_adapter {
namespace {

// The grouped LoRA outputs; a LoRA rank is shared by A and B of one
// projection: outputs 0, 1 (gate/up) and 2, 3 (down).
constexpr KeyRole kLoraOutRoles[4] = {KeyRole::kNativeLoraGateUpA, KeyRole::kNativeLoraGateUpB,
                                      KeyRole::kNativeLoraDownA, KeyRole::kNativeLoraDownB};

int OutIndex(KeyRole grouped) {
  for (int i = 0; i < 4; ++i) {
    if (kLoraOutRoles[i] == grouped) return i;
  }
  return -1;
}

bool IsLoraA(KeyRole grouped) {
  return grouped == KeyRole::kNativeLoraGateUpA || grouped == KeyRole::kNativeLoraDownA;
}

}  // namespace

LoraRegrouper::LoraRegrouper(FromHfState& state) : s_(state) {
  for (const RolePair& p : state.family.spec().pairs) {
    if (OutIndex(p.grouped) >= 0 && subs_.size() < kMaxSubs) subs_.push_back(&p);
  }
}

absl::StatusOr<TensorPlan> LoraRegrouper::Plan(TensorPlan& plan, const KeyParts& at, KeyRole role) {
  const TensorInfo& in = plan.input;
  if (in.shape.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat("key ", Quote(in.name), ": per-expert LoRA ", KeyRoleName(role),
                                                   " must be 2-D, got ", ShapeString(in.shape)));
  }
  const int sub = SubOf(role);
  const int out_idx = OutIndex(subs_[sub]->grouped);
  // HF lora_A is [r, in], lora_B [out, r].
  const int64_t r = IsLoraA(subs_[sub]->grouped) ? in.shape[0] : in.shape[1];
  Shape want = PerExpertLoraShape(role, s_.opts.geometry, r);
  if (r <= 0 || in.shape != want) {
    return absl::InvalidArgumentError(
        ShapeMismatch(in.name, absl::StrCat("per-expert LoRA ", KeyRoleName(role)), want, in.shape));
  }
  LayerKey lk{at.prefix, at.layer};
  auto it = groups_.find(lk);
  if (it != groups_.end()) {
    const Group& grp = it->second;
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
    if (!grp.have[sub].empty() && grp.have[sub][at.expert]) {
      return absl::InvalidArgumentError(absl::StrCat("key ", Quote(in.name), ": duplicate expert tensor"));
    }
    if (grp.emitted[out_idx]) {
      return absl::InvalidArgumentError(absl::StrCat("key ", Quote(in.name), ": duplicate expert tensor (group already complete)"));
    }
    if (grp.out[out_idx].data.data() == nullptr) {
      ASSIGN_OR_RETURN(plan.hold_bytes, OutBytes(in.name, out_idx, r, in.dtype));
    }
  } else {
    ASSIGN_OR_RETURN(size_t out_bytes, OutBytes(in.name, out_idx, r, in.dtype));
    plan.hold_bytes = out_bytes + FlagBytes() + KeyFootprint(at.prefix.size());
  }
  plan.kind = TensorPlan::Kind::kWhole;
  return plan;
}

// OutBytes(): a grouped LoRA output [E, ., .] of rank `r`; E x H x r
// can overflow for a hostile r (checked), unlike the input [r, H] itself.
absl::StatusOr<size_t> LoraRegrouper::OutBytes(const std::string& key, int out, int64_t r, DType dt) const {
  Shape s = NativeLoraShape(kLoraOutRoles[out], s_.opts.geometry, r);
  absl::StatusOr<int64_t> numel = NumElements(s, DTypeSize(dt));
  if (!numel.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("key ", Quote(key), ": its grouped LoRA output is too large: ", numel.status().message()));
  }
  return static_cast<size_t>(*numel) * DTypeSize(dt);
}

// What a layer's LoRA group keeps besides its outputs: have-flags of E per sub.
size_t LoraRegrouper::FlagBytes() const { return subs_.size() * static_cast<size_t>(s_.opts.geometry.num_experts); }

// SubOf(): the index of per-expert LoRA role `role` in subs_.
int LoraRegrouper::SubOf(KeyRole role) const {
  for (size_t i = 0; i < subs_.size(); ++i) {
    if (subs_[i]->hf == role) return static_cast<int>(i);
  }
  return -1;
}

absl::Status LoraRegrouper::Add(const TensorPlan& plan, const KeyParts& at, KeyRole role, const Tensor& in,
                                const TensorSink& sink) {
  const Geometry& g = s_.opts.geometry;
  const int64_t E = g.num_experts;
  const int sub = SubOf(role);
  const RolePair& pair = *subs_[sub];
  const int out_idx = OutIndex(pair.grouped);
  const int64_t r = IsLoraA(pair.grouped) ? in.shape[0] : in.shape[1];
  auto [lit, fresh] = groups_.try_emplace(LayerKey{at.prefix, at.layer});
  if (fresh) s_.kept += FlagBytes() + KeyFootprint(at.prefix.size());
  Group& grp = lit->second;
  if (!grp.dtype_set) {
    grp.dtype = in.dtype;
    grp.dtype_set = true;
  }
  grp.rank[out_idx / 2] = r;
  if (grp.have[sub].empty()) grp.have[sub].assign(E, 0);
  Tensor& out = grp.out[out_idx];
  if (out.data.data() == nullptr) {
    out = Tensor::Allocate(in.dtype, NativeLoraShape(pair.grouped, g, r));
    s_.held += out.nbytes();
  }
  const size_t elem = DTypeSize(in.dtype);
  const int64_t e = at.expert;
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
          at.layer, " differ; the grouped format shares one lora_A between gate and up"));
    }
  } else {
    // Each part [W, r] (or [r, W]) is its block of the slot, transposed
    // (gate/up lora_B [I, r] -> columns [0, I) / [I, 2I) of B_gu[e] [r, 2I]).
    TransposeBytes(in.data.data(), cols, slot + BlockOffset(pair, slot_cols) * elem, slot_cols, rows, cols, elem);
  }
  grp.have[sub][e] = 1;
  ++grp.count[sub];
  // Emit an output once every sub feeding it has all E experts.
  for (size_t s = 0; s < subs_.size(); ++s) {
    if (subs_[s]->grouped == pair.grouped && grp.count[s] != E) return absl::OkStatus();
  }
  std::string key = s_.family.all().Format(pair.grouped, KeyParts{at.prefix, at.layer, -1});
  Tensor done = std::move(out);
  out = Tensor();
  s_.held -= done.nbytes();
  grp.emitted[out_idx] = true;
  RETURN_IF_ERROR(s_.registry.Claim(key));
  return sink(NamedTensor{std::move(key), std::move(done)});
}

// SharedSlotFilled(): another sub sharing sub's slot already wrote expert e.
bool LoraRegrouper::SharedSlotFilled(const Group& grp, int sub, int64_t e) const {
  for (size_t s = 0; s < subs_.size(); ++s) {
    if (static_cast<int>(s) != sub && subs_[s]->grouped == subs_[sub]->grouped &&
        !grp.have[s].empty() && grp.have[s][e]) {
      return true;
    }
  }
  return false;
}

// SharedNames(): "gate_proj.lora_A and up_proj.lora_A" for messages.
std::string LoraRegrouper::SharedNames(KeyRole grouped) const {
  std::vector<std::string> names;
  for (const RolePair* p : subs_) {
    if (p->grouped == grouped) names.emplace_back(KeyRoleName(p->hf));
  }
  return absl::StrJoin(names, " and ");
}

absl::Status LoraRegrouper::CheckComplete() {
  const int64_t E = s_.opts.geometry.num_experts;
  const size_t n = subs_.size();
  for (const auto& [lk, grp] : groups_) {
    // gate and up come together (one shared A, one B across 2I); A with B.
    bool proj_seen[2] = {false, false};
    for (size_t s = 0; s < n; ++s) proj_seen[OutIndex(subs_[s]->grouped) / 2] |= grp.count[s] > 0;
    for (size_t s = 0; s < n; ++s) {
      const KeyRole hf = subs_[s]->hf;
      if (!proj_seen[OutIndex(subs_[s]->grouped) / 2] || grp.count[s] == E) continue;
      IdsList absent;  // E may be 2^24: only what the message shows is kept
      for (int64_t e = 0; e < E; ++e) {
        if (grp.have[s].empty() || !grp.have[s][e]) absent.Add(e);
      }
      std::string example = s_.family.all().Format(hf, KeyParts{lk.first, lk.second, absent.front()});
      return absl::InvalidArgumentError(absl::StrCat(
          "per-expert LoRA of layer ", lk.second, " is incomplete: ", KeyRoleName(hf), " has ", grp.count[s],
          " of E=", E, " experts, missing ids ", absent.Text(), " (first missing key ", Quote(example), ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace moe_adapter
