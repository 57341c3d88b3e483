// moe-adapter: the command-line shell over the conversion library.
// Exit status (spec §15.7): 0 success, 1 conversion or input error, 2 usage
// error; `health` follows grpc_health_probe instead (see HealthHelp()).
#include <arpa/inet.h>
#include <netdb.h>
#include <unistd.h>

#include <iostream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/cli/commands.h"
#include "client/cli/flags.h"
#include "client/cli/empty_dir_output.h"
#include "client/cli/report.h"
#include "core/safetensors_format.h"
#include "moe_adapter/convert_options.h"
#include "client/cli/progress.h"
#include "checkpoint/output_dir.h"
#include "core/regular_file.h"
#include "moe_adapter/checkpoint_convert.h"
#include "moe_adapter/device.h"
#ifdef MOE_ADAPTER_HAVE_CLIENT
#include "moe_adapter/client.h"
#include "moe_adapter/remote_streams.h"
#endif
#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace moe_adapter::cli {
namespace {

const std::vector<FlagSpec>& ConvertFlags() {
  static const std::vector<FlagSpec> specs = {
      {"input", "PATH", "input .safetensors file, checkpoint directory or PEFT adapter directory"},
      {"output", "PATH", "output file or directory (written atomically)"},
      {"config", "PATH", "HF config.json giving the geometry (default: INPUT/config.json)"},
      {"num-experts", "E", "number of routed experts (without --config)"},
      {"hidden-size", "H", "hidden size (without --config)"},
      {"moe-intermediate-size", "I", "expert intermediate size (without --config)"},
      {"family", "NAME", "model family: qwen3_moe, glm4_moe, deepseek_v3, qwen3_next, gpt_oss, qwen3_vl_moe (default: from config.json)"},
      {"lora-layout", "LAYOUT", "peft-v0.19 (default for to-hf) | peft-v0.18 | per-expert"},
      {"adapter-config", "PATH", "adapter_config.json (default: INPUT/adapter_config.json); decides the layout"},
      {"lora-alpha", "A", "to-hf of an adapter without adapter_config.json: its lora_alpha"},
      {"max-shard-size", "SIZE", "output shard size for directories, e.g. 5GB (default), 500MB, 0 = one file"},
      {"dtype", "DTYPE", "bfloat16 | float16 | float32: cast expert weights (from-hf default: config dtype)"},
      {"exclude-key-regex", "RE", "to-hf: drop output keys this RE2 regex matches at their start"},
      {"quantization", nullptr, "to-hf: the reference's quantization=True (Qwen3-MoE: no effect; GPT-OSS: refused)"},
      {"ep-rank", "K", "expert-parallel rank (with --ep-size)"},
      {"ep-size", "N", "expert-parallel world size"},
      {"device", "DEV", "cpu (default) | cuda | cuda:N | auto: where expert transposes run (local mode)"},
      {"server", "ADDR", "convert through a server (host:port, dns:///name:port or unix:///path); repeat for several"},
      {"streams", "N", "parallel streams over the servers (default: one per server address)"},
      {"tls-ca", "PATH", "PEM CA certificate(s): use TLS and verify the server"},
      {"tls-cert", "PATH", "PEM client certificate (mTLS, with --tls-key)"},
      {"tls-key", "PATH", "PEM client key (mTLS)"},
      {"tls-server-name", "NAME", "expected server name in its certificate"},
      {"token-file", "PATH", "file holding the bearer token the server expects"},
      {"chunk-size", "SIZE", "wire chunk size (default 4MiB-64KiB)"},
      {"timeout", "SECONDS", "deadline of each stream (default: none)"},
      {"overwrite", nullptr, "replace an existing output (an existing empty directory needs no --overwrite)"},
      {"quiet", nullptr, "no progress bar and no summary"},
      {"json", nullptr, "print a JSON summary on stdout (errors too: {\"error\": {\"code\", \"message\"}})"},
      {"help", nullptr, "show this help"},
  };
  return specs;
}

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

std::string ConvertHelp(Direction dir) {
  const bool to_hf = dir == Direction::kToHf;
  return absl::StrCat(
      "usage: moe-adapter ", to_hf ? "to-hf  " : "from-hf", " --input IN --output OUT [GEOMETRY] [flags]\n",
      to_hf ? "Converts native grouped experts (and native LoRA) to the Hugging Face per-expert layout (PEFT).\n"
            : "Converts Hugging Face per-expert experts (and PEFT LoRA) to native grouped experts.\n",
      "IN/OUT: a .safetensors file, a checkpoint directory or a PEFT adapter directory; OUT must not exist,\n"
      "        or be an empty directory, unless --overwrite\n"
      "GEOMETRY: --config config.json | --num-experts E --hidden-size H --moe-intermediate-size I\n"
      "          (default: config.json inside an input directory)\n"
      "Exit status: 0 success, 1 conversion or input error, 2 usage error.\n"
      "flags:\n",
      FlagsHelp(ConvertFlags()));
}

// A FIFO or device given as a file is refused, not read forever.
absl::StatusOr<std::string> ReadFile(const std::string& path, size_t limit) { return ReadRegularFile(path, limit); }

absl::StatusOr<int64_t> IntFlag(const ParsedFlags& f, const std::string& name) {
  int64_t v;
  if (!absl::SimpleAtoi(f.Get(name), &v)) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, " must be an integer, got \"", f.Get(name), "\""));
  }
  return v;
}

// Builds ConvertOptions from flags. Usage problems come back as
// kInvalidArgument with `usage` set; unreadable files as other errors.
absl::StatusOr<ConvertOptions> OptionsFromFlags(const ParsedFlags& f, const InputFiles& input, bool* usage) {
  ConvertOptions o;
  *usage = true;
  const bool trio = f.Has("num-experts") || f.Has("hidden-size") || f.Has("moe-intermediate-size");
  const std::string config = f.Has("config") ? f.Get("config") : trio ? "" : input.config_json;
  if (!config.empty()) {
    *usage = false;
    absl::StatusOr<std::string> text = ReadFile(config, 16 << 20);
    if (!text.ok()) return text.status();
    absl::StatusOr<Geometry> g = ParseHfConfig(*text, f.Get("family"));
    if (!g.ok()) return absl::Status(g.status().code(), absl::StrCat(config, ": ", g.status().message()));
    o.geometry = *g;
    *usage = true;
    if (f.Has("num-experts")) { auto v = IntFlag(f, "num-experts"); if (!v.ok()) return v.status(); o.geometry.num_experts = *v; }
    if (f.Has("hidden-size")) { auto v = IntFlag(f, "hidden-size"); if (!v.ok()) return v.status(); o.geometry.hidden_size = *v; }
    if (f.Has("moe-intermediate-size")) { auto v = IntFlag(f, "moe-intermediate-size"); if (!v.ok()) return v.status(); o.geometry.moe_intermediate_size = *v; }
  } else if (trio) {
    for (const char* name : {"num-experts", "hidden-size", "moe-intermediate-size"}) {
      if (!f.Has(name)) {
        return absl::InvalidArgumentError(absl::StrCat("geometry needs --num-experts, --hidden-size and "
                                                       "--moe-intermediate-size together (missing --", name, ")"));
      }
    }
    auto e = IntFlag(f, "num-experts"); if (!e.ok()) return e.status();
    auto h = IntFlag(f, "hidden-size"); if (!h.ok()) return h.status();
    auto i = IntFlag(f, "moe-intermediate-size"); if (!i.ok()) return i.status();
    o.geometry.num_experts = *e;
    o.geometry.hidden_size = *h;
    o.geometry.moe_intermediate_size = *i;
  } else {
    return absl::InvalidArgumentError("no geometry: pass --config config.json, or --num-experts, --hidden-size "
                                      "and --moe-intermediate-size");
  }
  if (f.Has("lora-layout")) {
    auto l = ParseLoraLayout(f.Get("lora-layout"));
    if (!l.ok()) return l.status();
    o.lora_layout = *l;
  }
  if (f.Has("dtype")) {
    auto d = ParseTorchDType(f.Get("dtype"));
    if (!d.ok()) return d.status();
    o.dtype = *d;
  }
  o.exclude_key_regex = f.Get("exclude-key-regex");
  o.family = f.Get("family");
  o.quantization = f.Has("quantization");
  if (f.Has("ep-rank") != f.Has("ep-size")) {
    return absl::InvalidArgumentError("--ep-rank and --ep-size go together");
  }
  if (f.Has("ep-size")) {
    auto k = IntFlag(f, "ep-rank"); if (!k.ok()) return k.status();
    auto n = IntFlag(f, "ep-size"); if (!n.ok()) return n.status();
    o.ep_rank = *k;
    o.ep_size = *n;
  }
  const std::string adapter_config = f.Has("adapter-config") ? f.Get("adapter-config") : input.adapter_config_json;
  if (!adapter_config.empty()) {
    *usage = false;
    auto text = ReadFile(adapter_config, 16 << 20);
    if (!text.ok()) return text.status();
    o.adapter_config_json = *text;
    *usage = true;
  }
  absl::Status v = ValidateOptions(o);
  if (!v.ok()) return v;
  *usage = false;
  return o;
}

#ifdef MOE_ADAPTER_HAVE_CLIENT
// Client options shared by every server flag set.
absl::StatusOr<ClientOptions> ClientFromFlags(const ParsedFlags& f, bool* usage) {
  ClientOptions c;
  *usage = true;
  auto read = [&](const char* flag, std::string* out) -> absl::Status {
    if (!f.Has(flag)) return absl::OkStatus();
    *usage = false;
    absl::StatusOr<std::string> text = ReadFile(f.Get(flag), 1 << 20);
    if (!text.ok()) return text.status();
    *out = *text;
    *usage = true;
    return absl::OkStatus();
  };
  for (auto [flag, out] : {std::pair<const char*, std::string*>{"tls-ca", &c.tls_root_certs_pem},
                           {"tls-cert", &c.tls_client_cert_pem},
                           {"tls-key", &c.tls_client_key_pem},
                           {"token-file", &c.bearer_token}}) {
    absl::Status s = read(flag, out);
    if (!s.ok()) return s;
  }
  while (!c.bearer_token.empty() && (c.bearer_token.back() == '\n' || c.bearer_token.back() == '\r' ||
                                     c.bearer_token.back() == ' ')) {
    c.bearer_token.pop_back();
  }
  if (f.Has("tls-cert") != f.Has("tls-key")) return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  c.use_tls = f.Has("tls-ca") || f.Has("tls-cert");
  c.tls_server_name = f.Get("tls-server-name");
  if (f.Has("chunk-size")) {
    absl::StatusOr<uint64_t> n = ParseByteSize(f.Get("chunk-size"));
    if (!n.ok() || *n == 0 || *n > (64u << 20)) {
      return absl::InvalidArgumentError("--chunk-size must be between 1 byte and 64MiB");
    }
    c.chunk_bytes = *n;
  }
  if (f.Has("timeout")) {
    double secs;
    if (!absl::SimpleAtod(f.Get("timeout"), &secs) || !(secs > 0)) {
      return absl::InvalidArgumentError("--timeout must be a positive number of seconds");
    }
    c.deadline = absl::Seconds(secs);
  }
  *usage = false;
  return c;
}

// The servers a target names. "dns:///host:port" (the system resolver) is
// expanded here into one pinned "ipv4:"/"ipv6:" target per address, so every
// replica behind a headless Service gets its own streams deterministically;
// any other target (one address, or dns://AUTHORITY/...) is used as given and
// gRPC's round_robin spreads its streams.
struct Endpoint {
  std::string target;
  std::string host;  // the name to verify a TLS certificate against ("" = from target)
};

std::vector<Endpoint> ExpandTarget(const std::string& target) {
  if (!absl::StartsWith(target, "dns:///")) return {{target, ""}};
  std::string hostport = target.substr(7), host = hostport, port;
  if (!hostport.empty() && hostport[0] == '[') {
    host = hostport.substr(1, hostport.find(']') - 1);
    if (hostport.find("]:") != std::string::npos) port = hostport.substr(hostport.find("]:") + 2);
  } else if (hostport.rfind(':') != std::string::npos) {
    host = hostport.substr(0, hostport.rfind(':'));
    port = hostport.substr(hostport.rfind(':') + 1);
  }
  if (port.empty()) port = "443";
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0) return {{target, ""}};
  std::vector<Endpoint> out;
  std::set<std::string> seen;
  for (addrinfo* a = res; a; a = a->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {0};
    const bool v4 = a->ai_family == AF_INET;
    const void* addr = v4 ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr)
                          : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr);
    ::inet_ntop(a->ai_family, addr, buf, sizeof(buf));
    if (!seen.insert(buf).second) continue;
    out.push_back({v4 ? absl::StrCat("ipv4:", buf, ":", port) : absl::StrCat("ipv6:[", buf, "]:", port), host});
  }
  ::freeaddrinfo(res);
  if (out.empty()) return {{target, ""}};
  return out;
}

absl::StatusOr<std::vector<StreamOpener>> RemoteOpeners(const ParsedFlags& f, bool* usage) {
  absl::StatusOr<ClientOptions> base = ClientFromFlags(f, usage);
  if (!base.ok()) return base.status();
  std::vector<std::shared_ptr<RemoteClient>> clients;
  for (const std::string& target : f.All("server")) {
    for (const Endpoint& ep : ExpandTarget(target)) {
      ClientOptions c = *base;
      c.target = ep.target;
      if (c.tls_server_name.empty()) c.tls_server_name = ep.host;
      absl::StatusOr<std::unique_ptr<RemoteClient>> client = RemoteClient::Connect(c);
      if (!client.ok()) {
        *usage = false;
        return client.status();
      }
      clients.push_back(std::move(*client));
    }
  }
  int streams = static_cast<int>(clients.size());
  if (f.Has("streams")) {
    if (!absl::SimpleAtoi(f.Get("streams"), &streams) || streams < 1 || streams > 256) {
      *usage = true;
      return absl::InvalidArgumentError("--streams must be in [1, 256]");
    }
  }
  // Streams spread over the servers (and expanded addresses) in turn.
  std::vector<StreamOpener> out;
  for (int i = 0; i < streams; ++i) out.push_back(RemoteStreams(clients[i % clients.size()]));
  *usage = false;
  return out;
}

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
absl::StatusOr<std::vector<StreamOpener>> RemoteOpeners(const ParsedFlags&, bool* usage) {
  *usage = false;
  return absl::UnimplementedError("this build has no gRPC client (MOE_ADAPTER_BUILD_SERVICE=OFF)");
}
int RunHealth(const std::vector<std::string>& args) {
  return Reporter("health", WantsJson(args))
      .Error(absl::UnimplementedError("this build has no gRPC client (MOE_ADAPTER_BUILD_SERVICE=OFF)"));
}
#endif

int RunConvert(Direction dir, const std::vector<std::string>& args) {
  const Reporter report(dir == Direction::kToHf ? "to-hf" : "from-hf", WantsJson(args));
  absl::StatusOr<ParsedFlags> f = ParseFlags(ConvertFlags(), args, {"server"});
  if (!f.ok()) return report.Usage(f.status().message());
  if (f->Has("help")) {
    std::cout << ConvertHelp(dir);
    return kExitOk;
  }
  if (!f->positional.empty()) return report.Usage(absl::StrCat("unexpected argument ", safetensors::Quote(f->positional[0])));
  if (!f->Has("input") || !f->Has("output")) return report.Usage("--input and --output are required");
  absl::StatusOr<InputFiles> input = DescribeInput(f->Get("input"));
  if (!input.ok()) return report.Error(input.status());
  bool usage = false;
  absl::StatusOr<ConvertOptions> opts = OptionsFromFlags(*f, *input, &usage);
  if (!opts.ok()) return usage ? report.Usage(opts.status().message()) : report.Error(opts.status());
  CheckpointConvertOptions copts;
  copts.overwrite = f->Has("overwrite");
  if (f->Has("max-shard-size")) {
    absl::StatusOr<uint64_t> size = ParseByteSize(f->Get("max-shard-size"));
    if (!size.ok()) return report.Usage(absl::StrCat("--max-shard-size: ", size.status().message()));
    copts.max_shard_bytes = *size;
  }
  if (f->Has("lora-alpha")) {
    double alpha;
    if (!absl::SimpleAtod(f->Get("lora-alpha"), &alpha) || !(alpha > 0)) {
      return report.Usage("--lora-alpha must be a positive number");
    }
    copts.lora_alpha = alpha;
  }
  absl::StatusOr<Device> device = OpenDevice(f->Get("device", "cpu"));
  if (!device.ok()) {
    const std::string message = absl::StrCat("--device ", f->Get("device"), ": ", device.status().message());
    return device.status().code() == absl::StatusCode::kInvalidArgument
               ? report.Usage(message)
               : report.Error(absl::Status(device.status().code(), message));
  }
  if (f->Has("server")) {
    if (f->Has("device")) return report.Usage("--device selects the local device; the server has its own --device");
    absl::StatusOr<std::vector<StreamOpener>> remote = RemoteOpeners(*f, &usage);
    if (!remote.ok()) return usage ? report.Usage(remote.status().message()) : report.Error(remote.status());
    copts.streams = *remote;
  } else {
    copts.streams = {EmbeddedStreams(*device)};
  }
  // An existing empty directory takes a directory conversion without
  // --overwrite, staged inside it (output_dir.h): only it needs to be writable.
  std::optional<EmptyDirOutput> into_empty;
  absl::StatusOr<ExistingOutput> existing = CheckOutput(f->Get("output"), input->is_directory, copts.overwrite);
  if (existing.ok() && *existing == ExistingOutput::kEmptyDirectory) into_empty.emplace(f->Get("output"));
  const std::string written_to = into_empty ? into_empty->staging() : f->Get("output");
  const bool quiet = f->Has("quiet");
  ProgressBar bar(!quiet && ::isatty(STDERR_FILENO));
  copts.progress = [&bar](const Progress& p) { bar.Update(p); };
  copts.notice = [](const std::string& m) { std::cerr << "moe-adapter: " << m << "\n"; };
  absl::StatusOr<ConvertSummary> summary = ConvertCheckpoint(dir, f->Get("input"), written_to, *opts, copts);
  bar.Done();
  if (!summary.ok()) return report.Error(summary.status());
  if (into_empty) {
    absl::Status moved = into_empty->Commit();
    if (!moved.ok()) return report.Error(moved);
  }
  for (const std::string& w : summary->warnings) std::cerr << "moe-adapter: warning: " << w << "\n";
  if (report.json()) {
    nlohmann::json j = {{"direction", dir == Direction::kToHf ? "to-hf" : "from-hf"},
                        {"input", f->Get("input")},
                        {"output", f->Get("output")},
                        {"adapter", summary->adapter},
                        {"tensors_in", summary->tensors_in},
                        {"tensors_out", summary->tensors_out},
                        {"bytes_in", summary->bytes_in},
                        {"bytes_out", summary->bytes_out},
                        {"peak_held_bytes", summary->peak_held_bytes},
                        {"streams", summary->streams},
                        {"seconds", summary->seconds},
                        {"files", summary->files},
                        {"warnings", summary->warnings}};
    std::cout << DumpJson(j) << "\n";
  } else if (!quiet) {
    std::cerr << "moe-adapter: " << (dir == Direction::kToHf ? "to-hf" : "from-hf") << ": " << summary->tensors_in
              << " tensors in, " << summary->tensors_out << " out, " << HumanBytes(summary->bytes_out) << " in "
              << summary->seconds << " s -> " << f->Get("output") << "\n";
  }
  return kExitOk;
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
