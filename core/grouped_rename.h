// Sessions for model families whose HF checkpoint is already grouped
// (ModelFamilySpec::hf_grouped: GPT-OSS, Qwen3-VL-MoE; spec families.md §4,
// §5, §10, §11). Converting renames each `grouped` tensor of the family; no
// tensor is split, transposed or reordered (GPT-OSS's interleaved gate/up
// columns stay interleaved). On top of the rename, as for every family:
//   from_hf: expert stacks are validated against the geometry (an E+1 stack
//            is an error naming the key, E and the count), sliced on dim 0 to
//            the EP rank's experts, and cast by the common dtype rule
//            (--dtype, else the config's dtype, else kept); MXFP4
//            `X_blocks`/`X_scales` pairs (families with `mxfp4`) are decoded
//            in either arrival order, holding only the half that waits;
//            `*_scale_inv` keys are refused (no FP8 for these families).
//   to_hf:   local stacks [E_local, ...] are validated and renamed in input
//            order; `quantization` (the reference's placeholder tensors) is
//            refused.
// Keys keep the prefix they arrive with; everything else passes through.
// The public converters' Create() hands hf_grouped families to these.
#ifndef MOE_ADAPTER_CORE_GROUPED_RENAME_H_
#define MOE_ADAPTER_CORE_GROUPED_RENAME_H_

#include <memory>

#include "absl/status/statusor.h"
#include "core/model_family.h"
#include "moe_adapter/convert_options.h"
#include "moe_adapter/converter.h"

namespace moe_adapter {

// NewGroupedFromHf() / NewGroupedToHf(): `options` already passed
// ValidateOptions(); `family` is hf_grouped. kInvalidArgument for an option
// these families cannot honour (to_hf quantization).
absl::StatusOr<std::unique_ptr<FromHfConverter>> NewGroupedFromHf(const ConvertOptions& options,
                                                                  const ModelFamily& family);
absl::StatusOr<std::unique_ptr<ToHfConverter>> NewGroupedToHf(const ConvertOptions& options,
                                                              const ModelFamily& family);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_GROUPED_RENAME_H_
