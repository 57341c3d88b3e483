#include "server/server.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <exception>
#include <fstream>
#include <optional>
#include <sstream>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/buffer_cache.h"
#include "core/internal/status_macros.h"
#include "moe_adapter/device.h"
#include "moe_adapter/v1/adapter.grpc.pb.h"
#include "protocol/frame_codec.h"
#include "server/job_queue.h"
#include "server/memory_budget.h"
#include "server/metrics.h"
#include "server/service.h"
#include "server/shm_channel.h"
#include "server/shm_regions.h"
#include "server/token_rules.h"
#include "server/unix_socket.h"

#ifndef MOE_ADAPTER_VERSION
#define MOE_ADAPTER_VERSION "0.0.0"
#endif

namespace moe_adapter {
namespace server {

const char kVersion[] = MOE_ADAPTER_VERSION;

namespace {


absl::StatusOr<std::string> ReadSmallFile(const std::string& path, const char* flag) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::InvalidArgumentError(absl::StrCat("--", flag, ": cannot read \"", path, "\""));
  std::ostringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  if (s.size() > (1 << 20)) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": \"", path, "\" is larger than 1 MiB"));
  }
  return s;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(const ServerOptions& o) {
  if (o.tls_cert.empty()) return grpc::InsecureServerCredentials();
  ASSIGN_OR_RETURN(std::string cert, ReadSmallFile(o.tls_cert, "tls-cert"));
  ASSIGN_OR_RETURN(std::string key, ReadSmallFile(o.tls_key, "tls-key"));
  grpc::SslServerCredentialsOptions ssl(o.tls_client_ca.empty()
                                            ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                            : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  if (!o.tls_client_ca.empty()) {
    ASSIGN_OR_RETURN(std::string ca, ReadSmallFile(o.tls_client_ca, "tls-client-ca"));
    ssl.pem_root_certs = ca;
  }
  ssl.pem_key_cert_pairs.push_back({key, cert});
  return grpc::SslServerCredentials(ssl);
}

int g_signal_pipe[2] = {-1, -1};

void OnSignal(int sig) {
  const unsigned char b = static_cast<unsigned char>(sig);
  ssize_t ignored = ::write(g_signal_pipe[1], &b, 1);
  (void)ignored;
}

// Keepalive policy (docs/server.md, "Idle streams and keepalive"): the server pings a
// connection that has been quiet for 60 s, with or without calls, and closes
// it when the ping is not answered within 20 s, so a peer that vanished
// without a FIN or RST (a killed pod, a dropped NAT entry) frees its streams
// and socket in about 80 s. Clients may ping every 10 s or slower (common
// client keepalives are 10-30 s); faster pings are strikes, and after 2 the
// connection is closed (GOAWAY "too_many_pings"), so a ping flood costs
// little.
void SetKeepalivePolicy(grpc::ServerBuilder* builder) {
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60 * 1000);
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20 * 1000);
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);  // our own pings: unlimited
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10 * 1000);
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
}

// Health checking and reflection are process-wide switches in gRPC.
void EnableGrpcPlugins() {
  static std::once_flag once;
  std::call_once(once, [] {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  });
}

}  // namespace

absl::StatusOr<std::unique_ptr<AdapterServer>> AdapterServer::Start(const ServerOptions& o) {
  RETURN_IF_ERROR(ValidateServerOptions(o));
  ServiceConfig cfg;
  cfg.version = kVersion;
  cfg.cuda_built = CudaBuilt();
  absl::StatusOr<Device> device = OpenDevice(o.device);
  if (!device.ok()) return absl::Status(device.status().code(), absl::StrCat("--device ", o.device, ": ", device.status().message()));
  cfg.device = *device;
  if (!o.auth_token_file.empty()) {
    ASSIGN_OR_RETURN(std::string token, ReadSmallFile(o.auth_token_file, "auth-token-file"));
    cfg.auth_token = std::string(absl::StripAsciiWhitespace(token));
    if (cfg.auth_token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--auth-token-file: \"", o.auth_token_file, "\" is empty"));
    }
    if (IsPlaceholderToken(cfg.auth_token)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--auth-token-file: \"", o.auth_token_file,
          "\" holds a placeholder token (it contains CHANGE-ME, like the Secret committed in deploy/k8s), which "
          "anyone can read; put a real secret there (e.g. the output of `openssl rand -hex 32`)"));
    }
  }
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> creds, Credentials(o));
  cfg.max_chunk_bytes = o.max_chunk_bytes;
  cfg.default_chunk_bytes = std::min<uint64_t>(wire::kDefaultChunkBytes, o.max_chunk_bytes);
  cfg.max_receive_message_bytes = o.max_chunk_bytes + wire::kMessageSlackBytes;
  cfg.max_concurrent_streams = o.max_concurrent_streams;
  cfg.stream_idle_timeout = o.stream_idle_timeout;
  cfg.stream_options_timeout = o.stream_options_timeout;

  std::unique_ptr<AdapterServer> s(new AdapterServer());
  MetricsInfo info;
  info.version = kVersion;
  info.cuda_built = CudaBuilt();
  info.max_stream_memory = o.max_stream_memory;
  info.max_total_memory = o.max_total_memory;
  s->metrics_ = std::make_unique<Metrics>(info);
  s->budget_ = std::make_unique<MemoryBudget>(o.max_stream_memory, o.max_total_memory, s->metrics_.get());
  // Buffers kept for reuse sit beyond the budget: under a container limit
  // they get only what the budget leaves.
  if (std::optional<uint64_t> limit = ContainerMemoryLimit()) {
    buffer_cache::SetCeiling(BufferCacheCeiling(*limit, o.max_total_memory));
  }
  const bool any_unix_listener = std::any_of(o.listen.begin(), o.listen.end(),
                                             [](const std::string& l) { return UnixSocketPath(l).has_value(); });
  if (o.shared_memory && any_unix_listener) {
    // An unused registration holds the client's regions mapped: it lasts as
    // long as a stream may take to send its options.
    absl::Duration ttl = o.stream_options_timeout > absl::ZeroDuration() ? o.stream_options_timeout
                         : o.stream_idle_timeout > absl::ZeroDuration() ? o.stream_idle_timeout
                                                                        : absl::Seconds(60);
    s->regions_ = std::make_unique<RegionRegistry>(absl::ToChronoNanoseconds(ttl));
    cfg.regions = s->regions_.get();
  }
  s->workers_ = std::make_unique<JobQueue>(o.worker_threads);
  s->service_ = std::make_unique<AdapterService>(cfg, s->metrics_.get(), s->budget_.get(), s->workers_.get());

  EnableGrpcPlugins();
  grpc::ServerBuilder builder;
  std::vector<int> ports(o.listen.size(), 0);
  bool any_unix = false;
  for (size_t i = 0; i < o.listen.size(); ++i) {
    if (std::optional<std::string> path = UnixSocketPath(o.listen[i])) {
      if (absl::Status claimed = ClaimUnixSocketPath(*path); !claimed.ok()) return claimed;
      any_unix = true;
    }
    builder.AddListeningPort(o.listen[i], creds, &ports[i]);
  }
  if (s->regions_) {
    ShmChannel::Config sc;
    sc.mode = static_cast<mode_t>(o.unix_socket_mode);
    sc.max_region_bytes = o.max_region_bytes;
    sc.allowed_uids.assign(o.shared_memory_uids.begin(), o.shared_memory_uids.end());
    if (sc.allowed_uids.empty()) sc.allowed_uids.push_back(::geteuid());
    for (const std::string& listen : o.listen) {
      std::optional<std::string> path = UnixSocketPath(listen);
      if (!path) continue;
      sc.path = *path + ".shm";
      absl::StatusOr<std::unique_ptr<ShmChannel>> channel = ShmChannel::Start(sc, s->regions_.get(), s->metrics_.get());
      if (!channel.ok()) return channel.status();
      s->shm_channels_.push_back(*std::move(channel));
    }
  }
  builder.RegisterService(s->service_.get());
  // No gRPC size check: gRPC 1.51 buffers a whole message before checking its
  // size anyway (measured: a 300 MB message against a 1 MiB limit raised RSS
  // by 290 MB), and its check ends the call in a way the stream reads as a
  // client cancel. The streams check the size themselves (stream_reactor.cc),
  // so the client's RESOURCE_EXHAUSTED and the metric agree.
  builder.SetMaxReceiveMessageSize(-1);
  SetKeepalivePolicy(&builder);
  // Identity only: gRPC inflates a compressed message whole before any size
  // check, so 250 KB of gzip could make the server hold 256 MiB. Tensor bytes
  // barely compress anyway. A compressed call gets UNIMPLEMENTED from gRPC
  // itself (the stream sees a cancel, so the metric counts CANCELLED).
  builder.AddChannelArgument(GRPC_COMPRESSION_CHANNEL_ENABLED_ALGORITHMS_BITSET, 1);
  {
    std::optional<ScopedUmask> umask;  // socket files are bound in BuildAndStart()
    if (any_unix) umask.emplace(static_cast<mode_t>(o.unix_socket_mode));
    s->server_ = builder.BuildAndStart();
  }
  if (!s->server_ || std::count(ports.begin(), ports.end(), 0) > 0) {
    s->server_.reset();
    return absl::UnavailableError(absl::StrCat("cannot listen on \"", absl::StrJoin(o.listen, "\", \""),
                                               "\" (address in use or invalid?)"));
  }
  s->ports_ = ports;
  for (size_t i = 0; i < o.listen.size(); ++i) {
    std::optional<std::string> path = UnixSocketPath(o.listen[i]);
    if (!path) {
      if (s->port_ == 0) s->port_ = ports[i];
      continue;
    }
    absl::StatusOr<BoundUnixSocket> bound = BoundUnixSocket::Adopt(*path, static_cast<mode_t>(o.unix_socket_mode));
    if (!bound.ok()) {
      s->Shutdown(absl::ZeroDuration());
      return bound.status();
    }
    s->unix_sockets_.push_back(*std::move(bound));
  }
  // "" (the whole server) and the service's own name, for probes that ask for it.
  s->server_->GetHealthCheckService()->SetServingStatus(true);
  s->server_->GetHealthCheckService()->SetServingStatus(v1::MoeAdapter::service_full_name(), true);

  if (!o.metrics_listen.empty()) {
    try {
      s->exposer_ = std::make_unique<prometheus::Exposer>(o.metrics_listen);
    } catch (const std::exception& e) {
      s->Shutdown(absl::ZeroDuration());
      return absl::UnavailableError(
          absl::StrCat("--metrics-listen: cannot listen on \"", o.metrics_listen, "\": ", e.what()));
    }
    s->exposer_->RegisterCollectable(s->metrics_->registry(), "/metrics");
    std::vector<int> ports = s->exposer_->GetListeningPorts();
    s->metrics_port_ = ports.empty() ? 0 : ports.front();
  }
  if (!cfg.auth_token.empty() && o.tls_cert.empty()) {
    for (const std::string& listen : o.listen) {
      if (std::string warning = PlaintextTokenWarning(listen); !warning.empty()) {
        std::fprintf(stderr, "moe-adapter-server: %s\n", warning.c_str());
        std::fflush(stderr);
      }
    }
  }
  if (o.release_idle_buffers > absl::ZeroDuration()) {
    AdapterServer* raw = s.get();
    s->releaser_ = std::thread([raw, idle = o.release_idle_buffers] { raw->ReleaseIdleBuffersLoop(idle); });
  }
  return s;
}

void AdapterServer::ReleaseIdleBuffersLoop(absl::Duration idle) {
  // Checked four times per period, so a buffer is freed at most 1.25 x
  // `idle` after its last use.
  const auto period = absl::ToChronoNanoseconds(std::clamp(idle / 4, absl::Milliseconds(10), absl::Seconds(15)));
  const auto idle_ns = absl::ToChronoNanoseconds(idle);
  std::unique_lock<std::mutex> lock(releaser_mu_);
  while (!releaser_cv_.wait_for(lock, period, [this] { return releaser_stop_; })) {
    buffer_cache::ReleaseIdle(idle_ns);
  }
}

AdapterServer::~AdapterServer() { Shutdown(absl::ZeroDuration()); }

void AdapterServer::Shutdown(absl::Duration grace) {
  std::call_once(shutdown_once_, [&] {
    if (releaser_.joinable()) {
      {
        std::lock_guard<std::mutex> lock(releaser_mu_);
        releaser_stop_ = true;
      }
      releaser_cv_.notify_all();
      releaser_.join();
    }
    // No new registrations; what waits unused is unmapped (streams drop
    // their own regions when they end).
    for (const auto& channel : shm_channels_) channel->Stop();
    if (regions_) regions_->Clear();
    if (!server_) return;
    // The drain is done here rather than by grpc::Server::Shutdown(deadline),
    // which did not reliably let in-flight callback streams finish: probes see
    // NOT_SERVING, new streams are refused, and the admitted ones run to their
    // end (or to the grace deadline); only then does gRPC shut down, which
    // cancels whatever is left.
    server_->GetHealthCheckService()->SetServingStatus(false);
    service_->StartDraining();
    const absl::Time deadline = absl::Now() + grace;
    while (service_->active_streams() > 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    server_->Wait();
    for (const BoundUnixSocket& socket : unix_sockets_) socket.Remove();
  });
}

uint64_t AdapterServer::BufferedBytes() const { return budget_->held(); }
int AdapterServer::ActiveStreams() const { return service_->active_streams(); }

absl::Status RunServer(const ServerOptions& options) {
  // A handler, not a blocked-signal mask: threads started before main()
  // (libraries' static initialisers) would not inherit a mask, and a signal
  // delivered to one of them would kill the process. The handler only writes
  // the signal number to a pipe that this thread reads.
  if (::pipe(g_signal_pipe) != 0) return absl::InternalError("pipe() failed");
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  ASSIGN_OR_RETURN(std::unique_ptr<AdapterServer> server, AdapterServer::Start(options));
  std::string extra;
  if (server->metrics_port() != 0) absl::StrAppend(&extra, " (metrics on port ", server->metrics_port(), ")");
  if (!options.tls_cert.empty()) absl::StrAppend(&extra, options.tls_client_ca.empty() ? " [TLS]" : " [mTLS]");
  // One line per address, in the order given: HOST:PORT (the bound port) or
  // the unix: (unix-abstract:) address as given.
  for (size_t i = 0; i < options.listen.size(); ++i) {
    const std::string& listen = options.listen[i];
    const std::string addr = absl::StartsWith(listen, "unix")
                                 ? listen
                                 : absl::StrCat(listen.substr(0, listen.rfind(':')), ":", server->ports()[i]);
    std::fprintf(stderr, "moe-adapter-server: listening on %s%s\n", addr.c_str(), extra.c_str());
  }
  std::fflush(stderr);

  unsigned char sig = 0;
  while (::read(g_signal_pipe[0], &sig, 1) < 0 && errno == EINTR) {
  }
  std::fprintf(stderr, "moe-adapter-server: %s: draining (grace %s)\n", sig == SIGTERM ? "SIGTERM" : "SIGINT",
               absl::FormatDuration(options.shutdown_grace).c_str());
  std::fflush(stderr);
  server->Shutdown(options.shutdown_grace);
  std::fprintf(stderr, "moe-adapter-server: stopped\n");
  return absl::OkStatus();
}

}  // namespace server
}  // namespace moe_adapter
