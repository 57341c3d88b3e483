// at::Tensor <-> moe_adapter::Tensor without copies (moe_adapter/aten.h), and a
// state dict held in libtorch converting exactly like one read from a file.
#include <ATen/ATen.h>

#include "moe_adapter/aten.h"
#include "tests/testutil/tensor_testutil.h"

namespace moe_adapter::testing {
namespace {

TEST(Aten, FromAtenSharesStorageAndKeepsItAlive) {
  NamedTensor n;
  const void* storage = nullptr;
  {
    at::Tensor t = at::arange(24, at::kFloat).reshape({2, 3, 4});
    storage = t.data_ptr();
    auto w = FromAten("x", t);
    ASSERT_TRUE(w.ok()) << w.status();
    n = *w;
  }  // the at::Tensor handle is gone; the wrapper keeps the storage
  EXPECT_EQ(n.tensor.data.data(), storage) << "no copy for a contiguous tensor";
  EXPECT_EQ(n.tensor.dtype, DType::kF32);
  EXPECT_EQ(n.tensor.shape, (Shape{2, 3, 4}));
  EXPECT_EQ(reinterpret_cast<const float*>(n.tensor.data.data())[23], 23.0f);
}

TEST(Aten, NonContiguousIsMadeContiguousAndRoundTrips) {
  at::Tensor t = at::arange(12, at::kBFloat16).reshape({3, 4}).t();
  auto w = FromAten("y", t);
  ASSERT_TRUE(w.ok());
  auto back = ToAten(w->tensor);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->equal(t));
  EXPECT_EQ(back->scalar_type(), at::kBFloat16);
}

TEST(Aten, UnsupportedDtypesAreErrors) {
  EXPECT_THAT(FromAten("c", at::zeros({2}, at::kComplexFloat)).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "\"c\""));
  Tensor u16 = Tensor::Allocate(DType::kU16, {2});
  EXPECT_THAT(ToAten(u16).status(), StatusIs(absl::StatusCode::kInvalidArgument, "U16"));
}

TEST(Aten, StateDictInLibtorchConvertsLikeTheGoldenFile) {
  // The reference's own inputs, rebuilt as at::Tensors, give its outputs.
  TensorList in = LoadFile(DataDir() + "/golden/worked_to_hf.in.safetensors");
  TensorList from_torch;
  for (const auto& t : in) {
    auto a = ToAten(t.tensor);
    ASSERT_TRUE(a.ok());
    auto n = FromAten(t.name, a->clone());
    ASSERT_TRUE(n.ok());
    from_torch.push_back(*n);
  }
  auto out = RunToHf(Geo(2, 4, 3), from_torch);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(DiffAsMaps(*out, LoadFile(DataDir() + "/golden/worked_to_hf.out.safetensors")), ::testing::IsEmpty());
}

}  // namespace
}  // namespace moe_adapter::testing
