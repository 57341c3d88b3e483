// File: moe_adapter/converter.h
//
// The conversion core: native grouped experts <-> Hugging Face per-expert
// tensors, base weights and LoRA, exactly as specified in spec/conversion.md
// (the reference behaviour, with the §15 contract), for the model family the
// options name (ConvertOptions::family; Qwen3-MoE by default).
//
// Both directions are streaming sessions. A caller announces each input
// tensor by its header (Plan), which validates it before any data arrives and
// says how much data the session needs at once; then hands over the data and
// receives outputs through a sink as soon as they exist.
//
//   to_hf: a grouped tensor converts expert slab by expert slab (one slab =
//          one expert's [H, 2I] or [I, H] block), so memory is one slab;
//          LoRA tensors convert whole (they are small); the rest passes through.
//   from_hf: per-expert tensors are transposed straight into their group's
//          output buffer; a grouped tensor is emitted when its group is
//          complete. Memory held = incomplete groups only. Finish() reports
//          every incomplete group.
//
// Example (whole tensors):
//   ASSIGN_OR_RETURN(auto conv, moe_adapter::ToHfConverter::Create(options));
//   for (const NamedTensor& t : inputs)
//     RETURN_IF_ERROR(conv->Convert(t, [&](NamedTensor out) { return Write(out); }));
//   RETURN_IF_ERROR(conv->Finish());
//
// Errors are absl::Status values: kInvalidArgument for malformed input (the
// message names the key, the expected and the actual shape or id),
// kFailedPrecondition when the input is valid but the options cannot decide
// (an ambiguous LoRA layout). After an error a session must not be used again.
//
// Thread-safety: a session is used by one thread at a time. Sessions are
// independent; many may run concurrently.
#ifndef MOE_ADAPTER_CONVERTER_H_
#define MOE_ADAPTER_CONVERTER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "moe_adapter/convert_options.h"
#include "moe_adapter/device.h"
#include "moe_adapter/tensor.h"

namespace moe_adapter {

struct TensorRoute;  // the core's (core/tensor_route.h)

// TensorSink: receives each output tensor. A non-OK return aborts the session.
using TensorSink = std::function<absl::Status(NamedTensor)>;

// TensorPlan: how one input tensor is handled, known from its header alone.
struct TensorPlan {
  enum class Kind {
    kPassThrough,  // emitted unchanged: same name, dtype, shape and bytes
    kDrop,         // consumed, nothing emitted (excluded key; another EP rank's expert)
    kSlabs,        // to_hf grouped experts: feed ConvertSlab() num_slabs x slab_bytes
    kWhole,        // feed the whole tensor to ConvertWhole() / Add()
  };
  Kind kind = Kind::kPassThrough;
  TensorInfo input;
  int64_t num_slabs = 0;  // kSlabs
  size_t slab_bytes = 0;  // kSlabs
  // from_hf: bytes the session will newly hold once this tensor is added (a
  // new group's output buffer, a deferred LoRA tensor). Lets a server refuse
  // before it allocates anything.
  size_t hold_bytes = 0;

  // Where the session routes this tensor (its role and key slots): set by
  // Plan(), opaque to callers, who pass the plan back unchanged.
  std::shared_ptr<const TensorRoute> route;
};

// ToHfConverter: a native -> HF session.
class ToHfConverter {
 public:
  // Create(): validates the options. `device` runs the expert transposes
  // (default: the CPU); results are the same bits on every device.
  static absl::StatusOr<std::unique_ptr<ToHfConverter>> Create(const ConvertOptions& options,
                                                               const Device& device = {});
  virtual ~ToHfConverter() = default;

  // Plan(): validates one input header (name, dtype, shape against the
  // geometry, duplicates) and says how to feed it.
  virtual absl::StatusOr<TensorPlan> Plan(const TensorInfo& input) = 0;

  // ConvertSlab(): slab `index` (0-based, in order or not) of a kSlabs plan;
  // `slab` holds plan.slab_bytes bytes. Emits that expert's HF tensors
  // (gate then up, or down), global expert ids, exclusions applied.
  virtual absl::Status ConvertSlab(const TensorPlan& plan, int64_t index, const uint8_t* slab,
                                   const TensorSink& sink) = 0;

  // ConvertWhole(): a kWhole or kPassThrough tensor (kDrop: no-op).
  virtual absl::Status ConvertWhole(const TensorPlan& plan, const Tensor& input,
                                    const TensorSink& sink) = 0;

  // ClaimPassThrough(): instead of ConvertWhole() for a kPassThrough plan,
  // when the caller forwards the bytes itself as they arrive (a server):
  // registers the output key (a duplicate is an error) without the data.
  virtual absl::Status ClaimPassThrough(const TensorPlan& plan) = 0;

  // Convert(): Plan() then the matching call, for a whole tensor in memory.
  absl::Status Convert(const NamedTensor& input, const TensorSink& sink);

  // Finish(): end-of-input checks (with a config: every MoE layer converted).
  virtual absl::Status Finish() = 0;

  // Warnings(): notes that are not errors (e.g. an empty EP range).
  virtual std::vector<std::string> Warnings() const = 0;

  // KeptBytes(): bytes of bookkeeping the session keeps (see
  // FromHfConverter::KeptBytes()).
  virtual size_t KeptBytes() const = 0;
};

// FromHfConverter: an HF -> native session.
class FromHfConverter {
 public:
  static absl::StatusOr<std::unique_ptr<FromHfConverter>> Create(const ConvertOptions& options,
                                                                 const Device& device = {});
  virtual ~FromHfConverter() = default;

  // Plan(): validates one input header; kPassThrough, kDrop or kWhole.
  virtual absl::StatusOr<TensorPlan> Plan(const TensorInfo& input) = 0;

  // Add(): the data of a planned tensor. Emits pass-through tensors at once and
  // grouped tensors as their groups complete.
  virtual absl::Status Add(const TensorPlan& plan, const Tensor& input, const TensorSink& sink) = 0;

  // Add(): Plan() then Add() for a whole tensor in memory.
  absl::Status Add(const NamedTensor& input, const TensorSink& sink);

  // ClaimPassThrough(): instead of Add() for a kPassThrough plan, when the
  // caller forwards the bytes itself (see ToHfConverter::ClaimPassThrough).
  virtual absl::Status ClaimPassThrough(const TensorPlan& plan) = 0;

  // Finish(): end-of-input checks: every incomplete group is reported, and
  // ParamWrapper LoRA whose layout no tensor decided is kFailedPrecondition.
  // Emits nothing today (every output leaves through Add()); `sink` is kept
  // so a later check may emit without an API change.
  virtual absl::Status Finish(const TensorSink& sink) = 0;

  // HeldBytes(): bytes of tensor data the session holds now.
  virtual size_t HeldBytes() const = 0;

  // KeptBytes(): bytes of bookkeeping the session keeps besides tensor data:
  // the key of every input and output (for duplicate checks), per-group
  // flags. It grows with every tensor, so a server counts it against the
  // stream's memory budget (a stream of a million tensors with 4 KiB names
  // would otherwise hold gigabytes that no budget sees).
  virtual size_t KeptBytes() const = 0;

  // OutputMetadata(): safetensors __metadata__ for the output (EP slice).
  virtual std::map<std::string, std::string> OutputMetadata() const = 0;

  virtual std::vector<std::string> Warnings() const = 0;
};

// CheckMoeLayerCoverage(): with a full config.json (geometry.has_layer_plan()),
// a checkpoint holding base expert weights must hold them for every MoE layer
// (spec §15.2). `native_keys`: true for a to_hf input (grouped keys), false
// for from_hf (per-expert keys). Sessions apply it themselves unless
// options.partial_checkpoint; a caller splitting one checkpoint over several
// streams applies it here, to all keys at once.
absl::Status CheckMoeLayerCoverage(const ConvertOptions& options, const std::vector<std::string>& keys,
                                   bool native_keys);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CONVERTER_H_
