// The CLI's flag table: each flag has a name, a help line and whether it takes
// a value. Parsing only collects strings; meaning is given in main.cc.
#ifndef MOE_ADAPTER_CLIENT_CLI_FLAGS_H_
#define MOE_ADAPTER_CLIENT_CLI_FLAGS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace moe_adapter::cli {

struct FlagSpec {
  const char* name;   // without the leading "--"
  const char* value;  // placeholder shown in help ("PATH"), nullptr for a switch
  const char* help;
};

// ParsedFlags: values by flag name; switches map to "true". Repeated flags
// keep every value in order (for --server).
struct ParsedFlags {
  std::map<std::string, std::vector<std::string>> values;
  std::vector<std::string> positional;

  bool Has(const std::string& name) const { return values.count(name) > 0; }
  std::string Get(const std::string& name, const std::string& def = "") const;
  const std::vector<std::string>& All(const std::string& name) const;
};

// ParseFlags(): "--name value", "--name=value", "--switch". Unknown flags,
// missing values and a flag given twice (unless `repeatable`) are errors; an
// unknown flag's error names the closest known one ("did you mean --output?").
absl::StatusOr<ParsedFlags> ParseFlags(const std::vector<FlagSpec>& specs, const std::vector<std::string>& args,
                                       const std::vector<std::string>& repeatable = {});

// ClosestFlag(): the known flag nearest to `name` by edit distance, "" when
// none is near enough to be a likely typo.
std::string ClosestFlag(const std::vector<FlagSpec>& specs, const std::string& name);

// FlagsHelp(): the table, one flag per line.
std::string FlagsHelp(const std::vector<FlagSpec>& specs);

}  // namespace moe_adapter::cli

#endif  // MOE_ADAPTER_CLIENT_CLI_FLAGS_H_
