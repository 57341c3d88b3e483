// The servers a --server target names. "dns:///host:port" (the system
// resolver) is expanded here into one pinned "ipv4:"/"ipv6:" target per
// address, so every replica behind a headless Service gets its own streams
// deterministically; any other target (one address, or dns://AUTHORITY/...)
// is used as given and gRPC's round_robin spreads its streams.
#ifndef MOE_ADAPTER_CLIENT_CLI_TARGETS_H_
#define MOE_ADAPTER_CLIENT_CLI_TARGETS_H_

#include <string>
#include <vector>

namespace moe_adapter::cli {

struct Endpoint {
  std::string target;
  std::string host;  // the name to verify a TLS certificate against ("" = from target)
};

// ExpandTarget(): the endpoints of `target`; `target` itself when it is not
// dns:/// or does not resolve (gRPC then says why it cannot connect).
std::vector<Endpoint> ExpandTarget(const std::string& target);

}  // namespace moe_adapter::cli

#endif  // MOE_ADAPTER_CLIENT_CLI_TARGETS_H_
