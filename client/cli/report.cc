#include "client/cli/report.h"

#include <iostream>

#include "absl/strings/str_cat.h"

namespace moe_adapter::cli {

std::string Bounded(absl::string_view s) {
  if (s.size() <= kMaxMessageBytes) return std::string(s);
  size_t cut = kMaxMessageBytes;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return absl::StrCat(s.substr(0, cut), "…");
}

std::string DumpJson(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool WantsJson(const std::vector<std::string>& args) {
  for (const std::string& a : args) {
    if (a == "--json") return true;
  }
  return false;
}

int Reporter::Usage(absl::string_view message, int exit_code) const {
  return Fail(exit_code, "USAGE", message);
}

int Reporter::Error(const absl::Status& status, int exit_code) const {
  return Fail(exit_code, absl::StatusCodeToString(status.code()), status.message());
}

int Reporter::Fail(int exit_code, absl::string_view code, absl::string_view message) const {
  if (json_) {
    nlohmann::json j = {{"error", {{"code", std::string(code)}, {"message", Bounded(message)}}}};
    std::cout << DumpJson(j) << "\n";
    return exit_code;
  }
  const std::string help = command_.empty() ? "moe-adapter --help" : absl::StrCat("moe-adapter ", command_, " --help");
  if (code == "USAGE") {
    std::cerr << "moe-adapter: " << Bounded(message) << " (" << help << ")\n";
  } else {
    std::cerr << "moe-adapter: error: " << Bounded(message) << "\n";
  }
  return exit_code;
}

}  // namespace moe_adapter::cli
