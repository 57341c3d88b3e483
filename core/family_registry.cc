#include "core/family_registry.h"

#include <algorithm>
#include <deque>
#include <mutex>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "core/quote.h"
#include "nlohmann/json.hpp"

namespace moe_adapter {
namespace {


bool HasKey(const ModelFamilySpec& spec, KeyRole role) {
  return std::any_of(spec.keys.begin(), spec.keys.end(), [&](const KeyRow& r) { return r.role == role; });
}

absl::Status Unimplemented(const ModelFamilySpec& spec, absl::string_view what) {
  return absl::UnimplementedError(
      absl::StrCat("model family ", Quote(spec.name), ": ", what, " is not supported by the converters yet"));
}

// CheckGroupedSpec(): an already-grouped HF layout converts by renaming its
// `grouped` tensors only: exactly one gate/up and one down stack, templates
// naming their layer and no expert, and nothing the rename session lacks.
absl::Status CheckGroupedSpec(const ModelFamilySpec& spec) {
  if (!spec.pairs.empty()) return Unimplemented(spec, "per-expert pairs beside an already-grouped HF layout");
  if (!spec.renames.empty() || !spec.fp32_params.empty()) {
    return Unimplemented(spec, "key renames or fp32-forced tensors beside an already-grouped HF layout");
  }
  int gate_up = 0, down = 0;
  for (const GroupedTensor& t : spec.grouped) {
    gate_up += t.shape == GroupedShape::kGateUp;
    down += t.shape == GroupedShape::kDown;
    for (const char* templ : {t.hf, t.native}) {
      const absl::string_view s = templ ? templ : "";
      if (!absl::StrContains(s, "{layer}") || absl::StrContains(s, "{expert}")) {
        return absl::InvalidArgumentError(absl::StrCat("model family ", Quote(spec.name), ": grouped key ",
                                                       Quote(s), " must name {layer} and no {expert}"));
      }
    }
  }
  if (gate_up != 1 || down != 1) {
    return absl::InvalidArgumentError(absl::StrCat("model family ", Quote(spec.name),
                                                   ": an already-grouped layout needs one gate/up and one down "
                                                   "stack, got ", gate_up, " and ", down));
  }
  return absl::OkStatus();
}

// CheckSpec(): what RegisterModelFamily() promises to refuse.
absl::Status CheckSpec(const ModelFamilySpec& spec) {
  if (spec.name == nullptr || spec.name[0] == '\0') {
    return absl::InvalidArgumentError("model family: empty name");
  }
  if (spec.hf_grouped) return CheckGroupedSpec(spec);
  if (!spec.grouped.empty() || spec.mxfp4) {
    return absl::InvalidArgumentError(
        absl::StrCat("model family ", Quote(spec.name), ": grouped tensors and MXFP4 need hf_grouped"));
  }
  if (!spec.renames.empty()) return Unimplemented(spec, "renaming pass-through keys");
  if (!spec.fp32_params.empty()) return Unimplemented(spec, "fp32-forced tensors");
  std::set<KeyRole> hf_roles;
  for (const RolePair& p : spec.pairs) {
    const std::string pair = absl::StrCat("pair ", KeyRoleName(p.hf), " -> ", KeyRoleName(p.grouped));
    if (!p.transpose) return Unimplemented(spec, absl::StrCat(pair, ": an untransposed HF layout"));
    if (p.order != GateUpOrder::kConcatenated) return Unimplemented(spec, absl::StrCat(pair, ": interleaved blocks"));
    if (!HasKey(spec, p.hf) || !HasKey(spec, p.grouped)) {
      return absl::InvalidArgumentError(
          absl::StrCat("model family ", Quote(spec.name), ": ", pair, " names a role with no key pattern"));
    }
    if (p.blocks < 1 || p.block >= p.blocks || p.block < RolePair::kShared || !hf_roles.insert(p.hf).second) {
      return absl::InvalidArgumentError(absl::StrCat("model family ", Quote(spec.name), ": ", pair,
                                                     " has block ", p.block, " of ", p.blocks,
                                                     " or repeats its HF role"));
    }
  }
  // A per-expert HF key with no pair would be classified and then have
  // nowhere to go.
  for (const KeyRow& row : spec.keys) {
    const bool per_expert = row.role >= KeyRole::kHfGate && row.role <= KeyRole::kHfLoraDownB;
    if (per_expert && !hf_roles.count(row.role)) {
      return absl::InvalidArgumentError(absl::StrCat("model family ", Quote(spec.name), ": key ", Quote(row.templ),
                                                     " (", KeyRoleName(row.role), ") has no role pair"));
    }
  }
  // The converters place base experts as gate|up and down (and the device
  // kernels assume it): exactly those blocks, once each.
  for (KeyRole grouped : {KeyRole::kNativeGateUp, KeyRole::kNativeDown}) {
    const int want = grouped == KeyRole::kNativeGateUp ? 2 : 1;
    std::set<int> blocks;
    for (const RolePair& p : spec.pairs) {
      if (p.grouped == grouped && p.blocks == want) blocks.insert(p.block);
    }
    const int pairs = static_cast<int>(std::count_if(spec.pairs.begin(), spec.pairs.end(),
                                                     [&](const RolePair& p) { return p.grouped == grouped; }));
    if (HasKey(spec, grouped) && (pairs != want || static_cast<int>(blocks.size()) != want || *blocks.begin() != 0)) {
      return absl::InvalidArgumentError(absl::StrCat("model family ", Quote(spec.name), ": ",
                                                     KeyRoleName(grouped), " needs ", want,
                                                     " HF pair(s), blocks 0..", want - 1, " of ", want));
    }
  }
  return absl::OkStatus();
}

class Registry {
 public:
  Registry() {
    for (ModelFamilySpec& spec : BuiltinFamilySpecs()) families_.emplace_back(std::move(spec));
  }

  absl::Status Add(ModelFamilySpec spec) {
    std::lock_guard<std::mutex> lock(mu_);
    if (FindLocked(spec.name)) {
      return absl::AlreadyExistsError(absl::StrCat("model family ", Quote(spec.name), " is already registered"));
    }
    families_.emplace_back(std::move(spec));
    return absl::OkStatus();
  }

  const ModelFamily& Default() const { return families_.front(); }  // built in, never moves

  template <typename Pred>
  const ModelFamily* FindIf(Pred pred) const {
    std::lock_guard<std::mutex> lock(mu_);
    for (const ModelFamily& f : families_) {
      if (pred(f)) return &f;
    }
    return nullptr;
  }

  const ModelFamily* Find(absl::string_view name) const {
    std::lock_guard<std::mutex> lock(mu_);
    return FindLocked(name);
  }

  // NestedFields(): every sub-object name a family reads its fields from.
  std::set<std::string> NestedFields() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::set<std::string> out;
    for (const ModelFamily& f : families_) {
      if (f.spec().config.nested) out.insert(f.spec().config.nested);
    }
    return out;
  }

  std::string Names() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> names;
    for (const ModelFamily& f : families_) names.push_back(f.name());
    return absl::StrJoin(names, ", ");
  }

 private:
  const ModelFamily* FindLocked(absl::string_view name) const {
    for (const ModelFamily& f : families_) {
      if (f.name() == name) return &f;
    }
    return nullptr;
  }

  mutable std::mutex mu_;
  std::deque<ModelFamily> families_;  // a deque: growing it moves no family
};

Registry& TheRegistry() {
  static Registry* registry = new Registry();  // leaked: families outlive every session
  return *registry;
}

bool Lists(const std::vector<const char*>& names, absl::string_view value) {
  return std::any_of(names.begin(), names.end(), [&](const char* n) { return value == n; });
}

// ByConfigField(): the family that `field` of `cfg` names (a string, or a
// list of strings for architectures).
const ModelFamily* ByConfigField(const nlohmann::json& cfg, const char* field,
                                 std::vector<const char*> ModelFamilySpec::*names) {
  auto it = cfg.find(field);
  if (it == cfg.end()) return nullptr;
  std::vector<std::string> values;
  if (it->is_string()) values.push_back(it->get<std::string>());
  if (it->is_array()) {
    for (const nlohmann::json& v : *it) {
      if (v.is_string()) values.push_back(v.get<std::string>());
    }
  }
  for (const std::string& v : values) {
    const ModelFamily* f = TheRegistry().FindIf([&](const ModelFamily& m) { return Lists(m.spec().*names, v); });
    if (f) return f;
  }
  return nullptr;
}

}  // namespace

const ModelFamily& DefaultFamily() { return TheRegistry().Default(); }

absl::StatusOr<const ModelFamily*> FindFamily(absl::string_view name) {
  if (const ModelFamily* f = TheRegistry().Find(name)) return f;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown model family ", Quote(name), ": known families are ", TheRegistry().Names()));
}

const ModelFamily* FamilyForConfig(const nlohmann::json& config) {
  if (!config.is_object()) return nullptr;
  std::vector<const nlohmann::json*> levels = {&config};
  for (const std::string& nested : TheRegistry().NestedFields()) {
    auto it = config.find(nested);
    if (it != config.end() && it->is_object()) levels.push_back(&*it);
  }
  for (auto names : {&ModelFamilySpec::model_types, &ModelFamilySpec::architectures}) {
    const char* field = names == &ModelFamilySpec::model_types ? "model_type" : "architectures";
    for (const nlohmann::json* level : levels) {
      if (const ModelFamily* f = ByConfigField(*level, field, names)) return f;
    }
  }
  return nullptr;
}

absl::StatusOr<const ModelFamily*> ResolveFamily(const ConvertOptions& options) {
  if (!options.family.empty()) return FindFamily(options.family);
  if (!options.geometry.config_family.empty()) return FindFamily(options.geometry.config_family);
  return &DefaultFamily();
}

absl::Status RegisterModelFamily(ModelFamilySpec spec) {
  absl::Status valid = CheckSpec(spec);
  if (!valid.ok()) return valid;
  return TheRegistry().Add(std::move(spec));
}

}  // namespace moe_adapter
