// What the convert and health flags mean as library options. Each function
// sets *usage: true when the flags themselves are wrong (exit 2, "see
// --help"), false when a file they name cannot be read or is invalid (exit 1).
#ifndef MOE_ADAPTER_CLIENT_CLI_OPTIONS_FROM_FLAGS_H_
#define MOE_ADAPTER_CLIENT_CLI_OPTIONS_FROM_FLAGS_H_

#include "absl/status/statusor.h"
#include "client/cli/flags.h"
#include "moe_adapter/checkpoint_convert.h"
#include "moe_adapter/convert_options.h"
#ifdef MOE_ADAPTER_HAVE_CLIENT
#include "moe_adapter/client.h"
#endif

namespace moe_adapter::cli {

// OptionsFromFlags(): geometry (--config, else INPUT/config.json, with
// --num-experts/--hidden-size/--moe-intermediate-size over it), layouts,
// dtype, EP and the adapter config, validated.
absl::StatusOr<ConvertOptions> OptionsFromFlags(const ParsedFlags& f, const InputFiles& input, bool* usage);

#ifdef MOE_ADAPTER_HAVE_CLIENT
// ClientFromFlags(): TLS, token, chunk size and deadline; no target.
absl::StatusOr<ClientOptions> ClientFromFlags(const ParsedFlags& f, bool* usage);
#endif

}  // namespace moe_adapter::cli

#endif  // MOE_ADAPTER_CLIENT_CLI_OPTIONS_FROM_FLAGS_H_
