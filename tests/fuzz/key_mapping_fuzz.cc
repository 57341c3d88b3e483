// Fuzzes the key mapping (core/key_mapping.cc, core/families/) on
// arbitrary tensor names: every table classifies the name, and a name that
// matches a row formats back to itself (layer and expert numbers are
// canonical, so the mapping is a bijection on the names it accepts). The
// input's first line is also compiled as a key template and matched against
// the rest, as a second model family's table would be.
#include <cstdint>
#include <string>

#include "core/key_mapping.h"
#include "core/family_registry.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

size_t CountOf(absl::string_view s, absl::string_view token) {
  size_t n = 0;
  for (size_t at = s.find(token); at != absl::string_view::npos; at = s.find(token, at + token.size())) ++n;
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace moe_adapter;
  const absl::string_view name(reinterpret_cast<const char*>(data), size);
  const ModelFamily& family = DefaultFamily();
  for (const KeyTable* table : {&family.native(), &family.hf(), &family.all()}) {
    KeyParts parts;
    absl::StatusOr<KeyRole> role = table->Classify(name, &parts);
    if (!role.ok()) {
      FUZZ_CHECK(role.status().code() == absl::StatusCode::kInvalidArgument);
      continue;
    }
    if (*role == KeyRole::kOther) continue;
    FUZZ_CHECK(parts.layer >= 0);
    FUZZ_CHECK(table->Format(*role, parts) == name);
    FUZZ_CHECK(!KeyRoleName(*role).empty());
  }

  const size_t newline = name.find('\n');
  if (newline == absl::string_view::npos) return 0;
  const KeyPattern pattern{std::string(name.substr(0, newline))};
  const absl::string_view key = name.substr(newline + 1);
  KeyParts parts;
  absl::StatusOr<bool> m = pattern.Match(key, &parts);
  // With a slot named twice the last capture wins, so only templates naming
  // each slot at most once (as every real row does) must round-trip.
  if (m.ok() && *m && CountOf(pattern.templ(), "{prefix}") <= 1 && CountOf(pattern.templ(), "{layer}") <= 1 &&
      CountOf(pattern.templ(), "{expert}") <= 1) {
    FUZZ_CHECK(pattern.Format(parts) == key);
  }
  return 0;
}
