// from_hf of a family with FP8 block-scaled checkpoints (DeepSeek-V3, spec
// families.md §1, contract §11): a stage in front of the from_hf session.
// Every F8_E4M3 `X` is paired with its scale `X_scale_inv` (in any order,
// core/quant/fp8_pairing.h), dequantised to the target dtype (the option's,
// else the config's, else BF16), and handed to the session as a plain `X`:
// attention, dense, shared and routed experts alike. Scales are consumed.
//
// Refused, naming the keys: a scale beside a weight that is not F8_E4M3 (the
// reference would multiply it anyway), a scale grid other than
// ceil(r/128) x ceil(c/128), an FP8 weight without a scale, a scale without
// its weight. Whatever the session holds is counted as before; this stage
// adds the halves waiting for their partner.
#ifndef MOE_ADAPTER_CORE_FP8_FROM_HF_H_
#define MOE_ADAPTER_CORE_FP8_FROM_HF_H_

#include <memory>

#include "core/model_family.h"
#include "moe_adapter/convert_options.h"
#include "moe_adapter/converter.h"

namespace moe_adapter {

// WithFp8Dequantization(): `session` behind the FP8 stage.
std::unique_ptr<FromHfConverter> WithFp8Dequantization(std::unique_ptr<FromHfConverter> session,
                                                       const ConvertOptions& options);

// Fp8DequantDType(): what FP8 weights dequantise to under `options`.
DType Fp8DequantDType(const ConvertOptions& options);

// CheckFp8ExportOption(): to_hf of an FP8 family with options.quantization is
// INVALID_ARGUMENT: the reference's quantization=True writes unscaled FP8
// casts and all-ones scales for a loader template, not a quantised
// checkpoint, and a real FP8 export is not offered (contract §11).
absl::Status CheckFp8ExportOption(const ConvertOptions& options, const ModelFamily& family);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_FP8_FROM_HF_H_
