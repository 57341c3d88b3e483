#include "moe_adapter/dtype.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/quote.h"

namespace moe_adapter {
namespace {

struct DTypeRow {
  DType dtype;
  absl::string_view name;
  size_t size;
};

// The safetensors dtype table (safetensors/src/tensor.rs, Dtype enum).
constexpr DTypeRow kDTypes[] = {
    {DType::kBool, "BOOL", 1},      {DType::kU8, "U8", 1},
    {DType::kI8, "I8", 1},          {DType::kF8E5M2, "F8_E5M2", 1},
    {DType::kF8E4M3, "F8_E4M3", 1}, {DType::kF8E8M0, "F8_E8M0", 1},
    {DType::kI16, "I16", 2},        {DType::kU16, "U16", 2},
    {DType::kF16, "F16", 2},        {DType::kBF16, "BF16", 2},
    {DType::kI32, "I32", 4},        {DType::kU32, "U32", 4},
    {DType::kF32, "F32", 4},        {DType::kF64, "F64", 8},
    {DType::kI64, "I64", 8},        {DType::kU64, "U64", 8},
    {DType::kC64, "C64", 8},
};

const DTypeRow& Row(DType dtype) {
  for (const DTypeRow& row : kDTypes) {
    if (row.dtype == dtype) return row;
  }
  return kDTypes[0];  // unreachable: every enumerator has a row
}

}  // namespace

absl::StatusOr<DType> ParseDType(absl::string_view name) {
  for (const DTypeRow& row : kDTypes) {
    if (row.name == name) return row.dtype;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype ", Quote(name),
                   " (expected a safetensors dtype such as F32, BF16, F16, I64, U8, F8_E4M3)"));
}

absl::StatusOr<DType> ParseTorchDType(absl::string_view name) {
  std::string s = absl::AsciiStrToLower(name);
  absl::string_view v = s;
  absl::ConsumePrefix(&v, "torch.");
  if (v == "bfloat16" || v == "bf16") return DType::kBF16;
  if (v == "float16" || v == "fp16" || v == "half" || v == "f16") return DType::kF16;
  if (v == "float32" || v == "fp32" || v == "float" || v == "f32") return DType::kF32;
  return absl::InvalidArgumentError(absl::StrCat(
      "unsupported dtype ", Quote(name), ": expected bfloat16, float16 or float32"));
}

absl::string_view DTypeName(DType dtype) { return Row(dtype).name; }

absl::string_view TorchDTypeName(DType dtype) {
  switch (dtype) {
    case DType::kBF16:
      return "bfloat16";
    case DType::kF16:
      return "float16";
    case DType::kF32:
      return "float32";
    default:
      return Row(dtype).name;
  }
}

size_t DTypeSize(DType dtype) { return Row(dtype).size; }

bool IsExpertDType(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kBF16 || dtype == DType::kF16;
}

}  // namespace moe_adapter
