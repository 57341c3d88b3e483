// The real moe-adapter-server on a Unix socket (issue 15, item 1): TCP and
// unix: at once, the socket file's mode, a stale socket file replaced, a live
// one and a path that is not a socket refused (and left alone), the file
// removed by the SIGTERM drain; and the CLI through `--server unix:///...`.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "moe_adapter/client.h"
#include "tests/server/server_test_util.h"

namespace moe_adapter::server_testing {
namespace {

using ::testing::HasSubstr;

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0;
}

// A socket file whose listener is gone: what a killed server leaves.
void MakeStaleSocket(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << std::strerror(errno);
  ASSERT_EQ(::listen(fd, 1), 0);
  ::close(fd);
  ASSERT_TRUE(Exists(path));
}

std::unique_ptr<RemoteClient> ClientFor(const std::string& target) {
  ClientOptions co;
  co.target = target;
  co.deadline = absl::Seconds(20);
  return *RemoteClient::Connect(co);
}

// The golden ToHF and FromHF cases through `target`, as the core converts them.
void ExpectGoldenCases(const std::string& target) {
  auto client = ClientFor(target);
  ASSERT_TRUE(client->Health().ok()) << target;
  for (const char* name : {"full_to_hf_bfloat16", "full_from_hf_float32"}) {
    const json c = CaseNamed(name);
    const TensorList in = LoadSafetensors(GoldenDir() + "/" + c["in_file"].get<std::string>());
    const bool to_hf = c["op"] == "to_hf";
    Result want = to_hf ? CoreToHf(OptionsFor(c), in) : CoreFromHf(OptionsFor(c), in);
    Result got = Remote(*client, to_hf ? RemoteRpc::kToHf : RemoteRpc::kFromHf, OptionsFor(c), in);
    ASSERT_TRUE(got.status.ok()) << target << ": " << got.status;
    EXPECT_EQ(Diff(got.outputs, want.outputs, to_hf), "") << target << " " << name;
  }
}

class UnixSocketTest : public ::testing::Test {
 protected:
  std::string Sock() const { return dir_.path() + "/adapter.sock"; }
  std::string Target() const { return "unix://" + Sock(); }  // the path is absolute: unix:///tmp/...
  TempDir dir_;
};

TEST_F(UnixSocketTest, ServesTcpAndUnixAtOnce) {
  ServerProcess p(MOE_SERVER_PATH, {"--listen", Target()});
  const int port = p.Port();
  ASSERT_NE(port, 0) << ReadFileOrDie(p.log());
  ASSERT_TRUE(p.Listening()) << ReadFileOrDie(p.log());
  const std::string log = ReadFileOrDie(p.log());
  EXPECT_THAT(log, HasSubstr(absl::StrCat("listening on 127.0.0.1:", port, "\n")));
  EXPECT_THAT(log, HasSubstr("listening on " + Target() + "\n"));
  EXPECT_EQ(ModeOf(Sock()), 0660u) << "the default --unix-socket-mode, whatever the umask";
  ExpectGoldenCases(absl::StrCat("127.0.0.1:", port));
  ExpectGoldenCases(Target());
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(std::chrono::seconds(20)), 0) << ReadFileOrDie(p.log());
}

TEST_F(UnixSocketTest, SocketModeIsApplied) {
  ServerProcess p(MOE_SERVER_PATH, {"--unix-socket-mode", "0606"}, Target());
  ASSERT_TRUE(p.Listening()) << ReadFileOrDie(p.log());
  EXPECT_EQ(ModeOf(Sock()), 0606u);
  EXPECT_TRUE(ClientFor(Target())->Health().ok());
}

TEST_F(UnixSocketTest, StaleSocketFileIsReplaced) {
  MakeStaleSocket(Sock());
  ServerProcess p(MOE_SERVER_PATH, {}, Target());
  ASSERT_TRUE(p.Listening()) << ReadFileOrDie(p.log());
  EXPECT_TRUE(ClientFor(Target())->Health().ok());
}

// gRPC alone would unlink the live socket and bind a new one, leaving the
// first server unreachable for new clients.
TEST_F(UnixSocketTest, LiveSocketIsRefused) {
  ServerProcess first(MOE_SERVER_PATH, {}, Target());
  ASSERT_TRUE(first.Listening()) << ReadFileOrDie(first.log());
  struct stat before;
  ASSERT_EQ(::lstat(Sock().c_str(), &before), 0);
  ServerProcess second(MOE_SERVER_PATH, {}, Target());
  EXPECT_EQ(second.Wait(std::chrono::seconds(20)), 1);
  EXPECT_THAT(ReadFileOrDie(second.log()), HasSubstr("address in use"));
  struct stat after;
  ASSERT_EQ(::lstat(Sock().c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino) << "the first server's socket file was replaced";
  EXPECT_TRUE(ClientFor(Target())->Health().ok());
}

TEST_F(UnixSocketTest, PathThatIsNotASocketIsRefusedAndLeftAlone) {
  WriteFileOrDie(Sock(), "precious\n");
  ServerProcess file(MOE_SERVER_PATH, {}, Target());
  EXPECT_EQ(file.Wait(std::chrono::seconds(20)), 1);
  EXPECT_THAT(ReadFileOrDie(file.log()), HasSubstr("is not a socket"));
  EXPECT_EQ(ReadFileOrDie(Sock()), "precious\n");

  // A symlink, even to a stale socket, is not ours to replace either.
  const std::string stale = dir_.path() + "/stale.sock", link = dir_.path() + "/link.sock";
  MakeStaleSocket(stale);
  ASSERT_EQ(::symlink(stale.c_str(), link.c_str()), 0);
  ServerProcess via_link(MOE_SERVER_PATH, {}, "unix://" + link);
  EXPECT_EQ(via_link.Wait(std::chrono::seconds(20)), 1);
  EXPECT_THAT(ReadFileOrDie(via_link.log()), HasSubstr("is not a socket"));
  struct stat st;
  EXPECT_TRUE(::lstat(link.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) << "the symlink was replaced";
  EXPECT_TRUE(Exists(stale));
}

TEST_F(UnixSocketTest, SigtermDrainRemovesTheSocketFile) {
  ServerProcess p(MOE_SERVER_PATH, {}, Target());
  ASSERT_TRUE(p.Listening()) << ReadFileOrDie(p.log());
  ASSERT_TRUE(Exists(Sock()));
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(std::chrono::seconds(20)), 0) << ReadFileOrDie(p.log());
  EXPECT_THAT(ReadFileOrDie(p.log()), HasSubstr("SIGTERM: draining"));
  EXPECT_FALSE(Exists(Sock()));
}

// Linux's abstract namespace: no file, so nothing to claim, chmod or remove.
TEST_F(UnixSocketTest, AbstractAddressServes) {
  const std::string addr = absl::StrCat("unix-abstract:moe-adapter-test-", getpid());
  ServerProcess p(MOE_SERVER_PATH, {}, addr);
  ASSERT_TRUE(p.Listening()) << ReadFileOrDie(p.log());
  EXPECT_TRUE(ClientFor(addr)->Health().ok());
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(std::chrono::seconds(20)), 0) << ReadFileOrDie(p.log());
}

struct CliRun {
  int code;
  std::string out, err;
};

CliRun Cli(const std::string& dir, const std::vector<std::string>& args) {
  std::vector<std::string> q;
  for (const std::string& a : args) q.push_back("'" + a + "'");
  const int st = std::system(
      absl::StrCat("'", MOE_CLI_PATH, "' ", absl::StrJoin(q, " "), " >'", dir, "/cli.out' 2>'", dir, "/cli.err'").c_str());
  return {WIFEXITED(st) ? WEXITSTATUS(st) : 128, ReadFileOrDie(dir + "/cli.out"), ReadFileOrDie(dir + "/cli.err")};
}

TEST_F(UnixSocketTest, CliConvertsAndChecksHealthOverUnix) {
  ServerProcess p(MOE_SERVER_PATH, {}, Target());
  ASSERT_TRUE(p.Listening()) << ReadFileOrDie(p.log());
  const std::string in = DataDir() + "/tiny-qwen3-moe/hf-fp32/model.safetensors";
  const std::string config = DataDir() + "/tiny-qwen3-moe/hf-fp32/config.json";
  const std::string d = dir_.path();
  CliRun local = Cli(d, {"from-hf", "--input", in, "--config", config, "--output", d + "/local.safetensors"});
  ASSERT_EQ(local.code, 0) << local.err;
  CliRun remote = Cli(d, {"from-hf", "--input", in, "--config", config, "--output", d + "/remote.safetensors",
                          "--server", Target()});
  ASSERT_EQ(remote.code, 0) << remote.err;
  EXPECT_TRUE(ReadFileOrDie(d + "/local.safetensors") == ReadFileOrDie(d + "/remote.safetensors"))
      << "from-hf through unix: differs from the embedded run";
  CliRun back = Cli(d, {"to-hf", "--input", d + "/remote.safetensors", "--config", config, "--output",
                        d + "/hf.safetensors", "--server", Target()});
  ASSERT_EQ(back.code, 0) << back.err;
  CliRun back_local = Cli(d, {"to-hf", "--input", d + "/local.safetensors", "--config", config, "--output",
                              d + "/hf-local.safetensors"});
  ASSERT_EQ(back_local.code, 0) << back_local.err;
  EXPECT_TRUE(ReadFileOrDie(d + "/hf.safetensors") == ReadFileOrDie(d + "/hf-local.safetensors"))
      << "to-hf through unix: differs from the embedded run";

  CliRun health = Cli(d, {"health", "--server", Target()});
  EXPECT_EQ(health.code, 0) << health.err;
  EXPECT_THAT(health.out, HasSubstr(Target() + ": SERVING"));
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(std::chrono::seconds(20)), 0) << ReadFileOrDie(p.log());
  CliRun gone = Cli(d, {"health", "--server", Target(), "--timeout", "2"});
  EXPECT_EQ(gone.code, 2) << gone.out;  // nothing answered (health's exit codes are grpc_health_probe's)
  EXPECT_THAT(gone.out + gone.err, HasSubstr("No such file or directory"));
}

}  // namespace
}  // namespace moe_adapter::server_testing
