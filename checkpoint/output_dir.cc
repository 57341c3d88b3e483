#include "checkpoint/output_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/internal/status_macros.h"
#include "core/regular_file.h"
#include "core/safetensors_format.h"

namespace moe_adapter {
namespace {

using safetensors::ErrnoStatus;
using safetensors::Quote;

// Our outputs are flat; the bound only stops a hostile tree from exhausting
// the stack or descriptors.
constexpr int kMaxRemoveDepth = 64;

// Splits "a/b/c/" into ("a/b", "c"); "c" into (".", "c").
std::pair<std::string, std::string> SplitPath(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {".", path};
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

// Names in the directory `fd` (not "." and ".."); `fd` stays open.
absl::StatusOr<std::vector<std::string>> ListAt(int fd, const std::string& shown) {
  const int dup_fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return ErrnoStatus(errno, "cannot list", shown);
  DIR* d = ::fdopendir(dup_fd);
  if (d == nullptr) {
    const int err = errno;
    ::close(dup_fd);
    return ErrnoStatus(err, "cannot list", shown);
  }
  ::rewinddir(d);
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.emplace_back(e->d_name);
    errno = 0;
  }
  const int err = errno;
  ::closedir(d);
  if (err != 0) return ErrnoStatus(err, "cannot list", shown);
  return names;
}

absl::Status RemoveAt(int dirfd, const std::string& name, const std::string& shown, int depth) {
  struct stat st;
  if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return errno == ENOENT ? absl::OkStatus() : ErrnoStatus(errno, "cannot stat", shown);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlinkat(dirfd, name.c_str(), 0) != 0 && errno != ENOENT) return ErrnoStatus(errno, "cannot remove", shown);
    return absl::OkStatus();
  }
  if (depth >= kMaxRemoveDepth) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot remove ", shown, ": nested more than ", kMaxRemoveDepth, " directories deep"));
  }
  const int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::OkStatus();
    if (errno == ELOOP || errno == ENOTDIR) {
      // Swapped for a link or a file since the fstatat: remove that instead.
      if (::unlinkat(dirfd, name.c_str(), 0) != 0 && errno != ENOENT) return ErrnoStatus(errno, "cannot remove", shown);
      return absl::OkStatus();
    }
    return ErrnoStatus(errno, "cannot open", shown);
  }
  absl::StatusOr<std::vector<std::string>> names = ListAt(fd, shown);
  absl::Status s = names.status();
  for (size_t i = 0; s.ok() && i < names->size(); ++i) {
    s = RemoveAt(fd, (*names)[i], absl::StrCat(shown, "/", (*names)[i]), depth + 1);
  }
  ::close(fd);
  if (!s.ok()) return s;
  if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, "cannot remove", shown);
  }
  return absl::OkStatus();
}

// Names a checkpoint side file can have: what a Hugging Face model or
// adapter directory holds next to its tensors (configs, tokenizers, chat
// templates, remote code, model cards, licences).
bool IsOutputName(const std::string& name) {
  static const char* const kSuffixes[] = {".safetensors", ".json", ".txt",      ".md",   ".model",
                                          ".jinja",       ".py",   ".tiktoken", ".yaml", ".yml"};
  for (const char* suffix : kSuffixes) {
    if (absl::EndsWith(name, suffix) && name.size() > std::strlen(suffix)) return true;
  }
  return name == "LICENSE" || name == "NOTICE";
}

// Whether --overwrite may remove the directory `path`; see CheckOutput().
absl::Status CheckReplaceableDirectory(const std::string& path, int fd, const std::vector<std::string>& names) {
  const std::string refusing = absl::StrCat("refusing to overwrite ", Quote(path), ": it holds ");
  bool has_tensors = false;
  for (const std::string& name : names) {
    struct stat st;
    if (::fstatat(fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      return ErrnoStatus(errno, "cannot stat", absl::StrCat(path, "/", name));
    }
    if (S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat(refusing, Quote(name + "/"), ", a directory, which moe-adapter never writes"));
    }
    if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat(refusing, Quote(name), ", ", FileTypeName(st.st_mode), ", which moe-adapter never writes"));
    }
    if (absl::StartsWith(name, ".")) {
      return absl::FailedPreconditionError(
          absl::StrCat(refusing, Quote(name), ", a hidden file, which moe-adapter never writes"));
    }
    if (!IsOutputName(name)) {
      return absl::FailedPreconditionError(absl::StrCat(
          refusing, Quote(name),
          ", which moe-adapter never writes (an output holds *.safetensors, *.safetensors.index.json and "
          "checkpoint side files: *.json, *.txt, *.md, *.model, *.jinja, *.py, *.tiktoken, *.yaml, LICENSE); "
          "remove it or choose another output"));
    }
    if (absl::EndsWith(name, ".safetensors")) has_tensors = true;
  }
  if (!has_tensors) {
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing to overwrite ", Quote(path), ": it holds no *.safetensors file, so it is no output of moe-adapter"));
  }
  return absl::OkStatus();
}

// The interrupt watcher and the conversions share this: the temporaries
// alive now, and whether an interrupt is being handled (after which nothing
// may create or commit one). Never destroyed: the watcher may run during
// exit().
struct Registry {
  std::mutex mu;
  bool interrupted = false;
  std::vector<std::string> paths;
};
Registry& Live() {
  static Registry* r = new Registry;
  return *r;
}

// One rename, refusing to replace an existing `to` where the filesystem
// can tell (renameat2 RENAME_NOREPLACE; plain rename where it is unsupported).
int RenameNoReplace(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return -1;
  struct stat st;
  if (::lstat(to.c_str(), &st) == 0) {
    errno = EEXIST;
    return -1;
  }
  return ::rename(from.c_str(), to.c_str());
}

// "<parent>/.<base>.tmp-<pid>-<n>[.d|.old]": the pid, or 0 when `name` is not
// one of ours for `base`.
pid_t TempOwnerPid(const std::string& name, const std::string& base) {
  const std::string prefix = absl::StrCat(".", base, ".tmp-");
  if (!absl::StartsWith(name, prefix)) return 0;
  absl::string_view rest = absl::string_view(name).substr(prefix.size());
  if (absl::EndsWith(rest, ".d")) {
    rest.remove_suffix(2);
  } else if (absl::EndsWith(rest, ".old")) {
    rest.remove_suffix(4);
  }
  const size_t dash = rest.find('-');
  if (dash == absl::string_view::npos) return 0;
  const absl::string_view pid_text = rest.substr(0, dash), n_text = rest.substr(dash + 1);
  auto digits = [](absl::string_view s) {
    return !s.empty() && s.size() <= 10 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  int pid = 0;
  if (!digits(pid_text) || !digits(n_text) || !absl::SimpleAtoi(pid_text, &pid) || pid <= 0) return 0;
  return pid;
}

}  // namespace

absl::Status RemoveTree(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("RemoveTree: empty path");
  const auto [parent, base] = SplitPath(path);
  if (base == "." || base == ".." || base == "/")
    return absl::InvalidArgumentError(absl::StrCat("cannot remove ", path));
  const int dirfd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) return errno == ENOENT ? absl::OkStatus() : ErrnoStatus(errno, "cannot open", parent);
  absl::Status s = RemoveAt(dirfd, base, path, 0);
  ::close(dirfd);
  return s;
}

absl::StatusOr<ExistingOutput> CheckOutput(const std::string& output_path, bool directory, bool overwrite) {
  // "link/" would resolve the link; the output is the name itself.
  std::string output = output_path;
  while (output.size() > 1 && output.back() == '/') output.pop_back();
  struct stat st;
  if (::lstat(output.c_str(), &st) != 0) {
    if (errno == ENOENT) return ExistingOutput::kNone;
    return ErrnoStatus(errno, "cannot stat output", output);
  }
  const std::string needs_overwrite = absl::StrCat("output \"", output, "\" exists; pass --overwrite to replace it");
  if (S_ISLNK(st.st_mode)) {
    if (!overwrite)
      return absl::AlreadyExistsError(absl::StrCat(needs_overwrite, " (the link, not what it points to)"));
    return ExistingOutput::kLink;
  }
  if (S_ISREG(st.st_mode)) {
    if (directory) {
      return absl::InvalidArgumentError(absl::StrCat("output \"", output, "\" is a file but the input is a directory"));
    }
    if (!overwrite) return absl::AlreadyExistsError(needs_overwrite);
    return ExistingOutput::kFile;
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("output \"", output, "\" is ", FileTypeName(st.st_mode), "; refusing to replace it"));
  }
  if (!directory) {
    return absl::InvalidArgumentError(absl::StrCat("output \"", output, "\" is a directory but the input is a file"));
  }
  const int fd = ::open(output.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "cannot open output", output);
  absl::StatusOr<std::vector<std::string>> names = ListAt(fd, output);
  absl::Status s = names.status();
  if (s.ok() && !names->empty()) {
    s = overwrite ? CheckReplaceableDirectory(output, fd, *names) : absl::AlreadyExistsError(needs_overwrite);
  }
  ::close(fd);
  if (!s.ok()) return s;
  return names->empty() ? ExistingOutput::kEmptyDirectory : ExistingOutput::kDirectory;
}

std::vector<std::string> RemoveStaleTemporaries(const std::string& output) {
  std::vector<std::string> notices;
  const auto [parent, base] = SplitPath(output);
  const int dirfd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) return notices;
  absl::StatusOr<std::vector<std::string>> names = ListAt(dirfd, parent);
  for (const std::string& name : names.ok() ? *names : std::vector<std::string>{}) {
    const pid_t pid = TempOwnerPid(name, base);
    if (pid == 0 || pid == ::getpid()) continue;
    struct stat st;
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (st.st_uid != ::geteuid() || !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode))) continue;
    // The pid may be alive, or reused by an unrelated process: either way,
    // kept. EPERM means it exists under another user.
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;
    const int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) continue;
    const bool in_use = ::flock(fd, LOCK_EX | LOCK_NB) != 0;
    ::close(fd);
    if (in_use) continue;
    const std::string path = parent == "." ? name : absl::StrCat(parent == "/" ? "" : parent, "/", name);
    absl::Status s = RemoveTree(path);
    notices.push_back(
        s.ok()
            ? absl::StrCat("removed ", path, ", a temporary output left by process ", pid, ", which no longer runs")
            : absl::StrCat("could not remove ", path, ", a temporary output left by process ", pid, ": ", s.message()));
  }
  ::close(dirfd);
  return notices;
}

StagedOutput::StagedOutput(std::string output, bool directory) : output_(std::move(output)), directory_(directory) {
  while (output_.size() > 1 && output_.back() == '/') output_.pop_back();
  const auto [parent, base] = SplitPath(output_);
  std::random_device rd;
  temp_ = absl::StrCat(parent, "/.", base, ".tmp-", ::getpid(), "-", rd() % 1000000);
  work_ = directory_ ? temp_ : temp_ + ".d";
  old_ = temp_ + ".old";
}

StagedOutput::~StagedOutput() {
  {
    std::lock_guard<std::mutex> lock(Live().mu);
    if (!committed_) RemoveTree(work_).IgnoreError();
    if (registered_) {
      auto& paths = Live().paths;
      for (const std::string* p : {&work_, &old_}) {
        auto it = std::find(paths.begin(), paths.end(), *p);
        if (it != paths.end()) paths.erase(it);
      }
    }
  }
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

absl::Status StagedOutput::Create() {
  const std::string parent = SplitPath(output_).first;
  struct stat st;
  if (::stat(parent.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::NotFoundError(absl::StrCat("output folder \"", parent, "\" does not exist"));
  }
  // Registered and made under the lock: an interrupt either finds the
  // directory registered, or stops it from being made.
  std::lock_guard<std::mutex> lock(Live().mu);
  if (Live().interrupted) return absl::CancelledError("interrupted");
  if (::mkdir(work_.c_str(), 0755) != 0) return ErrnoStatus(errno, "cannot create", work_);
  Live().paths.push_back(work_);
  Live().paths.push_back(old_);
  registered_ = true;
  lock_fd_ = ::open(work_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (lock_fd_ < 0 || ::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return ErrnoStatus(errno, "cannot lock", work_);
  }
  return absl::OkStatus();
}

absl::Status StagedOutput::Commit(bool overwrite, const std::string& file_name) {
  std::lock_guard<std::mutex> lock(Live().mu);
  if (Live().interrupted) return absl::CancelledError("interrupted");
  ASSIGN_OR_RETURN(const ExistingOutput existing, CheckOutput(output_, directory_, overwrite));
  const std::string from = directory_ ? work_ : absl::StrCat(work_, "/", file_name);
  int rc;
  bool swapped = false;
  if (existing == ExistingOutput::kNone) {
    rc = RenameNoReplace(from, output_);
    if (rc != 0 && errno == EEXIST) {
      return absl::AlreadyExistsError(absl::StrCat("output \"", output_, "\" appeared during the conversion"));
    }
  } else if (existing == ExistingOutput::kEmptyDirectory || !directory_) {
    // rename() replaces an empty directory, a file or a link (never what a
    // link points to) in one step.
    rc = ::rename(from.c_str(), output_.c_str());
  } else {
    // A directory cannot be renamed over a non-empty directory or a link:
    // the old output steps aside first, and is put back on failure.
    if (::rename(output_.c_str(), old_.c_str()) != 0) return ErrnoStatus(errno, "cannot move aside", output_);
    if (existing == ExistingOutput::kDirectory) {
      // Checked again where nobody adds files by the output's name any more.
      absl::Status still = CheckOutput(old_, true, true).status();
      if (!still.ok()) {
        ::rename(old_.c_str(), output_.c_str());
        return absl::FailedPreconditionError(
            absl::StrCat("output \"", output_, "\" changed during the conversion: ", still.message()));
      }
    }
    rc = ::rename(from.c_str(), output_.c_str());
    if (rc != 0) {
      const int err = errno;
      ::rename(old_.c_str(), output_.c_str());
      errno = err;
    }
    swapped = true;
  }
  if (rc != 0) return ErrnoStatus(errno, absl::StrCat("cannot rename ", from, " to"), output_);
  committed_ = true;
  absl::Status s;
  if (swapped) s = RemoveTree(old_);
  if (!directory_) s.Update(RemoveTree(work_));
  return s;
}

void StartInterruptCleanup(const char* program) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set, program] {
    int sig = 0;
    while (::sigwait(&set, &sig) != 0) {
    }
    Registry& r = Live();
    // Held until _exit: no conversion thread creates or commits an output.
    r.mu.lock();
    r.interrupted = true;
    std::vector<std::string> removed;
    for (const std::string& path : r.paths) {
      struct stat st;
      if (::lstat(path.c_str(), &st) != 0) continue;
      // Writer threads may still create files inside until the directory
      // itself is gone; then their creates fail.
      absl::Status s;
      for (int attempt = 0; attempt < 100; ++attempt) {
        s = RemoveTree(path);
        if (s.ok() && ::lstat(path.c_str(), &st) != 0) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      removed.push_back(s.ok() ? path : absl::StrCat(path, " (not all: ", s.message(), ")"));
    }
    std::string line = absl::StrCat(program, ": interrupted by ",
                                    sig == SIGINT    ? "SIGINT"
                                    : sig == SIGTERM ? "SIGTERM"
                                                     : "SIGHUP");
    if (!removed.empty()) absl::StrAppend(&line, "; removed the temporary output ", absl::StrJoin(removed, ", "));
    // A progress bar may be mid-line on a terminal.
    std::cerr << (::isatty(STDERR_FILENO) ? "\n" : "") << line << std::endl;
    ::_exit(128 + sig);
  }).detach();
}

}  // namespace moe_adapter
