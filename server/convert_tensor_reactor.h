// File: server/convert_tensor_reactor.h
//
// ConvertTensor: exactly one native tensor in (chunked), its HF tensors out,
// as the reference's convert_single_tensor_to_hf (spec §9). It converts like
// ToHF (to_hf_reactor.h: slab by slab, pass-through forwarded) but refuses a
// second tensor and a stream without one, and makes no end-of-model check
// (one tensor cannot complete a model).
//
// Thread-safety: see stream_reactor.h.
#ifndef MOE_ADAPTER_SERVER_CONVERT_TENSOR_REACTOR_H_
#define MOE_ADAPTER_SERVER_CONVERT_TENSOR_REACTOR_H_

#include "server/to_hf_reactor.h"

namespace moe_adapter {
namespace server {

class ConvertTensorReactor : public ToHfReactor {
 public:
  ConvertTensorReactor(const StreamEnv& env, grpc::CallbackServerContext* context)
      : ToHfReactor(env, context, Rpc::kConvertTensor) {}

 protected:
  absl::Status OnTensorBegin(const wire::FrameHeader& header) override;
  absl::Status OnInputEnd(Job* job) override;

 private:
  bool have_tensor_ = false;
};

}  // namespace server
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_SERVER_CONVERT_TENSOR_REACTOR_H_
