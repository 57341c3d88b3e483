// Small files the CLI reads whole (configs, certificates, tokens), bounded.
#ifndef MOE_ADAPTER_CLIENT_CLI_FILES_H_
#define MOE_ADAPTER_CLIENT_CLI_FILES_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"

namespace moe_adapter::cli {

// ReadFile(): the whole file; kNotFound when unreadable, kInvalidArgument
// when larger than `limit` (checked before reading it).
absl::StatusOr<std::string> ReadFile(const std::string& path, size_t limit);

}  // namespace moe_adapter::cli

#endif  // MOE_ADAPTER_CLIENT_CLI_FILES_H_
