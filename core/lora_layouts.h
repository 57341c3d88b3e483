// Expert LoRA layouts (spec §6, §13.1, §15.3). The native grouped LoRA tensors
//   A_gu [E, H, r]   B_gu [E, r, 2I]   A_dn [E, I, r]   B_dn [E, r, H]
// map to PEFT's ParamWrapper tensors (2-D, A rows expert-major e*r+k, B columns
// rank-major k*E+e) by pure permutations, which differ between PEFT <= 0.18
// and >= 0.19.1. Each (layout, ParamWrapper key) is one row of a table.
#ifndef MOE_ADAPTER_CORE_LORA_LAYOUTS_H_
#define MOE_ADAPTER_CORE_LORA_LAYOUTS_H_

#include <array>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/key_mapping.h"
#include "moe_adapter/convert_options.h"
#include "moe_adapter/tensor.h"

namespace moe_adapter {

// LoraDim: which geometry dim a ParamWrapper tensor's non-rank side has.
enum class LoraDim { kH, kI, k2I };

// PwRow: one ParamWrapper tensor of one layout. The HF 2-D tensor viewed as
// 3-D is native.permute(perm): [E, r, D] when the rank sits on the rows
// (lora_A, row e*r+k), [D, r, E] when it sits on the columns (lora_B, column
// k*E+e). A family that offers ParamWrapper LoRA points at a table of these.
struct PwRow {
  LoraLayout layout;
  KeyRole pw;
  KeyRole native;
  std::array<int, 3> perm;
  LoraDim fixed;
  bool rank_on_rows;
};

// PeftParamWrapperRows(): PEFT's own tables, both layouts (spec §6.1, §13.1),
// for experts held as gate_up_proj [E, ., 2I] / down_proj parameters.
absl::Span<const PwRow> PeftParamWrapperRows();

// IsParamWrapperRole(), IsNativeLoraRole(), IsPerExpertLoraRole().
bool IsParamWrapperRole(KeyRole role);
bool IsNativeLoraRole(KeyRole role);
bool IsPerExpertLoraRole(KeyRole role);

// NativeLoraShape(): the expected native shape of `role` for rank r.
Shape NativeLoraShape(KeyRole role, const Geometry& g, int64_t r);

// ParamWrapperFit(): the rank r when `shape` is what `layout` writes for
// `pw_role` under geometry `g`; nullopt when it is not.
std::optional<int64_t> ParamWrapperFit(absl::Span<const PwRow> rows, KeyRole pw_role, LoraLayout layout, const Shape& shape,
                                       const Geometry& g);

// ShapeFit: which ParamWrapper layouts one tensor's shape fits, with the
// rank each would read (nullopt: that layout does not fit). The one place a
// layout is told by shape (spec §15.3): from_hf and inspect both ask it.
struct ShapeFit {
  std::optional<int64_t> v19, v18;
};
ShapeFit FitParamWrapperShape(absl::Span<const PwRow> rows, KeyRole pw_role, const Shape& shape, const Geometry& g);

// ParamWrapperExpectation(): "[r*E, H]" style text for error messages.
std::string ParamWrapperExpectation(absl::Span<const PwRow> rows, KeyRole pw_role, LoraLayout layout, const Geometry& g);

// NativeRoleForParamWrapper(): which native tensor a ParamWrapper key holds.
KeyRole NativeRoleForParamWrapper(absl::Span<const PwRow> rows, KeyRole pw_role, LoraLayout layout);
// ParamWrapperRoleForNative(): the inverse.
KeyRole ParamWrapperRoleForNative(absl::Span<const PwRow> rows, KeyRole native_role, LoraLayout layout);

// ParamWrapperToNative(): the native tensor of one ParamWrapper tensor. The
// shape must fit (ParamWrapperFit); errors name the key and both shapes.
absl::StatusOr<Tensor> ParamWrapperToNative(absl::Span<const PwRow> rows, absl::string_view key, KeyRole pw_role,
                                            LoraLayout layout, const Tensor& hf,
                                            const Geometry& g);

// NativeToParamWrapper(): the ParamWrapper tensor of one native LoRA tensor
// whose shape was validated (NativeLoraShape).
Tensor NativeToParamWrapper(absl::Span<const PwRow> rows, KeyRole native_role, LoraLayout layout, const Tensor& native,
                            const Geometry& g);

// PerExpertLoraShape(): expected shape of a per-expert LoRA tensor.
Shape PerExpertLoraShape(KeyRole role, const Geometry& g, int64_t r);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_LORA_LAYOUTS_H_
