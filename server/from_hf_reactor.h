// File: server/from_hf_reactor.h
//
// FromHF: HF tensors in, any order; native tensors out (spec §5, §15). Per
// input tensor, by the core's plan:
//   kWhole (a per-expert weight or LoRA tensor): before anything is allocated,
//     the tensor's bytes + plan.hold_bytes (a new group's output buffer) +
//     what the stream already holds (incomplete groups, queued output) must
//     fit the per-stream and total budgets (RESOURCE_EXHAUSTED naming the
//     tensor otherwise); then it is received whole and added to its group on
//     a worker; a group that completes goes out at once;
//   kPassThrough: forwarded chunk by chunk, never held whole;
//   kDrop (another EP rank's expert): consumed.
// At the end the core's Finish() flushes deferred LoRA tensors and names
// every incomplete group (INVALID_ARGUMENT) or an ambiguous LoRA layout
// (FAILED_PRECONDITION). With expert parallelism, the grouped outputs'
// headers and the summary carry the EP slice (spec §15.4).
//
// Thread-safety: see stream_reactor.h.
#ifndef MOE_ADAPTER_SERVER_FROM_HF_REACTOR_H_
#define MOE_ADAPTER_SERVER_FROM_HF_REACTOR_H_

#include <map>
#include <memory>
#include <string>

#include "moe_adapter/converter.h"
#include "server/stream_reactor.h"

namespace moe_adapter {
namespace server {

class FromHfReactor : public StreamReactor {
 public:
  FromHfReactor(const StreamEnv& env, grpc::CallbackServerContext* context)
      : StreamReactor(env, Rpc::kFromHf, context) {}

 protected:
  absl::Status OnOptions(const wire::StreamConfig& config) override;
  absl::Status OnTensorBegin(const wire::FrameHeader& header) override;
  absl::Status OnTensorChunk(wire::Payload* chunk, uint64_t offset, bool last, Job* job) override;
  absl::Status OnInputEnd(Job* job) override;
  uint64_t HeldBytes() const override;
  void FillSummary(v1::StreamSummary* summary) override;

 private:
  TensorSink Collect(JobOutputs* outputs) const;

  std::unique_ptr<FromHfConverter> converter_;
  std::map<std::string, std::string> metadata_;  // the EP slice, empty without EP
  TensorPlan plan_;
  Bytes buffer_;  // kWhole: the tensor being received
};

}  // namespace server
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_SERVER_FROM_HF_REACTOR_H_
