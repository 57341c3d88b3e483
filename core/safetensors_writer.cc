#include "core/safetensors_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/internal/status_macros.h"

namespace moe_adapter {
namespace {

using json = nlohmann::json;
using safetensors::Quote;

// JsonString(): `s` as a quoted JSON string; kInvalidArgument when it is not
// UTF-8 (a header is UTF-8 JSON; nlohmann throws on such strings).
absl::StatusOr<std::string> JsonString(const std::string& s, absl::string_view what) {
  try {
    return json(s).dump();
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is not valid UTF-8: ", e.what()));
  }
}

absl::Status CheckTensor(const NamedTensor& t, absl::string_view path) {
  if (t.name == safetensors::kMetadataKey) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": tensor name \"", safetensors::kMetadataKey, "\" is reserved for metadata"));
  }
  const size_t itemsize = DTypeSize(t.tensor.dtype);
  absl::StatusOr<int64_t> numel = NumElements(t.tensor.shape, itemsize);
  if (!numel.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": tensor ", Quote(t.name), ": ", numel.status().message()));
  }
  const uint64_t need = static_cast<uint64_t>(*numel) * itemsize;
  if (need != t.tensor.nbytes()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": tensor ", Quote(t.name), ": ", DTypeName(t.tensor.dtype), " ",
        ShapeString(t.tensor.shape), " needs ", need, " bytes, got ", t.tensor.nbytes()));
  }
  return JsonString(t.name, absl::StrCat(path, ": tensor name ", Quote(t.name))).status();
}

absl::Status CheckMetadata(const std::map<std::string, std::string>& metadata,
                           absl::string_view path) {
  for (const auto& [k, v] : metadata) {
    RETURN_IF_ERROR(JsonString(k, absl::StrCat(path, ": metadata key")).status());
    RETURN_IF_ERROR(JsonString(v, absl::StrCat(path, ": metadata value of ", Quote(k))).status());
  }
  return absl::OkStatus();
}

// BuildHeader(): the 8-byte length + JSON, padded with spaces to end 8-byte
// aligned. Built by hand, not with ordered_json, whose insertion is a linear
// search (quadratic for the ~10^4 tensors of a large checkpoint file); the
// result is the compact JSON the official writer emits, metadata first.
absl::StatusOr<std::string> BuildHeader(const std::vector<TensorInfo>& infos,
                                        const std::vector<std::pair<uint64_t, uint64_t>>& offsets,
                                        const std::map<std::string, std::string>& metadata,
                                        absl::string_view path) {
  std::string text = "{";
  if (!metadata.empty()) {
    absl::StrAppend(&text, "\"", safetensors::kMetadataKey, "\":{");
    bool first = true;
    for (const auto& [k, v] : metadata) {
      ASSIGN_OR_RETURN(std::string key, JsonString(k, absl::StrCat(path, ": metadata key")));
      ASSIGN_OR_RETURN(std::string value,
                       JsonString(v, absl::StrCat(path, ": metadata value of ", Quote(k))));
      absl::StrAppend(&text, first ? "" : ",", key, ":", value);
      first = false;
    }
    text += "}";
  }
  for (size_t i = 0; i < infos.size(); ++i) {
    const TensorInfo& info = infos[i];
    ASSIGN_OR_RETURN(std::string name,
                     JsonString(info.name, absl::StrCat(path, ": tensor name ", Quote(info.name))));
    absl::StrAppend(&text, (i == 0 && metadata.empty()) ? "" : ",", name, ":{\"dtype\":\"",
                    DTypeName(info.dtype), "\",\"shape\":[", absl::StrJoin(info.shape, ","),
                    "],\"data_offsets\":[", offsets[i].first, ",", offsets[i].second, "]}");
  }
  text += "}";
  const size_t pad = (safetensors::kDataAlignment - text.size() % safetensors::kDataAlignment) %
                     safetensors::kDataAlignment;
  text.append(pad, ' ');
  if (text.size() > safetensors::kMaxHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": header of ", text.size(), " bytes exceeds the readers' limit of ",
                     safetensors::kMaxHeaderBytes, " bytes (too many tensors for one file)"));
  }
  std::string out(safetensors::kHeaderLengthBytes, '\0');
  const uint64_t n = text.size();
  for (size_t i = 0; i < safetensors::kHeaderLengthBytes; ++i) {
    out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  }
  return out + text;
}

absl::Status WriteAll(int fd, const void* data, size_t size, absl::string_view path) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    // Linux writes at most ~2 GiB per call; ask for 1 GiB pieces.
    const ssize_t n = ::write(fd, p, std::min<size_t>(size, size_t{1} << 30));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return safetensors::ErrnoStatus(errno, "cannot write", path);
    if (n == 0) return safetensors::ErrnoStatus(EIO, "cannot write", path);
    p += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// Closes `fd` (after fsync when asked); a close error is a write error on
// some filesystems (NFS), so it is reported.
absl::Status SyncAndClose(int fd, bool sync, absl::string_view path) {
  if (sync && ::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return safetensors::ErrnoStatus(err, "cannot fsync", path);
  }
  if (::close(fd) != 0) return safetensors::ErrnoStatus(errno, "cannot close", path);
  return absl::OkStatus();
}

absl::StatusOr<int> CreateOutput(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return safetensors::ErrnoStatus(errno, "cannot create", path);
  return fd;
}

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

// Copies `size` bytes from offset 0 of `in` to the current offset of `out`.
// copy_file_range stays in the kernel (and can share extents on btrfs/XFS);
// where it is refused (old kernel, cross-filesystem) read/write 8 MiB at a time.
absl::Status CopyFd(int in, uint64_t size, int out, absl::string_view out_path) {
  loff_t in_off = 0;
  bool kernel_copy = true;
  while (static_cast<uint64_t>(in_off) < size && kernel_copy) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(size - in_off, uint64_t{1} << 30));
    const ssize_t n = ::copy_file_range(in, &in_off, out, nullptr, want, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL ||
                  errno == EBADF)) {
      kernel_copy = false;
      break;
    }
    if (n < 0) return safetensors::ErrnoStatus(errno, "cannot copy tensor data into", out_path);
    if (n == 0) {
      return absl::DataLossError(
          absl::StrCat(out_path, ": the data spool ended at ", in_off, " bytes, expected ", size));
    }
  }
  if (static_cast<uint64_t>(in_off) >= size) return absl::OkStatus();
  std::unique_ptr<char[]> buf(new char[safetensors::kCopyChunkBytes]);
  while (static_cast<uint64_t>(in_off) < size) {
    const size_t want =
        static_cast<size_t>(std::min<uint64_t>(size - in_off, safetensors::kCopyChunkBytes));
    const ssize_t n = ::pread(in, buf.get(), want, in_off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return safetensors::ErrnoStatus(errno, "cannot read the data spool of", out_path);
    if (n == 0) {
      return absl::DataLossError(
          absl::StrCat(out_path, ": the data spool ended at ", in_off, " bytes, expected ", size));
    }
    RETURN_IF_ERROR(WriteAll(out, buf.get(), static_cast<size_t>(n), out_path));
    in_off += n;
  }
  return absl::OkStatus();
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

absl::Status WriteSafetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                              const std::map<std::string, std::string>& metadata,
                              const SafetensorsWriteOptions& options) {
  absl::flat_hash_set<absl::string_view> names;
  std::vector<TensorInfo> infos;
  std::vector<std::pair<uint64_t, uint64_t>> offsets;
  infos.reserve(tensors.size());
  offsets.reserve(tensors.size());
  uint64_t cursor = 0;
  for (const NamedTensor& t : tensors) {
    RETURN_IF_ERROR(CheckTensor(t, path));
    if (!names.insert(t.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor ", Quote(t.name), " given twice"));
    }
    infos.push_back(t.info());
    offsets.emplace_back(cursor, cursor + t.tensor.nbytes());
    cursor += t.tensor.nbytes();
  }
  ASSIGN_OR_RETURN(std::string header, BuildHeader(infos, offsets, metadata, path));
  ASSIGN_OR_RETURN(int fd, CreateOutput(path));
  absl::Status s = WriteAll(fd, header.data(), header.size(), path);
  for (size_t i = 0; s.ok() && i < tensors.size(); ++i) {
    s = WriteAll(fd, tensors[i].tensor.data.data(), tensors[i].tensor.nbytes(), path);
  }
  if (s.ok()) {
    s = SyncAndClose(fd, options.fsync, path);
  } else {
    ::close(fd);
  }
  if (!s.ok()) ::unlink(path.c_str());
  return s;
}

// ---------------------------------------------------------------------------
// StreamingSafetensorsWriter

absl::StatusOr<std::unique_ptr<StreamingSafetensorsWriter>> StreamingSafetensorsWriter::Create(
    const std::string& path, std::map<std::string, std::string> metadata,
    SafetensorsWriteOptions options) {
  RETURN_IF_ERROR(CheckMetadata(metadata, path));
  if (options.reserve_header_bytes > 0) {
    // Data goes straight to its final place behind a reserved header area.
    const uint64_t reserve = (options.reserve_header_bytes + safetensors::kDataAlignment - 1) /
                             safetensors::kDataAlignment * safetensors::kDataAlignment;
    // Read-write: a header that outgrows the reservation reads the data back.
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return safetensors::ErrnoStatus(errno, "cannot create", path);
    const uint64_t start = safetensors::kHeaderLengthBytes + reserve;
    if (::lseek(fd, static_cast<off_t>(start), SEEK_SET) < 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(path.c_str());
      return safetensors::ErrnoStatus(err, "cannot seek in", path);
    }
    std::unique_ptr<StreamingSafetensorsWriter> w(new StreamingSafetensorsWriter());
    w->path_ = path;
    w->metadata_ = std::move(metadata);
    w->options_ = options;
    w->spool_fd_ = fd;
    w->data_start_ = start;
    return w;
  }
  // Same directory, so same filesystem: copy_file_range can work and the
  // spool's space is where the output's will be.
  std::string name = absl::StrCat(path, ".spool.XXXXXX");
  const int fd = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) {
    return safetensors::ErrnoStatus(errno, "cannot create a data spool next to", path);
  }
  // Unlinked at once: the open descriptor keeps it, and no crash leaves it.
  if (::unlink(name.c_str()) != 0) {
    const int err = errno;
    ::close(fd);
    return safetensors::ErrnoStatus(err, "cannot unlink the data spool", name);
  }
  std::unique_ptr<StreamingSafetensorsWriter> w(new StreamingSafetensorsWriter());
  w->path_ = path;
  w->metadata_ = std::move(metadata);
  w->options_ = options;
  w->spool_fd_ = fd;
  return w;
}

StreamingSafetensorsWriter::~StreamingSafetensorsWriter() { Abort(); }

absl::Status StreamingSafetensorsWriter::Add(const NamedTensor& tensor) {
  if (done_) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_, ": writer already finished or aborted"));
  }
  RETURN_IF_ERROR(CheckTensor(tensor, path_));
  if (names_.contains(tensor.name)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": tensor ", Quote(tensor.name), " added twice"));
  }
  const uint64_t n = tensor.tensor.nbytes();
  absl::Status s =
      WriteAll(spool_fd_, tensor.tensor.data.data(), n, absl::StrCat("the data spool of ", path_));
  if (!s.ok()) {
    Abort();
    return s;
  }
  names_.insert(tensor.name);
  infos_.push_back(tensor.info());
  offsets_.emplace_back(data_bytes_, data_bytes_ + n);
  data_bytes_ += n;
  return absl::OkStatus();
}

absl::Status StreamingSafetensorsWriter::Finish() {
  if (done_) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_, ": writer already finished or aborted"));
  }
  done_ = true;
  absl::Status s;
  absl::StatusOr<std::string> header = BuildHeader(infos_, offsets_, metadata_, path_);
  if (data_start_ > 0) return FinishInPlace(header);
  if (!header.ok()) {
    s = header.status();
  } else {
    absl::StatusOr<int> out = CreateOutput(path_);
    if (!out.ok()) {
      s = out.status();
    } else {
      s = WriteAll(*out, header->data(), header->size(), path_);
      if (s.ok()) s = CopyFd(spool_fd_, data_bytes_, *out, path_);
      if (s.ok()) {
        s = SyncAndClose(*out, options_.fsync, path_);
      } else {
        ::close(*out);
      }
      if (!s.ok()) ::unlink(path_.c_str());
    }
  }
  ::close(spool_fd_);
  spool_fd_ = -1;
  return s;
}

absl::Status StreamingSafetensorsWriter::FinishInPlace(const absl::StatusOr<std::string>& header) {
  const int fd = spool_fd_;
  spool_fd_ = -1;
  absl::Status s = header.status();
  const uint64_t reserve = data_start_ - safetensors::kHeaderLengthBytes;
  if (s.ok() && header->size() - safetensors::kHeaderLengthBytes <= reserve) {
    // Pad the JSON with spaces to fill the reservation exactly.
    std::string h(safetensors::kHeaderLengthBytes, '\0');
    for (size_t i = 0; i < safetensors::kHeaderLengthBytes; ++i) h[i] = static_cast<char>((reserve >> (8 * i)) & 0xff);
    h.append(*header, safetensors::kHeaderLengthBytes, std::string::npos);
    h.resize(data_start_, ' ');
    if (::pwrite(fd, h.data(), h.size(), 0) != static_cast<ssize_t>(h.size())) {
      s = safetensors::ErrnoStatus(errno, "cannot write the header of", path_);
    }
    if (s.ok()) {
      s = SyncAndClose(fd, options_.fsync, path_);
    } else {
      ::close(fd);
    }
  } else if (s.ok()) {
    // The header outgrew its reservation: one copy behind the real header.
    const std::string relayout = absl::StrCat(path_, ".relayout");
    absl::StatusOr<int> out = CreateOutput(relayout);
    s = out.status();
    if (s.ok()) {
      s = WriteAll(*out, header->data(), header->size(), relayout);
      loff_t in_off = static_cast<loff_t>(data_start_);
      uint64_t left = data_bytes_;
      while (s.ok() && left > 0) {
        ssize_t n = ::copy_file_range(fd, &in_off, *out, nullptr, std::min<uint64_t>(left, uint64_t{1} << 30), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          // Fall back to read/write for filesystems without copy_file_range.
          std::vector<char> buf(8 << 20);
          while (s.ok() && left > 0) {
            ssize_t r = ::pread(fd, buf.data(), std::min<uint64_t>(left, buf.size()), in_off);
            if (r <= 0) {
              s = safetensors::ErrnoStatus(r < 0 ? errno : EIO, "cannot read back", path_);
              break;
            }
            s = WriteAll(*out, buf.data(), static_cast<size_t>(r), relayout);
            in_off += r;
            left -= static_cast<uint64_t>(r);
          }
          break;
        }
        left -= static_cast<uint64_t>(n);
      }
      if (s.ok()) {
        s = SyncAndClose(*out, options_.fsync, relayout);
      } else {
        ::close(*out);
      }
      if (s.ok() && ::rename(relayout.c_str(), path_.c_str()) != 0) {
        s = safetensors::ErrnoStatus(errno, "cannot rename to", path_);
      }
      if (!s.ok()) ::unlink(relayout.c_str());
    }
    ::close(fd);
  } else {
    ::close(fd);
  }
  if (!s.ok()) ::unlink(path_.c_str());
  return s;
}

void StreamingSafetensorsWriter::Abort() {
  if (done_) return;
  done_ = true;
  // Spool mode: the spool is already unlinked and the output exists only
  // inside Finish(). In-place mode: the partial output goes.
  if (spool_fd_ >= 0) ::close(spool_fd_);
  spool_fd_ = -1;
  if (data_start_ > 0) ::unlink(path_.c_str());
}

// ---------------------------------------------------------------------------
// ShardedSafetensorsWriter

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
