#include "core/checkpoint_reader.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/internal/status_macros.h"
#include "core/regular_file.h"
#include "core/json_limits.h"
#include "core/safetensors_format.h"

namespace moe_adapter {
namespace {

using json = nlohmann::json;
using safetensors::Quote;

constexpr absl::string_view kModelIndex = "model.safetensors.index.json";
constexpr absl::string_view kAdapterFile = "adapter_model.safetensors";

std::string JoinPath(absl::string_view dir, absl::string_view name) {
  if (absl::EndsWith(dir, "/")) return absl::StrCat(dir, name);
  return absl::StrCat(dir, "/", name);
}

// Names of the entries of `dir` that are not directories (symlinks followed:
// the Hugging Face cache links snapshot files to blobs), sorted. FIFOs,
// devices and dangling links are listed too, so that opening one reports what
// it is instead of a shard silently going missing.
absl::StatusOr<std::vector<std::string>> ListFiles(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return safetensors::ErrnoStatus(errno, "cannot list directory", dir);
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    struct stat st;
    if (name != "." && name != ".." &&
        !(::stat(JoinPath(dir, name).c_str(), &st) == 0 && S_ISDIR(st.st_mode))) {
      names.push_back(std::move(name));
    }
    errno = 0;
  }
  const int err = errno;
  ::closedir(d);
  if (err != 0) return safetensors::ErrnoStatus(err, "cannot list directory", dir);
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, uint64_t limit) {
  ASSIGN_OR_RETURN(const int fd, OpenRegularFile(path));
  std::string out;
  char buf[65536];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return safetensors::ErrnoStatus(err, "cannot read", path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > limit) {
      ::close(fd);
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": larger than ", limit, " bytes, too big for an index file"));
    }
  }
  ::close(fd);
  return out;
}

// A shard name must stay inside the checkpoint directory.
absl::Status CheckShardName(const std::string& file, const std::string& key,
                            const std::string& index_path) {
  if (file.empty() || file.find('/') != std::string::npos || file.find("..") != std::string::npos ||
      file.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(index_path, ": key ", Quote(key), " maps to file ", Quote(file),
                     ", which is not a plain file name (expected no '/', no '..', not empty)"));
  }
  return absl::OkStatus();
}

// IndexEvents: an index.json's SAX events straight into its weight map and
// metadata (a DOM of a large index costs tens of times its size).
//   {"metadata": {key: value, ...}, "weight_map": {tensor: file name, ...}}
// Other top-level keys are ignored; non-string metadata values are kept as
// their compact JSON text.
class IndexEvents final : public JsonEvents {
 public:
  explicit IndexEvents(const std::string& index_path) : ip_(index_path) {}

  bool saw_weight_map() const { return saw_weight_map_; }
  std::map<std::string, std::string>& metadata() { return metadata_; }
  std::map<std::string, std::string>& weight_map() { return weight_map_; }

  bool null() override { return Scalar(json::value_t::null, [&](JsonEvents& d) { return d.null(); }); }
  bool boolean(bool v) override {
    return Scalar(json::value_t::boolean, [&](JsonEvents& d) { return d.boolean(v); });
  }
  bool number_integer(int64_t v) override {
    return Scalar(json::value_t::number_integer, [&](JsonEvents& d) { return d.number_integer(v); });
  }
  bool number_unsigned(uint64_t v) override {
    return Scalar(json::value_t::number_unsigned,
                  [&](JsonEvents& d) { return d.number_unsigned(v); });
  }
  bool number_float(double v, const std::string& literal) override {
    return Scalar(json::value_t::number_float,
                  [&](JsonEvents& d) { return d.number_float(v, literal); });
  }
  bool string(std::string& v) override {
    if (skip_ > 0) return true;
    if (depth_ == 2 && section_ == Section::kMetadata && nested_ == 0) {
      metadata_[key_] = std::move(v);
      return true;
    }
    if (depth_ == 2 && section_ == Section::kWeightMap) {
      absl::Status s = CheckShardName(v, key_, ip_);
      if (!s.ok()) return Fail(std::move(s));
      weight_map_.emplace(std::move(key_), std::move(v));
      return true;
    }
    return Scalar(json::value_t::string, [&](JsonEvents& d) { return d.string(v); });
  }
  bool start_object() override { return Open(json::value_t::object); }
  bool key(std::string& k) override {
    if (skip_ > 0) return true;
    if (nested_ > 0) return dom_.key(k);
    if (depth_ == 1) {
      section_ = k == "metadata"     ? Section::kMetadata
                 : k == "weight_map" ? Section::kWeightMap
                                     : Section::kOther;
    } else {
      key_ = std::move(k);
    }
    return true;
  }
  bool end_object() override { return Close([&] { return dom_.end_object(); }); }
  bool start_array() override { return Open(json::value_t::array); }
  bool end_array() override { return Close([&] { return dom_.end_array(); }); }

 private:
  enum class Section { kMetadata, kWeightMap, kOther };

  template <typename Deliver>
  bool Scalar(json::value_t type, Deliver deliver) {
    if (skip_ > 0) return true;
    if (depth_ == 0) return Fail(NotAnObject(type));
    if (depth_ == 1) return TopLevelValue(type);
    if (section_ == Section::kMetadata) {  // a metadata value, or part of one
      deliver(dom_);
      if (nested_ == 0) KeepMetadataValue();
      return true;
    }
    return Fail(NotAFileName(type));
  }

  bool Open(json::value_t type) {
    if (skip_ > 0) {
      ++skip_;
      return true;
    }
    if (nested_ > 0 || (depth_ == 2 && section_ == Section::kMetadata)) {
      ++nested_;
      return type == json::value_t::object ? dom_.start_object() : dom_.start_array();
    }
    if (depth_ == 0) {
      if (type != json::value_t::object) return Fail(NotAnObject(type));
    } else if (depth_ == 1) {
      if (type != json::value_t::object || section_ == Section::kOther) {
        if (!TopLevelValue(type)) return false;
        skip_ = 1;
        return true;
      }
      if (section_ == Section::kWeightMap) saw_weight_map_ = true;
    } else {  // a weight_map value
      return Fail(NotAFileName(type));
    }
    ++depth_;
    return true;
  }

  template <typename Deliver>
  bool Close(Deliver deliver) {
    if (skip_ > 0) {
      --skip_;
      return true;
    }
    if (nested_ > 0) {
      deliver();
      if (--nested_ == 0) KeepMetadataValue();
      return true;
    }
    --depth_;
    return true;
  }

  // A top-level value that is not an object: an error for the two known keys.
  bool TopLevelValue(json::value_t type) {
    if (section_ == Section::kMetadata && type != json::value_t::null) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          ip_, ": \"metadata\" must be an object, found ", JsonTypeName(type))));
    }
    if (section_ == Section::kWeightMap) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat(ip_, ": \"weight_map\" must be an object of key -> file name, found ",
                       JsonTypeName(type))));
    }
    return true;
  }

  void KeepMetadataValue() {
    metadata_[key_] = dom_.value().dump();  // bounded: the value is at most kMaxJsonDepth deep
    dom_ = JsonDomBuilder();
  }

  absl::Status NotAnObject(json::value_t type) const {
    return absl::InvalidArgumentError(
        absl::StrCat(ip_, ": must be a JSON object, found ", JsonTypeName(type)));
  }
  absl::Status NotAFileName(json::value_t type) const {
    return absl::InvalidArgumentError(absl::StrCat(ip_, ": \"weight_map\" entry ", Quote(key_),
                                                   " must be a file name string, found ",
                                                   JsonTypeName(type)));
  }

  const std::string& ip_;
  int depth_ = 0;   // containers open outside metadata values and skipped values
  int skip_ = 0;    // > 0 inside an ignored value
  int nested_ = 0;  // containers open inside a metadata value (built by dom_)
  Section section_ = Section::kOther;
  std::string key_;  // the metadata or weight_map key whose value comes next
  bool saw_weight_map_ = false;
  JsonDomBuilder dom_;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, std::string> weight_map_;
};

}  // namespace

absl::StatusOr<SafetensorsCheckpoint> SafetensorsCheckpoint::Open(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return safetensors::ErrnoStatus(errno, "cannot open checkpoint", path);
  }
  SafetensorsCheckpoint ckpt;
  ckpt.path_ = path;
  std::vector<std::string> files;                 // full paths, sorted by name
  std::map<std::string, std::string> weight_map;  // key -> file name (index only)
  if (S_ISREG(st.st_mode)) {
    files.push_back(path);
  } else if (S_ISDIR(st.st_mode)) {
    ASSIGN_OR_RETURN(std::vector<std::string> names, ListFiles(path));
    auto has = [&](absl::string_view n) {
      return std::binary_search(names.begin(), names.end(), std::string(n));
    };
    auto visible_with_suffix = [&](absl::string_view suffix) {
      std::vector<std::string> out;
      // Dotfiles are editor/OS droppings (macOS "._x") or our own temp files.
      for (const std::string& n : names) {
        if (!absl::StartsWith(n, ".") && absl::EndsWith(n, suffix)) out.push_back(n);
      }
      return out;
    };
    std::string index_name;
    if (has(kModelIndex)) {
      index_name = std::string(kModelIndex);
    } else if (has(kAdapterFile)) {
      files.push_back(JoinPath(path, kAdapterFile));
    } else {
      std::vector<std::string> indexes = visible_with_suffix(safetensors::kIndexSuffix);
      if (indexes.size() > 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": several index files (", absl::StrJoin(indexes, ", "), "); expected one"));
      }
      if (indexes.size() == 1) {
        index_name = indexes[0];
      } else {
        for (const std::string& n : visible_with_suffix(safetensors::kFileSuffix)) {
          files.push_back(JoinPath(path, n));
        }
        if (files.empty()) {
          return absl::NotFoundError(
              absl::StrCat(path, ": no *.safetensors file and no *.safetensors.index.json"));
        }
      }
    }
    if (!index_name.empty()) {
      ckpt.index_path_ = JoinPath(path, index_name);
      const std::string& ip = ckpt.index_path_;
      ASSIGN_OR_RETURN(std::string text, ReadSmallFile(ip, safetensors::kMaxIndexBytes));
      IndexEvents events(ip);
      RETURN_IF_ERROR(ParseJsonEvents(text, ip, safetensors::kMaxIndexBytes, &events));
      if (!events.saw_weight_map()) {
        return absl::InvalidArgumentError(absl::StrCat(
            ip, ": \"weight_map\" must be an object of key -> file name, found nothing"));
      }
      ckpt.index_metadata_ = std::move(events.metadata());
      weight_map = std::move(events.weight_map());
      std::set<std::string> names_in_index;
      for (const auto& [key, file] : weight_map) names_in_index.insert(file);
      for (const std::string& name : names_in_index) {
        const std::string full = JoinPath(path, name);
        struct stat fst;
        if (::stat(full.c_str(), &fst) != 0) {
          return absl::NotFoundError(absl::StrCat(ip, ": names shard ", Quote(name),
                                                  ", which is missing from ", path, " (",
                                                  std::strerror(errno), ")"));
        }
        if (!S_ISREG(fst.st_mode)) {
          return absl::InvalidArgumentError(absl::StrCat(ip, ": names shard ", Quote(name), ", but ",
                                                         NotRegularFileError(full, fst.st_mode).message()));
        }
        files.push_back(full);
      }
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        path, " is ", FileTypeName(st.st_mode), ", neither a safetensors file nor a directory"));
  }

  // Headers only: each mapping is dropped before the next shard is opened.
  for (const std::string& file : files) {
    ASSIGN_OR_RETURN(SafetensorsHeader header, SafetensorsFile::ReadHeader(file));
    const size_t shard = ckpt.shards_.size();
    for (const TensorInfo& info : header.tensors) {
      auto [it, inserted] = ckpt.shard_of_.emplace(info.name, shard);
      if (!inserted) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": tensor ", Quote(info.name), " is in two shards, ",
            ckpt.shards_[it->second].path, " and ", file, " (expected each key once)"));
      }
    }
    ckpt.shards_.push_back(Shard{file, std::move(header.tensors)});
  }
  if (ckpt.index_path_.empty()) return ckpt;

  const std::string& ip = ckpt.index_path_;
  // Shard and offset order, so that the first defect reported is deterministic.
  for (const Shard& shard : ckpt.shards_) {
    for (const TensorInfo& info : shard.tensors) {
      const std::string& key = info.name;
      const std::string& file = shard.path;
      auto it = weight_map.find(key);
      if (it == weight_map.end()) {
        return absl::InvalidArgumentError(absl::StrCat(ip, ": tensor ", Quote(key), " of shard ",
                                                       file, " is not listed in the index"));
      }
      if (JoinPath(path, it->second) != file) {
        return absl::InvalidArgumentError(absl::StrCat(ip, ": maps tensor ", Quote(key), " to ",
                                                       Quote(it->second), ", but it is in ", file));
      }
    }
  }
  for (const auto& [key, file] : weight_map) {
    if (!ckpt.shard_of_.contains(key)) {
      return absl::InvalidArgumentError(absl::StrCat(ip, ": maps tensor ", Quote(key), " to ",
                                                     Quote(file), ", which has no such tensor"));
    }
  }
  return ckpt;
}

std::vector<std::string> SafetensorsCheckpoint::shard_paths() const {
  std::vector<std::string> out;
  out.reserve(shards_.size());
  for (const Shard& s : shards_) out.push_back(s.path);
  return out;
}

absl::StatusOr<size_t> SafetensorsCheckpoint::ShardOf(absl::string_view name) const {
  auto it = shard_of_.find(name);
  if (it == shard_of_.end()) {
    return absl::NotFoundError(absl::StrCat(path_, ": no tensor named ", Quote(name)));
  }
  return it->second;
}

absl::StatusOr<std::shared_ptr<SafetensorsFile>> SafetensorsCheckpoint::OpenShard(
    size_t index) const {
  return SafetensorsFile::Open(shards_[index].path);
}

}  // namespace moe_adapter
