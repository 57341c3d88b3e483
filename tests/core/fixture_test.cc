// The real checkpoint and adapter written by transformers 5.17 and peft 0.21
// (tests/data/tiny-qwen3-moe): round trips must be bit-exact, and the LoRA
// layout must be told apart exactly as spec §15.3 says.
#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "core/checkpoint_reader.h"
#include "tests/testutil/tensor_testutil.h"

namespace moe_adapter::testing {
namespace {

std::string Fixture(const std::string& rel) { return DataDir() + "/tiny-qwen3-moe/" + rel; }

std::string ReadText(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

ConvertOptions FixtureOptions() {
  ConvertOptions o;
  auto g = ParseHfConfig(ReadText(Fixture("hf-fp32/config.json")));
  EXPECT_TRUE(g.ok()) << g.status();
  o.geometry = *g;
  return o;
}


TEST(Fixture, ConfigSpellsNumLocalExperts) {
  auto g = ParseHfConfig(ReadText(Fixture("hf-fp32/config.json")));
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->num_experts, 8);
  EXPECT_EQ(g->hidden_size, 32);
  EXPECT_EQ(g->moe_intermediate_size, 16);
  EXPECT_EQ(g->num_hidden_layers, 3);
  EXPECT_TRUE(g->IsMoeLayer(0));
  EXPECT_FALSE(g->IsMoeLayer(1));  // mlp_only_layers: [1]
  EXPECT_TRUE(g->IsMoeLayer(2));
  EXPECT_EQ(g->config_dtype, DType::kF32);
}

void ExpectHfRoundTrip(const TensorList& hf, DType want_dtype, const std::string& config) {
  ConvertOptions o;
  o.geometry = *ParseHfConfig(ReadText(Fixture(config)));
  auto native = RunFromHf(o, hf);
  ASSERT_TRUE(native.ok()) << native.status();
  int grouped = 0;
  for (const auto& t : *native) {
    if (absl::EndsWith(t.name, "_projs")) {
      ++grouped;
      EXPECT_EQ(t.tensor.dtype, want_dtype) << t.name;
    }
  }
  EXPECT_EQ(grouped, 4);  // layers 0 and 2, gate_and_up + down; layer 1 is dense
  auto back = RunToHf(o, *native);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_THAT(DiffAsMaps(*back, hf), ::testing::IsEmpty());
}

TEST(Fixture, Fp32CheckpointRoundTripsBitExact) {
  ExpectHfRoundTrip(LoadCheckpoint(Fixture("hf-fp32/model.safetensors")), DType::kF32, "hf-fp32/config.json");
}

TEST(Fixture, ShardedBf16CheckpointRoundTripsBitExact) {
  TensorList hf = LoadCheckpoint(Fixture("hf-bf16-sharded"));
  // Same keys as the single-file fp32 save of the same model.
  TensorList fp32 = LoadCheckpoint(Fixture("hf-fp32/model.safetensors"));
  std::vector<std::string> a = Names(hf), b = Names(fp32);
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  ASSERT_EQ(a, b);
  // Without --dtype the from_hf target is the config's dtype (bfloat16 here).
  auto g = ParseHfConfig(ReadText(Fixture("hf-bf16-sharded/config.json")));
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->config_dtype, DType::kBF16);
  ExpectHfRoundTrip(hf, DType::kBF16, "hf-bf16-sharded/config.json");
}

TEST(Fixture, ShardedExpertsAreGatheredAcrossFilesAsSoonAsComplete) {
  // Layer 0's gate/down live in shard 2 and its up_proj in shard 3: the
  // gate_and_up group completes only inside shard 3, and the held bytes never
  // exceed the incomplete groups (a layer's grouped tensors, here 2 x 8 KiB + 4 KiB... bf16).
  TensorList hf = LoadCheckpoint(Fixture("hf-bf16-sharded"));
  size_t peak = 0;
  ConvertOptions o = FixtureOptions();
  o.dtype = DType::kBF16;
  auto native = RunFromHf(o, hf, &peak);
  ASSERT_TRUE(native.ok()) << native.status();
  const size_t layer_bytes = 8 * 32 * 32 * 2 + 8 * 16 * 32 * 2;  // gate_and_up + down, bf16
  EXPECT_GT(peak, 0u);
  EXPECT_LE(peak, 2 * layer_bytes);
}

TensorList Adapter() { return LoadFile(Fixture("peft-lora/adapter_model.safetensors")); }

TEST(Fixture, PeftAdapterRoundTripsToPeftV019BitExact) {
  ConvertOptions o = FixtureOptions();
  o.adapter_config_json = ReadText(Fixture("peft-lora/adapter_config.json"));  // peft_version 0.21.0
  auto native = RunFromHf(o, Adapter());
  ASSERT_TRUE(native.ok()) << native.status();
  std::set<std::string> names;
  for (const auto& t : *native) names.insert(t.name);
  EXPECT_TRUE(names.count("base_model.model.model.layers.0.mlp.experts.lora_gate_and_up_A"));
  EXPECT_TRUE(names.count("base_model.model.model.layers.2.mlp.experts.lora_down_B"));
  EXPECT_TRUE(names.count("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));  // dense: unchanged
  ConvertOptions back_opts = FixtureOptions();  // to_hf default layout: peft-v0.19
  auto back = RunToHf(back_opts, *native);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_THAT(DiffAsMaps(*back, Adapter()), ::testing::IsEmpty());
}

TEST(Fixture, LayoutDetectedFromShapesWithoutConfig) {
  // H == 2I makes the gate_up tensors ambiguous, but lora_A [r*E, I] of down
  // fits only peft-v0.19: the whole adapter is read that way.
  ConvertOptions o = FixtureOptions();
  auto by_shape = RunFromHf(o, Adapter());
  ASSERT_TRUE(by_shape.ok()) << by_shape.status();
  ConvertOptions forced = FixtureOptions();
  forced.lora_layout = LoraLayout::kPeftV019;
  auto by_option = RunFromHf(forced, Adapter());
  ASSERT_TRUE(by_option.ok());
  EXPECT_THAT(DiffAsMaps(*by_shape, *by_option), ::testing::IsEmpty());
}

TEST(Fixture, AmbiguousGateUpOnlyAdapterAsksForTheLayout) {
  TensorList gate_up_only;
  for (const auto& t : Adapter()) {
    if (absl::StrContains(t.name, "experts.base_layer.")) gate_up_only.push_back(t);
  }
  ASSERT_EQ(gate_up_only.size(), 4u);
  auto out = RunFromHf(FixtureOptions(), gate_up_only);
  EXPECT_THAT(out.status(), StatusIs(absl::StatusCode::kFailedPrecondition, "--lora-layout"));
  // The config's peft_version settles it.
  ConvertOptions o = FixtureOptions();
  o.adapter_config_json = R"({"peft_version": "0.21.0"})";
  EXPECT_TRUE(RunFromHf(o, gate_up_only).ok());
}

TEST(Fixture, WrongLayoutFromConfigIsAnErrorNamingTheKey) {
  ConvertOptions o = FixtureOptions();
  o.adapter_config_json = R"({"peft_version": "0.18.1"})";
  auto out = RunFromHf(o, Adapter());
  EXPECT_THAT(out.status(), StatusIs(absl::StatusCode::kInvalidArgument, "experts.lora_A.weight"));
}

TEST(Fixture, PeftVersion0190DefersToShapes) {
  ConvertOptions o = FixtureOptions();
  o.adapter_config_json = R"({"peft_version": "0.19.0"})";
  EXPECT_TRUE(RunFromHf(o, Adapter()).ok());
}

TEST(Fixture, PeftV018OutputDoesNotLoadAsV019) {
  // The same adapter written in the snapshot layout has different down shapes:
  // lora_A [r*E, H] instead of [r*E, I].
  ConvertOptions o = FixtureOptions();
  auto native = RunFromHf(o, Adapter());
  ASSERT_TRUE(native.ok());
  ConvertOptions v18 = FixtureOptions();
  v18.lora_layout = LoraLayout::kPeftV018;
  auto hf18 = RunToHf(v18, *native);
  ASSERT_TRUE(hf18.ok());
  for (const auto& t : *hf18) {
    if (absl::EndsWith(t.name, "mlp.experts.lora_A.weight")) EXPECT_EQ(t.tensor.shape, (Shape{32, 32}));
  }
  // And it reads back to the same native tensors under its own layout.
  auto again = RunFromHf(v18, *hf18);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_THAT(DiffAsMaps(*again, *native), ::testing::IsEmpty());
}

}  // namespace
}  // namespace moe_adapter::testing
