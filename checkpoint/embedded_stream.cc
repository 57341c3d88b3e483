// The in-process conversion stream: the core sessions behind ConversionStream.
#include <algorithm>

#include "core/internal/status_macros.h"
#include "moe_adapter/checkpoint_convert.h"

namespace moe_adapter {
namespace {

class EmbeddedToHf final : public ConversionStream {
 public:
  EmbeddedToHf(std::unique_ptr<ToHfConverter> conv, TensorSink sink, bool on_device)
      : conv_(std::move(conv)), sink_(std::move(sink)), device_(on_device) {}
  absl::Status Send(const NamedTensor& t) override {
    ASSIGN_OR_RETURN(TensorPlan plan, conv_->Plan(t.info()));
    if (plan.kind != TensorPlan::Kind::kSlabs || device_) return conv_->ConvertWhole(plan, t.tensor, sink_);
    // Slab by slab, dropping each consumed slab's file pages: resident memory
    // stays about one slab however large the grouped tensor.
    for (int64_t i = 0; i < plan.num_slabs; ++i) {
      RETURN_IF_ERROR(conv_->ConvertSlab(plan, i, t.tensor.data.data() + i * plan.slab_bytes, sink_));
      t.tensor.data.ReleasePages(i * plan.slab_bytes, plan.slab_bytes);
    }
    return absl::OkStatus();
  }
  absl::Status Finish() override { return conv_->Finish(); }
  std::vector<std::string> Warnings() const override { return conv_->Warnings(); }

 private:
  std::unique_ptr<ToHfConverter> conv_;
  TensorSink sink_;
  bool device_;
};

class EmbeddedFromHf final : public ConversionStream {
 public:
  EmbeddedFromHf(std::unique_ptr<FromHfConverter> conv, TensorSink sink, bool on_device)
      : conv_(std::move(conv)), sink_(std::move(sink)), on_device_(on_device) {}
  // On a device, per-expert inputs wait (by reference) for their group.
  bool RetainsInputs() const override { return on_device_; }
  absl::Status Send(const NamedTensor& t) override {
    RETURN_IF_ERROR(conv_->Add(t, sink_));
    peak_ = std::max(peak_, conv_->HeldBytes());
    return absl::OkStatus();
  }
  absl::Status Finish() override { return conv_->Finish(sink_); }
  size_t PeakHeldBytes() const override { return peak_; }
  std::vector<std::string> Warnings() const override { return conv_->Warnings(); }

 private:
  std::unique_ptr<FromHfConverter> conv_;
  TensorSink sink_;
  bool on_device_;
  size_t peak_ = 0;
};

}  // namespace

StreamOpener EmbeddedStreams(Device device) {
  return [device](Direction d, const ConvertOptions& o, TensorSink sink) {
    return OpenEmbeddedStream(d, o, std::move(sink), device);
  };
}

absl::StatusOr<std::unique_ptr<ConversionStream>> OpenEmbeddedStream(Direction direction,
                                                                       const ConvertOptions& options,
                                                                       TensorSink sink, const Device& device) {
  if (direction == Direction::kToHf) {
    ASSIGN_OR_RETURN(std::unique_ptr<ToHfConverter> conv, ToHfConverter::Create(options, device));
    return std::unique_ptr<ConversionStream>(
        new EmbeddedToHf(std::move(conv), std::move(sink), device.accelerator != nullptr));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<FromHfConverter> conv, FromHfConverter::Create(options, device));
  return std::unique_ptr<ConversionStream>(
      new EmbeddedFromHf(std::move(conv), std::move(sink), device.accelerator != nullptr));
}

}  // namespace moe_adapter
