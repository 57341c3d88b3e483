// File: server/to_hf_reactor.h
//
// ToHF: native tensors in, HF tensors out (spec §4, §15). Per input tensor,
// by the core's plan:
//   kSlabs (grouped experts [E_local, H, 2I] / [E_local, I, H]): chunks fill
//     one slab buffer (one expert, plan.slab_bytes); each full slab is
//     converted on a worker and its HF tensors go out at once. The stream
//     holds about one slab, so a grouped tensor larger than the budget (or
//     than 2 GiB) still streams;
//   kPassThrough: the output header is the input header (CRC included) and
//     the chunks are forwarded as they arrive, never held whole;
//   kWhole (native LoRA): received whole within the budget, then converted;
//   kDrop (excluded): consumed.
// At the end the core's Finish() checks the model (with a config.json: every
// MoE layer present).
//
// Thread-safety: see stream_reactor.h.
#ifndef MOE_ADAPTER_SERVER_TO_HF_REACTOR_H_
#define MOE_ADAPTER_SERVER_TO_HF_REACTOR_H_

#include <memory>

#include "moe_adapter/converter.h"
#include "server/stream_reactor.h"

namespace moe_adapter {
namespace server {

class ToHfReactor : public StreamReactor {
 public:
  ToHfReactor(const StreamEnv& env, grpc::CallbackServerContext* context, Rpc rpc = Rpc::kToHf)
      : StreamReactor(env, rpc, context) {}

 protected:
  absl::Status OnOptions(const wire::StreamConfig& config) override;
  absl::Status OnTensorBegin(const wire::FrameHeader& header) override;
  absl::Status OnTensorChunk(wire::Payload* chunk, uint64_t offset, bool last, Job* job) override;
  absl::Status OnInputEnd(Job* job) override;
  uint64_t HeldBytes() const override { return buffer_.size() + (converter_ ? converter_->KeptBytes() : 0); }
  void FillSummary(v1::StreamSummary* summary) override;

 private:
  // ConvertSlabs(): copies `data` into the slab buffer, converting each slab
  // it completes (runs on a worker).
  absl::Status ConvertSlabs(const wire::Payload& data, JobOutputs* outputs);

  ConvertOptions options_;
  std::unique_ptr<ToHfConverter> converter_;
  TensorPlan plan_;
  Bytes buffer_;             // kSlabs: one slab; kWhole: the tensor
  uint64_t filled_ = 0;      // kSlabs: bytes in the slab buffer
  int64_t next_slab_ = 0;    // kSlabs: index of the slab being filled
};

}  // namespace server
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_SERVER_TO_HF_REACTOR_H_
