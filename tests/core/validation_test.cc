// One test per rule of spec §15.2 / §15.3 / §15.4 / §15.5: each bad input is
// an error value naming the key and what was expected versus found, and
// nothing malformed is passed through.
#include "absl/strings/str_cat.h"
#include "tests/testutil/tensor_testutil.h"

namespace moe_adapter::testing {
namespace {

using ::absl::StatusCode;

constexpr int64_t E = 4, H = 8, I = 6;

class Validation : public ::testing::Test {
 protected:
  std::mt19937_64 rng{7};
  NamedTensor T(const std::string& name, Shape shape, DType dt = DType::kF32) {
    return {name, RandomTensor(dt, std::move(shape), rng)};
  }
  TensorList PerExpert(int layer = 0, DType up_dtype = DType::kF32) {
    TensorList t;
    for (int64_t e = 0; e < E; ++e) {
      const std::string p = absl::StrCat("model.layers.", layer, ".mlp.experts.", e, ".");
      t.push_back(T(p + "gate_proj.weight", {I, H}));
      t.push_back(T(p + "up_proj.weight", {I, H}, up_dtype));
      t.push_back(T(p + "down_proj.weight", {H, I}));
    }
    return t;
  }
  TensorList PerExpertLora(int64_t r = 2) {
    TensorList t;
    for (int64_t e = 0; e < E; ++e) {
      const std::string p = absl::StrCat("model.layers.0.mlp.experts.", e, ".");
      NamedTensor a = T(p + "gate_proj.lora_A.weight", {r, H});
      t.push_back(a);
      t.push_back({p + "up_proj.lora_A.weight", a.tensor});
      t.push_back(T(p + "gate_proj.lora_B.weight", {I, r}));
      t.push_back(T(p + "up_proj.lora_B.weight", {I, r}));
      t.push_back(T(p + "down_proj.lora_A.weight", {r, I}));
      t.push_back(T(p + "down_proj.lora_B.weight", {H, r}));
    }
    return t;
  }
  ConvertOptions o = Geo(E, H, I);
};

// --- to_hf: grouped tensors ----------------------------------------------------

TEST_F(Validation, GroupedGateUpWrongExpertCount) {
  auto r = RunToHf(o, {T("model.layers.0.mlp.experts.gate_and_up_projs", {E - 1, H, 2 * I})});
  EXPECT_THAT(r.status(), StatusIs(StatusCode::kInvalidArgument, "[4, 8, 12], got [3, 8, 12]"));
}

TEST_F(Validation, GroupedGateUpWrongWidthIsNotSplitSilently) {
  auto r = RunToHf(o, {T("model.layers.0.mlp.experts.gate_and_up_projs", {E, H, 2 * I + 2})});
  EXPECT_THAT(r.status(), StatusIs(StatusCode::kInvalidArgument, "gate_and_up_projs\": grouped"));
}

TEST_F(Validation, GroupedDownWrongShapeIsNotPassedThrough) {
  auto r = RunToHf(o, {T("model.layers.0.mlp.experts.down_projs", {E, H, I})});
  EXPECT_THAT(r.status(), StatusIs(StatusCode::kInvalidArgument, "must have shape [4, 6, 8], got [4, 8, 6]"));
  auto flat = RunToHf(o, {T("model.layers.0.mlp.experts.down_projs", {E * I, H})});
  EXPECT_THAT(flat.status(), StatusIs(StatusCode::kInvalidArgument, "got [24, 8]"));
}

TEST_F(Validation, GroupedExpertDTypeMustBeFloat) {
  auto r = RunToHf(o, {T("model.layers.0.mlp.experts.down_projs", {E, I, H}, DType::kI32)});
  EXPECT_THAT(r.status(), StatusIs(StatusCode::kInvalidArgument, "F32, BF16 or F16, got I32"));
}

TEST_F(Validation, GroupedLocalCountFollowsEpRange) {
  o.ep_size = 3;
  o.ep_rank = 1;  // E=4, W=3: rank 1 owns [2, 3)
  auto r = RunToHf(o, {T("model.layers.0.mlp.experts.down_projs", {2, I, H})});
  EXPECT_THAT(r.status(), StatusIs(StatusCode::kInvalidArgument, "experts 2:3 of rank 1/3"));
  auto ok = RunToHf(o, {T("model.layers.0.mlp.experts.down_projs", {1, I, H})});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_THAT(Names(*ok), ::testing::ElementsAre("model.layers.0.mlp.experts.2.down_proj.weight"));
}

TEST_F(Validation, NonCanonicalLayerNumberIsAnError) {
  auto r = RunToHf(o, {T("model.layers.01.mlp.experts.down_projs", {E, I, H})});
  EXPECT_THAT(r.status(), StatusIs(StatusCode::kInvalidArgument, "not a canonical decimal"));
}

TEST_F(Validation, DuplicateInputKey) {
  NamedTensor t = T("model.norm.weight", {H});
  EXPECT_THAT(RunToHf(o, {t, t}).status(), StatusIs(StatusCode::kInvalidArgument, "appears twice"));
  EXPECT_THAT(RunFromHf(o, {t, t}).status(), StatusIs(StatusCode::kInvalidArgument, "appears twice"));
}

TEST_F(Validation, OutputKeyCollisionIsAnError) {
  // A pass-through key equal to one a grouped tensor produces.
  auto r = RunToHf(o, {T("model.layers.0.mlp.experts.0.down_proj.weight", {H, I}),
                       T("model.layers.0.mlp.experts.down_projs", {E, I, H})});
  EXPECT_THAT(r.status(), StatusIs(StatusCode::kInvalidArgument, "written twice"));
}

TEST_F(Validation, ClaimedPassThroughKeysCollideToo) {
  // A server forwards pass-through bytes itself and only claims the key.
  auto conv = *ToHfConverter::Create(o);
  const NamedTensor hf_key = T("model.layers.0.mlp.experts.0.down_proj.weight", {H, I});
  absl::StatusOr<TensorPlan> plan = conv->Plan(hf_key.info());
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->kind, TensorPlan::Kind::kPassThrough);
  ASSERT_TRUE(conv->ClaimPassThrough(*plan).ok());
  auto ignore = [](NamedTensor) { return absl::OkStatus(); };
  EXPECT_THAT(conv->Convert(T("model.layers.0.mlp.experts.down_projs", {E, I, H}), ignore),
              StatusIs(StatusCode::kInvalidArgument, "written twice"));

  auto grouped = *ToHfConverter::Create(o);
  absl::StatusOr<TensorPlan> slabs = grouped->Plan(T("model.layers.0.mlp.experts.down_projs", {E, I, H}).info());
  ASSERT_TRUE(slabs.ok());
  EXPECT_EQ(grouped->ClaimPassThrough(*slabs).code(), StatusCode::kInternal) << "only pass-through plans";

  auto from = *FromHfConverter::Create(o);
  const NamedTensor norm = T("model.norm.weight", {H});
  absl::StatusOr<TensorPlan> p1 = from->Plan(norm.info());
  ASSERT_TRUE(p1.ok());
  EXPECT_TRUE(from->ClaimPassThrough(*p1).ok());
  EXPECT_THAT(from->ClaimPassThrough(*p1), StatusIs(StatusCode::kInvalidArgument, "written twice"));
}

// --- from_hf: per-expert tensors ------------------------------------------------

TEST_F(Validation, PerExpertWrongShape) {
  TensorList in = PerExpert();
  in[4] = T(in[4].name, {I, H + 1});  // expert 1 up_proj
  EXPECT_THAT(RunFromHf(o, in).status(),
              StatusIs(StatusCode::kInvalidArgument, "experts.1.up_proj.weight\": per-expert up_proj [I, H] must have shape [6, 8], got [6, 9]"));
  TensorList d = PerExpert();
  d[2] = T(d[2].name, {I, H});  // down_proj transposed
  EXPECT_THAT(RunFromHf(o, d).status(), StatusIs(StatusCode::kInvalidArgument, "down_proj [H, I] must have shape [8, 6]"));
}

TEST_F(Validation, GateAndUpOfOneExpertShareADtype) {
  o.dtype = DType::kF32;  // even with a target dtype
  EXPECT_THAT(RunFromHf(o, PerExpert(0, DType::kBF16)).status(),
              StatusIs(StatusCode::kInvalidArgument, "different dtypes"));
}

TEST_F(Validation, MixedDtypesInAGroupNeedATarget) {
  TensorList in = PerExpert();
  for (auto& t : in) {
    if (absl::StrContains(t.name, "experts.3.")) t = T(t.name, t.tensor.shape, DType::kBF16);
  }
  EXPECT_THAT(RunFromHf(o, in).status(), StatusIs(StatusCode::kInvalidArgument, "--dtype"));
  o.dtype = DType::kBF16;
  EXPECT_TRUE(RunFromHf(o, in).ok());
}

TEST_F(Validation, ExpertIdOutOfRange) {
  TensorList in = PerExpert();
  in.push_back(T("model.layers.0.mlp.experts.4.gate_proj.weight", {I, H}));
  EXPECT_THAT(RunFromHf(o, in).status(), StatusIs(StatusCode::kInvalidArgument, "expert id 4 is out of range"));
}

TEST_F(Validation, ExpertIdsUniquePerLayerAndProjection) {
  TensorList in = PerExpert();
  in.push_back(T("model.layers.0.mlp.experts.01.gate_proj.weight", {I, H}));
  EXPECT_THAT(RunFromHf(o, in).status(), StatusIs(StatusCode::kInvalidArgument, "canonical"));
}

TEST_F(Validation, MissingExpertNamesCountLayersAndKeys) {
  TensorList in = PerExpert();
  in.erase(in.begin() + 7);  // expert 2 up_proj
  EXPECT_THAT(RunFromHf(o, in).status(),
              StatusIs(StatusCode::kInvalidArgument,
                       "1/12 required weights not found. Layers with experts: [0], Required experts: [0, 1, 2, 3]. "
                       "First few missing keys: [model.layers.0.mlp.experts.2.up_proj.weight]"));
}

TEST_F(Validation, MissingLocalExpertUnderEpNamesRank) {
  o.ep_size = 2;
  o.ep_rank = 1;
  TensorList in = PerExpert();
  in.erase(in.begin() + 11);  // expert 3 down_proj, owned by rank 1
  EXPECT_THAT(RunFromHf(o, in).status(), StatusIs(StatusCode::kInvalidArgument, "(rank 1): 1/6 required"));
  o.ep_rank = 0;  // rank 0 does not need expert 3
  EXPECT_TRUE(RunFromHf(o, in).ok());
}

TEST_F(Validation, ConfigRequiresEveryMoeLayer) {
  o.geometry.num_hidden_layers = 3;
  o.geometry.mlp_only_layers = {1};
  EXPECT_THAT(RunFromHf(o, PerExpert(0)).status(),
              StatusIs(StatusCode::kInvalidArgument, "no expert weights in the input: layers [2]"));
  TensorList both = PerExpert(0);
  for (auto& t : PerExpert(2)) both.push_back(t);
  EXPECT_TRUE(RunFromHf(o, both).ok());
  // to_hf: the same rule for grouped tensors.
  EXPECT_THAT(RunToHf(o, {T("model.layers.0.mlp.experts.down_projs", {E, I, H})}).status(),
              StatusIs(StatusCode::kInvalidArgument, "missing"));
}

TEST_F(Validation, PartialCheckpointLeavesCoverageToTheCaller) {
  o.geometry.num_hidden_layers = 3;
  o.geometry.mlp_only_layers = {1};
  o.partial_checkpoint = true;  // one of several streams: layer 2 is on another
  EXPECT_TRUE(RunFromHf(o, PerExpert(0)).ok());
  std::vector<std::string> keys;
  for (const auto& t : PerExpert(0)) keys.push_back(t.name);
  EXPECT_THAT(CheckMoeLayerCoverage(o, keys, /*native_keys=*/false),
              StatusIs(StatusCode::kInvalidArgument, "layers [2]"));
  for (const auto& t : PerExpert(2)) keys.push_back(t.name);
  EXPECT_TRUE(CheckMoeLayerCoverage(o, keys, false).ok());
  EXPECT_THAT(CheckMoeLayerCoverage(o, {"model.layers.2.mlp.experts.gate_and_up_projs"}, /*native_keys=*/true),
              StatusIs(StatusCode::kInvalidArgument, "layers [0]"));
}

TEST_F(Validation, ExpertKeysInADenseLayerAreAnError) {
  o.geometry.num_hidden_layers = 3;
  o.geometry.mlp_only_layers = {1};
  EXPECT_THAT(RunFromHf(o, PerExpert(1)).status(), StatusIs(StatusCode::kInvalidArgument, "not an MoE layer"));
}

TEST_F(Validation, Fp8ScalesAreRejected) {
  TensorList in = PerExpert();
  in.push_back(T("model.layers.0.mlp.experts.0.gate_proj.weight_scale_inv", {1, 1}));
  EXPECT_THAT(RunFromHf(o, in).status(), StatusIs(StatusCode::kUnimplemented, "FP8 checkpoints are not supported yet"));
}

TEST_F(Validation, EmptyEpRangeWarnsAndSucceeds) {
  o.geometry.num_experts = 2;
  o.ep_size = 4;
  o.ep_rank = 3;
  auto conv = *FromHfConverter::Create(o);
  EXPECT_THAT(conv->Warnings(), ::testing::ElementsAre(::testing::HasSubstr("owns no experts")));
}

// --- LoRA ---------------------------------------------------------------------------

TEST_F(Validation, NativeLoraMustHaveAllExpertsAndMatchingDims) {
  EXPECT_THAT(RunToHf(o, {T("p.layers.0.mlp.experts.lora_gate_and_up_A", {E - 1, H, 2})}).status(),
              StatusIs(StatusCode::kInvalidArgument, "never expert-parallel split"));
  EXPECT_THAT(RunToHf(o, {T("p.layers.0.mlp.experts.lora_gate_and_up_B", {E, 2, 2 * I + 1})}).status(),
              StatusIs(StatusCode::kInvalidArgument, "must have shape [4, 2, 12], got [4, 2, 13]"));
  EXPECT_THAT(RunToHf(o, {T("p.layers.0.mlp.experts.lora_down_A", {E, H, 2})}).status(),
              StatusIs(StatusCode::kInvalidArgument, "must have shape [4, 6, 2]"));
}

TEST_F(Validation, ParamWrapperRankNotDivisibleByE) {
  o.lora_layout = LoraLayout::kPeftV019;
  EXPECT_THAT(RunFromHf(o, {T("m.layers.0.mlp.experts.lora_A.weight", {2 * E + 1, I})}).status(),
              StatusIs(StatusCode::kInvalidArgument, "expected [r*E (a multiple of E=4), I=6]"));
}

TEST_F(Validation, ParamWrapperWrongFixedDim) {
  EXPECT_THAT(RunFromHf(o, {T("m.layers.0.mlp.experts.lora_B.weight", {H + 1, 2 * E})}).status(),
              StatusIs(StatusCode::kInvalidArgument, "(peft-v0.19) or"));
}

TEST_F(Validation, ParamWrapperUnderPerExpertOptionIsAnError) {
  o.lora_layout = LoraLayout::kPerExpert;
  EXPECT_THAT(RunFromHf(o, {T("m.layers.0.mlp.experts.lora_B.weight", {H, 2 * E})}).status(),
              StatusIs(StatusCode::kInvalidArgument, "per-expert"));
}

TEST_F(Validation, AmbiguousParamWrapperLayoutAsks) {
  o.geometry.hidden_size = 2 * I;  // H == 2I: gate_up shapes coincide
  auto r = RunFromHf(o, {T("m.layers.0.mlp.experts.base_layer.lora_A.weight", {2 * E, 2 * I}),
                         T("m.layers.0.mlp.experts.base_layer.lora_B.weight", {2 * I, 2 * E})});
  EXPECT_THAT(r.status(), StatusIs(StatusCode::kFailedPrecondition, "--lora-layout"));
}

TEST_F(Validation, MixedParamWrapperLayoutsAreAnError) {
  // lora_A [r*E, I] fits only v0.19, lora_B [I, r*E] only v0.18.
  auto r = RunFromHf(o, {T("m.layers.0.mlp.experts.lora_A.weight", {2 * E, I}),
                         T("m.layers.0.mlp.experts.lora_B.weight", {I, 2 * E})});
  EXPECT_THAT(r.status(), StatusIs(StatusCode::kInvalidArgument, "mixes layouts"));
}

TEST_F(Validation, PerExpertLoraWrongShape) {
  TensorList in = PerExpertLora();
  in[5] = T(in[5].name, {H, 3});  // expert 0 down lora_B with rank 3
  EXPECT_THAT(RunFromHf(o, in).status(), StatusIs(StatusCode::kInvalidArgument, "rank 3 differs"));
  TensorList bad = PerExpertLora();
  bad[2] = T(bad[2].name, {I + 1, 2});
  EXPECT_THAT(RunFromHf(o, bad).status(), StatusIs(StatusCode::kInvalidArgument, "must have shape [6, 2], got [7, 2]"));
}

TEST_F(Validation, PerExpertGateAndUpLoraAMustBeEqual) {
  TensorList in = PerExpertLora();
  in[1] = T(in[1].name, {2, H});  // expert 0 up_proj.lora_A, different values
  EXPECT_THAT(RunFromHf(o, in).status(), StatusIs(StatusCode::kInvalidArgument, "differ"));
}

TEST_F(Validation, PerExpertLoraGroupsMustBeComplete) {
  TensorList in = PerExpertLora();
  in.erase(in.begin() + 6 * 3 + 4);  // expert 3 down_proj.lora_A
  EXPECT_THAT(RunFromHf(o, in).status(),
              StatusIs(StatusCode::kInvalidArgument, "down_proj.lora_A has 3 of E=4 experts, missing ids [3]"));
  TensorList no_up;
  for (const auto& t : PerExpertLora()) {
    if (!absl::StrContains(t.name, "up_proj.lora_B")) no_up.push_back(t);
  }
  EXPECT_THAT(RunFromHf(o, no_up).status(), StatusIs(StatusCode::kInvalidArgument, "up_proj.lora_B has 0 of E=4"));
  EXPECT_TRUE(RunFromHf(o, PerExpertLora()).ok());
}

// --- options ------------------------------------------------------------------------

TEST_F(Validation, OptionsAreValidatedUpFront) {
  ConvertOptions bad = o;
  bad.ep_rank = 2;
  bad.ep_size = 2;
  EXPECT_THAT(ToHfConverter::Create(bad).status(), StatusIs(StatusCode::kInvalidArgument, "ep_rank must be in [0, ep_size=2)"));
  bad = o;
  bad.ep_size = 0;
  EXPECT_THAT(FromHfConverter::Create(bad).status(), StatusIs(StatusCode::kInvalidArgument, "ep_size"));
  bad = o;
  bad.exclude_key_regex = "(unbalanced";
  EXPECT_THAT(ToHfConverter::Create(bad).status(), StatusIs(StatusCode::kInvalidArgument, "does not compile"));
  bad = o;
  bad.exclude_key_regex = "(?=lookahead)";
  EXPECT_THAT(ToHfConverter::Create(bad).status(), StatusIs(StatusCode::kInvalidArgument, "RE2"));
  bad = o;
  bad.geometry.hidden_size = 0;
  EXPECT_THAT(ToHfConverter::Create(bad).status(), StatusIs(StatusCode::kInvalidArgument, "hidden_size"));
  bad = o;
  bad.dtype = DType::kI8;
  EXPECT_THAT(ToHfConverter::Create(bad).status(), StatusIs(StatusCode::kInvalidArgument, "dtype"));
  bad = o;
  bad.adapter_config_json = "[1]";
  EXPECT_THAT(FromHfConverter::Create(bad).status(), StatusIs(StatusCode::kInvalidArgument, "adapter_config"));
  EXPECT_THAT(ParseLoraLayout("peft-v9").status(), StatusIs(StatusCode::kInvalidArgument, "peft-v0.19"));
  EXPECT_THAT(ParseTorchDType("float8").status(), StatusIs(StatusCode::kInvalidArgument, "bfloat16"));
}

TEST_F(Validation, ConfigErrorsNameTheField) {
  EXPECT_THAT(ParseHfConfig("{").status(), StatusIs(StatusCode::kInvalidArgument, "not valid JSON"));
  EXPECT_THAT(ParseHfConfig(R"({"hidden_size": 8, "moe_intermediate_size": 4})").status(),
              StatusIs(StatusCode::kInvalidArgument, "num_experts"));
  EXPECT_THAT(ParseHfConfig(R"({"num_experts": 4, "hidden_size": "8", "moe_intermediate_size": 4})").status(),
              StatusIs(StatusCode::kInvalidArgument, "hidden_size"));
  auto g = ParseHfConfig(R"({"num_experts": 4, "hidden_size": 8, "moe_intermediate_size": 4, "torch_dtype": "bfloat16"})");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->config_dtype, DType::kBF16);
}

TEST_F(Validation, ExcludeRegexIsStartAnchoredOnOutputKeys) {
  o.exclude_key_regex = R"(mlp\.experts\.1\.)";  // not at the start: matches nothing
  auto none = RunToHf(o, {T("model.layers.0.mlp.experts.down_projs", {E, I, H})});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->size(), 4u);
  o.exclude_key_regex = R"(model\.layers\.0\.mlp\.experts\.1\.)";
  auto one = RunToHf(o, {T("model.layers.0.mlp.experts.down_projs", {E, I, H})});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->size(), 3u);
}

}  // namespace
}  // namespace moe_adapter::testing
