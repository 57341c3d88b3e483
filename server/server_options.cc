#include "server/server_options.h"

#include <functional>

#include <sys/un.h>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/byte_size.h"
#include "core/internal/status_macros.h"
#include "core/quote.h"
#include "server/unix_socket.h"

namespace moe_adapter {
namespace server {
namespace {

// ParseDurationFlag(): "30s", "500ms", "2m", or plain seconds.
absl::Status ParseDurationFlag(const char* flag, const std::string& v, absl::Duration* out) {
  double seconds;
  if (absl::SimpleAtod(v, &seconds)) {
    *out = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(v, out)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " must be a duration like 30s or 500ms, got ", Quote(v)));
  }
  return absl::OkStatus();
}

absl::Status ParseUnixSocketMode(const std::string& v, uint32_t* out) {
  uint32_t mode = 0;
  for (char c : v) {
    if (c < '0' || c > '7' || v.size() > 4) {
      return absl::InvalidArgumentError(
          absl::StrCat("--unix-socket-mode must be octal permission bits like 0660, got ", Quote(v)));
    }
    mode = mode * 8 + static_cast<uint32_t>(c - '0');
  }
  if (v.empty() || mode > 0777) {
    return absl::InvalidArgumentError(
        absl::StrCat("--unix-socket-mode must be octal permission bits in 0000..0777, got ", Quote(v)));
  }
  *out = mode;
  return absl::OkStatus();
}

absl::Status ParseUidList(const std::string& v, std::vector<uint32_t>* out) {
  out->clear();
  for (absl::string_view part : absl::StrSplit(v, ',', absl::SkipWhitespace())) {
    uint32_t uid;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &uid) || out->size() >= 256) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--shared-memory-uids must be a comma-separated list of at most 256 numeric uids, got ", Quote(v)));
    }
    out->push_back(uid);
  }
  if (out->empty()) return absl::InvalidArgumentError("--shared-memory-uids: no uid given");
  return absl::OkStatus();
}

using Setter = std::function<absl::Status(ServerOptions*, const std::string&)>;

struct FlagRow {
  const char* name;
  // nullptr: a switch, which takes no value.
  const char* value;
  const char* help;
  Setter set;
};

absl::Status SizeInto(uint64_t* field, const char* flag, const std::string& v) {
  absl::StatusOr<uint64_t> n = ParseByteSize(v);
  if (!n.ok()) return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", n.status().message()));
  *field = *n;
  return absl::OkStatus();
}

const std::vector<FlagRow>& Flags() {
  static const auto* rows = new std::vector<FlagRow>{
      {"listen", "ADDR",
       "gRPC listen address, HOST:PORT or unix:///PATH; repeat for several (default 127.0.0.1:50051; port 0 = any "
       "free port)",
       [](ServerOptions* o, const std::string& v) { o->listen.push_back(v); return absl::OkStatus(); }},
      {"unix-socket-mode", "OCTAL", "permission bits of unix: socket files (default 0660: owner and group)",
       [](ServerOptions* o, const std::string& v) { return ParseUnixSocketMode(v, &o->unix_socket_mode); }},
      {"metrics-listen", "ADDR", "Prometheus /metrics address (default 127.0.0.1:9464; empty disables)",
       [](ServerOptions* o, const std::string& v) { o->metrics_listen = v; return absl::OkStatus(); }},
      {"max-chunk-bytes", "SIZE", "largest chunk accepted and sent (default 4MiB)",
       [](ServerOptions* o, const std::string& v) { return SizeInto(&o->max_chunk_bytes, "max-chunk-bytes", v); }},
      {"max-stream-memory", "SIZE", "bytes one stream may hold at once (default 6GiB)",
       [](ServerOptions* o, const std::string& v) {
         return SizeInto(&o->max_stream_memory, "max-stream-memory", v);
       }},
      {"max-total-memory", "SIZE", "bytes all streams may hold together (default 16GiB)",
       [](ServerOptions* o, const std::string& v) {
         return SizeInto(&o->max_total_memory, "max-total-memory", v);
       }},
      {"max-concurrent-streams", "N", "conversion streams served at once (default 64)",
       [](ServerOptions* o, const std::string& v) {
         if (!absl::SimpleAtoi(v, &o->max_concurrent_streams)) {
           return absl::InvalidArgumentError(
               absl::StrCat("--max-concurrent-streams must be an integer, got ", Quote(v)));
         }
         return absl::OkStatus();
       }},
      {"device", "DEV", "where expert transposes run: cpu (default), cuda, cuda:N, or auto (a GPU when usable)",
       [](ServerOptions* o, const std::string& v) { o->device = v; return absl::OkStatus(); }},
      {"tls-cert", "PEM", "server certificate chain (TLS; with --tls-key)",
       [](ServerOptions* o, const std::string& v) { o->tls_cert = v; return absl::OkStatus(); }},
      {"tls-key", "PEM", "server private key (TLS; with --tls-cert)",
       [](ServerOptions* o, const std::string& v) { o->tls_key = v; return absl::OkStatus(); }},
      {"tls-client-ca", "PEM", "require client certificates signed by this CA (mTLS)",
       [](ServerOptions* o, const std::string& v) { o->tls_client_ca = v; return absl::OkStatus(); }},
      {"auth-token-file", "PATH", "require `authorization: Bearer <token>` with the token in PATH",
       [](ServerOptions* o, const std::string& v) { o->auth_token_file = v; return absl::OkStatus(); }},
      {"shutdown-grace", "DURATION", "on SIGTERM/SIGINT, time in-flight streams get to finish (default 30s)",
       [](ServerOptions* o, const std::string& v) { return ParseDurationFlag("shutdown-grace", v, &o->shutdown_grace); }},
      {"release-idle-buffers", "DURATION",
       "free cached conversion buffers unused this long (default 60s; 0 keeps them)",
       [](ServerOptions* o, const std::string& v) {
         return ParseDurationFlag("release-idle-buffers", v, &o->release_idle_buffers);
       }},
      {"stream-idle-timeout", "DURATION",
       "end a stream whose client sent nothing and read nothing this long (default 60s; 0 disables)",
       [](ServerOptions* o, const std::string& v) {
         return ParseDurationFlag("stream-idle-timeout", v, &o->stream_idle_timeout);
       }},
      {"stream-options-timeout", "DURATION",
       "end a stream whose options have not arrived this long after it opened (default 10s; 0: idle timeout)",
       [](ServerOptions* o, const std::string& v) {
         return ParseDurationFlag("stream-options-timeout", v, &o->stream_options_timeout);
       }},
      {"shared-memory", nullptr,
       "with a unix: listener, also serve memfd regions on <socket path>.shm (default on; docs/server.md)",
       [](ServerOptions* o, const std::string&) { o->shared_memory = true; return absl::OkStatus(); }},
      {"no-shared-memory", nullptr, "no shared-memory side channel: every byte goes through the gRPC stream",
       [](ServerOptions* o, const std::string&) { o->shared_memory = false; return absl::OkStatus(); }},
      {"shared-memory-uids", "UID,...", "peer uids allowed to register regions (default: the server's own uid)",
       [](ServerOptions* o, const std::string& v) { return ParseUidList(v, &o->shared_memory_uids); }},
      {"max-region-bytes", "SIZE", "largest shared-memory region accepted (default 256GiB)",
       [](ServerOptions* o, const std::string& v) { return SizeInto(&o->max_region_bytes, "max-region-bytes", v); }},
  };
  return *rows;
}

absl::Status ValidateListen(const ServerOptions& o) {
  if (o.listen.empty()) return absl::InvalidArgumentError("--listen: no address");
  for (size_t i = 0; i < o.listen.size(); ++i) {
    if (o.listen[i].empty()) return absl::InvalidArgumentError("--listen must not be empty");
    if (absl::Status s = ValidateUnixAddress(o.listen[i]); !s.ok()) return s;
    for (size_t j = 0; j < i; ++j) {
      if (o.listen[j] == o.listen[i]) {
        return absl::InvalidArgumentError(absl::StrCat("--listen ", Quote(o.listen[i]), " is given twice"));
      }
    }
  }
  if (o.unix_socket_mode > 0777) return absl::InvalidArgumentError("--unix-socket-mode must be within 0777");
  if (o.shared_memory) {
    // The side channel binds `<path>.shm`, four bytes longer.
    constexpr size_t kMaxPath = sizeof(sockaddr_un{}.sun_path) - 1;
    for (const std::string& listen : o.listen) {
      std::optional<std::string> path = UnixSocketPath(listen);
      if (path && path->size() + 4 > kMaxPath) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--listen ", Quote(listen), ": the shared-memory side channel ", Quote(*path + ".shm"), " is longer than the ",
            kMaxPath, " bytes a Unix socket path holds; shorten the path or pass --no-shared-memory"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ServerOptions> ParseServerFlags(const std::vector<std::string>& args) {
  ServerOptions o;
  o.listen.clear();  // --listen adds; the default stands only when none is given
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (!absl::ConsumePrefix(&arg, "--")) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument ", Quote(args[i])));
    }
    std::string name(arg), value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
      has_value = true;
    }
    const FlagRow* row = nullptr;
    for (const FlagRow& r : Flags()) {
      if (name == r.name) row = &r;
    }
    if (!row) return absl::InvalidArgumentError(absl::StrCat("unknown flag --", Printable(name)));
    if (!row->value) {
      if (has_value) return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
    } else if (!has_value) {
      if (i + 1 >= args.size()) return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      value = args[++i];
    }
    RETURN_IF_ERROR(row->set(&o, value));
  }
  if (o.listen.empty()) o.listen = ServerOptions().listen;
  RETURN_IF_ERROR(ValidateServerOptions(o));
  return o;
}

absl::Status ValidateServerOptions(const ServerOptions& o) {
  if (o.device != "cpu" && o.device != "auto" && o.device.rfind("cuda", 0) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--device ", Quote(o.device), ": expected cpu, cuda, cuda:N or auto"));
  }
  if (absl::Status s = ValidateListen(o); !s.ok()) return s;
  if (o.max_chunk_bytes == 0 || o.max_chunk_bytes > (1ull << 30)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-chunk-bytes must be in [1, 1GiB], got ", o.max_chunk_bytes));
  }
  if (o.max_stream_memory == 0) return absl::InvalidArgumentError("--max-stream-memory must be positive");
  if (o.max_total_memory == 0) return absl::InvalidArgumentError("--max-total-memory must be positive");
  if (o.max_concurrent_streams < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-concurrent-streams must be at least 1, got ", o.max_concurrent_streams));
  }
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  if (!o.tls_client_ca.empty() && o.tls_cert.empty()) {
    return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key (mTLS is TLS first)");
  }
  if (o.shutdown_grace < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--shutdown-grace must not be negative");
  }
  if (o.release_idle_buffers < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--release-idle-buffers must not be negative");
  }
  if (o.stream_idle_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--stream-idle-timeout must not be negative");
  }
  if (o.stream_options_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--stream-options-timeout must not be negative");
  }
  if (o.max_region_bytes == 0) return absl::InvalidArgumentError("--max-region-bytes must be positive");
  return absl::OkStatus();
}

std::string ServerUsage() {
  std::string out = "usage: moe-adapter-server [flags]\nflags:\n";
  for (const FlagRow& r : Flags()) {
    std::string left = absl::StrCat("  --", r.name, r.value ? " " : "", r.value ? r.value : "");
    if (left.size() < 34) left.resize(34, ' ');
    absl::StrAppend(&out, left, " ", r.help, "\n");
  }
  absl::StrAppend(&out, "  --help                           this text\n");
  return out;
}

}  // namespace server
}  // namespace moe_adapter
