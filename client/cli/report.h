// How a command reports its end: errors as one line on stderr, or, with
// --json, as one JSON object on stdout ({"error": {"code", "message"}}), so
// a script reading stdout always gets JSON. Messages are bounded.
#ifndef MOE_ADAPTER_CLIENT_CLI_REPORT_H_
#define MOE_ADAPTER_CLIENT_CLI_REPORT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace moe_adapter::cli {

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;

// The longest message printed; the rest is cut with "…".
constexpr size_t kMaxMessageBytes = 2000;

// Bounded(): `s` cut at kMaxMessageBytes (on a UTF-8 boundary), "…" added.
std::string Bounded(absl::string_view s);

// DumpJson(): one line; bytes that are not UTF-8 (file names) become U+FFFD
// instead of throwing.
std::string DumpJson(const nlohmann::json& j);

// WantsJson(): --json among the arguments (looked at before parsing, so even
// a flag error is reported as JSON).
bool WantsJson(const std::vector<std::string>& args);

class Reporter {
 public:
  // `command`: "to-hf", ... ("" for the top level); names the --help to read.
  Reporter(std::string command, bool json) : command_(std::move(command)), json_(json) {}

  bool json() const { return json_; }
  // Usage(): wrong flags or values: one line pointing at COMMAND --help.
  int Usage(absl::string_view message, int exit_code = kExitUsage) const;
  // Error(): a conversion, input or server error, with its status code.
  int Error(const absl::Status& status, int exit_code = kExitError) const;
  // Fail(): either, with an explicit code name ("USAGE", "NOT_FOUND", ...).
  int Fail(int exit_code, absl::string_view code, absl::string_view message) const;

 private:
  std::string command_;
  bool json_;
};

}  // namespace moe_adapter::cli

#endif  // MOE_ADAPTER_CLIENT_CLI_REPORT_H_
