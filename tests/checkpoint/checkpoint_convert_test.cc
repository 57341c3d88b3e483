// Whole checkpoints through ConvertCheckpoint(): sharded directories, adapter
// directories, several parallel streams, and failures that must leave nothing.
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include "checkpoint/adapter_config.h"
#include "core/peft_version.h"
#include "core/checkpoint_reader.h"
#include "moe_adapter/checkpoint_convert.h"
#include "nlohmann/json.hpp"
#include "tests/testutil/tensor_testutil.h"

namespace moe_adapter::testing {
namespace {

std::string Fx(const std::string& rel) { return DataDir() + "/tiny-qwen3-moe/" + rel; }

bool Exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}


std::string Slurp(const std::string& p) {
  std::ifstream f(p);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

class CheckpointConvert : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moe_ckpt_test_XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    opts_.geometry = *ParseHfConfig(Slurp(Fx("hf-bf16-sharded/config.json")));
  }
  void TearDown() override { std::system(("rm -rf '" + dir_ + "'").c_str()); }
  std::string dir_;
  ConvertOptions opts_;
};

TEST_F(CheckpointConvert, ShardedDirectoryRoundTripWithSeveralStreams) {
  for (int streams : {1, 2, 3}) {
    CheckpointConvertOptions c;
    c.max_shard_bytes = 20000;
    for (int i = 0; i < streams; ++i) c.streams.push_back(EmbeddedStreams({}));
    const std::string native = dir_ + "/native" + std::to_string(streams);
    const std::string back = dir_ + "/back" + std::to_string(streams);
    auto a = ConvertCheckpoint(Direction::kFromHf, Fx("hf-bf16-sharded"), native, opts_, c);
    ASSERT_TRUE(a.ok()) << streams << " streams: " << a.status();
    EXPECT_EQ(a->streams, streams);
    EXPECT_TRUE(Exists(native + "/model.safetensors.index.json"));
    EXPECT_TRUE(Exists(native + "/config.json"));
    EXPECT_TRUE(Exists(native + "/generation_config.json"));
    auto b = ConvertCheckpoint(Direction::kToHf, native, back, opts_, c);
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_THAT(DiffAsMaps(LoadCheckpoint(back), LoadCheckpoint(Fx("hf-bf16-sharded"))), ::testing::IsEmpty()) << streams;
  }
}

TEST_F(CheckpointConvert, SeveralStreamsIntoOneFileKeepTheReferenceOrder) {
  CheckpointConvertOptions c;
  c.streams = {EmbeddedStreams({}), EmbeddedStreams({})};
  ConvertOptions o = Geo(4, 8, 6);
  const std::string out = dir_ + "/out.safetensors";
  auto s = ConvertCheckpoint(Direction::kToHf, DataDir() + "/golden/full_to_hf_float32.in.safetensors", out, o, c);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->streams, 2);
  TensorList want = LoadFile(DataDir() + "/golden/full_to_hf_float32.out.safetensors");
  TensorList got = LoadFile(out);
  EXPECT_THAT(DiffAsMaps(got, want), ::testing::IsEmpty());
  EXPECT_EQ(Names(got), Names(want));
}

TEST_F(CheckpointConvert, CorruptedShardFailsAndLeavesNothing) {
  const std::string in = dir_ + "/in";
  std::system(("cp -r '" + Fx("hf-bf16-sharded") + "' '" + in + "' && chmod -R u+w '" + in + "'").c_str());
  {
    // Truncate shard 4: its header now points past the end of the file.
    const std::string shard = in + "/model-00004-of-00006.safetensors";
    std::string bytes = Slurp(shard);
    std::ofstream(shard, std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() - 64);
  }
  const std::string out = dir_ + "/out";
  auto s = ConvertCheckpoint(Direction::kFromHf, in, out, opts_, {});
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), ::testing::HasSubstr("model-00004-of-00006.safetensors"));
  EXPECT_FALSE(Exists(out));
  // No temporary sibling either.
  EXPECT_EQ(std::system(("test -z \"$(ls -A '" + dir_ + "' | grep -v '^in$')\"").c_str()), 0);
}

TEST_F(CheckpointConvert, ConversionErrorInTheMiddleLeavesNothing) {
  ConvertOptions wrong = opts_;
  wrong.geometry.moe_intermediate_size = 8;  // every expert shape mismatches
  auto s = ConvertCheckpoint(Direction::kFromHf, Fx("hf-bf16-sharded"), dir_ + "/out", wrong, {});
  EXPECT_THAT(s.status(), StatusIs(absl::StatusCode::kInvalidArgument, "must have shape"));
  EXPECT_FALSE(Exists(dir_ + "/out"));
}

TEST_F(CheckpointConvert, ExistingOutputIsKeptUnlessOverwrite) {
  const std::string out = dir_ + "/out";
  ASSERT_EQ(::mkdir(out.c_str(), 0755), 0);
  // An earlier output (a shard this conversion does not write): --overwrite
  // may replace it; a directory of other files it refuses (cli_hostile_files_test).
  const std::string marker = out + "/model-00001-of-00009.safetensors";
  std::ofstream(marker) << "x";
  auto s = ConvertCheckpoint(Direction::kFromHf, Fx("hf-bf16-sharded"), out, opts_, {});
  EXPECT_EQ(s.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(Exists(marker));
  CheckpointConvertOptions c;
  c.overwrite = true;
  auto r = ConvertCheckpoint(Direction::kFromHf, Fx("hf-bf16-sharded"), out, opts_, c);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(Exists(marker)) << "replaced whole, not merged";
  EXPECT_TRUE(Exists(out + "/config.json"));
}

TEST_F(CheckpointConvert, AdapterDirectoryRoundTripKeepsItsConfig) {
  const std::string native = dir_ + "/native", back = dir_ + "/back";
  ConvertOptions o = opts_;
  o.adapter_config_json = Slurp(Fx("peft-lora/adapter_config.json"));
  ASSERT_TRUE(ConvertCheckpoint(Direction::kFromHf, Fx("peft-lora"), native, o, {}).ok());
  auto b = ConvertCheckpoint(Direction::kToHf, native, back, opts_, {});
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(b->adapter);
  EXPECT_THAT(DiffAsMaps(LoadFile(back + "/adapter_model.safetensors"),
                         LoadFile(Fx("peft-lora/adapter_model.safetensors"))),
              ::testing::IsEmpty());
  EXPECT_EQ(nlohmann::json::parse(Slurp(back + "/adapter_config.json")),
            nlohmann::json::parse(Slurp(Fx("peft-lora/adapter_config.json"))));
}

TEST_F(CheckpointConvert, AdapterConfigFollowsTheLayoutWritten) {
  const std::string native = dir_ + "/native";
  ASSERT_TRUE(ConvertCheckpoint(Direction::kFromHf, Fx("peft-lora"), native, opts_, {}).ok());
  ConvertOptions v18 = opts_;
  v18.lora_layout = LoraLayout::kPeftV018;
  ASSERT_TRUE(ConvertCheckpoint(Direction::kToHf, native, dir_ + "/v18", v18, {}).ok());
  auto cfg = nlohmann::json::parse(Slurp(dir_ + "/v18/adapter_config.json"));
  EXPECT_EQ(cfg["peft_version"], "0.18.1");
  EXPECT_EQ(cfg["r"], 4);
  EXPECT_EQ(cfg["lora_alpha"], 8);
  EXPECT_EQ(cfg["target_parameters"], nlohmann::json({"mlp.experts.gate_up_proj", "mlp.experts.down_proj"}));
}

// Found by tests/fuzz (adapter_config): an unreadable peft_version was kept in
// a per-expert config, which the reading side then refused.
TEST(AdapterConfigForHf, WhatItWritesReadsBackOrItRefuses) {
  const std::string bad = R"({"peft_version": "v]0.21.0.dev0", "r": 4, "lora_alpha": 8})";
  for (LoraLayout l : {LoraLayout::kPeftV019, LoraLayout::kPeftV018, LoraLayout::kPerExpert}) {
    EXPECT_THAT(AdapterConfigForHf(bad, l, 4, std::nullopt).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, "peft_version"));
  }
  const std::string good = R"({"peft_version": "0.17.0", "r": 4, "lora_alpha": 8})";
  for (LoraLayout l : {LoraLayout::kPeftV019, LoraLayout::kPeftV018, LoraLayout::kPerExpert}) {
    absl::StatusOr<std::string> written = AdapterConfigForHf(good, l, 4, std::nullopt);
    ASSERT_TRUE(written.ok()) << written.status();
    std::string source;
    absl::StatusOr<std::optional<LoraLayout>> read = LayoutFromAdapterConfig(*written, &source);
    ASSERT_TRUE(read.ok()) << read.status();
    if (l != LoraLayout::kPerExpert) EXPECT_EQ(read->value(), l);
  }
}

TEST_F(CheckpointConvert, AdapterWithoutConfigNeedsLoraAlpha) {
  const std::string native = dir_ + "/native";
  ASSERT_TRUE(ConvertCheckpoint(Direction::kFromHf, Fx("peft-lora"), native, opts_, {}).ok());
  std::remove((native + "/adapter_config.json").c_str());
  auto s = ConvertCheckpoint(Direction::kToHf, native, dir_ + "/hf", opts_, {});
  EXPECT_THAT(s.status(), StatusIs(absl::StatusCode::kInvalidArgument, "--lora-alpha"));
  EXPECT_FALSE(Exists(dir_ + "/hf"));
  CheckpointConvertOptions c;
  c.lora_alpha = 16;
  ASSERT_TRUE(ConvertCheckpoint(Direction::kToHf, native, dir_ + "/hf", opts_, c).ok());
  auto cfg = nlohmann::json::parse(Slurp(dir_ + "/hf/adapter_config.json"));
  EXPECT_EQ(cfg["r"], 4);
  EXPECT_EQ(cfg["lora_alpha"], 16.0);
  EXPECT_EQ(cfg["peft_version"], "0.19.1");
}

TEST_F(CheckpointConvert, EpSliceMetadataInEveryShard) {
  ConvertOptions o = opts_;
  o.ep_size = 3;
  o.ep_rank = 2;
  CheckpointConvertOptions c;
  c.max_shard_bytes = 20000;
  const std::string out = dir_ + "/ep";
  auto s = ConvertCheckpoint(Direction::kFromHf, Fx("hf-bf16-sharded"), out, o, c);
  ASSERT_TRUE(s.ok()) << s.status();
  auto ckpt = *SafetensorsCheckpoint::Open(out);
  ASSERT_GT(ckpt.shards().size(), 1u);
  for (size_t i = 0; i < ckpt.shards().size(); ++i) {
    auto f = *ckpt.OpenShard(i);
    EXPECT_EQ(f->metadata().at("moe_adapter.expert_range"), "6:8");  // E=8, W=3: rank 2 owns [6, 8)
  }
}

TEST_F(CheckpointConvert, PeakMemoryIsIncompleteGroupsNotTheCheckpoint) {
  auto s = ConvertCheckpoint(Direction::kFromHf, Fx("hf-bf16-sharded"), dir_ + "/out", opts_, {});
  ASSERT_TRUE(s.ok());
  const size_t one_layer = 8 * 32 * 48 * 2 * 2;  // gate_and_up + down of one layer, bf16
  EXPECT_GT(s->peak_held_bytes, 0u);
  EXPECT_LE(s->peak_held_bytes, one_layer);
  EXPECT_LT(s->peak_held_bytes, s->bytes_in / 2);
}

}  // namespace
}  // namespace moe_adapter::testing
