// ShardedSafetensorsWriter (safetensors_writer.h): a StreamingSafetensorsWriter
// per shard, renamed and indexed once the shard count is known.
#include "core/safetensors_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/internal/status_macros.h"
#include "core/quote.h"
#include "core/safetensors_writer_header.h"
#include "core/safetensors_writer_io.h"

namespace moe_adapter {
namespace {

using json = nlohmann::json;
using safetensors::CheckMetadata;
using safetensors::CheckTensor;
using safetensors::CreateOutput;
using safetensors::SyncAndClose;
using safetensors::WriteAll;

// Writes `contents` to `path`; removes it on failure.
absl::Status WriteWholeFile(const std::string& path, absl::string_view contents, bool sync) {
  ASSIGN_OR_RETURN(int fd, CreateOutput(path));
  absl::Status s = WriteAll(fd, contents.data(), contents.size(), path);
  if (s.ok()) {
    s = SyncAndClose(fd, sync, path);
  } else {
    ::close(fd);
  }
  if (!s.ok()) ::unlink(path.c_str());
  return s;
}

std::string JoinPath(const std::string& dir, absl::string_view name) {
  if (absl::EndsWith(dir, "/")) return absl::StrCat(dir, name);
  return absl::StrCat(dir, "/", name);
}

absl::Status SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return safetensors::ErrnoStatus(errno, "cannot open directory", dir);
  return SyncAndClose(fd, true, dir);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ShardedSafetensorsWriter>> ShardedSafetensorsWriter::Create(
    const std::string& dir, ShardedWriterOptions options) {
  const std::string& base = options.base_name;
  if (base.empty() || base.find('/') != std::string::npos || absl::StartsWith(base, ".")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shard base name ", Quote(base), " must be a plain file name (no '/', no leading '.')"));
  }
  RETURN_IF_ERROR(CheckMetadata(options.metadata, dir));
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    return safetensors::ErrnoStatus(errno, "cannot use output directory", dir);
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(dir, ": not a directory"));
  }
  std::unique_ptr<ShardedSafetensorsWriter> w(new ShardedSafetensorsWriter());
  w->dir_ = dir;
  w->options_ = std::move(options);
  return w;
}

ShardedSafetensorsWriter::~ShardedSafetensorsWriter() { Abort(); }

absl::Status ShardedSafetensorsWriter::StartShard() {
  // Hidden, and not ending in .safetensors: a directory reader skips it.
  const std::string temp = JoinPath(
      dir_,
      absl::StrFormat(".%s-%05d.safetensors.tmp", options_.base_name, temp_paths_.size() + 1));
  ASSIGN_OR_RETURN(current_,
                   StreamingSafetensorsWriter::Create(temp, options_.metadata, options_.write));
  return absl::OkStatus();
}

absl::Status ShardedSafetensorsWriter::CloseShard() {
  std::unique_ptr<StreamingSafetensorsWriter> shard = std::move(current_);
  RETURN_IF_ERROR(shard->Finish());
  temp_paths_.push_back(shard->path());
  return absl::OkStatus();
}

absl::Status ShardedSafetensorsWriter::Add(const NamedTensor& tensor) {
  if (done_) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir_, ": sharded writer already finished or aborted"));
  }
  // Validate before a shard is closed on this tensor's account.
  RETURN_IF_ERROR(CheckTensor(tensor, dir_));
  if (names_.contains(tensor.name)) {
    return absl::InvalidArgumentError(
        absl::StrCat(dir_, ": tensor ", Quote(tensor.name), " added twice"));
  }
  const uint64_t n = tensor.tensor.nbytes();
  absl::Status s;
  if (current_ != nullptr && options_.max_shard_bytes > 0 && current_->num_tensors() > 0 &&
      current_->data_bytes() + n > options_.max_shard_bytes) {
    s = CloseShard();
  }
  if (s.ok() && current_ == nullptr) s = StartShard();
  if (s.ok()) s = current_->Add(tensor);
  if (!s.ok()) {
    Abort();
    return s;
  }
  names_.insert(tensor.name);
  weight_map_.emplace_back(tensor.name, temp_paths_.size());
  total_bytes_ += n;
  total_numel_ += tensor.tensor.numel();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ShardedSafetensorsWriter::Finish() {
  if (done_) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir_, ": sharded writer already finished or aborted"));
  }
  absl::Status s;
  if (current_ != nullptr) s = CloseShard();
  const std::string& base = options_.base_name;
  const size_t n = temp_paths_.size();
  std::vector<std::string> shard_names(n);
  for (size_t k = 0; k < n; ++k) {
    shard_names[k] = n == 1 ? absl::StrCat(base, ".safetensors")
                            : absl::StrFormat("%s-%05d-of-%05d.safetensors", base, k + 1, n);
  }
  if (s.ok() && n == 0) {
    // An empty result is still a valid (empty) checkpoint, spec §15.7.
    const std::string path = JoinPath(dir_, absl::StrCat(base, ".safetensors"));
    s = WriteSafetensors(path, {}, options_.metadata, options_.write);
    if (s.ok()) final_paths_.push_back(path);
  }
  for (size_t k = 0; s.ok() && k < n; ++k) {
    const std::string final_path = JoinPath(dir_, shard_names[k]);
    if (::rename(temp_paths_[k].c_str(), final_path.c_str()) != 0) {
      s = safetensors::ErrnoStatus(errno, absl::StrCat("cannot rename ", temp_paths_[k], " to"),
                                   final_path);
    } else {
      temp_paths_[k].clear();
      final_paths_.push_back(final_path);
    }
  }
  if (s.ok() && n > 1) {
    // The layout transformers writes: sorted keys, indent 2, final newline.
    json index;
    index["metadata"]["total_parameters"] = total_numel_;
    index["metadata"]["total_size"] = total_bytes_;
    json& wm = index["weight_map"];
    wm = json::object();
    for (const auto& [key, shard] : weight_map_) wm[key] = shard_names[shard];
    std::string text;
    try {
      text = index.dump(2) + "\n";
    } catch (const std::exception& e) {
      s = absl::InternalError(absl::StrCat(dir_, ": cannot serialise the index: ", e.what()));
    }
    const std::string index_path = JoinPath(dir_, absl::StrCat(base, safetensors::kIndexSuffix));
    const std::string temp = JoinPath(dir_, absl::StrCat(".", base, ".index.json.tmp"));
    if (s.ok()) s = WriteWholeFile(temp, text, options_.write.fsync);
    if (s.ok() && ::rename(temp.c_str(), index_path.c_str()) != 0) {
      s = safetensors::ErrnoStatus(errno, absl::StrCat("cannot rename ", temp, " to"), index_path);
      ::unlink(temp.c_str());
    }
    if (s.ok()) final_paths_.push_back(index_path);
  }
  if (s.ok() && options_.write.fsync) s = SyncDir(dir_);
  if (!s.ok()) {
    Abort();
    return s;
  }
  done_ = true;
  return final_paths_;
}

void ShardedSafetensorsWriter::Abort() {
  if (done_) return;
  done_ = true;
  if (current_ != nullptr) current_->Abort();
  current_.reset();
  for (const std::string& p : temp_paths_) {
    if (!p.empty()) ::unlink(p.c_str());
  }
  for (const std::string& p : final_paths_) ::unlink(p.c_str());
  temp_paths_.clear();
  final_paths_.clear();
}

}  // namespace moe_adapter
