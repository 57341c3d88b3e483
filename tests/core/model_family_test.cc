// A model family is one spec of data (core/model_family.h): a test-only
// family, Qwen3's tables renamed to Mixtral-style "block_sparse_moe" keys
// with its own config field names, is registered from data alone and
// converts both ways bit-exactly through the public converters. Also: the
// registry's lookups, and what it refuses.
#include "absl/strings/str_cat.h"
#include "core/family_registry.h"
#include "tests/testutil/tensor_testutil.h"

namespace moe_adapter::testing {
namespace {

using ::absl::StatusCode;

constexpr int64_t E = 4, H = 8, I = 6, R = 2;

// The whole family: keys, config fields, PEFT names; its role pairs are
// Qwen3's (w1 = gate, w3 = up, w2 = down). No ParamWrapper LoRA (rows left
// empty), so per-expert LoRA is its default.
ModelFamilySpec BlockSparseSpec() {
  ModelFamilySpec f;
  f.name = "test_block_sparse";
  f.model_types = {"test_block_sparse"};
  f.architectures = {"TestBlockSparseForCausalLM"};
  const std::string p = "{prefix}layers.{layer}.block_sparse_moe.experts.";
  static const std::vector<std::string> templ = {
      p + "gate_and_up_projs", p + "down_projs",          p + "lora_gate_and_up_A", p + "lora_gate_and_up_B",
      p + "lora_down_A",       p + "lora_down_B",         p + "{expert}.w1.weight", p + "{expert}.w3.weight",
      p + "{expert}.w2.weight", p + "{expert}.w1.lora_A.weight", p + "{expert}.w1.lora_B.weight",
      p + "{expert}.w3.lora_A.weight", p + "{expert}.w3.lora_B.weight", p + "{expert}.w2.lora_A.weight",
      p + "{expert}.w2.lora_B.weight"};
  const KeyRole roles[] = {KeyRole::kNativeGateUp,      KeyRole::kNativeDown,       KeyRole::kNativeLoraGateUpA,
                           KeyRole::kNativeLoraGateUpB, KeyRole::kNativeLoraDownA,  KeyRole::kNativeLoraDownB,
                           KeyRole::kHfGate,            KeyRole::kHfUp,             KeyRole::kHfDown,
                           KeyRole::kHfLoraGateA,       KeyRole::kHfLoraGateB,      KeyRole::kHfLoraUpA,
                           KeyRole::kHfLoraUpB,         KeyRole::kHfLoraDownA,      KeyRole::kHfLoraDownB};
  for (size_t i = 0; i < templ.size(); ++i) f.keys.push_back({roles[i], templ[i].c_str()});
  f.pairs = DefaultFamily().spec().pairs;
  f.config = {{"n_routed_experts"}, {"hidden_size"}, {"expert_width"}, nullptr, DenseLayerRule::kFirstKDense};
  f.peft = {{}, {"w1", "w3", "w2"}};
  f.default_lora_layout = LoraLayout::kPerExpert;
  return f;
}

class ModelFamilyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::Status s = RegisterModelFamily(BlockSparseSpec());
    ASSERT_TRUE(s.ok() || s.code() == StatusCode::kAlreadyExists) << s;
  }

  // One layer of per-expert base weights and LoRA, in Qwen3's names and in
  // the test family's: the same tensors (shared bytes) under both.
  void MakeInputs() {
    std::mt19937_64 rng{11};
    for (int64_t e = 0; e < E; ++e) {
      const std::string q = absl::StrCat("model.layers.1.mlp.experts.", e, ".");
      const std::string b = absl::StrCat("model.layers.1.block_sparse_moe.experts.", e, ".");
      const Tensor lora_a = RandomTensor(DType::kF32, {R, H}, rng);
      const std::pair<const char*, Tensor> parts[] = {
          {"gate_proj", RandomTensor(DType::kBF16, {I, H}, rng)}, {"up_proj", RandomTensor(DType::kBF16, {I, H}, rng)},
          {"down_proj", RandomTensor(DType::kBF16, {H, I}, rng)}};
      const char* renamed[] = {"w1", "w3", "w2"};
      for (int k = 0; k < 3; ++k) {
        qwen_.push_back({absl::StrCat(q, parts[k].first, ".weight"), parts[k].second});
        block_.push_back({absl::StrCat(b, renamed[k], ".weight"), parts[k].second});
        const Tensor a = k < 2 ? lora_a : RandomTensor(DType::kF32, {R, I}, rng);
        const Tensor bt = RandomTensor(DType::kF32, {k < 2 ? I : H, R}, rng);
        qwen_lora_.push_back({absl::StrCat(q, parts[k].first, ".lora_A.weight"), a});
        qwen_lora_.push_back({absl::StrCat(q, parts[k].first, ".lora_B.weight"), bt});
        block_lora_.push_back({absl::StrCat(b, renamed[k], ".lora_A.weight"), a});
        block_lora_.push_back({absl::StrCat(b, renamed[k], ".lora_B.weight"), bt});
      }
    }
    qwen_.push_back({"model.norm.weight", RandomTensor(DType::kBF16, {H}, rng)});
    block_.push_back(qwen_.back());
  }

  // Renamed(): Qwen3's grouped outputs under the test family's names.
  static TensorList Renamed(TensorList list) {
    for (NamedTensor& t : list) {
      const size_t at = t.name.find(".mlp.experts.");
      if (at != std::string::npos) t.name.replace(at, 13, ".block_sparse_moe.experts.");
    }
    return list;
  }

  // ExpectSameAsQwen(): `block` regroups to what Qwen3 makes of `qwen`
  // (renamed), and splits back to `block` itself.
  void ExpectSameAsQwen(const TensorList& qwen, const TensorList& block, TensorList* grouped_out = nullptr) {
    absl::StatusOr<TensorList> want = RunFromHf(Options(""), qwen);
    ASSERT_TRUE(want.ok()) << want.status();
    absl::StatusOr<TensorList> grouped = RunFromHf(Options("test_block_sparse"), block);
    ASSERT_TRUE(grouped.ok()) << grouped.status();
    EXPECT_THAT(DiffAsMaps(*grouped, Renamed(*want)), ::testing::IsEmpty());
    absl::StatusOr<TensorList> back = RunToHf(Options("test_block_sparse"), *grouped);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_THAT(DiffAsMaps(*back, block), ::testing::IsEmpty());
    if (grouped_out) *grouped_out = *grouped;
  }

  ConvertOptions Options(const std::string& family) {
    ConvertOptions o = Geo(E, H, I);
    o.family = family;
    return o;
  }

  TensorList qwen_, block_, qwen_lora_, block_lora_;
};

TEST_F(ModelFamilyTest, ASecondFamilyFromDataConvertsBothWaysBitExactly) {
  MakeInputs();
  TensorList grouped;
  ExpectSameAsQwen(qwen_, block_, &grouped);
  // Recognisable values, independent of Qwen3's run: G[e][h][I + i] is up_e[i][h].
  for (const NamedTensor& t : grouped) {
    if (t.name != "model.layers.1.block_sparse_moe.experts.gate_and_up_projs") continue;
    const auto* g = reinterpret_cast<const uint16_t*>(t.tensor.data.data());
    const auto* up = reinterpret_cast<const uint16_t*>(block_[3 * 2 + 1].tensor.data.data());  // expert 2, w3
    EXPECT_EQ(g[(2 * H + 5) * 2 * I + I + 3], up[3 * H + 5]);
  }
  // Output order is the table's: w1 (gate) then w3 (up) per expert.
  absl::StatusOr<TensorList> back = RunToHf(Options("test_block_sparse"), grouped);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->at(0).name, "model.layers.1.block_sparse_moe.experts.0.w1.weight");
  EXPECT_EQ(back->at(1).name, "model.layers.1.block_sparse_moe.experts.0.w3.weight");
}

// No lora_layout given: to_hf writes the family's default (per-expert).
TEST_F(ModelFamilyTest, ASecondFamilysLoraRegroupsAndSplitsBitExactly) {
  MakeInputs();
  ExpectSameAsQwen(qwen_lora_, block_lora_);
}

TEST_F(ModelFamilyTest, AMissingExpertIsNamedInTheFamilysKeys) {
  MakeInputs();
  block_.erase(block_.begin() + 4);  // expert 1's w3
  EXPECT_THAT(RunFromHf(Options("test_block_sparse"), block_).status(),
              StatusIs(StatusCode::kInvalidArgument, "model.layers.1.block_sparse_moe.experts.1.w3.weight"));
}

TEST_F(ModelFamilyTest, ConfigJsonIsReadThroughTheFamilysFieldNames) {
  const std::string config = R"({"model_type": "test_block_sparse", "n_routed_experts": 4, "hidden_size": 8,
                                 "expert_width": 6, "num_hidden_layers": 2, "first_k_dense_replace": 1})";
  absl::StatusOr<Geometry> g = ParseHfConfig(config);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->config_family, "test_block_sparse");
  EXPECT_EQ(g->num_experts, 4);
  EXPECT_EQ(g->moe_intermediate_size, 6);
  EXPECT_FALSE(g->IsMoeLayer(0));
  EXPECT_TRUE(g->IsMoeLayer(1));
  // The family the config named converts; no ConvertOptions::family needed.
  MakeInputs();
  ConvertOptions o;
  o.geometry = *g;
  absl::StatusOr<TensorList> grouped = RunFromHf(o, block_);
  ASSERT_TRUE(grouped.ok()) << grouped.status();
  EXPECT_EQ(grouped->size(), 3u);
  // Found by architectures too; the family's own field names are required.
  EXPECT_EQ(ParseHfConfig(R"({"architectures": ["TestBlockSparseForCausalLM"], "n_routed_experts": 4,
                              "hidden_size": 8, "expert_width": 6})")->config_family, "test_block_sparse");
  EXPECT_THAT(ParseHfConfig(R"({"model_type": "test_block_sparse", "num_experts": 4, "hidden_size": 8,
                                "expert_width": 6})").status(),
              StatusIs(StatusCode::kInvalidArgument, "missing required field \"n_routed_experts\""));
  EXPECT_THAT(ParseHfConfig(R"({"model_type": "test_block_sparse", "n_routed_experts": 4, "hidden_size": 8,
                                "expert_width": 6, "num_hidden_layers": 2, "first_k_dense_replace": 3})").status(),
              StatusIs(StatusCode::kInvalidArgument, "first_k_dense_replace\" 3 exceeds num_hidden_layers 2"));
}

TEST_F(ModelFamilyTest, QwenConfigsKeepTheirFamilyAndUnknownModelTypesFallBackToIt) {
  const std::string fields = R"("num_experts": 4, "hidden_size": 8, "moe_intermediate_size": 6)";
  for (const std::string& config :
       {"{" + fields + "}", R"({"model_type": "mixtral", )" + fields + "}",
        R"({"model_type": "qwen3_moe", )" + fields + "}",
        R"({"model_type": "qwen3_vl_moe", "text_config": {"architectures": ["Qwen3MoeForCausalLM"], )" + fields + "}}"}) {
    absl::StatusOr<Geometry> g = ParseHfConfig(config);
    ASSERT_TRUE(g.ok()) << config << ": " << g.status();
    EXPECT_EQ(g->config_family, "qwen3_moe") << config;
    EXPECT_EQ(g->num_experts, 4);
  }
  // Asking for a family reads the config through its table.
  EXPECT_THAT(ParseHfConfig("{" + fields + "}", "test_block_sparse").status(),
              StatusIs(StatusCode::kInvalidArgument, "n_routed_experts"));
  EXPECT_THAT(ParseHfConfig("{" + fields + "}", "nope").status(),
              StatusIs(StatusCode::kInvalidArgument, "unknown model family \"nope\""));
}

TEST_F(ModelFamilyTest, AnUnknownFamilyNameIsRefusedListingTheKnownOnes) {
  absl::Status s = ValidateOptions(Options("qwen3-moe"));
  EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument, "unknown model family \"qwen3-moe\""));
  EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument, "known families are qwen3_moe, "));
  EXPECT_THAT(s, StatusIs(StatusCode::kInvalidArgument, "test_block_sparse"));
  EXPECT_THAT(ToHfConverter::Create(Options("qwen3-moe")).status(), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(FromHfConverter::Create(Options("qwen3-moe")).status(), StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(ModelFamilyTest, AParamWrapperLayoutIsRefusedForAFamilyWithoutOne) {
  ConvertOptions o = Options("test_block_sparse");
  o.lora_layout = LoraLayout::kPeftV019;
  EXPECT_THAT(ValidateOptions(o), StatusIs(StatusCode::kInvalidArgument, "offers no ParamWrapper LoRA"));
}

TEST_F(ModelFamilyTest, WhatTheConvertersCannotDoYetIsRefusedNotIgnored) {
  auto with = [](auto change) {
    ModelFamilySpec f = BlockSparseSpec();
    f.name = "test_refused";
    change(f);
    return RegisterModelFamily(std::move(f));
  };
  EXPECT_THAT(with([](ModelFamilySpec& f) { f.pairs[1].order = GateUpOrder::kInterleaved; }),
              StatusIs(StatusCode::kUnimplemented, "interleaved blocks"));
  EXPECT_THAT(with([](ModelFamilySpec& f) { f.pairs[2].transpose = false; }),
              StatusIs(StatusCode::kUnimplemented, "untransposed"));
  EXPECT_THAT(with([](ModelFamilySpec& f) { f.hf_grouped = true; }),
              StatusIs(StatusCode::kUnimplemented, "already-grouped HF layout"));
  EXPECT_THAT(with([](ModelFamilySpec& f) { f.renames = {{".mlp.shared_expert.", ".mlp.shared_experts."}}; }),
              StatusIs(StatusCode::kUnimplemented, "renaming"));
  EXPECT_THAT(with([](ModelFamilySpec& f) { f.fp32_params = {"linear_attn.A_log"}; }),
              StatusIs(StatusCode::kUnimplemented, "fp32-forced"));
  EXPECT_THAT(with([](ModelFamilySpec& f) { f.pairs.erase(f.pairs.begin() + 1); }),
              StatusIs(StatusCode::kInvalidArgument, "up_proj"));
  EXPECT_THAT(with([](ModelFamilySpec& f) { f.pairs[0].block = 2; }), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(FindFamily("test_refused").status(), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(RegisterModelFamily(BlockSparseSpec()), StatusIs(StatusCode::kAlreadyExists));
}

}  // namespace
}  // namespace moe_adapter::testing
