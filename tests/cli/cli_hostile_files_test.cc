// The moe-adapter binary on hostile files and signals (issue 10, defects
// 7-9): --overwrite never follows a symbolic link and refuses to remove a
// directory that is no output of this tool; SIGINT/SIGTERM mid-run remove the
// temporary output and exit 130/143; temporaries of killed runs are swept;
// FIFOs and devices given as files are refused instead of hanging or being
// reported missing. Real binary, real files, real signals.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

#include "tests/testutil/cli_runner.h"
#include "absl/strings/str_cat.h"
#include "core/safetensors_writer.h"
#include "tests/testutil/tensor_testutil.h"

namespace moe_adapter::testing {
namespace {

using ::testing::HasSubstr;

struct Result {
  bool exited = false;  // false: killed by a signal, or by us at the deadline
  int code = -1;        // exit status, or the signal number when !exited
  std::string err;
};

// A running CLI process; its stderr goes to a file of its own.
class Cli {
 public:
  explicit Cli(const std::vector<std::string>& args) {
    static int counter = 0;
    errfile_ = absl::StrCat(::testing::TempDir(), "/hostile_stderr_", ::getpid(), "_", counter++);
    std::vector<std::string> argv = {MOE_CLI_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      const int err = ::open(errfile_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, STDIN_FILENO);
      ::dup2(null, STDOUT_FILENO);
      ::dup2(err, STDERR_FILENO);
      std::vector<char*> cargv;
      for (std::string& a : argv) cargv.push_back(a.data());
      cargv.push_back(nullptr);
      ::execv(cargv[0], cargv.data());
      ::_exit(127);
    }
  }
  ~Cli() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    std::remove(errfile_.c_str());
  }
  pid_t pid() const { return pid_; }
  bool Running() {
    int status;
    if (reaped_) return false;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped_ = true;
      status_ = status;
      return false;
    }
    return true;
  }
  // Waits at most `seconds`, then kills it (a hang is a failure, not a
  // test that never ends).
  Result Wait(double seconds = 30) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (Running() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    Result r;
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status_, 0);
      reaped_ = true;
      r.err = "(killed at the test's deadline: the CLI hung) ";
    }
    r.exited = WIFEXITED(status_);
    r.code = r.exited ? WEXITSTATUS(status_) : WTERMSIG(status_);
    std::ifstream f(errfile_);
    r.err += std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return r;
  }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
  std::string errfile_;
};

Result RunCli(const std::vector<std::string>& args, double seconds = 30) { return Cli(args).Wait(seconds); }

bool Exists(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}
bool IsRealDir(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
std::string Slurp(const std::string& p) {
  std::ifstream f(p);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
void Write(const std::string& p, const std::string& text) { std::ofstream(p) << text; }

// A pid that surely ran and is gone now (reaped).
pid_t DeadPid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ::waitpid(pid, nullptr, 0);
  return pid;
}

class CliHostileFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moe_hostile_test_XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { std::system(("chmod -R u+w '" + dir_ + "'; rm -rf '" + dir_ + "'").c_str()); }

  std::string Fixture(const std::string& name) { return DataDir() + "/tiny-qwen3-moe/" + name; }
  // A writable copy of a fixture directory (to plant FIFOs and links in).
  std::string CopyFixture(const std::string& name) {
    const std::string to = dir_ + "/" + name;
    EXPECT_EQ(std::system(("cp -r '" + Fixture(name) + "' '" + to + "'").c_str()), 0);
    return to;
  }
  // from-hf of the tiny checkpoint directory (geometry from its config.json).
  std::vector<std::string> FromHfDir(const std::string& out, bool overwrite) {
    std::vector<std::string> a = {"from-hf", "--input", Fixture("hf-fp32"), "--output", out};
    if (overwrite) a.push_back("--overwrite");
    return a;
  }
  void ExpectConvertedInto(const std::string& out) {
    ASSERT_TRUE(IsRealDir(out)) << out << " should be a real directory now";
    EXPECT_TRUE(Exists(out + "/model.safetensors"));
    EXPECT_TRUE(Exists(out + "/config.json"));
  }
  std::string dir_;
};

// ---- defect 7: --overwrite deletes outside the output ---------------------

TEST_F(CliHostileFilesTest, OutputSymlinkToADirectoryIsReplacedNotFollowed) {
  const std::string victim = dir_ + "/victim", out = dir_ + "/out";
  ASSERT_EQ(::mkdir(victim.c_str(), 0755), 0);
  Write(victim + "/sentinel.txt", "precious");
  Write(victim + "/model.safetensors", "not ours either");
  ASSERT_EQ(::symlink(victim.c_str(), out.c_str()), 0);

  Result no = RunCli(FromHfDir(out, false));
  EXPECT_EQ(no.code, 1) << no.err;
  EXPECT_THAT(no.err, HasSubstr("--overwrite"));

  Result r = RunCli(FromHfDir(out, true));
  ASSERT_TRUE(r.exited && r.code == 0) << r.err;
  ExpectConvertedInto(out);
  EXPECT_EQ(Slurp(victim + "/sentinel.txt"), "precious") << "the link's target was entered";
  EXPECT_EQ(Slurp(victim + "/model.safetensors"), "not ours either");
  EXPECT_EQ(ListDir(dir_), (std::vector<std::string>{"out", "victim"})) << "nothing else left beside the output";
}

TEST_F(CliHostileFilesTest, SymlinkInsideTheOutputIsRemovedAsALink) {
  const std::string victim = dir_ + "/victim", out = dir_ + "/out";
  ASSERT_EQ(::mkdir(victim.c_str(), 0755), 0);
  Write(victim + "/sentinel.txt", "precious");
  Result first = RunCli(FromHfDir(out, false));
  ASSERT_EQ(first.code, 0) << first.err;
  // A name an output may hold, pointing outside.
  ASSERT_EQ(::symlink(victim.c_str(), (out + "/tokenizer.json").c_str()), 0);

  Result r = RunCli(FromHfDir(out, true));
  ASSERT_TRUE(r.exited && r.code == 0) << r.err;
  ExpectConvertedInto(out);
  EXPECT_EQ(Slurp(victim + "/sentinel.txt"), "precious") << "removal followed the link";
  EXPECT_FALSE(Exists(out + "/tokenizer.json"));
  EXPECT_EQ(ListDir(dir_), (std::vector<std::string>{"out", "victim"}));
}

TEST_F(CliHostileFilesTest, OverwriteRefusesADirectoryThisToolNeverWrites) {
  const std::string victim = dir_ + "/victim", out = dir_ + "/out";
  ASSERT_EQ(::mkdir(victim.c_str(), 0755), 0);
  Write(victim + "/sentinel.txt", "precious");
  Result first = RunCli(FromHfDir(out, false));
  ASSERT_EQ(first.code, 0) << first.err;
  const std::vector<std::string> converted = ListDir(out);

  // A link with a name no output has, pointing outside: refused, untouched.
  ASSERT_EQ(::symlink(victim.c_str(), (out + "/data").c_str()), 0);
  Result r = RunCli(FromHfDir(out, true));
  EXPECT_TRUE(r.code == 1 || r.code == 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("refusing to overwrite"));
  EXPECT_THAT(r.err, HasSubstr("\"data\""));
  EXPECT_TRUE(Exists(out + "/data"));
  EXPECT_EQ(Slurp(victim + "/sentinel.txt"), "precious");
  ASSERT_EQ(::unlink((out + "/data").c_str()), 0);

  // A subdirectory: moe-adapter never writes one.
  ASSERT_EQ(::mkdir((out + "/foo").c_str(), 0755), 0);
  Write(out + "/foo/notes.txt", "mine");
  r = RunCli(FromHfDir(out, true));
  EXPECT_TRUE(r.code == 1 || r.code == 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("it holds \"foo/\""));
  EXPECT_THAT(r.err, HasSubstr("never writes"));
  EXPECT_EQ(Slurp(out + "/foo/notes.txt"), "mine");
  for (const std::string& f : converted) EXPECT_TRUE(Exists(out + "/" + f)) << f << " was deleted";
  EXPECT_EQ(ListDir(dir_), (std::vector<std::string>{"out", "victim"}));

  // A directory of someone's files with no checkpoint in it.
  const std::string home = dir_ + "/home";
  ASSERT_EQ(::mkdir(home.c_str(), 0755), 0);
  Write(home + "/thesis.tex", "years of work");
  Write(home + "/config.json", "{}");
  r = RunCli(FromHfDir(home, true));
  EXPECT_TRUE(r.code == 1 || r.code == 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("thesis.tex"));
  EXPECT_EQ(Slurp(home + "/thesis.tex"), "years of work");
  Write(home + "/.DS_Store", "x");
  ASSERT_EQ(::unlink((home + "/thesis.tex").c_str()), 0);
  r = RunCli(FromHfDir(home, true));
  EXPECT_TRUE(r.code == 1 || r.code == 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("hidden"));
  ASSERT_EQ(::unlink((home + "/.DS_Store").c_str()), 0);
  r = RunCli(FromHfDir(home, true));
  EXPECT_TRUE(r.code == 1 || r.code == 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("no *.safetensors"));
  EXPECT_EQ(Slurp(home + "/config.json"), "{}");
}

TEST_F(CliHostileFilesTest, AnEmptyExistingDirectoryNeedsNoOverwrite) {
  const std::string out = dir_ + "/out";
  ASSERT_EQ(::mkdir(out.c_str(), 0755), 0);
  Result r = RunCli(FromHfDir(out, false));
  ASSERT_TRUE(r.exited && r.code == 0) << r.err;
  ExpectConvertedInto(out);
  EXPECT_EQ(ListDir(dir_), (std::vector<std::string>{"out"}));
  // Not empty any more: now it takes --overwrite.
  EXPECT_EQ(RunCli(FromHfDir(out, false)).code, 1);
}

// ---- defect 8: interrupted runs leave gigabytes behind ----------------------

// A native checkpoint large enough that its conversion runs for a while
// (~200 MB, many layers) so that a signal lands mid-run.
std::string BigNativeCheckpoint(const std::string& dir) {
  const std::string path = dir + "/big.safetensors";
  constexpr int64_t E = 16, H = 256, I = 256, kLayers = 32;
  Tensor gate_up = Tensor::Allocate(DType::kBF16, {E, H, 2 * I}), down = Tensor::Allocate(DType::kBF16, {E, I, H});
  std::memset(gate_up.mutable_data(), 0x3c, gate_up.nbytes());
  std::memset(down.mutable_data(), 0x3d, down.nbytes());
  std::vector<NamedTensor> tensors;
  for (int64_t l = 0; l < kLayers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".mlp.experts.");
    tensors.push_back({p + "gate_and_up_projs", gate_up});
    tensors.push_back({p + "down_projs", down});
  }
  EXPECT_TRUE(WriteSafetensors(path, tensors).ok());
  return path;
}

// Starts to-hf of the big checkpoint and sends `sig` once its temporary
// output holds tensor data; returns the result.
Result InterruptMidRun(const std::string& dir, int sig) {
  const std::string in = BigNativeCheckpoint(dir);
  const std::string out = dir + "/out.safetensors";
  Cli cli({"to-hf", "--input", in, "--output", out, "--num-experts", "16", "--hidden-size", "256",
           "--moe-intermediate-size", "256"});
  bool signalled = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!signalled && cli.Running() && std::chrono::steady_clock::now() < deadline) {
    for (const std::string& name : ListDir(dir)) {
      if (name.rfind(".out.safetensors.tmp-", 0) != 0) continue;
      for (const std::string& f : ListDir(dir + "/" + name)) {
        struct stat st;
        if (::stat((dir + "/" + name + "/" + f).c_str(), &st) == 0 && st.st_size > (8 << 20)) signalled = true;
      }
    }
    if (signalled) {
      ::kill(cli.pid(), sig);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  EXPECT_TRUE(signalled) << "the conversion ended before it could be interrupted";
  Result r = cli.Wait();
  EXPECT_FALSE(Exists(out)) << "no output after an interrupt";
  EXPECT_EQ(ListDir(dir), (std::vector<std::string>{"big.safetensors"})) << "the temporary output is left";
  return r;
}

TEST_F(CliHostileFilesTest, SigintMidRunRemovesTheTemporaryAndExits130) {
  Result r = InterruptMidRun(dir_, SIGINT);
  EXPECT_TRUE(r.exited) << "killed by signal " << r.code << ": " << r.err;
  EXPECT_EQ(r.code, 130) << r.err;
  EXPECT_THAT(r.err, HasSubstr("interrupted by SIGINT"));
}

TEST_F(CliHostileFilesTest, SigtermMidRunRemovesTheTemporaryAndExits143) {
  Result r = InterruptMidRun(dir_, SIGTERM);
  EXPECT_TRUE(r.exited) << "killed by signal " << r.code << ": " << r.err;
  EXPECT_EQ(r.code, 143) << r.err;
  EXPECT_THAT(r.err, HasSubstr("interrupted by SIGTERM"));
}

TEST_F(CliHostileFilesTest, StaleTemporariesOfDeadRunsAreRemovedOthersKept) {
  const pid_t dead = DeadPid();
  const std::string out = dir_ + "/out";
  const std::string dead_dir = absl::StrCat(".out.tmp-", dead, "-17");
  const std::string dead_work = absl::StrCat(".out.tmp-", dead, "-18.d");
  const std::string dead_old = absl::StrCat(".out.tmp-", dead, "-19.old");
  const std::string live = absl::StrCat(".out.tmp-", ::getpid(), "-20");  // this test process runs
  const std::string locked = absl::StrCat(".out.tmp-", dead, "-21");      // a run in another PID namespace
  const std::string other_output = absl::StrCat(".other.tmp-", dead, "-22");
  const std::string not_ours = absl::StrCat(".out.tmp-", dead, "-x");
  for (const std::string& d : {dead_dir, dead_work, dead_old, live, locked, other_output, not_ours}) {
    ASSERT_EQ(::mkdir((dir_ + "/" + d).c_str(), 0755), 0);
    Write(dir_ + "/" + d + "/model.safetensors", std::string(4096, 'x'));
  }
  const int lock_fd = ::open((dir_ + "/" + locked).c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_EQ(::flock(lock_fd, LOCK_EX), 0);

  Result r = RunCli(FromHfDir(out, false));
  ::close(lock_fd);
  ASSERT_TRUE(r.exited && r.code == 0) << r.err;
  for (const std::string& d : {dead_dir, dead_work, dead_old}) {
    EXPECT_FALSE(Exists(dir_ + "/" + d)) << d << " (its process is gone) should be removed";
    EXPECT_THAT(r.err, HasSubstr(d)) << "a notice names each removed temporary";
  }
  for (const std::string& d : {live, locked, other_output, not_ours}) {
    EXPECT_TRUE(Exists(dir_ + "/" + d + "/model.safetensors")) << d << " is not a dead temporary of this output";
    EXPECT_THAT(r.err, ::testing::Not(HasSubstr(d)));
  }
  ExpectConvertedInto(out);
}

// ---- defect 9: non-regular files -------------------------------------------

TEST_F(CliHostileFilesTest, FifoConfigJsonIsRefusedNotWaitedOn) {
  const std::string in = CopyFixture("hf-fp32");
  ASSERT_EQ(::unlink((in + "/config.json").c_str()), 0);
  ASSERT_EQ(::mkfifo((in + "/config.json").c_str(), 0644), 0);
  const auto start = std::chrono::steady_clock::now();
  Result r = RunCli({"from-hf", "--input", in, "--output", dir_ + "/out"}, 10);
  EXPECT_TRUE(r.exited) << r.err;
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("config.json is a FIFO, not a regular file"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_FALSE(Exists(dir_ + "/out"));

  // The same FIFO named by --config, and by inspect.
  r = RunCli({"from-hf", "--input", Fixture("hf-fp32/model.safetensors"), "--output", dir_ + "/o.safetensors",
              "--config", in + "/config.json"},
             10);
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("is a FIFO, not a regular file"));
  r = RunCli({"inspect", in}, 10);
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("is a FIFO, not a regular file"));
}

TEST_F(CliHostileFilesTest, FifoSideFileIsRefusedNotSkipped) {
  const std::string in = CopyFixture("hf-fp32");
  ASSERT_EQ(::mkfifo((in + "/tokenizer.json").c_str(), 0644), 0);
  Result r = RunCli({"from-hf", "--input", in, "--output", dir_ + "/out"}, 10);
  EXPECT_TRUE(r.exited) << r.err;
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("tokenizer.json is a FIFO, not a regular file"));
  EXPECT_FALSE(Exists(dir_ + "/out"));
  EXPECT_EQ(ListDir(dir_), (std::vector<std::string>{"hf-fp32"}));
}

TEST_F(CliHostileFilesTest, ShardLinkedToDevZeroIsNotARegularFile) {
  const std::string in = CopyFixture("hf-bf16-sharded");
  const std::string shard = in + "/model-00003-of-00006.safetensors";
  ASSERT_EQ(::unlink(shard.c_str()), 0);
  ASSERT_EQ(::symlink("/dev/zero", shard.c_str()), 0);
  Result r = RunCli({"from-hf", "--input", in, "--output", dir_ + "/out"}, 10);
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("model-00003-of-00006.safetensors is a character device, not a regular file"));
  EXPECT_THAT(r.err, ::testing::Not(HasSubstr("missing")));

  // Without the index, every *.safetensors is a shard: not skipped either.
  ASSERT_EQ(::unlink((in + "/model.safetensors.index.json").c_str()), 0);
  r = RunCli({"from-hf", "--input", in, "--output", dir_ + "/out"}, 10);
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("model-00003-of-00006.safetensors is a character device, not a regular file"));
  EXPECT_FALSE(Exists(dir_ + "/out"));

  // A link to a regular file still works.
  const std::string file_link = dir_ + "/linked.safetensors";
  ASSERT_EQ(::symlink(Fixture("hf-fp32/model.safetensors").c_str(), file_link.c_str()), 0);
  r = RunCli({"from-hf", "--input", file_link, "--output", dir_ + "/n.safetensors", "--config",
              Fixture("hf-fp32/config.json")});
  EXPECT_EQ(r.code, 0) << r.err;
}

}  // namespace
}  // namespace moe_adapter::testing
