#include "server/metrics.h"

#include <sstream>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "server/status_mapping.h"

namespace moe_adapter {
namespace server {
namespace {

enum class Type { kCounter, kGauge, kHistogram };

struct FamilyRow {
  const char* name;
  const char* help;
  Type type;
};

// The families, one row each (label sets are documented in metrics.h).
enum FamilyId { kRequests, kTensors, kBytes, kStreamSeconds, kConversionSeconds, kActive, kBuffered, kBudget,
                kBuildInfo, kShmRegions, kShmBytes, kShmRegistrations, kNumFamilies };
constexpr FamilyRow kFamilies[kNumFamilies] = {
    {"moe_adapter_requests_total", "RPCs finished, by method and gRPC status code.", Type::kCounter},
    {"moe_adapter_tensors_total", "Whole tensors received (in) and sent (out), by method.", Type::kCounter},
    {"moe_adapter_bytes_total", "Tensor payload bytes received (in) and sent (out), by method.", Type::kCounter},
    {"moe_adapter_stream_duration_seconds", "Lifetime of an RPC, from its start to its end.", Type::kHistogram},
    {"moe_adapter_conversion_duration_seconds", "Time one conversion job (a slab, a tensor, the end of a stream) "
                                                "spends in the core.", Type::kHistogram},
    {"moe_adapter_active_streams", "Conversion streams in progress.", Type::kGauge},
    {"moe_adapter_buffered_bytes", "Bytes conversion streams hold now: receive buffers, incomplete groups, "
                                   "queued outputs.", Type::kGauge},
    {"moe_adapter_memory_budget_bytes", "Memory budgets: per stream (--max-stream-memory) and in total "
                                        "(--max-total-memory).", Type::kGauge},
    {"moe_adapter_build_info", "Build of this server (value is always 1).", Type::kGauge},
    {"moe_adapter_shm_regions", "Client memfd regions mapped now (registered, or held by a stream).", Type::kGauge},
    {"moe_adapter_shm_region_bytes", "Bytes of the client memfd regions mapped now (the client's memory).",
     Type::kGauge},
    {"moe_adapter_shm_registrations_total", "Shared-memory side-channel requests, by the status answered.",
     Type::kCounter},
};

const prometheus::Histogram::BucketBoundaries kStreamBuckets = {0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800};
const prometheus::Histogram::BucketBoundaries kJobBuckets = {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30};

constexpr Rpc kStreamRpcs[] = {Rpc::kToHf, Rpc::kFromHf, Rpc::kConvertTensor};

}  // namespace

absl::string_view RpcName(Rpc rpc) {
  switch (rpc) {
    case Rpc::kToHf: return "ToHF";
    case Rpc::kFromHf: return "FromHF";
    case Rpc::kConvertTensor: return "ConvertTensor";
    case Rpc::kGetInfo: return "GetInfo";
  }
  return "?";
}

Metrics::Metrics(const MetricsInfo& info) : registry_(std::make_shared<prometheus::Registry>()) {
  prometheus::Family<prometheus::Counter>* counters[kNumFamilies] = {};
  prometheus::Family<prometheus::Gauge>* gauges[kNumFamilies] = {};
  prometheus::Family<prometheus::Histogram>* histograms[kNumFamilies] = {};
  for (int id = 0; id < kNumFamilies; ++id) {
    const FamilyRow& row = kFamilies[id];
    switch (row.type) {
      case Type::kCounter:
        counters[id] = &prometheus::BuildCounter().Name(row.name).Help(row.help).Register(*registry_);
        break;
      case Type::kGauge:
        gauges[id] = &prometheus::BuildGauge().Name(row.name).Help(row.help).Register(*registry_);
        break;
      case Type::kHistogram:
        histograms[id] = &prometheus::BuildHistogram().Name(row.name).Help(row.help).Register(*registry_);
        break;
    }
  }
  requests_ = counters[kRequests];
  // Every {rpc, code} series exists at 0 from the start: increase() over a
  // series that first appears at 1 sees no increase, so the first failure of
  // a kind would never fire MoeAdapterStreamFailures (deploy/prometheus).
  for (int r = 0; r < kNumRpcs; ++r) {
    for (int code = grpc::StatusCode::OK; code <= grpc::StatusCode::UNAUTHENTICATED; ++code) {
      requests_->Add({{"rpc", std::string(RpcName(static_cast<Rpc>(r)))},
                      {"code", std::string(GrpcCodeName(static_cast<grpc::StatusCode>(code)))}});
    }
  }
  for (Rpc rpc : kStreamRpcs) {
    const int r = static_cast<int>(rpc);
    const std::string name(RpcName(rpc));
    for (int d = 0; d < 2; ++d) {
      const char* dir = d == 0 ? "in" : "out";
      tensors_[r][d] = &counters[kTensors]->Add({{"rpc", name}, {"direction", dir}});
      bytes_[r][d] = &counters[kBytes]->Add({{"rpc", name}, {"direction", dir}});
    }
    stream_seconds_[r] = &histograms[kStreamSeconds]->Add({{"rpc", name}}, kStreamBuckets);
    conversion_seconds_[r] = &histograms[kConversionSeconds]->Add({{"rpc", name}}, kJobBuckets);
  }
  const int gi = static_cast<int>(Rpc::kGetInfo);
  stream_seconds_[gi] = &histograms[kStreamSeconds]->Add({{"rpc", "GetInfo"}}, kStreamBuckets);
  active_ = &gauges[kActive]->Add({});
  buffered_ = &gauges[kBuffered]->Add({});
  gauges[kBudget]->Add({{"scope", "stream"}}).Set(static_cast<double>(info.max_stream_memory));
  gauges[kBudget]->Add({{"scope", "total"}}).Set(static_cast<double>(info.max_total_memory));
  shm_regions_ = &gauges[kShmRegions]->Add({});
  shm_bytes_ = &gauges[kShmBytes]->Add({});
  shm_registrations_ = counters[kShmRegistrations];
  shm_registrations_->Add({{"code", "OK"}});
  gauges[kBuildInfo]->Add({{"version", info.version}, {"cuda", info.cuda_built ? "true" : "false"}}).Set(1);
}

Metrics::~Metrics() = default;

void Metrics::RequestFinished(Rpc rpc, grpc::StatusCode code) {
  requests_->Add({{"rpc", std::string(RpcName(rpc))}, {"code", std::string(GrpcCodeName(code))}}).Increment();
}

void Metrics::Tensor(Rpc rpc, Direction dir) {
  if (auto* c = tensors_[static_cast<int>(rpc)][static_cast<int>(dir)]) c->Increment();
}

void Metrics::Payload(Rpc rpc, Direction dir, uint64_t bytes) {
  if (auto* c = bytes_[static_cast<int>(rpc)][static_cast<int>(dir)]) c->Increment(static_cast<double>(bytes));
}

void Metrics::StreamDuration(Rpc rpc, double seconds) {
  if (auto* h = stream_seconds_[static_cast<int>(rpc)]) h->Observe(seconds);
}

void Metrics::ConversionDuration(Rpc rpc, double seconds) {
  if (auto* h = conversion_seconds_[static_cast<int>(rpc)]) h->Observe(seconds);
}

void Metrics::StreamStarted() { active_->Increment(); }
void Metrics::StreamEnded() { active_->Decrement(); }
void Metrics::BufferedDelta(int64_t delta) {
  if (delta >= 0) {
    buffered_->Increment(static_cast<double>(delta));
  } else {
    buffered_->Decrement(static_cast<double>(-delta));
  }
}

void Metrics::ShmRegionMapped(uint64_t bytes) {
  shm_regions_->Increment();
  shm_bytes_->Increment(static_cast<double>(bytes));
}

void Metrics::ShmRegionUnmapped(uint64_t bytes) {
  shm_regions_->Decrement();
  shm_bytes_->Decrement(static_cast<double>(bytes));
}

void Metrics::ShmRegistration(grpc::StatusCode code) {
  shm_registrations_->Add({{"code", std::string(GrpcCodeName(code))}}).Increment();
}

std::string Metrics::Render() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace server
}  // namespace moe_adapter
