// File: server/service.h
//
// AdapterService: the moe_adapter.v1.MoeAdapter callback service. Each RPC
// method is short: admit the call (bearer token, stream limit), then return
// the reactor that serves it (to_hf_reactor.h, from_hf_reactor.h,
// convert_tensor_reactor.h) or, for GetInfo, answer at once. A refused call
// finishes with UNAUTHENTICATED or RESOURCE_EXHAUSTED before reading anything.
//
// Example (what server.cc does):
//   AdapterService service(config, &metrics, &budget, &workers);
//   builder.RegisterService(&service);
//
// Thread-safety: methods are called concurrently by gRPC; the service is
// thread-safe. It must outlive the grpc::Server and every stream.
#ifndef MOE_ADAPTER_SERVER_SERVICE_H_
#define MOE_ADAPTER_SERVER_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "moe_adapter/device.h"

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "moe_adapter/v1/adapter.grpc.pb.h"
#include "server/idle_watchdog.h"
#include "server/job_queue.h"
#include "server/memory_budget.h"
#include "server/metrics.h"
#include "server/stream_reactor.h"

namespace moe_adapter {
namespace server {

struct ServiceConfig {
  std::string version;
  bool cuda_built = false;
  // Where expert transposes run (shared by every stream).
  Device device;
  // Empty: no token required.
  std::string auth_token;
  uint64_t max_chunk_bytes = wire::kDefaultChunkBytes;
  uint64_t default_chunk_bytes = wire::kDefaultChunkBytes;
  // Larger messages end their stream with RESOURCE_EXHAUSTED.
  uint64_t max_receive_message_bytes = 0;
  int max_concurrent_streams = 64;
  // --stream-idle-timeout, --stream-options-timeout (zero disables each).
  absl::Duration stream_idle_timeout = absl::ZeroDuration();
  absl::Duration stream_options_timeout = absl::ZeroDuration();
  // Shared-memory registrations (shm_regions.h); null: the mode is off.
  RegionRegistry* regions = nullptr;
};

// The conversion methods are registered raw (gRPC byte buffers, decoded by
// wire_message.h) so tensor bytes are never copied through protobuf strings;
// on the wire they are the proto's messages, as any client expects.
using RawStreamingService = v1::MoeAdapter::WithRawCallbackMethod_ToHF<
    v1::MoeAdapter::WithRawCallbackMethod_FromHF<
        v1::MoeAdapter::WithRawCallbackMethod_ConvertTensor<
            v1::MoeAdapter::WithCallbackMethod_GetInfo<v1::MoeAdapter::Service>>>>;

class AdapterService final : public RawStreamingService {
 public:
  // `metrics`, `budget` and `workers` must outlive the service.
  AdapterService(const ServiceConfig& config, Metrics* metrics, MemoryBudget* budget, JobQueue* workers);

  using BidiReactor = grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>;
  BidiReactor* ToHF(grpc::CallbackServerContext* context) override;
  BidiReactor* FromHF(grpc::CallbackServerContext* context) override;
  BidiReactor* ConvertTensor(grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* GetInfo(grpc::CallbackServerContext* context, const v1::GetInfoRequest* request,
                                    v1::ServerInfo* response) override;

  // active_streams(): conversion streams admitted and not yet destroyed.
  int active_streams() const { return active_.load(); }

  // StartDraining(): new conversion streams are refused (UNAVAILABLE, so a
  // client retries elsewhere); admitted ones go on to their end.
  void StartDraining() { draining_.store(true); }

 private:
  // CheckToken(): UNAUTHENTICATED unless the call carries the bearer token.
  absl::Status CheckToken(const grpc::CallbackServerContext* context) const;
  // OpenStream(): admits the call, then builds the RPC's reactor.
  template <class R>
  BidiReactor* OpenStream(grpc::CallbackServerContext* context, Rpc rpc);

  const ServiceConfig config_;
  Metrics* metrics_;
  MemoryBudget* budget_;
  JobQueue* workers_;
  // Null when both stream timeouts are off.
  std::unique_ptr<IdleWatchdog> watchdog_;
  std::atomic<bool> draining_{false};
  std::atomic<int> active_{0};
};

}  // namespace server
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_SERVER_SERVICE_H_
