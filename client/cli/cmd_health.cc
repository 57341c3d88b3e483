// moe-adapter health: is a server SERVING, with grpc_health_probe's exit
// status, and what it says of itself (GetInfo).
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli/commands.h"
#include "client/cli/flags.h"
#include "client/cli/report.h"
#ifdef MOE_ADAPTER_HAVE_CLIENT
#include "absl/time/time.h"
#include "client/cli/options_from_flags.h"
#include "client/cli/progress.h"
#include "core/safetensors_format.h"
#include "moe_adapter/client.h"
#include "nlohmann/json.hpp"
#endif

namespace moe_adapter::cli {
#ifdef MOE_ADAPTER_HAVE_CLIENT
namespace {

// health's exit status, as grpc_health_probe's, which probes and scripts
// already understand.
constexpr int kHealthServing = 0;
constexpr int kHealthInvalidArguments = 1;  // flags, or TLS/token files that cannot be read
constexpr int kHealthConnectionFailure = 2; // nothing answered (refused, TLS handshake, timeout)
constexpr int kHealthRpcFailure = 3;        // the server answered the RPC with an error
constexpr int kHealthUnhealthy = 4;         // it answered, but not SERVING (e.g. draining)

const std::vector<FlagSpec>& HealthFlags() {
  static const std::vector<FlagSpec> specs = {
      {"server", "ADDR", "the server (host:port or unix:///path)"},
      {"service", "NAME", "the service to check, e.g. moe_adapter.v1.MoeAdapter (default: the whole server)"},
      {"tls-ca", "PATH", "PEM CA certificate(s): use TLS"},
      {"tls-cert", "PATH", "PEM client certificate (mTLS)"},
      {"tls-key", "PATH", "PEM client key (mTLS)"},
      {"tls-server-name", "NAME", "expected server name in its certificate"},
      {"token-file", "PATH", "bearer token file (for the GetInfo details; the health check needs none)"},
      {"timeout", "SECONDS", "deadline (default 5)"},
      {"json", nullptr, "print JSON on stdout"},
      {"help", nullptr, "show this help"},
  };
  return specs;
}

std::string HealthHelp() {
  return absl::StrCat(
      "usage: moe-adapter health --server ADDR [flags]\n"
      "Asks the server's grpc.health.v1 service whether it is SERVING (no token needed), and prints its\n"
      "version, device and budgets (GetInfo, with --token-file where the server wants one).\n"
      "Exit status (as grpc_health_probe):\n"
      "  0  SERVING\n"
      "  1  invalid arguments (unknown flag, unreadable TLS or token file)\n"
      "  2  connection failure: nothing answered at ADDR (refused, TLS handshake failed, or --timeout)\n"
      "  3  the health RPC failed (the server answered with an error, e.g. an unknown --service)\n"
      "  4  the server answered NOT_SERVING (draining after SIGTERM, or not ready)\n"
      "flags:\n",
      FlagsHelp(HealthFlags()));
}

}  // namespace

int RunHealth(const std::vector<std::string>& args) {
  const Reporter report("health", WantsJson(args));
  absl::StatusOr<ParsedFlags> f = ParseFlags(HealthFlags(), args);
  if (!f.ok()) return report.Usage(f.status().message(), kHealthInvalidArguments);
  if (f->Has("help")) {
    std::cout << HealthHelp();
    return kExitOk;
  }
  if (!f->positional.empty()) {
    return report.Usage(absl::StrCat("unexpected argument ", safetensors::Quote(f->positional[0])),
                        kHealthInvalidArguments);
  }
  if (!f->Has("server")) return report.Usage("health needs --server ADDR", kHealthInvalidArguments);
  bool usage = false;
  absl::StatusOr<ClientOptions> c = ClientFromFlags(*f, &usage);
  if (!c.ok()) {
    return usage ? report.Usage(c.status().message(), kHealthInvalidArguments)
                 : report.Error(c.status(), kHealthInvalidArguments);
  }
  c->target = f->Get("server");
  if (!f->Has("timeout")) c->deadline = absl::Seconds(5);
  absl::StatusOr<std::unique_ptr<RemoteClient>> client = RemoteClient::Connect(*c);
  if (!client.ok()) return report.Error(client.status(), kHealthInvalidArguments);
  const absl::Status health = (*client)->Health(f->Get("service"));
  int code = kHealthServing;
  const char* state = "SERVING";
  if (!health.ok()) {
    switch (health.code()) {
      case absl::StatusCode::kFailedPrecondition:  // answered, not SERVING (client.h)
        code = kHealthUnhealthy;
        state = "NOT_SERVING";
        break;
      case absl::StatusCode::kUnavailable:
      case absl::StatusCode::kDeadlineExceeded:
        code = kHealthConnectionFailure;
        state = "UNREACHABLE";
        break;
      default:
        code = kHealthRpcFailure;
        state = "RPC_FAILED";
        break;
    }
  }
  // Details only from a server that answered (no second wait on a dead one).
  absl::StatusOr<RemoteServerInfo> info = code == kHealthConnectionFailure
                                              ? absl::StatusOr<RemoteServerInfo>(health)
                                              : (*client)->GetInfo();
  nlohmann::json j = {{"server", c->target}, {"serving", health.ok()}, {"status", state}, {"exit_code", code}};
  if (!health.ok()) {
    j["health_error"] = Bounded(health.message());
    // The shape every command's --json errors have, beside the health fields.
    j["error"] = {{"code", absl::StatusCodeToString(health.code())}, {"message", Bounded(health.message())}};
  }
  if (info.ok()) {
    j["version"] = info->version;
    j["device"] = info->device;
    j["cuda_built"] = info->cuda_built;
    j["lora_layouts"] = info->lora_layouts;
    j["expert_dtypes"] = info->expert_dtypes;
    j["max_chunk_bytes"] = info->max_chunk_bytes;
    j["max_stream_memory_bytes"] = info->max_stream_memory_bytes;
    j["max_total_memory_bytes"] = info->max_total_memory_bytes;
    j["max_concurrent_streams"] = info->max_concurrent_streams;
  } else {
    j["info_error"] = Bounded(info.status().message());
  }
  if (report.json()) {
    std::cout << DumpJson(j) << "\n";
  } else {
    std::cout << c->target << ": " << state << (health.ok() ? "" : " (" + Bounded(health.message()) + ")") << "\n";
    if (info.ok()) {
      std::cout << "  version " << info->version << ", device " << info->device
                << (info->cuda_built ? ", CUDA built" : ", CPU build") << "\n  budgets: "
                << HumanBytes(info->max_stream_memory_bytes) << " per stream, " << HumanBytes(info->max_total_memory_bytes)
                << " in total, " << info->max_concurrent_streams << " streams; chunks up to "
                << HumanBytes(info->max_chunk_bytes) << "\n";
    } else if (code != kHealthConnectionFailure) {
      std::cout << "  GetInfo: " << Bounded(info.status().message()) << "\n";
    }
  }
  return code;
}
#else
int RunHealth(const std::vector<std::string>& args) {
  return Reporter("health", WantsJson(args))
      .Error(absl::UnimplementedError("this build has no gRPC client (MOE_ADAPTER_BUILD_SERVICE=OFF)"));
}
#endif

}  // namespace moe_adapter::cli
