#include "server/convert_tensor_reactor.h"

#include "absl/strings/str_cat.h"
#include "core/safetensors_format.h"

namespace moe_adapter {
namespace server {

absl::Status ConvertTensorReactor::OnTensorBegin(const wire::FrameHeader& header) {
  if (have_tensor_) {
    return absl::InvalidArgumentError(absl::StrCat("ConvertTensor takes exactly one tensor; ",
                                                   safetensors::Quote(header.info.name),
                                                   " is a second one (use ToHF for many)"));
  }
  have_tensor_ = true;
  return ToHfReactor::OnTensorBegin(header);
}

absl::Status ConvertTensorReactor::OnInputEnd(Job* job) {
  if (!have_tensor_) return absl::InvalidArgumentError("ConvertTensor needs one tensor; the stream ended without one");
  (void)job;  // no end-of-model check for a single tensor
  return absl::OkStatus();
}

}  // namespace server
}  // namespace moe_adapter
