// File: server/metrics.h
//
// The server's Prometheus metrics (prometheus-cpp). Every family is one row of
// a table in metrics.cc (name, help, type, labels); this class only names the
// events that update them:
//
//   moe_adapter_requests_total{rpc,code}              counter: finished RPCs
//   moe_adapter_tensors_total{rpc,direction}          counter: tensors in / out
//   moe_adapter_bytes_total{rpc,direction}            counter: payload bytes in / out
//   moe_adapter_stream_duration_seconds{rpc}          histogram: RPC lifetime
//   moe_adapter_conversion_duration_seconds{rpc}      histogram: time in the core per job
//   moe_adapter_active_streams                        gauge
//   moe_adapter_buffered_bytes                        gauge: bytes streams hold now
//   moe_adapter_memory_budget_bytes{scope}            gauge: scope = stream | total
//   moe_adapter_build_info{version,cuda}              gauge = 1
//   moe_adapter_shm_regions                           gauge: memfd regions mapped now
//   moe_adapter_shm_region_bytes                      gauge: bytes of those mappings
//   moe_adapter_shm_registrations_total{code}         counter: side-channel requests, by status
//
// Example:
//   Metrics m({.version = "0.1.0"});
//   m.Tensor(Rpc::kToHf, Direction::kIn, 1024);
//   std::string text = m.Render();   // Prometheus text exposition
//
// Thread-safety: every method may be called from any thread.
#ifndef MOE_ADAPTER_SERVER_METRICS_H_
#define MOE_ADAPTER_SERVER_METRICS_H_

#include <cstdint>
#include <memory>
#include <string>

#include <grpcpp/support/status.h>

#include "absl/strings/string_view.h"

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace moe_adapter {
namespace server {

// Rpc: the methods of moe_adapter.v1.MoeAdapter.
enum class Rpc { kToHf = 0, kFromHf = 1, kConvertTensor = 2, kGetInfo = 3 };
inline constexpr int kNumRpcs = 4;
// RpcName(): "ToHF", "FromHF", "ConvertTensor", "GetInfo".
absl::string_view RpcName(Rpc rpc);

enum class Direction { kIn = 0, kOut = 1 };

struct MetricsInfo {
  std::string version;
  bool cuda_built = false;
  uint64_t max_stream_memory = 0;
  uint64_t max_total_memory = 0;
};

class Metrics {
 public:
  explicit Metrics(const MetricsInfo& info);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // registry(): what an Exposer serves.
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  void RequestFinished(Rpc rpc, grpc::StatusCode code);
  // Tensor(): one whole tensor in or out.
  void Tensor(Rpc rpc, Direction dir);
  // Payload(): chunk bytes in or out.
  void Payload(Rpc rpc, Direction dir, uint64_t bytes);
  void StreamDuration(Rpc rpc, double seconds);
  void ConversionDuration(Rpc rpc, double seconds);
  void StreamStarted();
  void StreamEnded();
  // BufferedDelta(): the bytes streams hold changed by `delta`.
  void BufferedDelta(int64_t delta);

  // ShmRegionMapped() / ShmRegionUnmapped(): a client region of `bytes`.
  void ShmRegionMapped(uint64_t bytes);
  void ShmRegionUnmapped(uint64_t bytes);
  // ShmRegistration(): one side-channel request answered with `code`.
  void ShmRegistration(grpc::StatusCode code);

  // Render(): the text exposition of every family (what /metrics serves).
  std::string Render() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_ = nullptr;
  prometheus::Counter* tensors_[kNumRpcs][2] = {};
  prometheus::Counter* bytes_[kNumRpcs][2] = {};
  prometheus::Histogram* stream_seconds_[kNumRpcs] = {};
  prometheus::Histogram* conversion_seconds_[kNumRpcs] = {};
  prometheus::Gauge* active_ = nullptr;
  prometheus::Gauge* buffered_ = nullptr;
  prometheus::Gauge* shm_regions_ = nullptr;
  prometheus::Gauge* shm_bytes_ = nullptr;
  prometheus::Family<prometheus::Counter>* shm_registrations_ = nullptr;
};

}  // namespace server
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_SERVER_METRICS_H_
