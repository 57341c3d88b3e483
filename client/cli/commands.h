// The CLI's commands, one file each; main.cc dispatches on the first argument.
// Each returns the process exit status.
#ifndef MOE_ADAPTER_CLIENT_CLI_COMMANDS_H_
#define MOE_ADAPTER_CLIENT_CLI_COMMANDS_H_

#include <string>
#include <vector>

#include "moe_adapter/checkpoint_convert.h"

namespace moe_adapter::cli {

int RunConvert(Direction dir, const std::vector<std::string>& args);  // cmd_convert.cc: to-hf, from-hf
int RunInspect(const std::vector<std::string>& args);                 // cmd_inspect.cc
int RunHealth(const std::vector<std::string>& args);                  // cmd_health.cc

}  // namespace moe_adapter::cli

#endif  // MOE_ADAPTER_CLIENT_CLI_COMMANDS_H_
