// File: server/server_options.h
//
// ServerOptions: everything moe-adapter-server is configured with, one field
// per command-line flag (docs/server.md lists them), and the flag parser that
// main.cc hands argv to.
//
// Example:
//   absl::StatusOr<ServerOptions> o = ParseServerFlags({"--listen", "0.0.0.0:50051"});
//   if (!o.ok()) { std::cerr << o.status().message() << "\n" << ServerUsage(); return 2; }
//
// Sizes: see ParseByteSize() in core/byte_size.h ("4MiB", "6GiB", "5GB"). Durations: "30s", "500ms", "2m", or seconds.
#ifndef MOE_ADAPTER_SERVER_SERVER_OPTIONS_H_
#define MOE_ADAPTER_SERVER_SERVER_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace moe_adapter {
namespace server {

struct ServerOptions {
  // --listen: gRPC addresses, served together (the flag may be repeated; the
  // first one given replaces the default): HOST:PORT (port 0 picks a free
  // port, printed at start) or unix:///PATH (server/unix_socket.h).
  std::vector<std::string> listen = {"127.0.0.1:50051"};
  // --unix-socket-mode: permission bits of the unix: socket files. Owner and
  // group may connect, others not: connecting needs write permission, and a
  // Unix socket carries no TLS, so the file mode is its access control.
  uint32_t unix_socket_mode = 0660;
  // --metrics-listen: Prometheus address, served at /metrics; empty disables.
  std::string metrics_listen = "127.0.0.1:9464";
  // --max-chunk-bytes: largest chunk accepted and sent; also the default
  // chunk size when it is below wire::kDefaultChunkBytes (4 MiB - 64 KiB).
  uint64_t max_chunk_bytes = 4ull << 20;
  // --max-stream-memory: bytes one stream may hold at once. 6 GiB lets one
  // Qwen3-235B-A22B layer through FromHF (its two groups, 3.2 + 1.6 GB, are
  // held together until they complete).
  uint64_t max_stream_memory = 6ull << 30;
  // --max-total-memory: bytes all streams together may hold.
  uint64_t max_total_memory = 16ull << 30;
  // --max-concurrent-streams: conversion streams served at once; more are
  // refused with RESOURCE_EXHAUSTED.
  int max_concurrent_streams = 64;
  // --device: where expert transposes run: cpu, cuda, cuda:N or auto
  // (moe_adapter/device.h). "cuda" without a usable GPU fails at start.
  std::string device = "cpu";
  // --tls-cert / --tls-key: PEM files; both or neither. Without them the
  // server speaks plaintext.
  std::string tls_cert;
  std::string tls_key;
  // --tls-client-ca: PEM CA bundle; when set, clients must present a
  // certificate it signed (mTLS).
  std::string tls_client_ca;
  // --auth-token-file: a file holding the bearer token that every conversion
  // and GetInfo call must carry (`authorization: Bearer <token>`). The health
  // service answers without it.
  std::string auth_token_file;
  // --shutdown-grace: on SIGTERM/SIGINT, how long in-flight streams may run
  // before they are cancelled.
  absl::Duration shutdown_grace = absl::Seconds(30);
  // --release-idle-buffers: conversion buffers kept for reuse
  // (core/buffer_cache.h) are freed once unused this long, so an idle server
  // gives a checkpoint's layer buffers back; zero keeps them.
  absl::Duration release_idle_buffers = absl::Seconds(60);
  // --stream-idle-timeout: a stream whose client neither sent a message nor
  // took an output for this long (while no job of its own ran) ends with
  // DEADLINE_EXCEEDED and frees its slot and buffers; zero disables.
  absl::Duration stream_idle_timeout = absl::Seconds(60);
  // --stream-options-timeout: the same, for the first message (the options),
  // counted from the stream's start; zero leaves it to the idle timeout.
  absl::Duration stream_options_timeout = absl::Seconds(10);
  // --shared-memory / --no-shared-memory: with a unix: listener, also serve
  // the shared-memory side channel `<socket path>.shm` (docs/server.md,
  // "Shared memory"; server/shm_channel.h). On by default; without a unix:
  // listener there is nothing to serve it beside.
  bool shared_memory = true;
  // --shared-memory-uids: peers (SO_PEERCRED) allowed to register regions;
  // empty = the server's own effective uid only.
  std::vector<uint32_t> shared_memory_uids;
  // --max-region-bytes: largest memfd region accepted.
  uint64_t max_region_bytes = 256ull << 30;
  // Conversion worker threads; 0 = one per hardware thread (not a flag).
  int worker_threads = 0;
};

// ParseServerFlags(): "--name value" or "--name=value"; unknown flags, bad
// values and invalid combinations are kInvalidArgument (a usage error).
absl::StatusOr<ServerOptions> ParseServerFlags(const std::vector<std::string>& args);

// ValidateServerOptions(): the checks ParseServerFlags() applies, for options
// built in code.
absl::Status ValidateServerOptions(const ServerOptions& options);

// ServerUsage(): the help text, one line per flag with its default.
std::string ServerUsage();


}  // namespace server
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_SERVER_SERVER_OPTIONS_H_
