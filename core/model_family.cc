#include "core/model_family.h"

#include <utility>

namespace moe_adapter {
namespace {

constexpr size_t kKeyRoles = static_cast<size_t>(KeyRole::kHfGroupedDown) + 1;  // the last KeyRole
size_t Index(KeyRole role) { return static_cast<size_t>(role); }

// Native (grouped) roles come first in KeyRole; HF roles from kHfGate on.
bool IsNativeSide(KeyRole role) { return role < KeyRole::kHfGate; }

std::vector<KeyRow> Side(const std::vector<KeyRow>& rows, bool native) {
  std::vector<KeyRow> out;
  for (const KeyRow& row : rows) {
    if (IsNativeSide(row.role) == native) out.push_back(row);
  }
  return out;
}

// WithGroupedRows(): the spec's key rows plus the roles its grouped tensors name.
ModelFamilySpec WithGroupedRows(ModelFamilySpec spec) {
  for (const GroupedTensor& t : spec.grouped) {
    if (t.hf_role != KeyRole::kOther) spec.keys.push_back({t.hf_role, t.hf});
    if (t.native_role != KeyRole::kOther) spec.keys.push_back({t.native_role, t.native});
  }
  return spec;
}

}  // namespace

ModelFamily::ModelFamily(ModelFamilySpec spec)
    : spec_(WithGroupedRows(std::move(spec))),
      name_(spec_.name),
      native_(std::make_unique<KeyTable>(Side(spec_.keys, true))),
      hf_(std::make_unique<KeyTable>(Side(spec_.keys, false))),
      all_(std::make_unique<KeyTable>(spec_.keys)),
      pair_for_(kKeyRoles, nullptr),
      pairs_into_(kKeyRoles) {
  for (const RolePair& p : spec_.pairs) {
    if (!pair_for_[Index(p.hf)]) pair_for_[Index(p.hf)] = &p;
    pairs_into_[Index(p.grouped)].push_back(&p);
  }
}

const RolePair* ModelFamily::PairFor(KeyRole hf) const { return pair_for_[Index(hf)]; }

const std::vector<const RolePair*>& ModelFamily::PairsInto(KeyRole grouped) const {
  return pairs_into_[Index(grouped)];
}

bool ModelFamily::IsBaseRole(KeyRole role) const {
  if (role == KeyRole::kNativeGateUp || role == KeyRole::kNativeDown) return true;
  if (role == KeyRole::kHfGroupedGateUp || role == KeyRole::kHfGroupedDown) return true;
  const RolePair* p = PairFor(role);
  return p && (p->grouped == KeyRole::kNativeGateUp || p->grouped == KeyRole::kNativeDown);
}

GroupedSlot BaseSlot(KeyRole grouped, const Geometry& g) {
  const int64_t H = g.hidden_size, I = g.moe_intermediate_size;
  if (grouped == KeyRole::kNativeGateUp) return {H, 2 * I, "H", "2I", "I"};
  return {I, H, "I", "H", "H"};
}

LoraLayout LoraLayoutToWrite(const ConvertOptions& options, const ModelFamily& family) {
  return options.lora_layout.value_or(family.spec().default_lora_layout);
}

}  // namespace moe_adapter
