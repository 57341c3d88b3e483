// moe-adapter: the command-line shell over the conversion library; each
// command is in its own file (commands.h).
// Exit status (spec §15.7): 0 success, 1 conversion or input error, 2 usage
// error; `health` follows grpc_health_probe instead (see cmd_health.cc).
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "checkpoint/output_dir.h"
#include "client/cli/commands.h"
#include "client/cli/flags.h"
#include "client/cli/report.h"
#include "core/safetensors_format.h"

namespace moe_adapter::cli {
namespace {

#ifndef MOE_ADAPTER_VERSION
#define MOE_ADAPTER_VERSION "unknown"
#endif

// The top-level help: the commands; each command's --help has its flags.
std::string Usage() {
  return "usage: moe-adapter COMMAND [flags]\n"
         "commands:\n"
         "  to-hf     native grouped experts -> Hugging Face per-expert (checkpoint or LoRA adapter)\n"
         "  from-hf   Hugging Face per-expert -> native grouped experts\n"
         "  inspect   what a checkpoint or adapter holds: format, layout, rank, alpha, geometry, dtypes\n"
         "  health    is a server SERVING (exit status as grpc_health_probe)\n"
         "  version   this CLI's version (also --version)\n"
         "moe-adapter COMMAND --help shows that command's flags.\n"
         "Exit status: 0 success, 1 conversion or input error, 2 usage error (health: see its --help).\n";
}

}  // namespace

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << Usage();
    return kExitUsage;
  }
  const std::string cmd = args[0];
  args.erase(args.begin());
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    // `help COMMAND` is COMMAND --help.
    if (args.empty()) {
      std::cout << Usage();
      return kExitOk;
    }
    std::vector<std::string> help = {args[0], "--help"};
    std::vector<char*> argv2 = {argv[0]};
    for (std::string& a : help) argv2.push_back(a.data());
    return Main(static_cast<int>(argv2.size()), argv2.data());
  }
  if (cmd == "--version" || cmd == "version") {
    if (WantsJson(args)) {
      std::cout << DumpJson({{"version", MOE_ADAPTER_VERSION}}) << "\n";
    } else {
      std::cout << "moe-adapter " << MOE_ADAPTER_VERSION << "\n";
    }
    return kExitOk;
  }
  if (cmd == "to-hf") return RunConvert(Direction::kToHf, args);
  if (cmd == "from-hf") return RunConvert(Direction::kFromHf, args);
  if (cmd == "inspect") return RunInspect(args);
  if (cmd == "health") return RunHealth(args);
  std::string near;
  if (!absl::StartsWith(cmd, "-")) {
    static const std::vector<FlagSpec> kCommands = {{"to-hf", nullptr, ""}, {"from-hf", nullptr, ""},
                                                    {"inspect", nullptr, ""}, {"health", nullptr, ""},
                                                    {"version", nullptr, ""}, {"help", nullptr, ""}};
    near = ClosestFlag(kCommands, cmd);
  }
  return Reporter("", WantsJson(args))
      .Usage(absl::StrCat("unknown command ", safetensors::Quote(cmd), near.empty() ? "" : "; did you mean " + near + "?"));
}

}  // namespace moe_adapter::cli

int main(int argc, char** argv) {
  // First, before any thread: SIGINT/SIGTERM remove the temporary output.
  moe_adapter::StartInterruptCleanup("moe-adapter");
  return moe_adapter::cli::Main(argc, argv);
}
