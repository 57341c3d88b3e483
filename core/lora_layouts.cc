#include "core/lora_layouts.h"

#include <array>

#include "absl/strings/str_cat.h"
#include "core/permute.h"
#include "core/safetensors_format.h"
#include "core/quote.h"

namespace moe_adapter {

using safetensors::Quote;
namespace {

int64_t DimValue(LoraDim d, const Geometry& g) {
  switch (d) {
    case LoraDim::kH: return g.hidden_size;
    case LoraDim::kI: return g.moe_intermediate_size;
    case LoraDim::k2I: return 2 * g.moe_intermediate_size;
  }
  return 0;
}

const char* DimName(LoraDim d) {
  switch (d) {
    case LoraDim::kH: return "H";
    case LoraDim::kI: return "I";
    case LoraDim::k2I: return "2I";
  }
  return "?";
}

constexpr PwRow kPwRows[] = {
    // PEFT <= 0.18 (the reference snapshot, spec §6.1): 3-D params read as [E, in, out].
    {LoraLayout::kPeftV018, KeyRole::kPwGateUpLoraA, KeyRole::kNativeLoraGateUpB, {0, 1, 2}, LoraDim::k2I, true},
    {LoraLayout::kPeftV018, KeyRole::kPwGateUpLoraB, KeyRole::kNativeLoraGateUpA, {1, 2, 0}, LoraDim::kH, false},
    {LoraLayout::kPeftV018, KeyRole::kPwDownLoraA, KeyRole::kNativeLoraDownB, {0, 1, 2}, LoraDim::kH, true},
    {LoraLayout::kPeftV018, KeyRole::kPwDownLoraB, KeyRole::kNativeLoraDownA, {1, 2, 0}, LoraDim::kI, false},
    // PEFT >= 0.19.1 (spec §13.1): in/out swapped for non-transposed params.
    {LoraLayout::kPeftV019, KeyRole::kPwGateUpLoraA, KeyRole::kNativeLoraGateUpA, {0, 2, 1}, LoraDim::kH, true},
    {LoraLayout::kPeftV019, KeyRole::kPwGateUpLoraB, KeyRole::kNativeLoraGateUpB, {2, 1, 0}, LoraDim::k2I, false},
    {LoraLayout::kPeftV019, KeyRole::kPwDownLoraA, KeyRole::kNativeLoraDownA, {0, 2, 1}, LoraDim::kI, true},
    {LoraLayout::kPeftV019, KeyRole::kPwDownLoraB, KeyRole::kNativeLoraDownB, {2, 1, 0}, LoraDim::kH, false},
};

const PwRow* FindByPw(absl::Span<const PwRow> rows, KeyRole pw, LoraLayout layout) {
  for (const PwRow& r : rows) {
    if (r.pw == pw && r.layout == layout) return &r;
  }
  return nullptr;
}

const PwRow* FindByNative(absl::Span<const PwRow> rows, KeyRole native, LoraLayout layout) {
  for (const PwRow& r : rows) {
    if (r.native == native && r.layout == layout) return &r;
  }
  return nullptr;
}

std::array<int, 3> Inverse(const std::array<int, 3>& p) {
  std::array<int, 3> inv{};
  for (int i = 0; i < 3; ++i) inv[p[i]] = i;
  return inv;
}

}  // namespace

absl::Span<const PwRow> PeftParamWrapperRows() { return kPwRows; }

bool IsParamWrapperRole(KeyRole role) {
  return role >= KeyRole::kPwGateUpLoraA && role <= KeyRole::kPwDownLoraB;
}
bool IsNativeLoraRole(KeyRole role) {
  return role >= KeyRole::kNativeLoraGateUpA && role <= KeyRole::kNativeLoraDownB;
}
bool IsPerExpertLoraRole(KeyRole role) {
  return role >= KeyRole::kHfLoraGateA && role <= KeyRole::kHfLoraDownB;
}

Shape NativeLoraShape(KeyRole role, const Geometry& g, int64_t r) {
  const int64_t E = g.num_experts, H = g.hidden_size, I = g.moe_intermediate_size;
  switch (role) {
    case KeyRole::kNativeLoraGateUpA: return {E, H, r};
    case KeyRole::kNativeLoraGateUpB: return {E, r, 2 * I};
    case KeyRole::kNativeLoraDownA: return {E, I, r};
    case KeyRole::kNativeLoraDownB: return {E, r, H};
    default: return {};
  }
}

Shape PerExpertLoraShape(KeyRole role, const Geometry& g, int64_t r) {
  const int64_t H = g.hidden_size, I = g.moe_intermediate_size;
  switch (role) {
    case KeyRole::kHfLoraGateA:
    case KeyRole::kHfLoraUpA: return {r, H};
    case KeyRole::kHfLoraGateB:
    case KeyRole::kHfLoraUpB: return {I, r};
    case KeyRole::kHfLoraDownA: return {r, I};
    case KeyRole::kHfLoraDownB: return {H, r};
    default: return {};
  }
}

KeyRole NativeRoleForParamWrapper(absl::Span<const PwRow> rows, KeyRole pw_role, LoraLayout layout) {
  const PwRow* row = FindByPw(rows, pw_role, layout);
  return row ? row->native : KeyRole::kOther;
}

KeyRole ParamWrapperRoleForNative(absl::Span<const PwRow> rows, KeyRole native_role, LoraLayout layout) {
  const PwRow* row = FindByNative(rows, native_role, layout);
  return row ? row->pw : KeyRole::kOther;
}

std::optional<int64_t> ParamWrapperFit(absl::Span<const PwRow> rows, KeyRole pw_role, LoraLayout layout,
                                       const Shape& shape, const Geometry& g) {
  const PwRow* row = FindByPw(rows, pw_role, layout);
  if (!row || shape.size() != 2) return std::nullopt;
  const int64_t E = g.num_experts;
  const int64_t rank_side = row->rank_on_rows ? shape[0] : shape[1];
  const int64_t fixed_side = row->rank_on_rows ? shape[1] : shape[0];
  if (fixed_side != DimValue(row->fixed, g)) return std::nullopt;
  if (rank_side <= 0 || rank_side % E != 0) return std::nullopt;
  return rank_side / E;
}

ShapeFit FitParamWrapperShape(absl::Span<const PwRow> rows, KeyRole pw_role, const Shape& shape, const Geometry& g) {
  return {ParamWrapperFit(rows, pw_role, LoraLayout::kPeftV019, shape, g),
          ParamWrapperFit(rows, pw_role, LoraLayout::kPeftV018, shape, g)};
}

std::string ParamWrapperExpectation(absl::Span<const PwRow> rows, KeyRole pw_role, LoraLayout layout,
                                    const Geometry& g) {
  const PwRow* row = FindByPw(rows, pw_role, layout);
  if (!row) return "(not a ParamWrapper tensor)";
  const std::string fixed = absl::StrCat(DimName(row->fixed), "=", DimValue(row->fixed, g));
  const std::string rank = absl::StrCat("r*E (a multiple of E=", g.num_experts, ")");
  return row->rank_on_rows ? absl::StrCat("[", rank, ", ", fixed, "]")
                           : absl::StrCat("[", fixed, ", ", rank, "]");
}

absl::StatusOr<Tensor> ParamWrapperToNative(absl::Span<const PwRow> rows, absl::string_view key, KeyRole pw_role,
                                            LoraLayout layout, const Tensor& hf,
                                            const Geometry& g) {
  const PwRow* row = FindByPw(rows, pw_role, layout);
  std::optional<int64_t> r = ParamWrapperFit(rows, pw_role, layout, hf.shape, g);
  if (!row || !r) {
    return absl::InvalidArgumentError(absl::StrCat(
        "key ", Quote(key), ": ParamWrapper LoRA tensor has shape ", ShapeString(hf.shape),
        ", expected ", ParamWrapperExpectation(rows, pw_role, layout, g), " for layout ",
        LoraLayoutName(layout)));
  }
  const int64_t E = g.num_experts;
  const int64_t D = DimValue(row->fixed, g);
  const std::array<int64_t, 3> hf3 =
      row->rank_on_rows ? std::array<int64_t, 3>{E, *r, D} : std::array<int64_t, 3>{D, *r, E};
  Shape native_shape = NativeLoraShape(row->native, g, *r);
  Tensor out = Tensor::Allocate(hf.dtype, native_shape);
  Permute3(hf.data.data(), DTypeSize(hf.dtype), hf3, Inverse(row->perm), out.mutable_data());
  return out;
}

Tensor NativeToParamWrapper(absl::Span<const PwRow> rows, KeyRole native_role, LoraLayout layout,
                            const Tensor& native, const Geometry& g) {
  const PwRow* row = FindByNative(rows, native_role, layout);
  const std::array<int64_t, 3> nat = {native.shape[0], native.shape[1], native.shape[2]};
  const std::array<int64_t, 3> hf3 = {nat[row->perm[0]], nat[row->perm[1]], nat[row->perm[2]]};
  Shape hf_shape = row->rank_on_rows ? Shape{hf3[0] * hf3[1], hf3[2]} : Shape{hf3[0], hf3[1] * hf3[2]};
  (void)g;
  Tensor out = Tensor::Allocate(native.dtype, hf_shape);
  Permute3(native.data.data(), DTypeSize(native.dtype), nat, row->perm, out.mutable_data());
  return out;
}

}  // namespace moe_adapter
