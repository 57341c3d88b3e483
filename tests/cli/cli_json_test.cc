// The moe-adapter binary on hostile JSON files: a config.json,
// adapter_config.json, model.safetensors.index.json or safetensors header
// holding an array nested 200,000 deep (which used to kill the CLI with
// SIGSEGV) is refused with one short error line, exit 1, and nothing written.
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "tests/testutil/cli_runner.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/testutil/tensor_testutil.h"

namespace moe_adapter::testing {
namespace {

using ::testing::HasSubstr;

constexpr size_t kDeep = 200'000;

std::string Nested(size_t n) { return std::string(n, '[') + std::string(n, ']'); }

using Result = CliResult;

Result Cli(const std::vector<std::string>& args) { return RunCli(MOE_CLI_PATH, args); }

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string Le64(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out;
}

// A valid safetensors file with one F32 [1] tensor, `extra` appended to its entry.
std::string OneTensor(const std::string& extra = "") {
  const std::string header = absl::StrCat(
      R"({"model.norm.weight":{"dtype":"F32","shape":[1],"data_offsets":[0,4])", extra, "}}");
  return Le64(header.size()) + header + std::string(4, '\0');
}

class CliJsonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moe_cli_json_test_XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    ::mkdir(In().c_str(), 0755);
  }
  void TearDown() override { std::system(("rm -rf " + ShellQuote(dir_)).c_str()); }

  std::string In() const { return dir_ + "/in"; }
  std::string Out() const { return dir_ + "/out"; }
  std::vector<std::string> Geo() const {
    return {"--num-experts", "4", "--hidden-size", "8", "--moe-intermediate-size", "6"};
  }

  // The refusal every case must get: exit `code`, one line on stderr naming
  // `file`, short, saying why; no output and nothing new beside the input.
  void ExpectRefused(const Result& r, const std::string& file, int code = 1) {
    EXPECT_EQ(r.exit_code, code) << r.err.substr(0, 2000);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err.substr(0, 2000);
    EXPECT_LT(r.err.size(), 1024u) << r.err.substr(0, 2000);
    EXPECT_THAT(r.err, HasSubstr(file));
    EXPECT_THAT(r.err, HasSubstr("nested deeper than 64 levels"));
    EXPECT_THAT(ListDir(dir_), ::testing::ElementsAre("in")) << "no output, no temporary";
  }

  std::string dir_;
};

TEST_F(CliJsonTest, DeepConfigJson) {
  WriteFile(In() + "/model.safetensors", OneTensor());
  WriteFile(In() + "/config.json",
            R"({"num_experts":)" + Nested(kDeep) + R"(,"hidden_size":8,"moe_intermediate_size":6})");
  ExpectRefused(Cli({"to-hf", "--input", In(), "--output", Out()}), "config.json");
  ExpectRefused(Cli({"from-hf", "--input", In() + "/model.safetensors", "--output", Out(), "--config",
                     In() + "/config.json"}),
                "config.json");
  ExpectRefused(Cli({"inspect", In()}), "config.json");
}

TEST_F(CliJsonTest, DeepAdapterConfigJson) {
  WriteFile(In() + "/adapter_model.safetensors", OneTensor());
  WriteFile(In() + "/adapter_config.json", R"({"peft_version":)" + Nested(kDeep) + "}");
  std::vector<std::string> args = {"to-hf", "--input", In(), "--output", Out()};
  for (const std::string& g : Geo()) args.push_back(g);
  // The CLI checks the adapter config together with the option flags and
  // reports a bad one as a usage error (exit 2).
  ExpectRefused(Cli(args), "adapter_config.json", 2);
}

TEST_F(CliJsonTest, DeepIndexJson) {
  WriteFile(In() + "/model-00001-of-00001.safetensors", OneTensor());
  WriteFile(In() + "/model.safetensors.index.json",
            R"({"metadata":{"total_size":4,"x":)" + Nested(kDeep) +
                R"(},"weight_map":{"model.norm.weight":"model-00001-of-00001.safetensors"}})");
  std::vector<std::string> args = {"to-hf", "--input", In(), "--output", Out()};
  for (const std::string& g : Geo()) args.push_back(g);
  ExpectRefused(Cli(args), "model.safetensors.index.json");
  ExpectRefused(Cli({"inspect", In()}), "model.safetensors.index.json");
}

TEST_F(CliJsonTest, DeepSafetensorsHeader) {
  const std::string file = In() + "/model.safetensors";
  WriteFile(file, OneTensor(R"(,"extra":)" + Nested(kDeep)));
  std::vector<std::string> args = {"to-hf", "--input", file, "--output", Out() + ".safetensors"};
  for (const std::string& g : Geo()) args.push_back(g);
  ExpectRefused(Cli(args), "model.safetensors");
  ExpectRefused(Cli({"inspect", file}), "model.safetensors");
}

}  // namespace
}  // namespace moe_adapter::testing
