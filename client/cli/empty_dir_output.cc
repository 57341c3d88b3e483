#include "client/cli/empty_dir_output.h"

#include <dirent.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "checkpoint/output_dir.h"

namespace moe_adapter::cli {
namespace {

std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    ::closedir(d);
  }
  return out;
}

}  // namespace

EmptyDirOutput::EmptyDirOutput(std::string dir) : dir_(std::move(dir)) {
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
  staging_ = absl::StrCat(dir_, "/.moe-adapter-output-", ::getpid());
}

EmptyDirOutput::~EmptyDirOutput() {
  // Only what the conversion wrote: the staging folder, links not followed.
  if (!committed_) (void)moe_adapter::RemoveTree(staging_);
}

absl::Status EmptyDirOutput::Commit() {
  const std::vector<std::string> names = Entries(staging_);
  // Something else wrote into the directory meanwhile: its files are not
  // ours to mix with or replace.
  for (const std::string& n : Entries(dir_)) {
    if (dir_ + "/" + n != staging_) {
      return absl::AlreadyExistsError(
          absl::StrCat("output \"", dir_, "\" was empty but \"", n, "\" appeared in it during the conversion"));
    }
  }
  std::vector<std::string> moved;
  for (const std::string& n : names) {
    if (::rename((staging_ + "/" + n).c_str(), (dir_ + "/" + n).c_str()) != 0) {
      const absl::Status s =
          absl::InternalError(absl::StrCat("move \"", n, "\" into \"", dir_, "\": ", std::strerror(errno)));
      for (const std::string& m : moved) ::rename((dir_ + "/" + m).c_str(), (staging_ + "/" + m).c_str());
      return s;
    }
    moved.push_back(n);
  }
  ::rmdir(staging_.c_str());
  committed_ = true;
  return absl::OkStatus();
}

}  // namespace moe_adapter::cli
