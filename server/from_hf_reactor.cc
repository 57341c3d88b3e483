#include "server/from_hf_reactor.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/checked_math.h"
#include "core/internal/status_macros.h"
#include "core/safetensors_format.h"

namespace moe_adapter {
namespace server {

TensorSink FromHfReactor::Collect(JobOutputs* outputs) const {
  return [this, outputs](NamedTensor t) {
    outputs->push_back(JobOutput{std::move(t), metadata_});
    return absl::OkStatus();
  };
}

absl::Status FromHfReactor::OnOptions(const wire::StreamConfig& config) {
  ASSIGN_OR_RETURN(std::unique_ptr<FromHfConverter> conv, FromHfConverter::Create(config.options, env().device));
  converter_ = std::move(conv);
  metadata_ = converter_->OutputMetadata();
  return absl::OkStatus();
}

absl::Status FromHfReactor::OnTensorBegin(const wire::FrameHeader& h) {
  ASSIGN_OR_RETURN(TensorPlan plan, converter_->Plan(h.info));
  plan_ = std::move(plan);
  switch (plan_.kind) {
    case TensorPlan::Kind::kDrop:
      return absl::OkStatus();
    case TensorPlan::Kind::kPassThrough: {
      // Forwarded as the bytes arrive, not held.
      absl::Status s = converter_->ClaimPassThrough(plan_);
      if (s.ok()) ForwardUnchanged(h);
      return s;
    }
    case TensorPlan::Kind::kWhole: {
      const std::optional<uint64_t> need =
          checked::Add<uint64_t>({h.byte_length, plan_.hold_bytes, window_bytes(), KeyCost(h.info.name)});
      const std::string name = safetensors::Quote(h.info.name);
      RETURN_IF_ERROR(ReserveMore(need, plan_.hold_bytes > 0
                                            ? absl::StrCat("tensor ", name, " (", h.byte_length, " bytes, and ",
                                                           plan_.hold_bytes, " bytes for the group it starts)")
                                            : absl::StrCat("tensor ", name, " (", h.byte_length, " bytes)")));
      ASSIGN_OR_RETURN(Bytes buffer, AllocateBuffer(h.byte_length, h.info.name));
      buffer_ = std::move(buffer);
      return absl::OkStatus();
    }
    case TensorPlan::Kind::kSlabs:
      break;
  }
  return absl::InternalError(absl::StrCat("tensor ", safetensors::Quote(h.info.name), ": unexpected plan in from_hf"));
}

absl::Status FromHfReactor::OnTensorChunk(wire::Payload* chunk, uint64_t offset, bool last, Job* job) {
  switch (plan_.kind) {
    case TensorPlan::Kind::kDrop:
      return absl::OkStatus();
    case TensorPlan::Kind::kPassThrough:
      ForwardChunk(std::move(*chunk));
      return absl::OkStatus();
    case TensorPlan::Kind::kWhole:
      chunk->CopyTo(buffer_.mutable_data() + offset);
      if (last) {
        *job = [this](JobOutputs* outputs) {
          Tensor t{plan_.input.dtype, plan_.input.shape, std::move(buffer_)};
          buffer_ = Bytes();
          return converter_->Add(plan_, t, Collect(outputs));
        };
      }
      return absl::OkStatus();
    case TensorPlan::Kind::kSlabs:
      break;
  }
  return absl::InternalError("unexpected plan in from_hf");
}

absl::Status FromHfReactor::OnInputEnd(Job* job) {
  *job = [this](JobOutputs* outputs) { return converter_->Finish(Collect(outputs)); };
  return absl::OkStatus();
}

uint64_t FromHfReactor::HeldBytes() const {
  return buffer_.size() + (converter_ ? converter_->HeldBytes() + converter_->KeptBytes() : 0);
}

void FromHfReactor::FillSummary(v1::StreamSummary* summary) {
  if (!converter_) return;
  for (const std::string& w : converter_->Warnings()) summary->add_warnings(w);
  for (const auto& [k, v] : metadata_) (*summary->mutable_metadata())[k] = v;
}

}  // namespace server
}  // namespace moe_adapter
