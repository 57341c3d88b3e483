#include "core/family_renames.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/quote.h"
#include "core/transpose.h"

namespace moe_adapter {

absl::StatusOr<PassThroughOutput> PassThroughOutputFor(const ModelFamily& family, const TensorInfo& in, bool to_hf) {
  const ModelFamilySpec& spec = family.spec();
  PassThroughOutput out;
  out.key = in.name;
  for (const KeyRename& r : spec.renames) {
    const char* from = to_hf ? r.native : r.hf;
    if (absl::StrContains(in.name, from)) {
      out.key = absl::StrReplaceAll(in.name, {{from, to_hf ? r.hf : r.native}});
      break;
    }
  }
  const std::string& hf_key = to_hf ? out.key : in.name;
  for (const char* suffix : spec.fp32_params) {
    if (absl::EndsWith(hf_key, suffix)) out.upcast = true;
  }
  if (out.upcast && !IsExpertDType(in.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("key ", Quote(in.name), ": model family ", Quote(family.name()),
                                                   " keeps this tensor in F32, so it must be F32, BF16 or F16, got ",
                                                   DTypeName(in.dtype)));
  }
  return out;
}

NamedTensor RewritePassThrough(const PassThroughOutput& out, const Tensor& in) {
  if (!out.upcast || in.dtype == DType::kF32) return NamedTensor{out.key, in};
  Tensor t = Tensor::Allocate(DType::kF32, in.shape);
  const int64_t n = in.numel();
  // One row of n elements: its "transpose" is the same row, cast.
  if (n > 0) TransposeCast({in.data.data(), in.dtype, n, t.mutable_data(), DType::kF32, 1, 1, n});
  return NamedTensor{out.key, std::move(t)};
}

}  // namespace moe_adapter
