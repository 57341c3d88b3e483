#include "core/key_mapping.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/safetensors_format.h"
#include "re2/re2.h"
#include "core/quote.h"

namespace moe_adapter {

using safetensors::Quote;
namespace {

struct Slot {
  absl::string_view token;
  absl::string_view regex;
  int id;
};
constexpr Slot kSlots[] = {
    {"{prefix}", "(.*)", 0},
    {"{layer}", "([0-9]+)", 1},
    {"{expert}", "([0-9]+)", 2},
};

// A canonical decimal: no leading zeros, at most 9 digits (fits int32).
bool ParseCanonical(absl::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 9 || (s.size() > 1 && s[0] == '0')) return false;
  return absl::SimpleAtoi(s, out);
}

}  // namespace

absl::string_view KeyRoleName(KeyRole role) {
  switch (role) {
    case KeyRole::kOther: return "other";
    case KeyRole::kNativeGateUp: return "gate_and_up_projs";
    case KeyRole::kNativeDown: return "down_projs";
    case KeyRole::kNativeLoraGateUpA: return "lora_gate_and_up_A";
    case KeyRole::kNativeLoraGateUpB: return "lora_gate_and_up_B";
    case KeyRole::kNativeLoraDownA: return "lora_down_A";
    case KeyRole::kNativeLoraDownB: return "lora_down_B";
    case KeyRole::kHfGate: return "gate_proj";
    case KeyRole::kHfUp: return "up_proj";
    case KeyRole::kHfDown: return "down_proj";
    case KeyRole::kHfLoraGateA: return "gate_proj.lora_A";
    case KeyRole::kHfLoraGateB: return "gate_proj.lora_B";
    case KeyRole::kHfLoraUpA: return "up_proj.lora_A";
    case KeyRole::kHfLoraUpB: return "up_proj.lora_B";
    case KeyRole::kHfLoraDownA: return "down_proj.lora_A";
    case KeyRole::kHfLoraDownB: return "down_proj.lora_B";
    case KeyRole::kPwGateUpLoraA: return "base_layer.lora_A";
    case KeyRole::kPwGateUpLoraB: return "base_layer.lora_B";
    case KeyRole::kPwDownLoraA: return "lora_A";
    case KeyRole::kPwDownLoraB: return "lora_B";
    case KeyRole::kHfGroupedGateUp: return "gate_up_proj";
    case KeyRole::kHfGroupedDown: return "down_proj";
  }
  return "?";
}

KeyPattern::KeyPattern(std::string templ) : templ_(std::move(templ)) {
  std::string regex;
  size_t i = 0;
  while (i < templ_.size()) {
    bool matched = false;
    for (const Slot& s : kSlots) {
      if (absl::string_view(templ_).substr(i, s.token.size()) == s.token) {
        absl::StrAppend(&regex, s.regex);
        slot_order_.push_back(s.id);
        i += s.token.size();
        matched = true;
        break;
      }
    }
    if (!matched) {
      regex += RE2::QuoteMeta(re2::StringPiece(&templ_[i], 1));
      ++i;
    }
  }
  RE2::Options opts;
  opts.set_log_errors(false);
  re_ = std::make_unique<RE2>(regex, opts);
}

KeyPattern::~KeyPattern() = default;
KeyPattern::KeyPattern(KeyPattern&&) noexcept = default;

absl::StatusOr<bool> KeyPattern::Match(absl::string_view key, KeyParts* parts) const {
  const int n = static_cast<int>(slot_order_.size());
  std::vector<re2::StringPiece> groups(n + 1);
  if (!re_->Match(re2::StringPiece(key.data(), key.size()), 0, key.size(), RE2::ANCHOR_BOTH,
                  groups.data(), n + 1)) {
    return false;
  }
  KeyParts p;
  for (int g = 0; g < n; ++g) {
    absl::string_view v(groups[g + 1].data(), groups[g + 1].size());
    switch (slot_order_[g]) {
      case 0:
        p.prefix = std::string(v);
        break;
      case 1:
      case 2:
        if (!ParseCanonical(v, slot_order_[g] == 1 ? &p.layer : &p.expert)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "key ", Quote(key), ": ", slot_order_[g] == 1 ? "layer" : "expert", " index ", Quote(v),
              " is not a canonical decimal (no leading zeros, at most 9 digits)"));
        }
        break;
    }
  }
  *parts = std::move(p);
  return true;
}

std::string KeyPattern::Format(const KeyParts& parts) const {
  std::string out;
  size_t i = 0;
  while (i < templ_.size()) {
    bool matched = false;
    for (const Slot& s : kSlots) {
      if (absl::string_view(templ_).substr(i, s.token.size()) == s.token) {
        if (s.id == 0) absl::StrAppend(&out, parts.prefix);
        if (s.id == 1) absl::StrAppend(&out, parts.layer);
        if (s.id == 2) absl::StrAppend(&out, parts.expert);
        i += s.token.size();
        matched = true;
        break;
      }
    }
    if (!matched) out += templ_[i++];
  }
  return out;
}

KeyTable::KeyTable(const std::vector<KeyRow>& rows) {
  rows_.reserve(rows.size());
  for (const KeyRow& r : rows) rows_.emplace_back(r.role, KeyPattern(r.templ));
}

absl::StatusOr<KeyRole> KeyTable::Classify(absl::string_view key, KeyParts* parts) const {
  for (const auto& [role, pattern] : rows_) {
    absl::StatusOr<bool> m = pattern.Match(key, parts);
    if (!m.ok()) return m.status();
    if (*m) return role;
  }
  return KeyRole::kOther;
}

std::string KeyTable::Format(KeyRole role, const KeyParts& parts) const {
  for (const auto& [r, pattern] : rows_) {
    if (r == role) return pattern.Format(parts);
  }
  return std::string();
}

}  // namespace moe_adapter
