// Device selection and the sessions' batched device path. A fake accelerator
// (the ATen reference transposes behind the ExpertAccelerator interface)
// exercises the plumbing on machines without a GPU; the CUDA kernels
// themselves are checked against the CPU by cuda_kernels_check.
#include "core/accelerator.h"
#include "core/transpose.h"
#include "moe_adapter/device.h"
#include "tests/testutil/tensor_testutil.h"

namespace moe_adapter::testing {
namespace {

class FakeAccelerator final : public ExpertAccelerator {
 public:
  int to_hf_calls = 0, from_hf_calls = 0;
  absl::Status ToHf(const void* G, const void* D, int64_t n, int64_t H, int64_t I, DType src, DType dst,
                    void* const* gate, void* const* up, void* const* down) override {
    ++to_hf_calls;
    const size_t s = DTypeSize(src);
    for (int64_t e = 0; e < n; ++e) {
      if (G) {
        const uint8_t* g = static_cast<const uint8_t*>(G) + e * H * 2 * I * s;
        TransposeCastAten({g, src, 2 * I, gate[e], dst, H, H, I});
        TransposeCastAten({g + I * s, src, 2 * I, up[e], dst, H, H, I});
      }
      if (D) TransposeCastAten({static_cast<const uint8_t*>(D) + e * I * H * s, src, H, down[e], dst, I, I, H});
    }
    return absl::OkStatus();
  }
  absl::Status FromHf(const void* const* gate, const void* const* up, const void* const* down, int64_t n, int64_t H,
                      int64_t I, DType src, DType dst, void* G, void* D) override {
    ++from_hf_calls;
    const size_t s = DTypeSize(dst);
    for (int64_t e = 0; e < n; ++e) {
      if (G) {
        uint8_t* g = static_cast<uint8_t*>(G) + e * H * 2 * I * s;
        TransposeCastAten({gate[e], src, H, g, dst, 2 * I, I, H});
        TransposeCastAten({up[e], src, H, g + I * s, dst, 2 * I, I, H});
      }
      if (D) TransposeCastAten({down[e], src, I, static_cast<uint8_t*>(D) + e * I * H * s, dst, H, H, I});
    }
    return absl::OkStatus();
  }
};

TEST(Device, Parsing) {
  EXPECT_EQ(OpenDevice("cpu")->name, "cpu");
  EXPECT_EQ(OpenDevice("")->accelerator, nullptr);
  EXPECT_THAT(OpenDevice("tpu").status(), StatusIs(absl::StatusCode::kInvalidArgument, "cpu, cuda, cuda:N or auto"));
  EXPECT_THAT(OpenDevice("cuda:x").status(), StatusIs(absl::StatusCode::kInvalidArgument));
  absl::StatusOr<Device> a = OpenDevice("auto");
  ASSERT_TRUE(a.ok()) << a.status();  // a GPU, or the CPU when none is usable
  absl::StatusOr<Device> c = OpenDevice("cuda");
  if (!c.ok()) {
    EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition) << c.status();
    EXPECT_EQ(a->name, "cpu") << "auto falls back to the CPU when cuda is unusable";
  }
}

TEST(Device, SessionsUseOneBatchedCallPerGroupAndMatchTheCpu) {
  std::mt19937_64 rng(5);
  const int64_t E = 5, H = 12, I = 7;
  for (DType src : {DType::kF32, DType::kBF16, DType::kF16}) {
    for (DType dst : {DType::kF32, DType::kBF16, DType::kF16}) {
      ConvertOptions o = Geo(E, H, I);
      o.dtype = dst;
      auto fake = std::make_shared<FakeAccelerator>();
      Device dev{"fake", fake};
      TensorList native = {{"model.layers.0.mlp.experts.gate_and_up_projs", RandomTensor(src, {E, H, 2 * I}, rng)},
                           {"model.layers.0.mlp.experts.down_projs", RandomTensor(src, {E, I, H}, rng)}};
      auto cpu = RunToHf(o, native);
      auto conv = *ToHfConverter::Create(o, dev);
      TensorList on_dev;
      for (const auto& t : native) {
        ASSERT_TRUE(conv->Convert(t, [&](NamedTensor n) {
                          on_dev.push_back(std::move(n));
                          return absl::OkStatus();
                        }).ok());
      }
      ASSERT_TRUE(cpu.ok());
      EXPECT_EQ(fake->to_hf_calls, 2);
      EXPECT_EQ(Names(on_dev), Names(*cpu)) << "same emission order as the slab path";
      EXPECT_THAT(DiffAsMaps(on_dev, *cpu), ::testing::IsEmpty());

      // from_hf: inputs wait for their group, then one call per group.
      auto from = *FromHfConverter::Create(o, dev);
      TensorList grouped;
      auto sink = [&](NamedTensor n) {
        grouped.push_back(std::move(n));
        return absl::OkStatus();
      };
      for (const auto& t : *cpu) ASSERT_TRUE(from->Add(t, sink).ok());
      ASSERT_TRUE(from->Finish(sink).ok());
      EXPECT_EQ(fake->from_hf_calls, 2);
      EXPECT_EQ(from->HeldBytes(), 0u);
      auto cpu_back = RunFromHf(o, *cpu);
      ASSERT_TRUE(cpu_back.ok());
      EXPECT_THAT(DiffAsMaps(grouped, *cpu_back), ::testing::IsEmpty());
    }
  }
}

TEST(Device, GroupsMixingInputDtypesFallBackToTheCpu) {
  std::mt19937_64 rng(6);
  const int64_t E = 2, H = 4, I = 3;
  ConvertOptions o = Geo(E, H, I);
  o.dtype = DType::kF32;
  TensorList hf;
  for (int64_t e = 0; e < E; ++e) {
    const DType dt = e == 0 ? DType::kBF16 : DType::kF16;
    const std::string p = absl::StrCat("model.layers.0.mlp.experts.", e, ".");
    hf.push_back({p + "gate_proj.weight", RandomTensor(dt, {I, H}, rng)});
    hf.push_back({p + "up_proj.weight", RandomTensor(dt, {I, H}, rng)});
    hf.push_back({p + "down_proj.weight", RandomTensor(dt, {H, I}, rng)});
  }
  auto fake = std::make_shared<FakeAccelerator>();
  auto conv = *FromHfConverter::Create(o, Device{"fake", fake});
  TensorList out;
  for (const auto& t : hf) {
    ASSERT_TRUE(conv->Add(t, [&](NamedTensor n) {
                      out.push_back(std::move(n));
                      return absl::OkStatus();
                    }).ok());
  }
  EXPECT_EQ(fake->from_hf_calls, 0);
  auto cpu = RunFromHf(o, hf);
  ASSERT_TRUE(cpu.ok());
  EXPECT_THAT(DiffAsMaps(out, *cpu), ::testing::IsEmpty());
}

}  // namespace
}  // namespace moe_adapter::testing
