// Properties over random geometries: both round trips are identities for base
// weights and LoRA in all three layouts, expert-parallel shards reassemble to
// the whole, arrival order does not matter, and from_hf holds only the
// incomplete groups.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "tests/testutil/tensor_testutil.h"

namespace moe_adapter::testing {
namespace {

constexpr DType kExpertDTypes[] = {DType::kF32, DType::kBF16, DType::kF16};
// Pass-through tensors may have any dtype, including ones libtorch lacks.
constexpr DType kOtherDTypes[] = {DType::kU16, DType::kF8E4M3, DType::kI64, DType::kBool, DType::kF64, DType::kU8};

struct Geometry3 {
  int64_t E, H, I, r;
};

Geometry3 RandomGeometry(std::mt19937_64& rng) {
  auto pick = [&](int lo, int hi) { return static_cast<int64_t>(lo + rng() % (hi - lo + 1)); };
  return {pick(1, 9), pick(1, 13), pick(1, 11), pick(1, 5)};
}

TensorList RandomNative(const Geometry3& g, int layers, bool lora, std::mt19937_64& rng) {
  TensorList t;
  const DType dt = kExpertDTypes[rng() % 3];
  t.push_back({"model.embed_tokens.weight", RandomTensor(kOtherDTypes[rng() % 6], {3, g.H}, rng)});
  for (int l = 0; l < layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".mlp.");
    t.push_back({p + "gate.weight", RandomTensor(dt, {g.E, g.H}, rng)});
    t.push_back({p + "experts.gate_and_up_projs", RandomTensor(dt, {g.E, g.H, 2 * g.I}, rng)});
    t.push_back({p + "experts.down_projs", RandomTensor(dt, {g.E, g.I, g.H}, rng)});
    if (lora) {
      const DType ldt = kExpertDTypes[rng() % 3];
      const std::string q = "base_model.model." + p + "experts.";
      t.push_back({q + "lora_gate_and_up_A", RandomTensor(ldt, {g.E, g.H, g.r}, rng)});
      t.push_back({q + "lora_gate_and_up_B", RandomTensor(ldt, {g.E, g.r, 2 * g.I}, rng)});
      t.push_back({q + "lora_down_A", RandomTensor(ldt, {g.E, g.I, g.r}, rng)});
      t.push_back({q + "lora_down_B", RandomTensor(ldt, {g.E, g.r, g.H}, rng)});
    }
  }
  t.push_back({"lm_head.weight", RandomTensor(dt, {2, g.H}, rng)});
  return t;
}

TensorList RandomHf(const Geometry3& g, int layers, std::mt19937_64& rng) {
  TensorList t;
  const DType dt = kExpertDTypes[rng() % 3];
  t.push_back({"model.norm.weight", RandomTensor(kOtherDTypes[rng() % 6], {g.H}, rng)});
  for (int l = 0; l < layers; ++l) {
    for (int64_t e = 0; e < g.E; ++e) {
      const std::string p = absl::StrCat("model.layers.", l, ".mlp.experts.", e, ".");
      t.push_back({p + "gate_proj.weight", RandomTensor(dt, {g.I, g.H}, rng)});
      t.push_back({p + "up_proj.weight", RandomTensor(dt, {g.I, g.H}, rng)});
      t.push_back({p + "down_proj.weight", RandomTensor(dt, {g.H, g.I}, rng)});
    }
  }
  return t;
}

class Property : public ::testing::TestWithParam<int> {};

TEST_P(Property, NativeToHfToNativeIsIdentityInEveryLayout) {
  std::mt19937_64 rng(GetParam());
  const Geometry3 g = RandomGeometry(rng);
  TensorList native = RandomNative(g, 2, /*lora=*/true, rng);
  for (LoraLayout layout : {LoraLayout::kPeftV019, LoraLayout::kPeftV018, LoraLayout::kPerExpert}) {
    ConvertOptions o = Geo(g.E, g.H, g.I);
    o.lora_layout = layout;
    auto hf = RunToHf(o, native);
    ASSERT_TRUE(hf.ok()) << hf.status();
    std::shuffle(hf->begin(), hf->end(), rng);
    auto back = RunFromHf(o, *hf);
    ASSERT_TRUE(back.ok()) << LoraLayoutName(layout) << " E=" << g.E << " H=" << g.H << " I=" << g.I
                           << " r=" << g.r << ": " << back.status();
    EXPECT_THAT(DiffAsMaps(*back, native), ::testing::IsEmpty()) << LoraLayoutName(layout);
  }
}

TEST_P(Property, HfToNativeToHfIsIdentityInAnyOrder) {
  std::mt19937_64 rng(1000 + GetParam());
  const Geometry3 g = RandomGeometry(rng);
  TensorList hf = RandomHf(g, 2, rng);
  std::shuffle(hf.begin(), hf.end(), rng);
  ConvertOptions o = Geo(g.E, g.H, g.I);
  auto native = RunFromHf(o, hf);
  ASSERT_TRUE(native.ok()) << native.status();
  auto back = RunToHf(o, *native);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_THAT(DiffAsMaps(*back, hf), ::testing::IsEmpty());
}

TEST_P(Property, ExpertParallelShardsReassembleToTheWhole) {
  std::mt19937_64 rng(2000 + GetParam());
  const Geometry3 g = RandomGeometry(rng);
  const int64_t W = 1 + rng() % 4;  // E < W happens: empty ranges must work
  TensorList hf = RandomHf(g, 1, rng);
  ConvertOptions whole = Geo(g.E, g.H, g.I);
  auto full = RunFromHf(whole, hf);
  ASSERT_TRUE(full.ok()) << full.status();
  auto full_hf = RunToHf(whole, *full);
  ASSERT_TRUE(full_hf.ok());

  std::map<std::string, std::string> concat;  // grouped key -> bytes of the local stacks in rank order
  TensorList union_hf;
  for (int64_t k = 0; k < W; ++k) {
    ConvertOptions o = whole;
    o.ep_size = W;
    o.ep_rank = k;
    auto local = RunFromHf(o, hf);
    ASSERT_TRUE(local.ok()) << "rank " << k << "/" << W << " E=" << g.E << ": " << local.status();
    for (const auto& t : *local) {
      if (absl::EndsWith(t.name, "_projs")) {
        concat[t.name].append(reinterpret_cast<const char*>(t.tensor.data.data()), t.tensor.nbytes());
      }
    }
    // to_hf of the local stacks yields this rank's experts under global ids.
    auto part = RunToHf(o, *local);
    ASSERT_TRUE(part.ok()) << part.status();
    for (auto& t : *part) {
      if (absl::StrContains(t.name, ".experts.")) union_hf.push_back(std::move(t));
    }
  }
  for (const auto& t : *full) {
    if (!absl::EndsWith(t.name, "_projs")) continue;
    ASSERT_EQ(concat[t.name].size(), t.tensor.nbytes()) << t.name;
    EXPECT_EQ(0, std::memcmp(concat[t.name].data(), t.tensor.data.data(), t.tensor.nbytes())) << t.name;
  }
  TensorList full_experts;
  for (const auto& t : *full_hf) {
    if (absl::StrContains(t.name, ".experts.")) full_experts.push_back(t);
  }
  EXPECT_THAT(DiffAsMaps(union_hf, full_experts), ::testing::IsEmpty());
}

TEST_P(Property, FromHfHoldsOnlyIncompleteGroups) {
  std::mt19937_64 rng(3000 + GetParam());
  const Geometry3 g = RandomGeometry(rng);
  const int layers = 3;
  TensorList hf = RandomHf(g, layers, rng);  // layer by layer
  ConvertOptions o = Geo(g.E, g.H, g.I);
  o.dtype = DType::kF32;
  size_t peak = 0;
  auto out = RunFromHf(o, hf, &peak);
  ASSERT_TRUE(out.ok());
  const size_t one_layer = static_cast<size_t>(g.E * g.H * 3 * g.I) * 4;
  EXPECT_LE(peak, one_layer) << "more than one layer held";
  EXPECT_GT(peak, 0u);
  // And each grouped tensor is emitted before the next layer's tensors arrive.
  auto conv = *FromHfConverter::Create(o);
  int emitted = 0;
  for (const auto& t : hf) {
    ASSERT_TRUE(conv->Add(t, [&](NamedTensor n) {
                      emitted += absl::EndsWith(n.name, "_projs");
                      return absl::OkStatus();
                    }).ok());
  }
  EXPECT_EQ(emitted, 2 * layers) << "every group completes while streaming, before Finish()";
  EXPECT_EQ(conv->HeldBytes(), 0u);
}

TEST_P(Property, CastOnFromHfEqualsCastOfTheStack) {
  std::mt19937_64 rng(4000 + GetParam());
  const Geometry3 g = RandomGeometry(rng);
  TensorList hf = RandomHf(g, 1, rng);
  for (DType target : kExpertDTypes) {
    ConvertOptions o = Geo(g.E, g.H, g.I);
    o.dtype = target;
    SetTransposeImplForTest(false);
    auto fast = RunFromHf(o, hf);
    SetTransposeImplForTest(true);
    auto ref = RunFromHf(o, hf);
    SetTransposeImplForTest(false);
    ASSERT_TRUE(fast.ok() && ref.ok());
    EXPECT_THAT(DiffAsMaps(*fast, *ref), ::testing::IsEmpty()) << DTypeName(target);
    for (const auto& t : *fast) {
      if (absl::EndsWith(t.name, "_projs")) EXPECT_EQ(t.tensor.dtype, target);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, Property, ::testing::Range(0, 40));

}  // namespace
}  // namespace moe_adapter::testing
