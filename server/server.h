// File: server/server.h
//
// AdapterServer: a running moe-adapter gRPC server (the MoeAdapter service,
// grpc.health.v1, reflection v1alpha, Prometheus /metrics), and RunServer(),
// the blocking entry point of the moe-adapter-server binary.
//
// Example (in-process, as the tests do):
//   ServerOptions o;
//   o.listen = {"127.0.0.1:0"};
//   o.metrics_listen = "";
//   ASSIGN_OR_RETURN(std::unique_ptr<AdapterServer> s, AdapterServer::Start(o));
//   Connect(absl::StrCat("127.0.0.1:", s->port()));
//   s->Shutdown(absl::Seconds(5));
//
// Shutdown: health turns NOT_SERVING, new calls are refused, in-flight
// streams get `grace` to finish and are cancelled after it.
//
// Thread-safety: all methods are thread-safe. Health checking and reflection
// are process-wide gRPC switches: the first Start() turns both on, for every
// server of the process.
#ifndef MOE_ADAPTER_SERVER_SERVER_H_
#define MOE_ADAPTER_SERVER_SERVER_H_

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/server_options.h"
#include "server/unix_socket.h"

namespace grpc {
class Server;
}
namespace prometheus {
class Exposer;
}

namespace moe_adapter {
namespace server {

class AdapterService;
class MemoryBudget;
class Metrics;
class RegionRegistry;
class ShmChannel;
class JobQueue;

// kVersion: the server's version string (GetInfo, build_info).
extern const char kVersion[];

class AdapterServer {
 public:
  // Start(): validates `options`, reads the TLS and token files, binds and
  // starts serving. Errors: kInvalidArgument (bad options, unreadable or
  // empty files), kUnavailable (cannot listen).
  static absl::StatusOr<std::unique_ptr<AdapterServer>> Start(const ServerOptions& options);

  ~AdapterServer();  // Shutdown(zero grace) unless done
  AdapterServer(const AdapterServer&) = delete;
  AdapterServer& operator=(const AdapterServer&) = delete;

  // port(): the bound port of the first TCP address (useful with --listen
  // ...:0); 0 when every address is unix:.
  int port() const { return port_; }
  // ports(): what gRPC bound for each options.listen address, in order (the
  // port; for a unix: address, a placeholder).
  const std::vector<int>& ports() const { return ports_; }
  // metrics_port(): the bound /metrics port; 0 when disabled.
  int metrics_port() const { return metrics_port_; }

  // Shutdown(): see the file comment. Blocks until every stream is done.
  void Shutdown(absl::Duration grace);

  // For tests and logs: what streams hold now, and how many run.
  uint64_t BufferedBytes() const;
  int ActiveStreams() const;
  Metrics& metrics() { return *metrics_; }

 private:
  AdapterServer() = default;

  // Destroyed bottom-up: the exposer and the server first, then the workers
  // (whose last jobs may still release streams), then what streams use.
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<MemoryBudget> budget_;
  // Shared memory (null when off): registrations outlive the channel that
  // makes them and the streams that take them.
  std::unique_ptr<RegionRegistry> regions_;
  std::vector<std::unique_ptr<ShmChannel>> shm_channels_;
  std::unique_ptr<AdapterService> service_;
  std::unique_ptr<JobQueue> workers_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
  std::vector<int> ports_;
  // Removed at shutdown (server/unix_socket.h).
  std::vector<BoundUnixSocket> unix_sockets_;
  int metrics_port_ = 0;
  std::once_flag shutdown_once_;
  // Frees cached buffers idle longer than --release-idle-buffers.
  void ReleaseIdleBuffersLoop(absl::Duration idle);
  std::thread releaser_;
  std::mutex releaser_mu_;
  std::condition_variable releaser_cv_;
  bool releaser_stop_ = false;
};

// RunServer(): Start(), then serve until SIGTERM or SIGINT, then
// Shutdown(options.shutdown_grace). Prints "moe-adapter-server: listening on
// HOST:PORT" (or "... on unix:///PATH") to stderr once serving, one line per
// --listen address in the order given. Returns OK after a signal-driven
// shutdown (the binary exits 0).
absl::Status RunServer(const ServerOptions& options);

}  // namespace server
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_SERVER_SERVER_H_
