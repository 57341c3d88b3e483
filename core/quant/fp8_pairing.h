// The streaming front of FP8 block dequantisation (DeepSeek-V3, spec
// families.md §1, contract §11): inputs arrive in any order, across shards;
// each F8_E4M3 tensor X waits for its scale `X_scale_inv` (or the scale for
// its weight), and the pair leaves as one dequantised tensor named X. Only
// what is needed is held: a scale whose weight has not arrived (small), or a
// weight whose scale has not (a view of its input; the caller counts it).
// Everything else passes straight through.
//
// Errors (INVALID_ARGUMENT, naming the keys): a scale beside a weight that
// is not F8_E4M3; a scale grid that does not match the weight (both shapes);
// at Finish(), an FP8 weight that never got its scale or a scale that never
// got its weight. An FP8 weight is never cast without its scale.
//
// Example:
//   Fp8Dequantizer deq(DType::kBF16);
//   for (NamedTensor& t : inputs) {
//     ASSIGN_OR_RETURN(std::vector<NamedTensor> ready, deq.Add(std::move(t)));
//     for (NamedTensor& r : ready) Next(std::move(r));
//   }
//   RETURN_IF_ERROR(deq.Finish());
//
// Thread-safety: one stream's, used by one thread at a time.
#ifndef MOE_ADAPTER_CORE_QUANT_FP8_PAIRING_H_
#define MOE_ADAPTER_CORE_QUANT_FP8_PAIRING_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "moe_adapter/tensor.h"

namespace moe_adapter {

// The suffix DeepSeek-V3 checkpoints give a weight's block scale.
inline constexpr absl::string_view kFp8ScaleSuffix = "_scale_inv";

// IsFp8Scale(): `name` ends with the scale suffix (after a non-empty stem).
bool IsFp8Scale(absl::string_view name);

class Fp8Dequantizer {
 public:
  // `dtype`: what weights dequantise to (BF16, F16 or F32).
  explicit Fp8Dequantizer(DType dtype) : dtype_(dtype) {}

  // Add(): one input. Returns what is ready now, in order: the input itself
  // when it is neither FP8 nor a scale; the dequantised weight when this
  // input completed a pair; nothing while a half waits.
  absl::StatusOr<std::vector<NamedTensor>> Add(NamedTensor tensor);

  // Finish(): OK when no half is waiting.
  absl::Status Finish() const;

  // HeldBytes(): what this stage keeps: the halves waiting (weights by their
  // size) and the names of the non-FP8 tensors seen (a scale for one of them
  // arriving later is refused, not held forever).
  uint64_t HeldBytes() const { return held_bytes_; }
  // waiting(): halves waiting for their partner.
  size_t waiting() const { return weights_.size() + scales_.size(); }

 private:
  absl::StatusOr<NamedTensor> Dequantize(const NamedTensor& weight, const NamedTensor& scale) const;

  DType dtype_;
  std::map<std::string, NamedTensor, std::less<>> weights_;  // by weight name, waiting for a scale
  std::map<std::string, NamedTensor, std::less<>> scales_;   // by weight name, waiting for a weight
  // Non-FP8 weights seen: a scale for one of them arriving later is an error.
  std::map<std::string, DType, std::less<>> plain_;
  uint64_t held_bytes_ = 0;
};

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_QUANT_FP8_PAIRING_H_
