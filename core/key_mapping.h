// Key patterns as data: each row of a model family names a key's role and its
// template, e.g. "{prefix}layers.{layer}.mlp.experts.{expert}.gate_proj.weight".
// {prefix} is anything before "layers." (kept verbatim, spec §15.1); {layer}
// and {expert} are canonical decimals. A pattern matches the whole key.
#ifndef MOE_ADAPTER_CORE_KEY_MAPPING_H_
#define MOE_ADAPTER_CORE_KEY_MAPPING_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace re2 {
class RE2;
}

namespace moe_adapter {

// KeyRole: what a key is, in either layout.
enum class KeyRole {
  kOther,  // anything the family does not convert: passes through
  // Native (grouped) base experts: [E, H, 2I] and [E, I, H].
  kNativeGateUp,
  kNativeDown,
  // Native grouped LoRA: A_gu [E, H, r], B_gu [E, r, 2I], A_dn [E, I, r], B_dn [E, r, H].
  kNativeLoraGateUpA,
  kNativeLoraGateUpB,
  kNativeLoraDownA,
  kNativeLoraDownB,
  // HF per-expert base weights: gate/up [I, H], down [H, I].
  kHfGate,
  kHfUp,
  kHfDown,
  // HF per-expert LoRA (legacy "v4" split): gate/up A [r, H], B [I, r]; down A [r, I], B [H, r].
  kHfLoraGateA,
  kHfLoraGateB,
  kHfLoraUpA,
  kHfLoraUpB,
  kHfLoraDownA,
  kHfLoraDownB,
  // HF ParamWrapper LoRA (PEFT target_parameters): the gate_up wrapper is
  // nested inside the down wrapper, hence "base_layer." on its keys.
  kPwGateUpLoraA,  // ...experts.base_layer.lora_A.weight
  kPwGateUpLoraB,  // ...experts.base_layer.lora_B.weight
  kPwDownLoraA,    // ...experts.lora_A.weight
  kPwDownLoraB,    // ...experts.lora_B.weight
  // HF expert stacks of families whose HF checkpoint is already grouped
  // (ModelFamilySpec::hf_grouped): gate/up [E, H, 2I], down [E, I, H].
  kHfGroupedGateUp,
  kHfGroupedDown,  // the last role: core/model_family.cc sizes its tables by it
};

absl::string_view KeyRoleName(KeyRole role);

// KeyParts: the slots of a matched key.
struct KeyParts {
  std::string prefix;
  int64_t layer = -1;
  int64_t expert = -1;
};

// KeyPattern: one compiled template.
class KeyPattern {
 public:
  explicit KeyPattern(std::string templ);
  ~KeyPattern();
  KeyPattern(KeyPattern&&) noexcept;

  // Match(): true and `parts` filled when the whole key matches; false when
  // it does not; an error when it matches but a number is not canonical
  // (leading zeros, more than 9 digits), so "experts.01." is never silently
  // taken for expert 1 or passed through.
  absl::StatusOr<bool> Match(absl::string_view key, KeyParts* parts) const;

  // Format(): the key for `parts`.
  std::string Format(const KeyParts& parts) const;

  const std::string& templ() const { return templ_; }

 private:
  std::string templ_;
  std::vector<int> slot_order_;  // which slot each capture group is: 0 prefix, 1 layer, 2 expert
  std::unique_ptr<re2::RE2> re_;
};

// KeyRow: a role and its template.
struct KeyRow {
  KeyRole role;
  const char* templ;
};

// KeyTable: the rows of one family, compiled once.
class KeyTable {
 public:
  explicit KeyTable(const std::vector<KeyRow>& rows);

  // Classify(): the role of `key` (kOther when no row matches), its slots in
  // `parts`, or an error for a malformed number in a matching key.
  absl::StatusOr<KeyRole> Classify(absl::string_view key, KeyParts* parts) const;

  // Format(): the key of `role` with `parts` (the role must be in the table).
  std::string Format(KeyRole role, const KeyParts& parts) const;

 private:
  std::vector<std::pair<KeyRole, KeyPattern>> rows_;
};

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_KEY_MAPPING_H_
