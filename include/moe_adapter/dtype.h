// File: moe_adapter/dtype.h
//
// The element types a safetensors file may declare. Every one of them is carried
// through a conversion untouched (as raw bytes with its dtype string); only the
// expert weights (F32, BF16, F16) are ever transposed or cast.
//
// Example:
//   absl::StatusOr<moe_adapter::DType> dt = moe_adapter::ParseDType("BF16");
//   if (dt.ok()) size_t bytes = moe_adapter::DTypeSize(*dt) * numel;
#ifndef MOE_ADAPTER_DTYPE_H_
#define MOE_ADAPTER_DTYPE_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moe_adapter {

// DType: the safetensors element types. Names follow the safetensors format
// ("F32", "BF16", "F8_E4M3", ...). Sub-byte types (F4, F6) are not supported.
enum class DType : uint8_t {
  kBool,
  kU8,
  kI8,
  kF8E5M2,
  kF8E4M3,
  kF8E8M0,
  kI16,
  kU16,
  kF16,
  kBF16,
  kI32,
  kU32,
  kF32,
  kF64,
  kI64,
  kU64,
  kC64,
};

// ParseDType(): the dtype named by a safetensors dtype string. Unknown names
// give kInvalidArgument naming the string.
absl::StatusOr<DType> ParseDType(absl::string_view name);

// ParseTorchDType(): "bfloat16" | "float16" | "float32" (also "bf16", "fp16",
// "fp32", "half", "float", "torch.bfloat16", ...), as config.json and the CLI
// spell the target dtype of expert tensors. Only expert dtypes are accepted.
absl::StatusOr<DType> ParseTorchDType(absl::string_view name);

// DTypeName(): the safetensors string ("BF16").
absl::string_view DTypeName(DType dtype);

// TorchDTypeName(): "bfloat16", "float16", "float32" for the expert dtypes,
// the safetensors name otherwise.
absl::string_view TorchDTypeName(DType dtype);

// DTypeSize(): bytes per element.
size_t DTypeSize(DType dtype);

// IsExpertDType(): F32, BF16 or F16, the dtypes expert weights may have.
bool IsExpertDType(DType dtype);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_DTYPE_H_
