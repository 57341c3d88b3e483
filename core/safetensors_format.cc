#include "core/safetensors_format.h"

#include <exception>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace moe_adapter {
namespace safetensors {
namespace {

// At most `max` bytes of `s`, cut where a UTF-8 character starts.
absl::string_view Prefix(absl::string_view s, size_t max) {
  if (s.size() <= max) return s;
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut);
}

// nlohmann's parse errors quote the last token read, which may be megabytes
// long or not UTF-8: keep a printable ASCII prefix.
std::string Printable(absl::string_view s) {
  constexpr size_t kMax = 300;
  std::string out(s.substr(0, kMax));
  for (char& c : out) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  if (s.size() > kMax) out += "...";
  return out;
}

}  // namespace

absl::Status ErrnoStatus(int err, absl::string_view what, absl::string_view path) {
  return absl::ErrnoToStatus(err, absl::StrCat(what, " ", path));
}

std::string Quote(absl::string_view s) {
  constexpr size_t kMax = 200;
  absl::string_view kept = Prefix(s, kMax);
  return absl::StrCat("\"", kept, kept.size() < s.size() ? "..." : "", "\"");
}

const char* JsonTypeName(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::object:
      return "an object";
    case nlohmann::json::value_t::array:
      return "an array";
    case nlohmann::json::value_t::string:
      return "a string";
    case nlohmann::json::value_t::boolean:
      return "a boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
      return "an integer";
    case nlohmann::json::value_t::number_float:
      return "a non-integer number";
    default:
      return "an unexpected JSON value";
  }
}

absl::StatusOr<nlohmann::json> ParseJsonNoDuplicates(absl::string_view text,
                                                     absl::string_view source) {
  using json = nlohmann::json;
  // One key set per open object; `path[d]` is the key last seen at depth d+1,
  // so a duplicate can be reported with the keys that lead to it.
  std::vector<absl::flat_hash_set<std::string>> open_objects;
  std::vector<std::string> path;
  std::string duplicate;
  std::vector<std::string> duplicate_parents;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) -> bool {
    switch (event) {
      case json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key: {
        std::string key = parsed.get<std::string>();
        path.resize(static_cast<size_t>(depth));
        if (!open_objects.empty() && !open_objects.back().insert(key).second && duplicate.empty()) {
          duplicate = key;
          for (size_t i = 0; i + 1 < path.size(); ++i) {
            if (!path[i].empty()) duplicate_parents.push_back(path[i]);
          }
        }
        if (depth >= 1) path[static_cast<size_t>(depth) - 1] = std::move(key);
        break;
      }
      default:
        break;
    }
    return true;  // keep everything: the caller validates the structure
  };
  json value;
  try {
    value = json::parse(text.begin(), text.end(), callback);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": not valid JSON: ", Printable(e.what())));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": could not parse JSON: ", Printable(e.what())));
  }
  if (!duplicate.empty()) {
    if (duplicate_parents.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": key ", Quote(duplicate),
                       " appears twice in the JSON object (expected each key once)"));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": key ", Quote(duplicate), " appears twice inside ",
        Quote(absl::StrJoin(duplicate_parents, "\" > \"")), " (expected each key once)"));
  }
  return value;
}

}  // namespace safetensors
}  // namespace moe_adapter
