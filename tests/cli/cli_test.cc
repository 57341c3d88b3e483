// The moe-adapter binary end to end on real files: exit codes (spec §15.7),
// atomic output (nothing left behind on error), --overwrite, empty results,
// config.json geometry and EP metadata in the output header.
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/testutil/cli_runner.h"
#include "tests/testutil/tensor_testutil.h"

namespace moe_adapter::testing {
namespace {

using Result = CliResult;

Result Cli(const std::vector<std::string>& args) { return RunCli(MOE_CLI_PATH, args); }

bool Exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moe_cli_test_XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { std::system(("rm -rf " + ShellQuote(dir_)).c_str()); }
  std::string Golden(const std::string& f) { return DataDir() + "/golden/" + f; }
  std::vector<std::string> Geo() { return {"--num-experts", "4", "--hidden-size", "8", "--moe-intermediate-size", "6"}; }
  std::vector<std::string> Args(std::vector<std::string> a, const std::vector<std::string>& more) {
    a.insert(a.end(), more.begin(), more.end());
    return a;
  }
  std::string dir_;
};

TEST_F(CliTest, ToHfWritesTheReferenceOutput) {
  const std::string out = dir_ + "/out.safetensors";
  Result r = Cli(Args({"to-hf", "--input", Golden("full_to_hf_bfloat16.in.safetensors"), "--output", out}, Geo()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  TensorList got = LoadFile(out), want = LoadFile(Golden("full_to_hf_bfloat16.out.safetensors"));
  EXPECT_THAT(DiffAsMaps(got, want), ::testing::IsEmpty());
  EXPECT_EQ(Names(got), Names(want)) << "file order = emission order";
  EXPECT_THAT(ListDir(dir_), ::testing::ElementsAre("out.safetensors")) << "no temporary files left";
}

TEST_F(CliTest, ConversionErrorExitsOneAndLeavesNothing) {
  const std::string out = dir_ + "/out.safetensors";
  Result r = Cli(Args({"to-hf", "--input", Golden("quirk_to_hf_down_wrong_inter_passthrough.in.safetensors"),
                       "--output", out}, Geo()));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, ::testing::HasSubstr("down_projs"));
  EXPECT_THAT(r.err, ::testing::HasSubstr("got [4, 8, 6]"));
  EXPECT_THAT(ListDir(dir_), ::testing::IsEmpty()) << "no output and no temporary file";
}

TEST_F(CliTest, MissingExpertsFromHfExitsOne) {
  const std::string out = dir_ + "/out.safetensors";
  Result r = Cli(Args({"from-hf", "--input", Golden("err_from_hf_missing_expert.in.safetensors"), "--output", out}, Geo()));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, ::testing::HasSubstr("model.layers.1.mlp.experts.2.down_proj.weight"));
  EXPECT_FALSE(Exists(out));
}

TEST_F(CliTest, UsageErrorsExitTwo) {
  const std::string in = Golden("worked_to_hf.in.safetensors");
  const std::string out = dir_ + "/out.safetensors";
  EXPECT_EQ(Cli({"to-hf", "--input", in}).exit_code, 2);
  EXPECT_EQ(Cli(Args({"to-hf", "--input", in, "--output", out, "--frobnicate"}, Geo())).exit_code, 2);
  EXPECT_EQ(Cli({"to-hf", "--input", in, "--output", out, "--num-experts", "2"}).exit_code, 2);
  EXPECT_EQ(Cli(Args({"to-hf", "--input", in, "--output", out, "--lora-layout", "peft-v9"}, Geo())).exit_code, 2);
  EXPECT_EQ(Cli(Args({"to-hf", "--input", in, "--output", out, "--ep-rank", "x", "--ep-size", "2"}, Geo())).exit_code, 2);
  EXPECT_EQ(Cli({"convert"}).exit_code, 2);
  EXPECT_EQ(Cli({}).exit_code, 2);
  EXPECT_EQ(Cli({"--help"}).exit_code, 0);
  EXPECT_FALSE(Exists(out));
}

TEST_F(CliTest, ExistingOutputNeedsOverwrite) {
  const std::string out = dir_ + "/out.safetensors";
  { std::ofstream(out) << "keep me"; }
  std::vector<std::string> args = Args({"to-hf", "--input", Golden("worked_to_hf.in.safetensors"), "--output", out,
                                        "--num-experts", "2", "--hidden-size", "4", "--moe-intermediate-size", "3"}, {});
  Result r = Cli(args);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, ::testing::HasSubstr("--overwrite"));
  std::ifstream f(out);
  std::string kept((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(kept, "keep me");
  args.push_back("--overwrite");
  EXPECT_EQ(Cli(args).exit_code, 0);
  EXPECT_THAT(DiffAsMaps(LoadFile(out), LoadFile(Golden("worked_to_hf.out.safetensors"))), ::testing::IsEmpty());
}

TEST_F(CliTest, EverythingExcludedWritesAValidEmptyFile) {
  const std::string out = dir_ + "/out.safetensors";
  Result r = Cli(Args({"to-hf", "--input", Golden("full_to_hf_float32.in.safetensors"), "--output", out,
                       "--exclude-key-regex", ".*"}, Geo()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto f = SafetensorsFile::Open(out);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->num_tensors(), 0u);
}

TEST_F(CliTest, ConfigJsonGivesGeometryAndDtype) {
  const std::string fx = DataDir() + "/tiny-qwen3-moe/hf-fp32/";
  const std::string native = dir_ + "/native.safetensors", back = dir_ + "/back.safetensors";
  Result a = Cli({"from-hf", "--input", fx + "model.safetensors", "--output", native, "--config", fx + "config.json"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  Result b = Cli({"to-hf", "--input", native, "--output", back, "--config", fx + "config.json"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_THAT(DiffAsMaps(LoadFile(back), LoadFile(fx + "model.safetensors")), ::testing::IsEmpty());
  Result bad = Cli({"from-hf", "--input", fx + "model.safetensors", "--output", dir_ + "/x", "--config", dir_ + "/nope.json"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err, ::testing::HasSubstr("nope.json"));
}

TEST_F(CliTest, FamilyFlagSelectsTheModelFamily) {
  // Qwen3-Next renames its shared expert and keeps A_log/dt_bias in F32:
  // chosen by --family when no config.json names the family.
  const std::string dir = DataDir() + "/golden-families/qwen3_next/";
  const std::string out = dir_ + "/out.safetensors";
  const std::vector<std::string> geo = {"--num-experts", "4", "--hidden-size", "32", "--moe-intermediate-size", "16"};
  std::vector<std::string> args = {"from-hf", "--input", dir + "full_from_hf_float32.in.safetensors", "--output", out,
                                   "--family", "qwen3_next"};
  args.insert(args.end(), geo.begin(), geo.end());
  Result r = Cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(DiffAsMaps(LoadFile(out), LoadFile(dir + "full_from_hf_float32.out.safetensors")), ::testing::IsEmpty());
  args[6] = "mixtral";
  args[4] = dir_ + "/other.safetensors";
  Result bad = Cli(args);
  EXPECT_NE(bad.exit_code, 0) << bad.err;
  EXPECT_THAT(bad.err, ::testing::HasSubstr("unknown model family \"mixtral\""));
}

TEST_F(CliTest, AdapterConfigDecidesTheLayout) {
  const std::string fx = DataDir() + "/tiny-qwen3-moe/";
  const std::string native = dir_ + "/native.safetensors", back = dir_ + "/back.safetensors";
  Result a = Cli({"from-hf", "--input", fx + "peft-lora/adapter_model.safetensors", "--output", native, "--config",
                  fx + "hf-fp32/config.json", "--adapter-config", fx + "peft-lora/adapter_config.json"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  Result b = Cli({"to-hf", "--input", native, "--output", back, "--config", fx + "hf-fp32/config.json"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_THAT(DiffAsMaps(LoadFile(back), LoadFile(fx + "peft-lora/adapter_model.safetensors")), ::testing::IsEmpty());
}

TEST_F(CliTest, EpSliceIsReportedInTheOutputHeader) {
  const std::string out = dir_ + "/out.safetensors";
  Result r = Cli(Args({"from-hf", "--input", Golden("ep_from_hf_ep3_rank0.in.safetensors"), "--output", out,
                       "--ep-rank", "0", "--ep-size", "3"}, Geo()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto f = SafetensorsFile::Open(out);
  ASSERT_TRUE(f.ok());
  const auto& md = (*f)->metadata();
  EXPECT_EQ(md.at("moe_adapter.num_experts"), "4");
  EXPECT_EQ(md.at("moe_adapter.expert_range"), "0:2");
  EXPECT_EQ(md.at("moe_adapter.ep_size"), "3");
}

TEST_F(CliTest, MalformedFileNamesTheProblem) {
  const std::string in = dir_ + "/bad.safetensors";
  { std::ofstream(in) << std::string("\x05\x00\x00\x00\x00\x00\x00\x00{not", 12); }
  Result r = Cli(Args({"to-hf", "--input", in, "--output", dir_ + "/out.safetensors"}, Geo()));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, ::testing::HasSubstr("bad.safetensors"));
  EXPECT_FALSE(Exists(dir_ + "/out.safetensors"));
}

}  // namespace
}  // namespace moe_adapter::testing
