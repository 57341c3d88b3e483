// The three "mixin" families (spec families.md §1-§3, §7, contract §11):
// GLM-4.5, DeepSeek-V3 with FP8 dequantisation, Qwen3-Next. One test per
// difference from Qwen3-MoE and per contract rule; the golden cases
// (acceptance.golden_families_*) cover the reference's outputs.
#include <cmath>
#include <cstring>
#include <fstream>

#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "core/family_registry.h"
#include "moe_adapter/checkpoint_convert.h"
#include "moe_adapter/inspect.h"
#include "core/safetensors_writer.h"
#include "tests/testutil/tensor_testutil.h"

namespace moe_adapter::testing {
namespace {

using ::absl::StatusCode;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t E = 2, H = 8, I = 4;

std::mt19937_64& Rng() {
  static std::mt19937_64 rng{13};
  return rng;
}

NamedTensor T(const std::string& name, Shape shape, DType dt = DType::kF32) {
  return {name, RandomTensor(dt, std::move(shape), Rng())};
}

// Every expert tensor of `layer` for geometry (E, h, i), under `prefix`.
TensorList PerExpert(const std::string& prefix, int layer, int64_t h = H, int64_t i = I, DType dt = DType::kF32) {
  TensorList t;
  for (int64_t e = 0; e < E; ++e) {
    const std::string p = absl::StrCat(prefix, "layers.", layer, ".mlp.experts.", e, ".");
    t.push_back(T(p + "gate_proj.weight", {i, h}, dt));
    t.push_back(T(p + "up_proj.weight", {i, h}, dt));
    t.push_back(T(p + "down_proj.weight", {h, i}, dt));
  }
  return t;
}

ConvertOptions FromConfig(const std::string& config) {
  ConvertOptions o;
  absl::StatusOr<Geometry> g = ParseHfConfig(config);
  EXPECT_TRUE(g.ok()) << g.status();
  if (g.ok()) o.geometry = *g;
  return o;
}

const Tensor* Find(const TensorList& l, const std::string& name) {
  for (const NamedTensor& t : l) {
    if (t.name == name) return &t.tensor;
  }
  return nullptr;
}

std::string Glm(int layers = 3, int dense = 1, const std::string& extra = "") {
  return absl::StrCat(R"({"model_type": "glm4_moe", "n_routed_experts": 2, "hidden_size": 8, )",
                      R"("moe_intermediate_size": 4, "intermediate_size": 12, "num_hidden_layers": )", layers,
                      R"(, "first_k_dense_replace": )", dense, extra, "}");
}

std::string DeepSeek(const std::string& extra = "") {
  return absl::StrCat(R"({"architectures": ["DeepseekV3ForCausalLM"], "n_routed_experts": 2, "hidden_size": 8, )",
                      R"("moe_intermediate_size": 4, "num_hidden_layers": 2, "first_k_dense_replace": 0)", extra, "}");
}

std::string Next(const std::string& extra = "") {
  return absl::StrCat(R"({"model_type": "qwen3_next", "num_experts": 2, "hidden_size": 8, )",
                      R"("moe_intermediate_size": 4, "num_hidden_layers": 4, "decoder_sparse_step": 1, )",
                      R"("mlp_only_layers": [1])", extra, "}");
}

// ---- selection and config fields ---------------------------------------------

TEST(MixinFamilies, SelectedByConfigOrByName) {
  EXPECT_EQ(FromConfig(Glm()).geometry.config_family, "glm4_moe");
  EXPECT_EQ(FromConfig(DeepSeek()).geometry.config_family, "deepseek_v3");  // by architectures
  EXPECT_EQ(FromConfig(Next()).geometry.config_family, "qwen3_next");
  // n_routed_experts is E only for the families that name it.
  EXPECT_THAT(ParseHfConfig(Glm(), "qwen3_moe").status(), StatusIs(StatusCode::kInvalidArgument, "\"num_experts\""));
  absl::StatusOr<Geometry> g = ParseHfConfig(Glm(), "deepseek_v3");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->num_experts, 2);
  EXPECT_EQ(g->config_family, "deepseek_v3");
  EXPECT_THAT(ParseHfConfig(Glm(), "mixtral").status(), StatusIs(StatusCode::kInvalidArgument, "known families"));
  EXPECT_THAT(FamilyNames(), ::testing::IsSupersetOf({"qwen3_moe", "glm4_moe", "deepseek_v3", "qwen3_next"}));
}

TEST(MixinFamilies, FirstKDenseReplaceMakesLeadingLayersDense) {
  ConvertOptions o = FromConfig(Glm(3, 1));
  EXPECT_THAT(RunFromHf(o, PerExpert("model.", 0)).status(),
              StatusIs(StatusCode::kInvalidArgument, "layer 0 is not an MoE layer"));
  TensorList both = PerExpert("model.", 1);
  for (auto& t : PerExpert("model.", 2)) both.push_back(t);
  EXPECT_TRUE(RunFromHf(o, both).ok());
  // Every later layer is MoE and required.
  EXPECT_THAT(RunFromHf(o, PerExpert("model.", 1)).status(), StatusIs(StatusCode::kInvalidArgument, "[2]"));
}

TEST(MixinFamilies, QwenNextUsesQwen3DenseRule) {
  ConvertOptions o = FromConfig(Next());
  EXPECT_THAT(RunFromHf(o, PerExpert("model.", 1)).status(),
              StatusIs(StatusCode::kInvalidArgument, "layer 1 is not an MoE layer"));
}

// ---- GLM-4.5 / DeepSeek-V3 MTP layer ------------------------------------------

TEST(MixinFamilies, MtpLayerAfterTheLastIsGroupedButNotRequired) {
  // GLM-4.5 ships model.layers.{num_hidden_layers} even with num_nextn_predict_layers 0.
  ConvertOptions o = FromConfig(Glm(3, 1, R"(, "num_nextn_predict_layers": 0)"));
  TensorList in = PerExpert("model.", 1);
  for (auto& t : PerExpert("model.", 2)) in.push_back(t);
  for (auto& t : PerExpert("model.", 3)) in.push_back(t);
  in.push_back(T("model.layers.3.eh_proj.weight", {H, 2 * H}));
  auto out = RunFromHf(o, in);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_NE(Find(*out, "model.layers.3.mlp.experts.gate_and_up_projs"), nullptr);
  EXPECT_NE(Find(*out, "model.layers.3.eh_proj.weight"), nullptr);
  // One layer past the MTP layer is not a layer of this model.
  TensorList beyond = in;
  for (auto& t : PerExpert("model.", 4)) beyond.push_back(t);
  EXPECT_THAT(RunFromHf(o, beyond).status(), StatusIs(StatusCode::kInvalidArgument, "layer 4 is not an MoE layer"));
  // to_hf does not require the MTP layer's experts.
  auto back = RunToHf(o, {T("model.layers.1.mlp.experts.gate_and_up_projs", {E, H, 2 * I}),
                          T("model.layers.1.mlp.experts.down_projs", {E, I, H}),
                          T("model.layers.2.mlp.experts.gate_and_up_projs", {E, H, 2 * I}),
                          T("model.layers.2.mlp.experts.down_projs", {E, I, H})});
  EXPECT_TRUE(back.ok()) << back.status();
  // DeepSeek-V3 with two MTP layers.
  ConvertOptions d = FromConfig(DeepSeek(R"(, "num_nextn_predict_layers": 2)"));
  EXPECT_EQ(d.geometry.mtp_layers, 2);
  TensorList ds = PerExpert("model.", 0);
  for (int l : {1, 2, 3}) {
    for (auto& t : PerExpert("model.", l)) ds.push_back(t);
  }
  EXPECT_TRUE(RunFromHf(d, ds).ok());
}

// ---- no prefix state -------------------------------------------------------------

TEST(MixinFamilies, EachKeyKeepsItsOwnPrefix) {
  // The reference decides one prefix from the first (GLM) or last (DeepSeek)
  // expert key; here every key keeps the prefix it arrives with.
  for (const char* family : {"glm4_moe", "deepseek_v3", "qwen3_next"}) {
    ConvertOptions o = Geo(E, H, I);
    o.family = family;
    TensorList in = PerExpert("model.", 0);
    for (auto& t : PerExpert("", 1)) in.push_back(t);
    auto out = RunFromHf(o, in);
    ASSERT_TRUE(out.ok()) << family << ": " << out.status();
    EXPECT_THAT(Names(*out), ::testing::UnorderedElementsAre("model.layers.0.mlp.experts.gate_and_up_projs",
                                                             "model.layers.0.mlp.experts.down_projs",
                                                             "layers.1.mlp.experts.gate_and_up_projs",
                                                             "layers.1.mlp.experts.down_projs"))
        << family;
  }
}

// ---- LoRA: per expert only --------------------------------------------------------

TEST(MixinFamilies, GroupedLoraIsExportedPerExpertAndParamWrapperRefused) {
  ConvertOptions o = Geo(E, H, I);
  o.family = "glm4_moe";
  const int64_t r = 2;
  auto out = RunToHf(o, {T("base_model.model.model.layers.0.mlp.experts.lora_down_A", {E, I, r})});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(Names(*out), ElementsAre("base_model.model.model.layers.0.mlp.experts.0.down_proj.lora_A.weight",
                                       "base_model.model.model.layers.0.mlp.experts.1.down_proj.lora_A.weight"));
  o.lora_layout = LoraLayout::kPeftV019;
  EXPECT_THAT(RunToHf(o, {}).status(), StatusIs(StatusCode::kInvalidArgument, "offers no ParamWrapper LoRA"));
}

TEST(MixinFamilies, ParamWrapperLoraKeysAreRefusedNotPassedThrough) {
  for (const char* family : {"glm4_moe", "deepseek_v3", "qwen3_next"}) {
    ConvertOptions o = Geo(E, H, I);
    o.family = family;
    auto r = RunFromHf(o, {T("base_model.model.model.layers.0.mlp.experts.lora_A.weight", {2 * E, I})});
    EXPECT_THAT(r.status(), StatusIs(StatusCode::kInvalidArgument, "has no ParamWrapper LoRA")) << family;
  }
}

// ---- FP8 only where the family has it -----------------------------------------------

TEST(MixinFamilies, ScaleKeysOfFamiliesWithoutFp8AreRefusedNotDropped) {
  for (const char* family : {"glm4_moe", "qwen3_next"}) {
    ConvertOptions o = Geo(E, H, I);
    o.family = family;
    auto r = RunFromHf(o, {T("model.layers.0.self_attn.q_proj.weight_scale_inv", {1, 1})});
    EXPECT_THAT(r.status(), StatusIs(StatusCode::kUnimplemented, absl::StrCat("model family \"", family, "\"")));
  }
}

// ---- Qwen3-Next renames and F32 parameters ------------------------------------------

TEST(MixinFamilies, QwenNextRenamesSharedExpertAndUpcastsGdnParams) {
  ConvertOptions o = Geo(E, H, I);
  o.family = "qwen3_next";
  NamedTensor a_log = T("model.layers.0.linear_attn.A_log", {4}, DType::kBF16);
  NamedTensor dt_bias = T("model.layers.0.linear_attn.dt_bias", {4}, DType::kF16);
  NamedTensor shared = T("model.layers.0.mlp.shared_expert.up_proj.weight", {I, H}, DType::kBF16);
  NamedTensor gate = T("model.layers.0.mlp.shared_expert_gate.weight", {1, H}, DType::kBF16);
  auto native = RunFromHf(o, {a_log, dt_bias, shared, gate});
  ASSERT_TRUE(native.ok()) << native.status();
  EXPECT_THAT(Names(*native), ElementsAre("model.layers.0.linear_attn._fp32_params.A_log",
                                          "model.layers.0.linear_attn._fp32_params.dt_bias",
                                          "model.layers.0.mlp.shared_experts.up_proj.weight",
                                          "model.layers.0.mlp.shared_expert_gate.weight"));
  const Tensor& a32 = (*native)[0].tensor;
  ASSERT_EQ(a32.dtype, DType::kF32);
  ASSERT_EQ(a32.shape, Shape({4}));
  for (int k = 0; k < 4; ++k) {  // bf16 -> f32 is exact: the bits shifted up
    uint16_t b;
    uint32_t f;
    std::memcpy(&b, a_log.tensor.data.data() + 2 * k, 2);
    std::memcpy(&f, a32.data.data() + 4 * k, 4);
    EXPECT_EQ(f, uint32_t{b} << 16) << k;
  }
  EXPECT_EQ((*native)[1].tensor.dtype, DType::kF32);
  EXPECT_EQ((*native)[2].tensor.dtype, DType::kBF16);  // renamed only, never cast
  EXPECT_TRUE(SameTensor((*native)[2].tensor, shared.tensor));
  EXPECT_TRUE(SameTensor((*native)[3].tensor, gate.tensor));

  // to_hf: the other way, and a bf16 native parameter leaves as F32 too.
  NamedTensor native_bf16 = T("model.layers.0.linear_attn._fp32_params.dt_bias", {4}, DType::kBF16);
  auto hf = RunToHf(o, {native_bf16, (*native)[0], (*native)[2], (*native)[3]});
  ASSERT_TRUE(hf.ok()) << hf.status();
  EXPECT_THAT(Names(*hf), ElementsAre("model.layers.0.linear_attn.dt_bias", "model.layers.0.linear_attn.A_log",
                                      "model.layers.0.mlp.shared_expert.up_proj.weight",
                                      "model.layers.0.mlp.shared_expert_gate.weight"));
  EXPECT_EQ((*hf)[0].tensor.dtype, DType::kF32);
  EXPECT_TRUE(SameTensor((*hf)[1].tensor, a32));
  EXPECT_TRUE(SameTensor((*hf)[2].tensor, shared.tensor));
}

TEST(MixinFamilies, QwenNextAcceptsPluralSharedExpertsOnFromHf) {
  ConvertOptions o = Geo(E, H, I);
  o.family = "qwen3_next";
  auto out = RunFromHf(o, {T("model.layers.0.mlp.shared_experts.up_proj.weight", {I, H})});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(Names(*out), ElementsAre("model.layers.0.mlp.shared_experts.up_proj.weight"));
  // Both spellings of one tensor would write one key twice.
  auto both = RunFromHf(o, {T("model.layers.0.mlp.shared_experts.up_proj.weight", {I, H}),
                            T("model.layers.0.mlp.shared_expert.up_proj.weight", {I, H})});
  EXPECT_THAT(both.status(), StatusIs(StatusCode::kInvalidArgument, "written twice"));
}

TEST(MixinFamilies, QwenNextExcludeRegexSeesTheFinalHfKey) {
  ConvertOptions o = Geo(E, H, I);
  o.family = "qwen3_next";
  o.exclude_key_regex = R"(.*\.shared_expert\.|.*linear_attn\.A_log)";
  auto out = RunToHf(o, {T("model.layers.0.mlp.shared_experts.up_proj.weight", {I, H}),
                         T("model.layers.0.linear_attn._fp32_params.A_log", {4}),
                         T("model.layers.0.mlp.shared_expert_gate.weight", {1, H})});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(Names(*out), ElementsAre("model.layers.0.mlp.shared_expert_gate.weight"));
  // The native names are not what the regex sees.
  o.exclude_key_regex = R"(.*shared_experts|.*_fp32_params)";
  auto kept = RunToHf(o, {T("model.layers.0.mlp.shared_experts.up_proj.weight", {I, H}),
                          T("model.layers.0.linear_attn._fp32_params.A_log", {4})});
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->size(), 2u);
}

TEST(MixinFamilies, QwenNextGdnParamThatIsNotFloatIsAnError) {
  ConvertOptions o = Geo(E, H, I);
  o.family = "qwen3_next";
  EXPECT_THAT(RunFromHf(o, {T("model.layers.0.linear_attn.A_log", {4}, DType::kI32)}).status(),
              StatusIs(StatusCode::kInvalidArgument, "linear_attn.A_log\": model family \"qwen3_next\" keeps"));
}

// ---- DeepSeek-V3 FP8 ---------------------------------------------------------------------

// Codes with exact values: 0x38 = 1, 0x40 = 2, 0x3C = 1.5, 0xB8 = -1, 0x01 = 2^-9 (subnormal).
constexpr uint8_t kCodes[] = {0x38, 0x40, 0x3C, 0xB8, 0x01};
constexpr float kValues[] = {1.0f, 2.0f, 1.5f, -1.0f, 0x1p-9f};

NamedTensor Fp8(const std::string& name, int64_t rows, int64_t cols) {
  Tensor t = Tensor::Allocate(DType::kF8E4M3, {rows, cols});
  for (int64_t k = 0; k < rows * cols; ++k) t.mutable_data()[k] = kCodes[(k * 7 + rows) % 5];
  return {name, std::move(t)};
}

NamedTensor Scale(const std::string& weight, int64_t grid_rows, int64_t grid_cols, float base = 0.5f) {
  Tensor t = Tensor::Allocate(DType::kF32, {grid_rows, grid_cols});
  for (int64_t k = 0; k < grid_rows * grid_cols; ++k) {
    const float v = base * static_cast<float>(k + 1);
    std::memcpy(t.mutable_data() + 4 * k, &v, 4);
  }
  return {weight + "_scale_inv", std::move(t)};
}

// The dequantised value of element (r, c), computed here from the table above.
float Expected(const NamedTensor& w, const NamedTensor& s, int64_t r, int64_t c) {
  const int64_t cols = w.tensor.shape[1], grid_cols = s.tensor.shape[1];
  const uint8_t code = w.tensor.data.data()[r * cols + c];
  float v = 0, scale;
  for (int k = 0; k < 5; ++k) {
    if (kCodes[k] == code) v = kValues[k];
  }
  std::memcpy(&scale, s.tensor.data.data() + 4 * ((r / 128) * grid_cols + c / 128), 4);
  return v * scale;
}

class DeepSeekFp8 : public ::testing::Test {
 protected:
  // H = 130: every expert weight spans two 128-blocks along H.
  static constexpr int64_t kH = 130, kI = 4;
  ConvertOptions o = [] {
    ConvertOptions c = Geo(E, kH, kI);
    c.family = "deepseek_v3";
    c.dtype = DType::kF32;  // exact products: the test needs no rounding model
    return c;
  }();
  // FP8 experts of layer 0 with their scales; scale first when `scale_first`.
  TensorList Experts(bool scale_first) {
    TensorList t;
    for (int64_t e = 0; e < E; ++e) {
      const std::string p = absl::StrCat("model.layers.0.mlp.experts.", e, ".");
      for (const char* proj : {"gate_proj", "up_proj", "down_proj"}) {
        const bool down = std::string(proj) == "down_proj";
        NamedTensor w = Fp8(p + proj + ".weight", down ? kH : kI, down ? kI : kH);
        NamedTensor s = Scale(w.name, down ? 2 : 1, down ? 1 : 2, 0.25f * (e + 1));
        if (scale_first) t.push_back(s);
        t.push_back(w);
        if (!scale_first) t.push_back(s);
      }
    }
    return t;
  }
};

TEST_F(DeepSeekFp8, DequantisesEveryScaledWeightInEitherOrderAndConsumesScales) {
  for (bool scale_first : {false, true}) {
    TensorList in = Experts(scale_first);
    NamedTensor q = Fp8("model.layers.0.self_attn.q_a_proj.weight", 3, kH);
    NamedTensor qs = Scale(q.name, 1, 2, 3.0f);
    in.push_back(qs);  // scale before its (non-expert) weight
    in.push_back(q);
    in.push_back(T("model.layers.0.mlp.gate.weight", {E, kH}, DType::kBF16));  // unquantised: untouched
    auto out = RunFromHf(o, in);
    ASSERT_TRUE(out.ok()) << out.status();
    for (const NamedTensor& t : *out) EXPECT_THAT(t.name, ::testing::Not(HasSubstr("scale_inv")));
    EXPECT_EQ(out->size(), 4u);
    // The attention weight: dequantised, name kept.
    const Tensor* qd = Find(*out, q.name);
    ASSERT_NE(qd, nullptr);
    ASSERT_EQ(qd->dtype, DType::kF32);
    for (int64_t r = 0; r < 3; ++r) {
      for (int64_t c = 0; c < kH; ++c) {
        float got;
        std::memcpy(&got, qd->data.data() + 4 * (r * kH + c), 4);
        ASSERT_EQ(got, Expected(q, qs, r, c)) << r << "," << c;
      }
    }
    // The experts: dequantised, then grouped: gate_and_up[e][h][j] = gate_e[j][h].
    const Tensor* gu = Find(*out, "model.layers.0.mlp.experts.gate_and_up_projs");
    ASSERT_NE(gu, nullptr);
    ASSERT_EQ(gu->shape, Shape({E, kH, 2 * kI}));
    const NamedTensor* gate1 = nullptr;
    const NamedTensor* gate1_scale = nullptr;
    for (const NamedTensor& t : in) {
      if (t.name == "model.layers.0.mlp.experts.1.gate_proj.weight") gate1 = &t;
      if (t.name == "model.layers.0.mlp.experts.1.gate_proj.weight_scale_inv") gate1_scale = &t;
    }
    for (int64_t h = 0; h < kH; ++h) {
      for (int64_t j = 0; j < kI; ++j) {
        float got;
        std::memcpy(&got, gu->data.data() + 4 * ((1 * kH + h) * 2 * kI + j), 4);
        ASSERT_EQ(got, Expected(*gate1, *gate1_scale, j, h)) << h << "," << j;
      }
    }
    EXPECT_EQ(Find(*out, "model.layers.0.mlp.gate.weight")->dtype, DType::kBF16);
  }
}

TEST_F(DeepSeekFp8, TargetDtypeIsTheOptionElseTheConfigElseBf16) {
  NamedTensor w = Fp8("model.norm_proj.weight", 2, 3);
  NamedTensor s = Scale(w.name, 1, 1);
  ConvertOptions c = Geo(E, kH, kI);
  c.family = "deepseek_v3";
  auto dflt = RunFromHf(c, {w, s});
  ASSERT_TRUE(dflt.ok()) << dflt.status();
  EXPECT_EQ((*dflt)[0].tensor.dtype, DType::kBF16);
  c.geometry.config_dtype = DType::kF16;
  EXPECT_EQ((*RunFromHf(c, {w, s}))[0].tensor.dtype, DType::kF16);
  c.dtype = DType::kF32;
  EXPECT_EQ((*RunFromHf(c, {w, s}))[0].tensor.dtype, DType::kF32);
}

TEST_F(DeepSeekFp8, ScaleBesideAWeightThatIsNotFp8IsAnErrorEitherOrder) {
  NamedTensor w = T("model.layers.0.self_attn.o_proj.weight", {4, 4}, DType::kBF16);
  NamedTensor s = Scale(w.name, 1, 1);
  for (bool scale_first : {false, true}) {
    auto r = scale_first ? RunFromHf(o, {s, w}) : RunFromHf(o, {w, s});
    EXPECT_THAT(r.status(), StatusIs(StatusCode::kInvalidArgument, "o_proj.weight\": has a block scale"));
    EXPECT_THAT(r.status().message(), HasSubstr("BF16, not F8_E4M3"));
  }
}

TEST_F(DeepSeekFp8, ScaleGridMustMatchTheWeightExactly) {
  NamedTensor w = Fp8("model.layers.0.self_attn.q_a_proj.weight", 3, kH);  // grid [1, 2]
  for (Shape grid : {Shape{1, 1}, Shape{2, 2}}) {
    auto r = RunFromHf(o, {w, Scale(w.name, grid[0], grid[1])});
    EXPECT_THAT(r.status(), StatusIs(StatusCode::kInvalidArgument, "[1, 2]")) << ShapeString(grid);
    EXPECT_THAT(r.status().message(), HasSubstr(ShapeString(grid)));
    EXPECT_THAT(r.status().message(), HasSubstr("[3, 130]"));
  }
}

TEST_F(DeepSeekFp8, Fp8WeightWithoutScaleAndScaleWithoutWeightAreErrors) {
  NamedTensor w = Fp8("model.layers.0.self_attn.q_a_proj.weight", 3, kH);
  EXPECT_THAT(RunFromHf(o, {w}).status(), StatusIs(StatusCode::kInvalidArgument, "has no block scale"));
  EXPECT_THAT(RunFromHf(o, {Scale(w.name, 1, 2)}).status(), StatusIs(StatusCode::kInvalidArgument, "has no weight"));
  // An FP8 expert weight is never cast without its scale either.
  TensorList experts = Experts(false);
  experts.erase(experts.begin() + 1);  // expert 0 gate_proj's scale
  EXPECT_THAT(RunFromHf(o, experts).status(), StatusIs(StatusCode::kInvalidArgument, "has no block scale"));
}

TEST_F(DeepSeekFp8, ExpertParallelRankKeepsOnlyItsDequantisedExperts) {
  o.ep_size = 2;
  o.ep_rank = 1;
  auto out = RunFromHf(o, Experts(true));
  ASSERT_TRUE(out.ok()) << out.status();
  const Tensor* down = Find(*out, "model.layers.0.mlp.experts.down_projs");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->shape, Shape({1, kI, kH}));
}

TEST_F(DeepSeekFp8, QuantizedExportIsRefused) {
  o.quantization = true;
  EXPECT_THAT(RunToHf(o, {}).status(), StatusIs(StatusCode::kInvalidArgument, "no quantised to_hf export"));
  o.family = "qwen3_moe";  // elsewhere the option changes nothing (spec §15.5)
  EXPECT_TRUE(RunToHf(o, {}).ok());
}

// A sharded directory converted over several streams: a weight and its scale
// outside any layer, in different shards, still meet in one stream.
TEST_F(DeepSeekFp8, ShardedDirectoryKeepsEachWeightWithItsScale) {
  char tmpl[] = "/tmp/moe_mixin_test_XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string in = dir + "/in", out = dir + "/out";
  ::mkdir(in.c_str(), 0755);
  NamedTensor head = Fp8("lm_head.weight", 3, kH);
  NamedTensor head_scale = Scale(head.name, 1, 2);
  TensorList shard1 = Experts(false);
  shard1.push_back(head);
  TensorList shard2 = {T("model.embed_tokens.weight", {3, kH}), head_scale};
  ASSERT_TRUE(WriteSafetensors(in + "/model-00001-of-00002.safetensors", shard1, {}).ok());
  ASSERT_TRUE(WriteSafetensors(in + "/model-00002-of-00002.safetensors", shard2, {}).ok());
  {
    std::ofstream idx(in + "/model.safetensors.index.json");
    idx << R"({"metadata": {}, "weight_map": {)";
    bool first = true;
    for (const auto* shard : {&shard1, &shard2}) {
      const char* file = shard == &shard1 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
      for (const NamedTensor& t : *shard) {
        idx << (first ? "" : ", ") << "\"" << t.name << "\": \"" << file << "\"";
        first = false;
      }
    }
    idx << "}}";
  }
  CheckpointConvertOptions c;
  c.streams = {EmbeddedStreams({}), EmbeddedStreams({}), EmbeddedStreams({})};
  auto s = ConvertCheckpoint(Direction::kFromHf, in, out, o, c);
  ASSERT_TRUE(s.ok()) << s.status();
  TensorList got = LoadCheckpoint(out);
  EXPECT_THAT(Names(got), ::testing::UnorderedElementsAre("model.layers.0.mlp.experts.gate_and_up_projs",
                                                          "model.layers.0.mlp.experts.down_projs", "lm_head.weight",
                                                          "model.embed_tokens.weight"));
  const Tensor* h = Find(got, "lm_head.weight");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->dtype, DType::kF32);
  std::system(("rm -rf '" + dir + "'").c_str());
}

TEST_F(DeepSeekFp8, InspectNamesTheFamilyAndTheFp8Format) {
  char tmpl[] = "/tmp/moe_mixin_test_XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string file = dir + "/model.safetensors";
  ASSERT_TRUE(WriteSafetensors(file, Experts(false), {}).ok());
  ConvertOptions c = FromConfig(DeepSeek());
  auto info = InspectCheckpoint(file, c.geometry, "");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->family, "deepseek_v3");
  EXPECT_THAT(info->formats, ElementsAre("fp8-block-scaled", "hf-per-expert"));
  EXPECT_EQ(info->hidden_size, kH);
  auto plain = InspectCheckpoint(file, std::nullopt, "");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->family, "qwen3_moe");  // no config: the default family's key names
  std::system(("rm -rf '" + dir + "'").c_str());
}

}  // namespace
}  // namespace moe_adapter::testing
