#include "core/peft_version.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/json_limits.h"
#include "core/quote.h"
#include "nlohmann/json.hpp"

namespace moe_adapter {

std::optional<std::array<int, 3>> ParsePeftVersion(absl::string_view version) {
  absl::ConsumePrefix(&version, "v");
  std::vector<absl::string_view> parts = absl::StrSplit(version, '.');
  if (parts.size() < 2) return std::nullopt;
  std::array<int, 3> v = {0, 0, 0};
  for (size_t i = 0; i < 3 && i < parts.size(); ++i) {
    // "1rc1", "0dev": take the leading digits only.
    absl::string_view p = parts[i];
    size_t n = 0;
    while (n < p.size() && p[n] >= '0' && p[n] <= '9') ++n;
    if (n == 0) {
      if (i < 2) return std::nullopt;
      break;
    }
    if (!absl::SimpleAtoi(p.substr(0, n), &v[i])) return std::nullopt;
  }
  return v;
}

absl::StatusOr<std::optional<LoraLayout>> LayoutFromAdapterConfig(absl::string_view config_json,
                                                                   std::string* source) {
  absl::StatusOr<nlohmann::json> parsed =
      ParseJson(config_json, "adapter_config.json", kMaxConfigJsonBytes);
  if (!parsed.ok()) return parsed.status();
  const nlohmann::json& j = *parsed;
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("adapter_config.json: not a JSON object, found ", JsonTypeName(j)));
  }
  auto it = j.find("peft_version");
  if (it == j.end() || it->is_null()) return std::optional<LoraLayout>();
  if (!it->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("adapter_config.json: peft_version must be a string, got ", DescribeJson(*it)));
  }
  const std::string text = it->get<std::string>();
  std::optional<std::array<int, 3>> v = ParsePeftVersion(text);
  if (!v) {
    return absl::InvalidArgumentError(
        absl::StrCat("adapter_config.json: peft_version ", Quote(text), " is not a version"));
  }
  *source = absl::StrCat("adapter_config.json peft_version ", Printable(text));
  if (*v >= std::array<int, 3>{0, 19, 1}) return std::optional<LoraLayout>(LoraLayout::kPeftV019);
  if (*v < std::array<int, 3>{0, 19, 0}) return std::optional<LoraLayout>(LoraLayout::kPeftV018);
  return std::optional<LoraLayout>();  // 0.19.0: decided by the shapes
}

}  // namespace moe_adapter
