#include "absl/strings/str_cat.h"
#include "moe_adapter/aten.h"
#include "core/quote.h"

namespace moe_adapter {
namespace {

struct Pair {
  at::ScalarType at;
  DType dt;
};
constexpr Pair kPairs[] = {
    {at::kFloat, DType::kF32}, {at::kBFloat16, DType::kBF16}, {at::kHalf, DType::kF16},
    {at::kDouble, DType::kF64}, {at::kLong, DType::kI64},     {at::kInt, DType::kI32},
    {at::kShort, DType::kI16},  {at::kChar, DType::kI8},      {at::kByte, DType::kU8},
    {at::kBool, DType::kBool},
};

}  // namespace

absl::StatusOr<NamedTensor> FromAten(const std::string& name, const at::Tensor& tensor) {
  if (!tensor.device().is_cpu()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", Quote(name), " is not on the CPU"));
  }
  for (const Pair& p : kPairs) {
    if (p.at != tensor.scalar_type()) continue;
    at::Tensor c = tensor.contiguous();
    NamedTensor out;
    out.name = name;
    out.tensor.dtype = p.dt;
    out.tensor.shape.assign(c.sizes().begin(), c.sizes().end());
    auto* keep = new at::Tensor(c);
    out.tensor.data = Bytes::Wrap(c.data_ptr(), c.numel() * c.element_size(),
                                  std::shared_ptr<const void>(keep, [](const void* p) {
                                    delete static_cast<const at::Tensor*>(p);
                                  }));
    return out;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("tensor ", Quote(name), " has dtype ", c10::toString(tensor.scalar_type()), " with no safetensors name"));
}

absl::StatusOr<at::Tensor> ToAten(const Tensor& tensor) {
  for (const Pair& p : kPairs) {
    if (p.dt != tensor.dtype) continue;
    auto* keep = new Bytes(tensor.data);
    return at::from_blob(const_cast<uint8_t*>(keep->data()), tensor.shape,
                         [keep](void*) { delete keep; }, at::TensorOptions().dtype(p.at));
  }
  return absl::InvalidArgumentError(absl::StrCat("dtype ", DTypeName(tensor.dtype), " has no ATen equivalent"));
}

}  // namespace moe_adapter
