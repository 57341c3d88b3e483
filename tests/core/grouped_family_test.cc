// The families whose HF checkpoint is already grouped (GPT-OSS, Qwen3-VL-MoE;
// core/grouped_rename.h): one test per place where the contract
// (spec families.md §11) differs from the reference, on the reference's own
// golden tensors (tests/data/golden-families) where one fits.
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <map>

#include "core/family_registry.h"
#include "core/safetensors_writer.h"
#include "moe_adapter/checkpoint_convert.h"
#include "nlohmann/json.hpp"
#include "tests/testutil/tensor_testutil.h"

namespace moe_adapter::testing {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using json = nlohmann::json;

std::string FamilyDir(const std::string& family) { return DataDir() + "/golden-families/" + family; }

json Case(const std::string& family, const std::string& name) {
  std::ifstream f(FamilyDir(family) + "/manifest.json");
  json m = json::parse(f);
  for (const json& c : m["cases"]) {
    if (c["name"] == name) return c;
  }
  ADD_FAILURE() << "no case " << family << "/" << name;
  return json::object();
}

// Options as the CLI builds them from the case's config.json.
ConvertOptions CaseOptions(const json& c) {
  ConvertOptions o;
  absl::StatusOr<Geometry> g = ParseHfConfig(c["config"].dump());
  EXPECT_TRUE(g.ok()) << g.status();
  if (g.ok()) o.geometry = *g;
  return o;
}

TensorList CaseInput(const std::string& family, const json& c) {
  return LoadFile(FamilyDir(family) + "/" + c["in_file"].get<std::string>());
}
TensorList CaseOutput(const std::string& family, const json& c) {
  return LoadFile(FamilyDir(family) + "/" + c["out_file"].get<std::string>());
}

const NamedTensor* Find(const TensorList& l, const std::string& name) {
  for (const NamedTensor& t : l) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

// Widen(): BF16 values as F32 bits.
std::vector<uint32_t> Widen(const Tensor& bf16) {
  std::vector<uint32_t> out(bf16.nbytes() / 2);
  const uint16_t* p = reinterpret_cast<const uint16_t*>(bf16.data.data());
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint32_t>(p[i]) << 16;
  return out;
}

// ---- family selection and config ---------------------------------------------

TEST(GroupedFamilyConfig, Qwen3VlReadsTextConfigAndTheTopLevelDtype) {
  const std::string cfg = R"({"model_type": "qwen3_vl_moe", "torch_dtype": "float32",
      "text_config": {"num_hidden_layers": 2, "hidden_size": 32, "intermediate_size": 16, "num_experts": 4,
                      "torch_dtype": "bfloat16"}})";
  absl::StatusOr<Geometry> g = ParseHfConfig(cfg);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->config_family, "qwen3_vl_moe");
  EXPECT_EQ(g->num_experts, 4);
  EXPECT_EQ(g->hidden_size, 32);
  EXPECT_EQ(g->moe_intermediate_size, 16);  // intermediate_size when moe_intermediate_size is absent
  EXPECT_EQ(g->config_dtype, DType::kF32);   // the top level's, not text_config's
}

TEST(GroupedFamilyConfig, GptOssByArchitectures) {
  absl::StatusOr<Geometry> g = ParseHfConfig(
      R"({"architectures": ["GptOssForCausalLM"], "hidden_size": 64, "intermediate_size": 32, "num_local_experts": 8})");
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->config_family, "gpt_oss");
  EXPECT_EQ(g->num_experts, 8);
  EXPECT_EQ(g->moe_intermediate_size, 32);
}

TEST(GroupedFamilyConfig, RegistryChecksGroupedSpecs) {
  ModelFamilySpec bad;
  bad.name = "grouped_test_two_gate_ups";
  bad.hf_grouped = true;
  bad.grouped = {{"{prefix}layers.{layer}.a", "{prefix}layers.{layer}.b", GroupedShape::kGateUp},
                 {"{prefix}layers.{layer}.c", "{prefix}layers.{layer}.d", GroupedShape::kGateUp}};
  EXPECT_THAT(RegisterModelFamily(bad), StatusIs(absl::StatusCode::kInvalidArgument, "one gate/up and one down"));
  ModelFamilySpec no_layer = bad;
  no_layer.name = "grouped_test_no_layer";
  no_layer.grouped = {{"{prefix}a", "{prefix}b", GroupedShape::kGateUp},
                      {"{prefix}layers.{layer}.c", "{prefix}layers.{layer}.d", GroupedShape::kDown}};
  EXPECT_THAT(RegisterModelFamily(no_layer), StatusIs(absl::StatusCode::kInvalidArgument, "{layer}"));
  ModelFamilySpec good = bad;
  good.name = "grouped_test_ok";
  good.grouped[1].shape = GroupedShape::kDown;
  ASSERT_TRUE(RegisterModelFamily(good).ok());
  ConvertOptions o = Geo(2, 4, 2);
  o.family = "grouped_test_ok";
  std::mt19937_64 rng(1);
  absl::StatusOr<TensorList> out = RunFromHf(o, {{"x.layers.3.a", RandomTensor(DType::kF32, {2, 4, 4}, rng)}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(Names(*out), ElementsAreArray({"x.layers.3.b"}));
}

// ---- GPT-OSS ---------------------------------------------------------------

// Contract: --ep-rank/--ep-size slice GPT-OSS experts (the reference ignores them).
TEST(GptOss, EpFromHfSlicesExpertStacks) {
  const json c = Case("gpt_oss", "full_from_hf_float32");
  ConvertOptions o = CaseOptions(c);
  o.ep_rank = 1;
  o.ep_size = 2;
  auto conv = FromHfConverter::Create(o);
  ASSERT_TRUE(conv.ok()) << conv.status();
  TensorList out;
  auto sink = [&](NamedTensor t) {
    out.push_back(std::move(t));
    return absl::OkStatus();
  };
  for (const NamedTensor& t : CaseInput("gpt_oss", c)) ASSERT_TRUE((*conv)->Add(t, sink).ok());
  ASSERT_TRUE((*conv)->Finish(sink).ok());
  EXPECT_EQ((*conv)->OutputMetadata().at("moe_adapter.expert_range"), "2:4");
  const TensorList want = CaseOutput("gpt_oss", c);
  int sliced = 0;
  for (const NamedTensor& w : want) {
    const NamedTensor* g = Find(out, w.name);
    ASSERT_NE(g, nullptr) << w.name;
    if (w.name.find(".mlp.experts.") == std::string::npos) {
      EXPECT_TRUE(SameTensor(g->tensor, w.tensor)) << w.name;  // routers and the rest: whole
      continue;
    }
    ++sliced;
    ASSERT_EQ(g->tensor.shape[0], 2) << w.name;
    const size_t half = w.tensor.nbytes() / 2;
    ASSERT_EQ(g->tensor.nbytes(), half);
    EXPECT_EQ(std::memcmp(g->tensor.data.data(), w.tensor.data.data() + half, half), 0) << w.name;
  }
  EXPECT_EQ(sliced, 8);  // gate_up, down and both biases of 2 layers
}

// Contract: the common dtype rule (the reference never casts GPT-OSS).
TEST(GptOss, FromHfCastsExpertStacksToTheConfigDtype) {
  const json c = Case("gpt_oss", "quirk_from_hf_no_dtype_cast");  // F32 inputs, config bfloat16
  const TensorList in = CaseInput("gpt_oss", c);
  ConvertOptions o = CaseOptions(c);
  absl::StatusOr<TensorList> out = RunFromHf(o, in);
  ASSERT_TRUE(out.ok()) << out.status();
  const NamedTensor* gu = Find(*out, "model.layers.0.mlp.experts.gate_and_up_projs");
  const NamedTensor* router = Find(*out, "model.layers.0.mlp.gate.weight");
  ASSERT_TRUE(gu && router);
  EXPECT_EQ(gu->tensor.dtype, DType::kBF16);
  EXPECT_EQ(router->tensor.dtype, DType::kF32);  // not an expert stack: never cast
  EXPECT_TRUE(SameTensor(router->tensor, Find(in, "model.layers.0.mlp.router.weight")->tensor));
  // --dtype wins over the config; with it equal to the input, the bytes are the input's.
  o.dtype = DType::kF32;
  out = RunFromHf(o, in);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(SameTensor(Find(*out, "model.layers.0.mlp.experts.gate_and_up_projs")->tensor,
                         Find(in, "model.layers.0.mlp.experts.gate_up_proj")->tensor));
}

// MXFP4 halves in either order, holding only the half that waits.
TEST(GptOss, Mxfp4DecodesInEitherOrderHoldingOnlyTheWaitingHalf) {
  const json c = Case("gpt_oss", "mxfp4_from_hf_bf16");
  const TensorList in = CaseInput("gpt_oss", c);
  const TensorList want = CaseOutput("gpt_oss", c);
  size_t largest_half = 0;
  for (const NamedTensor& t : in) {
    if (absl::EndsWith(t.name, "_blocks") || absl::EndsWith(t.name, "_scales")) {
      largest_half = std::max(largest_half, t.tensor.nbytes());
    }
  }
  for (bool reversed : {false, true}) {
    TensorList order = in;
    if (reversed) std::reverse(order.begin(), order.end());  // every _scales before its _blocks
    size_t peak = 0;
    absl::StatusOr<TensorList> out = RunFromHf(CaseOptions(c), order, &peak);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_THAT(DiffAsMaps(*out, want), ::testing::IsEmpty()) << "reversed=" << reversed;
    EXPECT_GT(peak, 0u);
    EXPECT_LE(peak, largest_half);
  }
}

// Contract: decoded MXFP4 follows the dtype rule (the reference: always bf16).
TEST(GptOss, Mxfp4FollowsTheDtypeRule) {
  const json c = Case("gpt_oss", "quirk_mxfp4_from_hf_float32_still_bf16");  // config float32
  absl::StatusOr<TensorList> out = RunFromHf(CaseOptions(c), CaseInput("gpt_oss", c));
  ASSERT_TRUE(out.ok()) << out.status();
  const TensorList bf16 = CaseOutput("gpt_oss", c);
  for (const char* key : {"model.layers.0.mlp.experts.gate_and_up_projs", "model.layers.0.mlp.experts.down_projs"}) {
    const NamedTensor* got = Find(*out, key);
    ASSERT_NE(got, nullptr) << key;
    ASSERT_EQ(got->tensor.dtype, DType::kF32);
    std::vector<uint32_t> bits(got->tensor.nbytes() / 4);
    std::memcpy(bits.data(), got->tensor.data.data(), got->tensor.nbytes());
    EXPECT_EQ(bits, Widen(Find(bf16, key)->tensor)) << key;  // exact in both
  }
}

TEST(GptOss, Mxfp4WithoutItsPartnerIsAnError) {
  const json c = Case("gpt_oss", "mxfp4_from_hf_bf16");
  TensorList in;
  for (const NamedTensor& t : CaseInput("gpt_oss", c)) {
    if (t.name != "model.layers.1.mlp.experts.down_proj_scales") in.push_back(t);
  }
  EXPECT_THAT(RunFromHf(CaseOptions(c), in).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "\"model.layers.1.mlp.experts.down_proj_blocks\": MXFP4 blocks"));
}

// Contract: to_hf quantization (the reference's all-ones placeholders) is refused.
TEST(GptOss, ToHfQuantizationIsRefused) {
  const json c = Case("gpt_oss", "quirk_to_hf_quantization_placeholders");
  ConvertOptions o = CaseOptions(c);
  o.quantization = true;
  EXPECT_THAT(ToHfConverter::Create(o).status(), StatusIs(absl::StatusCode::kInvalidArgument, "quantization"));
}

// Contract: outputs in input order, renamed in place; interleaved gate/up untouched.
TEST(GptOss, ToHfAndFromHfRenameInPlace) {
  const json c = Case("gpt_oss", "full_to_hf_bfloat16");
  const TensorList in = CaseInput("gpt_oss", c);
  absl::StatusOr<TensorList> hf = RunToHf(CaseOptions(c), in);
  ASSERT_TRUE(hf.ok()) << hf.status();
  EXPECT_THAT(Names(*hf), ElementsAreArray(c["out_keys"].get<std::vector<std::string>>()));
  EXPECT_THAT(DiffAsMaps(*hf, CaseOutput("gpt_oss", c)), ::testing::IsEmpty());
  // from_hf keeps the input order too (the reference moves renamed keys to the end).
  absl::StatusOr<TensorList> back = RunFromHf(CaseOptions(c), *hf);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_THAT(Names(*back), ElementsAreArray(Names(in)));
  EXPECT_THAT(DiffAsMaps(*back, in), ::testing::IsEmpty());
}

TEST(GptOss, GroupedLoraPassesThroughUnchanged) {
  const json c = Case("gpt_oss", "full_to_hf_bfloat16");
  std::mt19937_64 rng(7);
  const TensorList lora = {{"model.layers.0.mlp.experts.lora_gate_and_up_A", RandomTensor(DType::kBF16, {4, 32, 2}, rng)},
                           {"model.layers.0.mlp.experts.lora_down_B", RandomTensor(DType::kBF16, {4, 2, 32}, rng)}};
  absl::StatusOr<TensorList> hf = RunToHf(CaseOptions(c), lora);
  ASSERT_TRUE(hf.ok()) << hf.status();
  EXPECT_THAT(DiffAsMaps(*hf, lora), ::testing::IsEmpty());
  absl::StatusOr<TensorList> native = RunFromHf(CaseOptions(c), lora);
  ASSERT_TRUE(native.ok()) << native.status();
  EXPECT_THAT(DiffAsMaps(*native, lora), ::testing::IsEmpty());
}

TEST(GptOss, ExpertStackOutsideALayerIsAnError) {
  std::mt19937_64 rng(3);
  ConvertOptions o = Geo(2, 32, 16);
  o.family = "gpt_oss";
  EXPECT_THAT(RunFromHf(o, {{"model.mlp.experts.gate_up_proj", RandomTensor(DType::kBF16, {2, 32, 32}, rng)}}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "outside a layer"));
}

TEST(GptOss, FullConfigNeedsEveryMoeLayer) {
  const json c = Case("gpt_oss", "full_from_hf_bfloat16");  // num_hidden_layers 2
  TensorList layer0;
  for (const NamedTensor& t : CaseInput("gpt_oss", c)) {
    if (t.name.find("layers.1.") == std::string::npos) layer0.push_back(t);
  }
  ConvertOptions o = CaseOptions(c);
  EXPECT_THAT(RunFromHf(o, layer0).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "layers.1.mlp.experts.gate_up_proj"));
  o.partial_checkpoint = true;  // one of several streams
  EXPECT_TRUE(RunFromHf(o, layer0).ok());
}

// MXFP4 halves in different shards of a directory, scales first.
TEST(GptOss, ShardedDirectoryWithSplitMxfp4Pairs) {
  const json c = Case("gpt_oss", "mxfp4_from_hf_bf16");
  char tmpl[] = "/tmp/moe_grouped_test_XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string in = dir + "/in";
  ASSERT_EQ(::mkdir(in.c_str(), 0755), 0);
  TensorList first, second;
  for (const NamedTensor& t : CaseInput("gpt_oss", c)) (absl::EndsWith(t.name, "_blocks") ? second : first).push_back(t);
  ASSERT_TRUE(WriteSafetensors(in + "/model-00001-of-00002.safetensors", first).ok());
  ASSERT_TRUE(WriteSafetensors(in + "/model-00002-of-00002.safetensors", second).ok());
  json index = {{"metadata", json::object()}, {"weight_map", json::object()}};
  for (const NamedTensor& t : first) index["weight_map"][t.name] = "model-00001-of-00002.safetensors";
  for (const NamedTensor& t : second) index["weight_map"][t.name] = "model-00002-of-00002.safetensors";
  std::ofstream(in + "/model.safetensors.index.json") << index.dump();
  std::ofstream(in + "/config.json") << c["config"].dump();
  CheckpointConvertOptions copts;
  copts.max_shard_bytes = 8000;
  absl::StatusOr<ConvertSummary> s = ConvertCheckpoint(Direction::kFromHf, in, dir + "/out", CaseOptions(c), copts);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_THAT(DiffAsMaps(LoadCheckpoint(dir + "/out"), CaseOutput("gpt_oss", c)), ::testing::IsEmpty());
  std::system(("rm -rf '" + dir + "'").c_str());
}

// ---- Qwen3-VL-MoE ----------------------------------------------------------

// Contract: E+1 experts is an error (the reference cuts it to E).
TEST(Qwen3VlMoe, ExtraExpertsAreAnError) {
  const json c = Case("qwen3_vl_moe", "quirk_from_hf_extra_experts_truncated");
  const absl::Status s = RunFromHf(CaseOptions(c), CaseInput("qwen3_vl_moe", c)).status();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument, "model.language_model.layers.0.mlp.experts.gate_up_proj"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("holds 5 experts, expected E=4"));
}

// Contract: *_scale_inv is refused (the reference drops it).
TEST(Qwen3VlMoe, ScaleInvIsUnimplemented) {
  const json c = Case("qwen3_vl_moe", "quirk_from_hf_scale_inv_dropped");
  EXPECT_THAT(RunFromHf(CaseOptions(c), CaseInput("qwen3_vl_moe", c)).status(),
              StatusIs(absl::StatusCode::kUnimplemented, "_scale_inv"));
}

// Contract: no prefix guessing (the reference prepends "model.").
TEST(Qwen3VlMoe, KeysKeepTheirPrefix) {
  const json c = Case("qwen3_vl_moe", "quirk_from_hf_unprefixed_key_gets_model_prefix");
  const TensorList in = CaseInput("qwen3_vl_moe", c);
  absl::StatusOr<TensorList> out = RunFromHf(CaseOptions(c), in);
  ASSERT_TRUE(out.ok()) << out.status();
  std::vector<std::string> want;
  for (const NamedTensor& t : in) {
    std::string k = t.name;
    if (absl::EndsWith(k, ".mlp.experts.gate_up_proj")) k.replace(k.size() - 12, 12, "gate_and_up_projs");
    if (absl::EndsWith(k, ".mlp.experts.down_proj")) k += "s";
    want.push_back(k);
  }
  EXPECT_THAT(Names(*out), ElementsAreArray(want));
  EXPECT_NE(Find(*out, "visual.patch_embed.proj.weight"), nullptr);
}

TEST(Qwen3VlMoe, EpToHfChecksTheLocalStack) {
  const json c = Case("qwen3_vl_moe", "ep_to_hf_ep3_rank0");  // rank 0 of 3 with E=4: 2 experts
  ConvertOptions o = CaseOptions(c);
  o.ep_size = 3;
  o.ep_rank = 2;  // owns 1 expert: the rank-0 stacks do not fit it
  EXPECT_THAT(RunToHf(o, CaseInput("qwen3_vl_moe", c)).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "expected E_local=1"));
}

}  // namespace
}  // namespace moe_adapter::testing
