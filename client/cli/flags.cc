#include "client/cli/flags.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace moe_adapter::cli {

std::string ParsedFlags::Get(const std::string& name, const std::string& def) const {
  auto it = values.find(name);
  return it == values.end() || it->second.empty() ? def : it->second.back();
}

const std::vector<std::string>& ParsedFlags::All(const std::string& name) const {
  static const std::vector<std::string> kEmpty;
  auto it = values.find(name);
  return it == values.end() ? kEmpty : it->second;
}

absl::StatusOr<ParsedFlags> ParseFlags(const std::vector<FlagSpec>& specs, const std::vector<std::string>& args,
                                       const std::vector<std::string>& repeatable) {
  ParsedFlags out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (!absl::StartsWith(a, "--")) {
      out.positional.push_back(a);
      continue;
    }
    std::string name = a.substr(2), value;
    bool inline_value = false;
    const size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    const FlagSpec* spec = nullptr;
    for (const FlagSpec& s : specs) {
      if (name == s.name) spec = &s;
    }
    if (!spec) {
      // Names are echoed bounded: a pasted blob must not flood the terminal.
      const std::string shown = name.size() > 60 ? name.substr(0, 60) + "…" : name;
      const std::string near = ClosestFlag(specs, name);
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", shown, near.empty() ? "" : absl::StrCat("; did you mean --", near, "?")));
    }
    if (spec->value == nullptr) {
      if (inline_value) return absl::InvalidArgumentError(absl::StrCat("flag --", name, " takes no value"));
      value = "true";
    } else if (!inline_value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value (", spec->value, ")"));
      }
      value = args[++i];
    }
    if (out.values.count(name) &&
        std::find(repeatable.begin(), repeatable.end(), name) == repeatable.end()) {
      return absl::InvalidArgumentError(absl::StrCat("flag --", name, " given twice"));
    }
    out.values[name].push_back(value);
  }
  return out;
}

std::string ClosestFlag(const std::vector<FlagSpec>& specs, const std::string& name) {
  if (name.size() > 64) return "";
  // Levenshtein distance, one row at a time.
  auto distance = [](const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t diag = row[0];
      row[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        const size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
        diag = up;
      }
    }
    return row[b.size()];
  };
  std::string best;
  size_t best_d = 0;
  for (const FlagSpec& s : specs) {
    const std::string candidate = s.name;
    size_t d = distance(name, candidate);
    // A prefix of a flag ("--over") is as good as a one-letter slip.
    if (candidate.size() > name.size() && candidate.compare(0, name.size(), name) == 0 && name.size() >= 3) d = 1;
    if (best.empty() || d < best_d) {
      best = candidate;
      best_d = d;
    }
  }
  // Up to a third of the name may differ (at least 2 edits), else it is no typo.
  const size_t allowed = std::max<size_t>(2, name.size() / 3);
  return best_d <= allowed ? best : "";
}

std::string FlagsHelp(const std::vector<FlagSpec>& specs) {
  std::string out;
  for (const FlagSpec& s : specs) {
    std::string left = absl::StrCat("  --", s.name, s.value ? absl::StrCat(" ", s.value) : "");
    if (left.size() < 34) left.resize(34, ' ');
    absl::StrAppend(&out, left, " ", s.help, "\n");
  }
  return out;
}

}  // namespace moe_adapter::cli
