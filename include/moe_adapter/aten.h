// File: moe_adapter/aten.h
//
// at::Tensor <-> moe_adapter::Tensor without copies, for callers that hold a
// state dict in libtorch (an orchestrator streaming a model to a server).
// Link moe_adapter_aten (it pulls libtorch; the core itself does not).
//
// Example:
//   for (const auto& [name, t] : model.named_parameters())
//     RETURN_IF_ERROR(stream->Send(moe_adapter::FromAten(name, t.detach())));
#ifndef MOE_ADAPTER_ATEN_H_
#define MOE_ADAPTER_ATEN_H_

#include <ATen/ATen.h>

#include <string>

#include "absl/status/statusor.h"
#include "moe_adapter/tensor.h"

namespace moe_adapter {

// FromAten(): wraps a CPU tensor's storage (made contiguous first if needed;
// that is the only copy) and keeps it alive. kInvalidArgument for dtypes with
// no safetensors name or non-CPU tensors.
absl::StatusOr<NamedTensor> FromAten(const std::string& name, const at::Tensor& tensor);

// ToAten(): an at::Tensor viewing the bytes (kept alive by the tensor's
// deleter). Expert dtypes and the integer/bool/f64 dtypes ATen has.
absl::StatusOr<at::Tensor> ToAten(const Tensor& tensor);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_ATEN_H_
