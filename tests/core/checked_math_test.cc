// Sizes computed from untrusted numbers (core/checked_math.h) at each place
// the core computes one, and the bookkeeping a session keeps (KeptBytes(),
// IdsList) that a server counts against a stream's budget.
#include "core/checked_math.h"

#include <chrono>
#include <cstdint>
#include <new>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/session_common.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "moe_adapter/converter.h"

namespace moe_adapter {
namespace {

using ::testing::HasSubstr;

constexpr int64_t k24 = int64_t{1} << 24;

ConvertOptions Geom(int64_t e, int64_t h, int64_t i) {
  ConvertOptions o;
  o.geometry.num_experts = e;
  o.geometry.hidden_size = h;
  o.geometry.moe_intermediate_size = i;
  return o;
}

TEST(CheckedMath, MulAndAddReportOverflow) {
  EXPECT_EQ(checked::Mul<uint64_t>({3, 5, 7}), 105u);
  EXPECT_EQ(checked::Mul<uint64_t>({3, 6148914691236517206u}), std::nullopt) << "3x wraps to 2";
  EXPECT_EQ(checked::Mul<int64_t>({k24, k24, 2 * k24, 4}), std::nullopt);
  EXPECT_EQ(checked::Mul<int64_t>({4, -1}), std::nullopt) << "sizes are never negative";
  EXPECT_EQ(checked::Add<uint64_t>({~uint64_t{0}, 1}), std::nullopt);
  EXPECT_EQ(checked::Add<uint64_t>({1, 2, 3}), 6u);
  EXPECT_EQ(checked::Add<uint64_t>(std::optional<uint64_t>(), 1), std::nullopt) << "an overflow stays one";
  EXPECT_EQ(checked::Mul<uint64_t>(std::optional<uint64_t>(2), 3), 6u);
}

// FromHF with E = H = I = 2^24 computed a group's hold size of 0.
TEST(CheckedMath, GeometryWhoseGroupedBytesOverflowIsRefused) {
  absl::Status s = ValidateOptions(Geom(k24, k24, k24));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("more bytes than int64 can count"));
  EXPECT_FALSE(FromHfConverter::Create(Geom(k24, k24, k24)).ok());
  EXPECT_TRUE(ValidateOptions(Geom(int64_t{1} << 20, int64_t{1} << 20, int64_t{1} << 19)).ok()) << "2^62 bytes fit";
  ConvertOptions layers = Geom(2, 4, 4);
  layers.geometry.num_hidden_layers = int64_t{1} << 62;
  EXPECT_THAT(ValidateOptions(layers).message(), HasSubstr("num_hidden_layers"));
}

TEST(CheckedMath, FromHfGroupHoldIsTheRealSize) {
  auto conv = *FromHfConverter::Create(Geom(int64_t{1} << 20, int64_t{1} << 20, int64_t{1} << 19));
  absl::StatusOr<TensorPlan> plan = conv->Plan(
      TensorInfo{"model.layers.0.mlp.experts.0.gate_proj.weight", DType::kBF16, {int64_t{1} << 19, int64_t{1} << 20}});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_GE(plan->hold_bytes, uint64_t{1} << 61) << "[E, H, 2I] of BF16";
}

// A per-expert LoRA A [r, H] fits int64, its group [E, H, r] does not: the
// session used to size that output with a wrapped product.
TEST(CheckedMath, FromHfLoraGroupOfHostileRankIsRefused) {
  auto conv = *FromHfConverter::Create(Geom(k24, 1, 1));
  absl::StatusOr<TensorPlan> plan =
      conv->Plan(TensorInfo{"model.layers.0.mlp.experts.0.gate_proj.lora_A.weight", DType::kBF16,
                            {int64_t{1} << 60, 1}});
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(plan.status().message(), HasSubstr("grouped LoRA output is too large"));
}

TEST(CheckedMath, TensorAllocateRefusesAnOverflowingShape) {
  EXPECT_THROW(Tensor::Allocate(DType::kF32, {k24, k24, k24, 4}), std::bad_alloc);
  EXPECT_THROW(Tensor::Allocate(DType::kF32, {int64_t{1} << 62}), std::bad_alloc) << "x4 bytes wraps";
  EXPECT_EQ(Tensor::Allocate(DType::kBF16, {3, 5}).nbytes(), 30u);
}

TEST(KeptBytes, GrowWithEveryKeyASessionKeeps) {
  auto to_hf = *ToHfConverter::Create(Geom(2, 4, 4));
  const size_t before = to_hf->KeptBytes();
  const std::string name(1000, 'n');
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<TensorPlan> plan = to_hf->Plan(TensorInfo{absl::StrCat(name, i), DType::kU8, {0}});
    ASSERT_TRUE(plan.ok()) << plan.status();
    ASSERT_TRUE(to_hf->ClaimPassThrough(*plan).ok());
  }
  EXPECT_GE(to_hf->KeptBytes() - before, 3 * 2 * 1000u) << "input and output registry";
  auto from_hf = *FromHfConverter::Create(Geom(2, 4, 4));
  ASSERT_TRUE(from_hf->Plan(TensorInfo{name, DType::kU8, {0}}).ok());
  EXPECT_GE(from_hf->KeptBytes(), 1000u);
}

TEST(IdsList, SameTextAsIdsText) {
  const std::vector<std::vector<int64_t>> cases = {
      {}, {3}, {0, 1, 2}, {0, 1, 2, 3, 4, 5, 6, 7, 8}, {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34},
      {5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 23}};
  for (const auto& ids : cases) {
    IdsList list;
    for (int64_t id : ids) list.Add(id);
    EXPECT_EQ(list.Text(), IdsText(ids));
  }
}

// The missing experts of 2^24 are counted, not listed: the message is short
// and building it is fast.
TEST(IdsList, MissingExpertsOfAHugeGroupAreCounted) {
  auto conv = *FromHfConverter::Create(Geom(k24, 1, 1));
  NamedTensor gate{"model.layers.0.mlp.experts.0.gate_proj.weight", Tensor::Allocate(DType::kBF16, {1, 1})};
  ASSERT_TRUE(conv->Add(gate, [](NamedTensor) { return absl::OkStatus(); }).ok());
  const auto t0 = std::chrono::steady_clock::now();
  absl::Status s = conv->Finish([](NamedTensor) { return absl::OkStatus(); });
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_THAT(s.message(), HasSubstr("Required experts: [0..16777215]"));
  EXPECT_THAT(s.message(), HasSubstr("(and 50331642 more)"));
  EXPECT_LT(s.message().size(), 1024u);
}

}  // namespace
}  // namespace moe_adapter
