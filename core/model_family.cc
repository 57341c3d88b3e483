#include "core/model_family.h"

#include <utility>

namespace moe_adapter {
namespace {

// Native (grouped) roles come first in KeyRole; HF roles from kHfGate on.
bool IsNativeSide(KeyRole role) { return role < KeyRole::kHfGate; }

std::vector<KeyRow> Side(const std::vector<KeyRow>& rows, bool native) {
  std::vector<KeyRow> out;
  for (const KeyRow& row : rows) {
    if (IsNativeSide(row.role) == native) out.push_back(row);
  }
  return out;
}

}  // namespace

ModelFamily::ModelFamily(ModelFamilySpec spec)
    : spec_(std::move(spec)),
      name_(spec_.name),
      native_(std::make_unique<KeyTable>(Side(spec_.keys, true))),
      hf_(std::make_unique<KeyTable>(Side(spec_.keys, false))),
      all_(std::make_unique<KeyTable>(spec_.keys)) {}

const RolePair* ModelFamily::PairFor(KeyRole hf) const {
  for (const RolePair& p : spec_.pairs) {
    if (p.hf == hf) return &p;
  }
  return nullptr;
}

std::vector<const RolePair*> ModelFamily::PairsInto(KeyRole grouped) const {
  std::vector<const RolePair*> out;
  for (const RolePair& p : spec_.pairs) {
    if (p.grouped == grouped) out.push_back(&p);
  }
  return out;
}

bool ModelFamily::IsBaseRole(KeyRole role) const {
  if (role == KeyRole::kNativeGateUp || role == KeyRole::kNativeDown) return true;
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
