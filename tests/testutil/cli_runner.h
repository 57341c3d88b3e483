// Running the moe-adapter binary from a test: exit status (128 + signal when
// it died of one) and what it wrote on stderr; and listing what a run left in
// a directory. Header-only, shared by the CLI suites (tests/cli).
#ifndef MOE_ADAPTER_TESTS_TESTUTIL_CLI_RUNNER_H_
#define MOE_ADAPTER_TESTS_TESTUTIL_CLI_RUNNER_H_

#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"

namespace moe_adapter::testing {

struct CliResult {
  int exit_code;
  std::string err;
};

inline std::string ShellQuote(const std::string& s) { return "'" + s + "'"; }

// RunCli(): `binary args...` with stdout discarded.
inline CliResult RunCli(const std::string& binary, const std::vector<std::string>& args) {
  std::vector<std::string> q;
  for (const auto& a : args) q.push_back(ShellQuote(a));
  // ctest runs test cases as parallel processes: the file must be this process's own.
  const std::string errfile = ::testing::TempDir() + "/cli_stderr_" + std::to_string(::getpid()) + ".txt";
  const std::string cmd =
      absl::StrCat(ShellQuote(binary), " ", absl::StrJoin(q, " "), " 2>", errfile, " >/dev/null");
  const int status = std::system(cmd.c_str());
  std::ifstream f(errfile);
  std::string err((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::remove(errfile.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), err};
}

// ListDir(): the names in `dir` (no "." or ".."), sorted; empty when unreadable.
inline std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    ::closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace moe_adapter::testing

#endif  // MOE_ADAPTER_TESTS_TESTUTIL_CLI_RUNNER_H_
