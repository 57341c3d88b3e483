#include "server/to_hf_reactor.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/checked_math.h"
#include "core/internal/status_macros.h"
#include "core/safetensors_format.h"

namespace moe_adapter {
namespace server {
namespace {

TensorSink Collect(JobOutputs* outputs) {
  return [outputs](NamedTensor t) {
    outputs->push_back(JobOutput{std::move(t), {}});
    return absl::OkStatus();
  };
}

}  // namespace

absl::Status ToHfReactor::OnOptions(const wire::StreamConfig& config) {
  options_ = config.options;
  ASSIGN_OR_RETURN(std::unique_ptr<ToHfConverter> conv, ToHfConverter::Create(options_, env().device));
  converter_ = std::move(conv);
  return absl::OkStatus();
}

absl::Status ToHfReactor::OnTensorBegin(const wire::FrameHeader& h) {
  ASSIGN_OR_RETURN(TensorPlan plan, converter_->Plan(h.info));
  plan_ = std::move(plan);
  switch (plan_.kind) {
    case TensorPlan::Kind::kDrop:
      return absl::OkStatus();
    case TensorPlan::Kind::kPassThrough: {
      // Its output is the input unchanged: the bytes are forwarded as they
      // arrive instead of being held.
      absl::Status s = converter_->ClaimPassThrough(plan_);
      if (s.ok()) ForwardUnchanged(h);
      return s;
    }
    case TensorPlan::Kind::kSlabs: {
      // One slab buffer, plus the outputs of the slabs one chunk can complete
      // (cast may widen them), plus the output window, plus the keys of every
      // output (two per slab at most), kept until the stream ends.
      const DType out = options_.dtype.value_or(h.info.dtype);
      const uint64_t widen = std::max<uint64_t>(1, DTypeSize(out) / DTypeSize(h.info.dtype));
      const uint64_t slab = plan_.slab_bytes;
      const std::optional<uint64_t> need = checked::Add<uint64_t>(
          checked::Add<uint64_t>(slab, checked::Mul<uint64_t>(checked::Add<uint64_t>({slab, chunk_bytes()}), widen)),
          checked::Add<uint64_t>(window_bytes(),
                                 checked::Mul<uint64_t>({static_cast<uint64_t>(plan_.num_slabs), 2, KeyCost(h.info.name)})));
      RETURN_IF_ERROR(ReserveMore(need, absl::StrCat("tensor ", safetensors::Quote(h.info.name), " (expert slabs of ",
                                                     plan_.slab_bytes, " bytes)")));
      ASSIGN_OR_RETURN(Bytes buffer, plan_.num_slabs > 0 ? AllocateBuffer(plan_.slab_bytes, h.info.name) : Bytes());
      buffer_ = std::move(buffer);
      filled_ = 0;
      next_slab_ = 0;
      return absl::OkStatus();
    }
    case TensorPlan::Kind::kWhole: {
      // LoRA: the tensor, and outputs up to twice its size (per-expert A is
      // written under two names), and their keys (two per expert). A hostile
      // byte_length makes 3x wrap: checked.
      const uint64_t experts = h.info.shape.empty() ? 0 : static_cast<uint64_t>(h.info.shape[0]);
      const std::optional<uint64_t> need = checked::Add<uint64_t>(
          checked::Mul<uint64_t>({3, h.byte_length}),
          checked::Add<uint64_t>(window_bytes(), checked::Mul<uint64_t>({experts, 2, KeyCost(h.info.name)})));
      RETURN_IF_ERROR(ReserveMore(need, absl::StrCat("tensor ", safetensors::Quote(h.info.name), " (", h.byte_length,
                                                     " bytes converted whole)")));
      ASSIGN_OR_RETURN(Bytes buffer, AllocateBuffer(h.byte_length, h.info.name));
      buffer_ = std::move(buffer);
      return absl::OkStatus();
    }
  }
  return absl::InternalError("unknown plan");
}

absl::Status ToHfReactor::OnTensorChunk(wire::Payload* chunk, uint64_t offset, bool last, Job* job) {
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
          return converter_->ConvertWhole(plan_, t, Collect(outputs));
        };
      }
      return absl::OkStatus();
    case TensorPlan::Kind::kSlabs:
      if (plan_.num_slabs == 0) return absl::OkStatus();
      if (filled_ + chunk->size() < plan_.slab_bytes) {
        // Still inside one slab: a copy of at most one chunk, done inline.
        chunk->CopyTo(buffer_.mutable_data() + filled_);
        filled_ += chunk->size();
        return absl::OkStatus();
      }
      *job = [this, data = std::move(*chunk), last](JobOutputs* outputs) {
        absl::Status s = ConvertSlabs(data, outputs);
        if (last) buffer_ = Bytes();
        return s;
      };
      return absl::OkStatus();
  }
  return absl::InternalError("unknown plan");
}

absl::Status ToHfReactor::ConvertSlabs(const wire::Payload& data, JobOutputs* outputs) {
  const TensorSink sink = Collect(outputs);
  for (const grpc::Slice& piece : data.pieces()) {
    size_t pos = 0;
    while (pos < piece.size()) {
      const size_t n = std::min<size_t>(piece.size() - pos, plan_.slab_bytes - filled_);
      std::memcpy(buffer_.mutable_data() + filled_, piece.begin() + pos, n);
      filled_ += n;
      pos += n;
      if (filled_ == plan_.slab_bytes) {
        RETURN_IF_ERROR(converter_->ConvertSlab(plan_, next_slab_++, buffer_.data(), sink));
        filled_ = 0;
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ToHfReactor::OnInputEnd(Job* job) {
  *job = [this](JobOutputs*) { return converter_->Finish(); };
  return absl::OkStatus();
}

void ToHfReactor::FillSummary(v1::StreamSummary* summary) {
  if (!converter_) return;
  for (const std::string& w : converter_->Warnings()) summary->add_warnings(w);
}

}  // namespace server
}  // namespace moe_adapter
