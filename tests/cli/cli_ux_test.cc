// The CLI as a user meets it (issue 11, part 4), through the real binary:
// --version, per-command --help, one-line "did you mean" flag errors, JSON
// errors with --json, inspect of an adapter and of a file that is not
// safetensors, writing into an existing empty directory, and `health`'s exit
// codes against a real server (unreachable 2, NOT_SERVING while draining 4,
// RPC failure 3, invalid arguments 1).
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "moe_adapter/client.h"
#include "nlohmann/json.hpp"
#include "tests/server/server_test_util.h"
#include "tests/testutil/tensor_testutil.h"

namespace moe_adapter::testing {
namespace {

using server_testing::HttpGet;
using server_testing::ServerProcess;
using server_testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;

struct CliRun {
  int code;
  std::string out, err;
};

std::string Q(const std::string& s) { return "'" + s + "'"; }

std::string Slurp(const std::string& p) {
  std::ifstream f(p);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

CliRun Cli(const std::vector<std::string>& args) {
  static int n = 0;
  const std::string base = ::testing::TempDir() + "/cli_ux_" + std::to_string(getpid()) + "_" + std::to_string(n++);
  std::vector<std::string> q;
  for (const auto& a : args) q.push_back(Q(a));
  const int st = std::system(absl::StrCat(Q(MOE_CLI_PATH), " ", absl::StrJoin(q, " "), " >", base, ".out 2>", base, ".err").c_str());
  CliRun r{WIFEXITED(st) ? WEXITSTATUS(st) : 128, Slurp(base + ".out"), Slurp(base + ".err")};
  std::remove((base + ".out").c_str());
  std::remove((base + ".err").c_str());
  return r;
}

std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> out;
  const std::string listing = absl::StrCat("ls -A ", Q(dir), " > ", dir, ".ls");
  if (std::system(listing.c_str()) != 0) return out;
  for (absl::string_view line : absl::StrSplit(Slurp(dir + ".ls"), '\n', absl::SkipEmpty())) out.emplace_back(line);
  std::remove((dir + ".ls").c_str());
  return out;
}

std::string Fx(const std::string& rel) { return DataDir() + "/tiny-qwen3-moe/" + rel; }

TEST(CliUx, VersionIsTheProjectVersion) {
  for (const char* flag : {"--version", "version"}) {
    CliRun r = Cli({flag});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, absl::StrCat("moe-adapter ", MOE_PROJECT_VERSION, "\n"));
  }
  CliRun j = Cli({"version", "--json"});
  EXPECT_EQ(nlohmann::json::parse(j.out)["version"], MOE_PROJECT_VERSION);
}

TEST(CliUx, EachCommandsHelpShowsItsOwnFlags) {
  CliRun top = Cli({"--help"});
  EXPECT_EQ(top.code, 0);
  EXPECT_THAT(top.out, HasSubstr("COMMAND --help"));
  EXPECT_THAT(top.out, Not(HasSubstr("--max-shard-size"))) << "flags belong to the commands' help";

  CliRun to_hf = Cli({"to-hf", "--help"});
  EXPECT_EQ(to_hf.code, 0);
  EXPECT_THAT(to_hf.out, HasSubstr("moe-adapter to-hf"));
  EXPECT_THAT(to_hf.out, HasSubstr("--max-shard-size"));
  EXPECT_THAT(to_hf.out, Not(HasSubstr("--service")));

  CliRun inspect = Cli({"inspect", "--help"});
  EXPECT_EQ(inspect.code, 0);
  EXPECT_THAT(inspect.out, HasSubstr("--adapter-config"));
  EXPECT_THAT(inspect.out, Not(HasSubstr("--max-shard-size")));
  EXPECT_THAT(inspect.out, Not(HasSubstr("--server")));

  CliRun health = Cli({"health", "--help"});
  EXPECT_EQ(health.code, 0);
  EXPECT_THAT(health.out, HasSubstr("--server"));
  EXPECT_THAT(health.out, HasSubstr("4  the server answered NOT_SERVING"));
  EXPECT_THAT(health.out, Not(HasSubstr("--input")));
  EXPECT_EQ(Cli({"help", "inspect"}).out, inspect.out);
}

TEST(CliUx, UnknownFlagIsOneLineWithTheClosestFlag) {
  CliRun r = Cli({"to-hf", "--input", "in", "--ouput", "out"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "moe-adapter: unknown flag --ouput; did you mean --output? (moe-adapter to-hf --help)\n");
  EXPECT_EQ(r.out, "");
  CliRun far = Cli({"inspect", "x", "--frobnicate"});
  EXPECT_EQ(far.code, 2);
  EXPECT_EQ(far.err, "moe-adapter: unknown flag --frobnicate (moe-adapter inspect --help)\n") << "no wild guess";
  CliRun prefix = Cli({"from-hf", "--overwr"});
  EXPECT_THAT(prefix.err, HasSubstr("did you mean --overwrite?"));
  CliRun cmd = Cli({"form-hf"});
  EXPECT_EQ(cmd.code, 2);
  EXPECT_THAT(cmd.err, HasSubstr("unknown command \"form-hf\"; did you mean from-hf?"));
  EXPECT_EQ(std::count(cmd.err.begin(), cmd.err.end(), '\n'), 1);
}

TEST(CliUx, JsonErrorsAreJsonOnStdout) {
  TempDir dir;
  CliRun missing = Cli({"to-hf", "--input", dir.path() + "/nope", "--output", dir.path() + "/out", "--json"});
  EXPECT_EQ(missing.code, 1);
  nlohmann::json j = nlohmann::json::parse(missing.out);
  EXPECT_EQ(j["error"]["code"], "NOT_FOUND");
  EXPECT_THAT(j["error"]["message"].get<std::string>(), HasSubstr("nope"));
  EXPECT_EQ(missing.err, "");

  CliRun usage = Cli({"from-hf", "--ouput", "x", "--json"});
  EXPECT_EQ(usage.code, 2);
  j = nlohmann::json::parse(usage.out);
  EXPECT_EQ(j["error"]["code"], "USAGE");
  EXPECT_EQ(j["error"]["message"], "unknown flag --ouput; did you mean --output?");

  // A long, non-UTF-8 path: still one valid JSON object, the message bounded.
  const std::string odd = dir.path() + "/" + std::string(3000, 'x') + "\xff";
  CliRun bounded = Cli({"inspect", odd, "--json"});
  EXPECT_EQ(bounded.code, 1);
  j = nlohmann::json::parse(bounded.out);
  EXPECT_LE(j["error"]["message"].get<std::string>().size(), 2100u);

  CliRun bad = Cli({"inspect", DataDir() + "/tiny-qwen3-moe/FIXTURES.md", "--json"});
  EXPECT_EQ(bad.code, 1);
  EXPECT_EQ(nlohmann::json::parse(bad.out)["error"]["code"], "INVALID_ARGUMENT");
}

TEST(CliUx, InspectAnAdapterShowsRankAlphaTargetsLayoutAndGeometry) {
  CliRun r = Cli({"inspect", Fx("peft-lora"), "--config", Fx("hf-fp32/config.json")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("lora layout:  peft-v0.19"));
  EXPECT_THAT(r.out, HasSubstr("lora rank:    4"));
  EXPECT_THAT(r.out, HasSubstr("lora alpha:   8 (scale alpha/r = 2)"));
  EXPECT_THAT(r.out, HasSubstr("parameters: mlp.experts.gate_up_proj, mlp.experts.down_proj"));
  EXPECT_THAT(r.out, HasSubstr("modules: v_proj, q_proj"));
  EXPECT_THAT(r.out, HasSubstr("geometry:     E=8 H=32 I=16 (from " + Fx("hf-fp32/config.json") + ")"));
  EXPECT_THAT(r.out, HasSubstr("dtypes:       20 F32"));
  EXPECT_THAT(r.out, Not(HasSubstr("{"))) << "readable, not a JSON dump";

  CliRun j = Cli({"inspect", Fx("peft-lora"), "--config", Fx("hf-fp32/config.json"), "--json"});
  ASSERT_EQ(j.code, 0) << j.err;
  nlohmann::json v = nlohmann::json::parse(j.out);
  EXPECT_EQ(v["adapter"]["r"], 4);
  EXPECT_EQ(v["adapter"]["lora_alpha"], 8);
  EXPECT_EQ(v["adapter"]["target_parameters"].size(), 2u);
  EXPECT_EQ(v["num_experts"], 8);
  EXPECT_EQ(v["dtypes"]["F32"], 20);

  CliRun plain = Cli({"inspect", Fx("hf-bf16-sharded")});
  EXPECT_THAT(plain.out, HasSubstr("dtypes:       80 BF16"));
  EXPECT_THAT(plain.out, Not(HasSubstr("lora")));
}

TEST(CliUx, InspectSaysPlainlyWhenAFileIsNotSafetensors) {
  TempDir dir;
  const std::string text = dir.path() + "/notes.safetensors";
  server_testing::WriteFileOrDie(text, "# just some notes, not tensors\n");
  CliRun r = Cli({"inspect", text});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr(text + " is not a safetensors file: its first 8 bytes give a header length of"));
  const std::string tiny = dir.path() + "/tiny.safetensors";
  server_testing::WriteFileOrDie(tiny, "abc");
  EXPECT_THAT(Cli({"inspect", tiny}).err, HasSubstr("is not a safetensors file: it is 3 bytes long"));
}

TEST(CliUx, AnExistingEmptyDirectoryIsWrittenIntoWithoutOverwrite) {
  TempDir dir;
  const std::string out = dir.path() + "/native";
  ASSERT_EQ(::mkdir(out.c_str(), 0755), 0);
  CliRun r = Cli({"from-hf", "--input", Fx("hf-bf16-sharded"), "--output", out, "--quiet"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(Entries(out), ::testing::Contains("config.json"));
  for (const std::string& e : Entries(out)) EXPECT_NE(e[0], '.') << "staging left behind: " << e;
  EXPECT_THAT(Entries(dir.path()), ::testing::ElementsAre("native")) << "nothing written beside it";
  CliRun back = Cli({"to-hf", "--input", out, "--output", dir.path() + "/hf", "--quiet"});
  ASSERT_EQ(back.code, 0) << back.err;
  EXPECT_THAT(DiffAsMaps(LoadCheckpoint(dir.path() + "/hf"), LoadCheckpoint(Fx("hf-bf16-sharded"))), ::testing::IsEmpty());

  // Not empty: refused, untouched.
  CliRun again = Cli({"from-hf", "--input", Fx("hf-bf16-sharded"), "--output", out, "--quiet"});
  EXPECT_EQ(again.code, 1);
  EXPECT_THAT(again.err, HasSubstr("--overwrite"));

  // A failed conversion leaves the empty directory empty.
  const std::string empty = dir.path() + "/empty";
  ASSERT_EQ(::mkdir(empty.c_str(), 0755), 0);
  CliRun bad = Cli({"from-hf", "--input", Fx("hf-bf16-sharded"), "--output", empty, "--num-experts", "3",
                    "--hidden-size", "32", "--moe-intermediate-size", "16", "--quiet"});
  EXPECT_EQ(bad.code, 1);
  EXPECT_THAT(Entries(empty), ::testing::IsEmpty());
}

// Active conversion streams, from the server's /metrics.
int ActiveStreams(int metrics_port) {
  auto body = HttpGet(metrics_port, "/metrics");
  std::smatch m;
  if (!body.ok() || !std::regex_search(*body, m, std::regex(R"(\nmoe_adapter_active_streams (\d+))"))) return -1;
  return std::stoi(m[1]);
}

TEST(CliUx, HealthExitCodesFollowGrpcHealthProbe) {
  // 2: nothing listens.
  CliRun down = Cli({"health", "--server", "127.0.0.1:1", "--timeout", "2"});
  EXPECT_EQ(down.code, 2) << down.out << down.err;
  EXPECT_THAT(down.out, HasSubstr("UNREACHABLE"));
  // 1: invalid arguments, also an unreadable TLS file.
  EXPECT_EQ(Cli({"health", "--servr", "127.0.0.1:1"}).code, 1);
  EXPECT_EQ(Cli({"health"}).code, 1);
  EXPECT_EQ(Cli({"health", "--server", "127.0.0.1:1", "--tls-ca", "/nonexistent/ca.pem"}).code, 1);

  ServerProcess s(MOE_SERVER_PATH, {"--shutdown-grace", "60s"}, "127.0.0.1:0", "127.0.0.1:0");
  const int port = s.Port();
  ASSERT_GT(port, 0);
  const std::string addr = absl::StrCat("127.0.0.1:", port);
  CliRun up = Cli({"health", "--server", addr});
  EXPECT_EQ(up.code, 0) << up.out << up.err;
  EXPECT_THAT(up.out, HasSubstr(": SERVING"));
  // 3: the server answers the RPC with an error (NOT_FOUND for an unknown service).
  CliRun unknown = Cli({"health", "--server", addr, "--service", "no.such.Service"});
  EXPECT_EQ(unknown.code, 3) << unknown.out;
  EXPECT_EQ(Cli({"health", "--server", addr, "--service", "moe_adapter.v1.MoeAdapter"}).code, 0);

  // 4: a stream in flight keeps the server draining after SIGTERM, answering
  // NOT_SERVING until the stream ends.
  ClientOptions co;
  co.target = addr;
  auto client = *RemoteClient::Connect(co);
  ConvertOptions o;
  o.geometry.num_experts = 4;
  o.geometry.hidden_size = 8;
  o.geometry.moe_intermediate_size = 6;
  auto session = client->Open(RemoteRpc::kToHf, o, [](NamedTensor) { return absl::OkStatus(); });
  ASSERT_TRUE(session.ok()) << session.status();
  TensorInfo info{"model.layers.0.mlp.experts.gate_up_proj", DType::kF32, {4, 8, 12}};
  ASSERT_TRUE((*session)->BeginTensor(info, 0).ok());
  ASSERT_TRUE((*session)->SendBytes(std::string(64, '\0').data(), 64).ok());
  for (int i = 0; i < 500 && ActiveStreams(s.MetricsPort()) != 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(ActiveStreams(s.MetricsPort()), 1);
  s.Signal(SIGTERM);
  CliRun draining{0, "", ""};
  for (int i = 0; i < 100 && draining.code == 0; ++i) {
    draining = Cli({"health", "--server", addr});
    if (draining.code == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(draining.code, 4) << draining.out << draining.err;
  EXPECT_THAT(draining.out, HasSubstr("NOT_SERVING"));
  CliRun as_json = Cli({"health", "--server", addr, "--json"});
  EXPECT_EQ(as_json.code, 4);
  EXPECT_EQ(nlohmann::json::parse(as_json.out)["status"], "NOT_SERVING");
  EXPECT_EQ(nlohmann::json::parse(as_json.out)["error"]["code"], "FAILED_PRECONDITION");
  (*session)->Cancel();
  EXPECT_EQ(s.Wait(std::chrono::seconds(30)), 0);
}

TEST(CliUx, HealthOfATlsServerWithoutTlsIsAConnectionFailure) {
  TempDir dir;
  auto certs = server_testing::MakeTestCerts(dir.path());
  ASSERT_TRUE(certs.ok()) << certs.status();
  ServerProcess s(MOE_SERVER_PATH, {"--tls-cert", certs->server_cert, "--tls-key", certs->server_key});
  const std::string addr = absl::StrCat("localhost:", s.Port());
  EXPECT_EQ(Cli({"health", "--server", addr, "--timeout", "3"}).code, 2) << "plaintext to a TLS port: no answer";
  CliRun tls = Cli({"health", "--server", addr, "--tls-ca", certs->ca});
  EXPECT_EQ(tls.code, 0) << tls.out << tls.err;
}

}  // namespace
}  // namespace moe_adapter::testing
