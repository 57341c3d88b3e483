#include "server/service.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/family_registry.h"
#include "moe_adapter/dtype.h"
#include "server/convert_tensor_reactor.h"
#include "server/from_hf_reactor.h"
#include "server/status_mapping.h"
#include "server/to_hf_reactor.h"
#include "server/token_rules.h"

namespace moe_adapter {
namespace server {
namespace {

// A stream refused before it started: finishes at once, reads nothing.
class RefusedStream final : public AdapterService::BidiReactor {
 public:
  explicit RefusedStream(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

AdapterService::AdapterService(const ServiceConfig& config, Metrics* metrics, MemoryBudget* budget,
                               JobQueue* workers)
    : config_(config), metrics_(metrics), budget_(budget), workers_(workers) {
  absl::Duration shortest = absl::InfiniteDuration();
  for (absl::Duration d : {config.stream_idle_timeout, config.stream_options_timeout}) {
    if (d > absl::ZeroDuration()) shortest = std::min(shortest, d);
  }
  if (shortest != absl::InfiniteDuration()) watchdog_ = std::make_unique<IdleWatchdog>(IdleWatchdog::PeriodFor(shortest));
}

absl::Status AdapterService::CheckToken(const grpc::CallbackServerContext* context) const {
  if (config_.auth_token.empty()) return absl::OkStatus();
  const auto& md = context->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) {
    return absl::UnauthenticatedError("this server requires `authorization: Bearer <token>` metadata");
  }
  absl::string_view value(it->second.data(), it->second.size());
  if (!absl::ConsumePrefix(&value, "Bearer ") || !SameSecret(value, config_.auth_token)) {
    return absl::UnauthenticatedError("the bearer token was refused");
  }
  return absl::OkStatus();
}

template <class R>
AdapterService::BidiReactor* AdapterService::OpenStream(grpc::CallbackServerContext* context, Rpc rpc) {
  absl::Status admit = CheckToken(context);
  if (admit.ok() && draining_.load()) {
    admit = absl::UnavailableError("the server is shutting down (draining); retry on another replica");
  }
  if (admit.ok()) {
    if (active_.fetch_add(1) >= config_.max_concurrent_streams) {
      active_.fetch_sub(1);
      admit = absl::ResourceExhaustedError(absl::StrCat("the server is serving its maximum of ",
                                                        config_.max_concurrent_streams,
                                                        " streams (--max-concurrent-streams); retry later"));
    }
  }
  if (!admit.ok()) {
    grpc::Status status = ToGrpcStatus(admit);
    metrics_->RequestFinished(rpc, status.error_code());
    return new RefusedStream(status);
  }
  metrics_->StreamStarted();
  StreamEnv env;
  env.device = config_.device;
  env.metrics = metrics_;
  env.budget = budget_;
  env.workers = workers_;
  env.default_chunk_bytes = config_.default_chunk_bytes;
  env.max_chunk_bytes = config_.max_chunk_bytes;
  env.max_message_bytes = config_.max_receive_message_bytes;
  env.watchdog = watchdog_.get();
  env.regions = config_.regions;
  env.idle_timeout = absl::ToChronoNanoseconds(config_.stream_idle_timeout);
  env.options_timeout = absl::ToChronoNanoseconds(config_.stream_options_timeout);
  env.on_destroyed = [this] {
    metrics_->StreamEnded();
    active_.fetch_sub(1);
  };
  R* reactor = new R(env, context);
  reactor->Start();
  return reactor;
}

AdapterService::BidiReactor* AdapterService::ToHF(grpc::CallbackServerContext* context) {
  return OpenStream<ToHfReactor>(context, Rpc::kToHf);
}

AdapterService::BidiReactor* AdapterService::FromHF(grpc::CallbackServerContext* context) {
  return OpenStream<FromHfReactor>(context, Rpc::kFromHf);
}

AdapterService::BidiReactor* AdapterService::ConvertTensor(grpc::CallbackServerContext* context) {
  return OpenStream<ConvertTensorReactor>(context, Rpc::kConvertTensor);
}

grpc::ServerUnaryReactor* AdapterService::GetInfo(grpc::CallbackServerContext* context,
                                                  const v1::GetInfoRequest* /*request*/, v1::ServerInfo* info) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const auto t0 = std::chrono::steady_clock::now();
  absl::Status token = CheckToken(context);
  if (token.ok()) {
    info->set_version(config_.version);
    info->set_device(config_.device.name);
    info->set_cuda_built(config_.cuda_built);
    for (const char* l : {"peft-v0.19", "peft-v0.18", "per-expert"}) info->add_lora_layouts(l);
    for (const char* d : {"float32", "bfloat16", "float16"}) info->add_expert_dtypes(d);
    for (int d = static_cast<int>(DType::kBool); d <= static_cast<int>(DType::kC64); ++d) {
      info->add_wire_dtypes(std::string(DTypeName(static_cast<DType>(d))));
    }
    for (Rpc r : {Rpc::kToHf, Rpc::kFromHf, Rpc::kConvertTensor}) info->add_rpcs(std::string(RpcName(r)));
    for (const std::string& f : FamilyNames()) info->add_families(f);
    v1::Limits* limits = info->mutable_limits();
    limits->set_max_chunk_bytes(config_.max_chunk_bytes);
    limits->set_default_chunk_bytes(config_.default_chunk_bytes);
    limits->set_max_stream_memory_bytes(budget_->per_stream_limit());
    limits->set_max_total_memory_bytes(budget_->total_limit());
    limits->set_max_concurrent_streams(static_cast<uint32_t>(config_.max_concurrent_streams));
    limits->set_max_receive_message_bytes(config_.max_receive_message_bytes);
  }
  grpc::Status status = ToGrpcStatus(token);
  metrics_->RequestFinished(Rpc::kGetInfo, status.error_code());
  metrics_->StreamDuration(Rpc::kGetInfo,
                           std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  reactor->Finish(status);
  return reactor;
}

}  // namespace server
}  // namespace moe_adapter
