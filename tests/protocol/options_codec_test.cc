// The options codec (protocol/options_codec.h): geometry precedence on the
// wire is the core's one rule (ApplyGeometrySizes): config.json's geometry,
// each size set in the message in its place; the options a client sends come
// back as they were.
#include "protocol/options_codec.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace moe_adapter::wire {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kChunk = 1u << 20;

// A Qwen3-MoE config.json: 8 experts, H 32, I 16, layer 1 dense of 3.
const char* kConfig = R"({"model_type": "qwen3_moe", "num_experts": 8, "hidden_size": 32,
  "moe_intermediate_size": 16, "num_hidden_layers": 3, "mlp_only_layers": [1], "decoder_sparse_step": 1})";

TEST(OptionsCodecTest, ConfigJsonAloneGivesItsGeometry) {
  v1::StreamOptions w;
  w.set_config_json(kConfig);
  absl::StatusOr<StreamConfig> c = StreamConfigFromWire(w, kChunk, kChunk);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->options.geometry.num_experts, 8);
  EXPECT_EQ(c->options.geometry.hidden_size, 32);
  EXPECT_EQ(c->options.geometry.moe_intermediate_size, 16);
  EXPECT_EQ(c->options.geometry.num_hidden_layers, 3);
}

TEST(OptionsCodecTest, SizesSetInTheMessageOverrideConfigJsonOneByOne) {
  v1::StreamOptions w;
  w.set_config_json(kConfig);
  w.mutable_geometry()->set_num_experts(4);  // an EP slice's view, say; H and I left to the config
  absl::StatusOr<StreamConfig> c = StreamConfigFromWire(w, kChunk, kChunk);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->options.geometry.num_experts, 4);
  EXPECT_EQ(c->options.geometry.hidden_size, 32);
  EXPECT_EQ(c->options.geometry.moe_intermediate_size, 16);
  EXPECT_EQ(c->options.geometry.mlp_only_layers, std::vector<int64_t>{1});  // the rest stays the config's
}

TEST(OptionsCodecTest, ExplicitGeometryWithoutConfigRoundTrips) {
  ConvertOptions o;
  o.geometry.num_experts = 6;
  o.geometry.hidden_size = 8;
  o.geometry.moe_intermediate_size = 4;
  o.geometry.num_hidden_layers = 2;
  o.geometry.mlp_only_layers = {0};
  absl::StatusOr<StreamConfig> c = StreamConfigFromWire(StreamOptionsToWire(o, kChunk), kChunk, kChunk);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->options.geometry.num_experts, 6);
  EXPECT_EQ(c->options.geometry.hidden_size, 8);
  EXPECT_EQ(c->options.geometry.moe_intermediate_size, 4);
  EXPECT_EQ(c->options.geometry.num_hidden_layers, 2);
  EXPECT_EQ(c->options.geometry.mlp_only_layers, std::vector<int64_t>{0});
}

TEST(OptionsCodecTest, APartialTrioWithoutConfigIsRefusedByValidation) {
  v1::StreamOptions w;
  w.mutable_geometry()->set_num_experts(4);
  absl::StatusOr<StreamConfig> c = StreamConfigFromWire(w, kChunk, kChunk);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(c.status().message(), HasSubstr("options: "));
}

}  // namespace
}  // namespace moe_adapter::wire
