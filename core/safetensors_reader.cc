#include "core/safetensors_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "core/internal/status_macros.h"
#include "core/regular_file.h"
#include "core/safetensors_format.h"

namespace moe_adapter {
namespace {

using json = nlohmann::json;
using safetensors::Quote;

absl::Status Invalid(absl::string_view source, absl::string_view msg) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": ", msg));
}

absl::Status ParseMetadata(const json& value, absl::string_view source,
                           std::map<std::string, std::string>* out) {
  if (!value.is_object()) {
    return Invalid(source, absl::StrCat("\"", safetensors::kMetadataKey,
                                        "\" must be an object of strings, found ",
                                        safetensors::JsonTypeName(value)));
  }
  for (auto it = value.begin(); it != value.end(); ++it) {
    if (!it->is_string()) {
      return Invalid(source,
                     absl::StrCat("\"", safetensors::kMetadataKey, "\" entry ", Quote(it.key()),
                                  " must be a string, found ", safetensors::JsonTypeName(*it)));
    }
    (*out)[it.key()] = it->get<std::string>();
  }
  return absl::OkStatus();
}

// ParseEntry(): one tensor's {"dtype", "shape", "data_offsets"}; unknown extra
// fields are ignored, as the official reader does.
absl::Status ParseEntry(const std::string& name, const json& entry, uint64_t data_size,
                        absl::string_view source, TensorInfo* info,
                        std::pair<uint64_t, uint64_t>* offsets) {
  const std::string where = absl::StrCat(source, ": tensor ", Quote(name));
  if (!entry.is_object()) {
    return Invalid(where, absl::StrCat("entry must be an object with dtype, shape and "
                                       "data_offsets, found ",
                                       safetensors::JsonTypeName(entry)));
  }
  auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end()) return Invalid(where, "missing \"dtype\"");
  if (!dtype_it->is_string()) {
    return Invalid(where, absl::StrCat("\"dtype\" must be a string, found ",
                                       safetensors::JsonTypeName(*dtype_it)));
  }
  absl::StatusOr<DType> dtype = ParseDType(dtype_it->get<std::string>());
  if (!dtype.ok()) return Invalid(where, dtype.status().message());

  auto shape_it = entry.find("shape");
  if (shape_it == entry.end()) return Invalid(where, "missing \"shape\"");
  if (!shape_it->is_array()) {
    return Invalid(where, absl::StrCat("\"shape\" must be an array of integers, found ",
                                       safetensors::JsonTypeName(*shape_it)));
  }
  Shape shape;
  shape.reserve(shape_it->size());
  for (size_t i = 0; i < shape_it->size(); ++i) {
    const json& d = (*shape_it)[i];
    if (d.is_number_unsigned()) {
      const uint64_t v = d.get<uint64_t>();
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Invalid(
            where, absl::StrCat("shape dimension ", i, " is ", v, ", more than int64 can hold"));
      }
      shape.push_back(static_cast<int64_t>(v));
    } else if (d.is_number_integer()) {
      return Invalid(where, absl::StrCat("negative dimension ", d.get<int64_t>(), " at position ",
                                         i, " of \"shape\""));
    } else {
      return Invalid(where, absl::StrCat("shape dimension ", i, " must be an integer, found ",
                                         safetensors::JsonTypeName(d)));
    }
  }
  const size_t itemsize = DTypeSize(*dtype);
  absl::StatusOr<int64_t> numel = NumElements(shape, itemsize);
  if (!numel.ok()) return Invalid(where, numel.status().message());
  const uint64_t need = static_cast<uint64_t>(*numel) * itemsize;

  auto off_it = entry.find("data_offsets");
  if (off_it == entry.end()) return Invalid(where, "missing \"data_offsets\"");
  if (!off_it->is_array() || off_it->size() != 2) {
    return Invalid(where,
                   absl::StrCat("\"data_offsets\" must be an array of 2 non-negative "
                                "integers [begin, end], found ",
                                off_it->is_array() ? absl::StrCat("an array of ", off_it->size())
                                                   : safetensors::JsonTypeName(*off_it)));
  }
  uint64_t bounds[2];
  for (size_t i = 0; i < 2; ++i) {
    const json& v = (*off_it)[i];
    if (!v.is_number_unsigned()) {
      return Invalid(
          where, absl::StrCat("\"data_offsets\"[", i, "] must be a non-negative integer, found ",
                              v.is_number() ? v.dump() : safetensors::JsonTypeName(v)));
    }
    bounds[i] = v.get<uint64_t>();
  }
  const uint64_t begin = bounds[0], end = bounds[1];
  const std::string shown = absl::StrCat("data_offsets [", begin, ", ", end, "]");
  if (begin > end) {
    return Invalid(where, absl::StrCat(shown, " are reversed (expected begin <= end)"));
  }
  if (end > data_size) {
    return Invalid(where, absl::StrCat(shown, " run past the end of the data section (", data_size,
                                       " bytes; file truncated?)"));
  }
  if (end - begin != need) {
    return Invalid(
        where, absl::StrCat(shown, " span ", end - begin, " bytes, but ", DTypeName(*dtype), " ",
                            ShapeString(shape), " needs ", need, " bytes"));
  }
  info->name = name;
  info->dtype = *dtype;
  info->shape = std::move(shape);
  *offsets = {begin, end};
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(absl::string_view text, uint64_t data_size,
                                                         absl::string_view source) {
  const std::string where = absl::StrCat(source, ": header");
  ASSIGN_OR_RETURN(json root, safetensors::ParseJsonNoDuplicates(text, where));
  if (!root.is_object()) {
    return Invalid(where,
                   absl::StrCat("must be a JSON object, found ", safetensors::JsonTypeName(root)));
  }
  // nlohmann skips a byte-order mark and leading spaces; the official reader
  // refuses both, and so do we, so that every file we accept it accepts too.
  if (text.empty() || text.front() != '{') {
    return Invalid(where, "must start with '{' (found a byte-order mark or leading whitespace)");
  }
  SafetensorsHeader unsorted;
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (it.key() == safetensors::kMetadataKey) {
      RETURN_IF_ERROR(ParseMetadata(*it, where, &unsorted.metadata));
      continue;
    }
    TensorInfo info;
    std::pair<uint64_t, uint64_t> offsets;
    RETURN_IF_ERROR(ParseEntry(it.key(), *it, data_size, source, &info, &offsets));
    unsorted.tensors.push_back(std::move(info));
    unsorted.offsets.push_back(offsets);
  }

  // The file's order is its offsets' order (spec §15.6); zero-size tensors may
  // share an offset, and their name keeps the order deterministic.
  std::vector<size_t> order(unsorted.tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::tie(unsorted.offsets[a].first, unsorted.offsets[a].second,
                    unsorted.tensors[a].name) < std::tie(unsorted.offsets[b].first,
                                                         unsorted.offsets[b].second,
                                                         unsorted.tensors[b].name);
  });

  // Sorted spans must tile the data section exactly, as the official reader
  // requires: a gap or overlap means bytes that no tensor (or two) own.
  SafetensorsHeader out;
  out.metadata = std::move(unsorted.metadata);
  out.tensors.reserve(order.size());
  out.offsets.reserve(order.size());
  uint64_t cursor = 0;
  for (size_t i : order) {
    const auto [begin, end] = unsorted.offsets[i];
    const std::string& name = unsorted.tensors[i].name;
    if (begin < cursor) {
      return Invalid(where, absl::StrCat("tensor ", Quote(name), " data_offsets [", begin, ", ",
                                         end, "] overlap tensor ", Quote(out.tensors.back().name),
                                         ", which ends at ", cursor));
    }
    if (begin > cursor) {
      return Invalid(where, absl::StrCat("gap in the data section: bytes [", cursor, ", ", begin,
                                         ") before tensor ", Quote(name),
                                         " belong to no tensor (expected tensors to tile "
                                         "the data section)"));
    }
    cursor = end;
    out.tensors.push_back(std::move(unsorted.tensors[i]));
    out.offsets.push_back(unsorted.offsets[i]);
  }
  if (cursor != data_size) {
    return Invalid(where, absl::StrCat(data_size - cursor,
                                       " trailing bytes after the last "
                                       "tensor: tensors end at data offset ",
                                       cursor, " but the data section has ", data_size, " bytes"));
  }
  return out;
}

absl::StatusOr<std::shared_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO by mistake must not hang; no effect on files.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return safetensors::ErrnoStatus(errno, "cannot open", path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return safetensors::ErrnoStatus(err, "cannot stat", path);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return NotRegularFileError(path, st.st_mode);
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  // mmap of 0 bytes fails with EINVAL: refuse short files before mapping.
  if (size < safetensors::kHeaderLengthBytes) {
    ::close(fd);
    return Invalid(path, absl::StrCat("file is ", size,
                                      " bytes, too short for a safetensors "
                                      "file (expected at least the 8-byte header length)"));
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_err = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (map == MAP_FAILED) return safetensors::ErrnoStatus(map_err, "cannot mmap", path);

  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->base_ = static_cast<const uint8_t*>(map);
  file->size_ = size;
  // Conversions read tensors front to back; a failure here only costs speed.
  (void)::madvise(map, size, MADV_SEQUENTIAL);

  uint64_t n = 0;
  for (size_t i = 0; i < safetensors::kHeaderLengthBytes; ++i) {
    n |= static_cast<uint64_t>(file->base_[i]) << (8 * i);
  }
  const uint64_t room = size - safetensors::kHeaderLengthBytes;
  if (n == 0) {
    return Invalid(path, "header length is 0 (expected a JSON object of at least 2 bytes)");
  }
  if (n > safetensors::kMaxHeaderBytes) {
    return Invalid(path, absl::StrCat("header length ", n, " exceeds the limit of ",
                                      safetensors::kMaxHeaderBytes, " bytes"));
  }
  if (n > room) {
    return Invalid(path, absl::StrCat("header length ", n, " runs past the end of the file (", size,
                                      " bytes leave at most ", room, " for the header)"));
  }
  file->header_size_ = n;
  absl::string_view text(
      reinterpret_cast<const char*>(file->base_) + safetensors::kHeaderLengthBytes, n);
  ASSIGN_OR_RETURN(file->header_, ParseSafetensorsHeader(text, room - n, path));
  file->index_.reserve(file->header_.tensors.size());
  for (size_t i = 0; i < file->header_.tensors.size(); ++i) {
    file->index_.emplace(file->header_.tensors[i].name, i);
  }
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (base_ != nullptr) ::munmap(const_cast<uint8_t*>(base_), size_);
}

void SafetensorsFile::ReleasePages(size_t index) const {
  static const uintptr_t kPage = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(base_) + data_offset(index);
  const uintptr_t end = begin + nbytes(index);
  const uintptr_t first = (begin + kPage - 1) & ~(kPage - 1);
  const uintptr_t last = end & ~(kPage - 1);
  if (last > first) (void)::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

absl::StatusOr<size_t> SafetensorsFile::IndexOf(absl::string_view name) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    return absl::NotFoundError(absl::StrCat(path_, ": no tensor named ", Quote(name)));
  }
  return it->second;
}

absl::StatusOr<NamedTensor> SafetensorsFile::Get(absl::string_view name) const {
  ASSIGN_OR_RETURN(size_t i, IndexOf(name));
  return GetAt(i);
}

NamedTensor SafetensorsFile::GetAt(size_t index) const {
  const TensorInfo& info = header_.tensors[index];
  NamedTensor out;
  out.name = info.name;
  out.tensor.dtype = info.dtype;
  out.tensor.shape = info.shape;
  out.tensor.data = Bytes::WrapMapped(base_ + data_offset(index), nbytes(index),
                                std::shared_ptr<const void>(shared_from_this()));
  return out;
}

uint64_t SafetensorsFile::data_offset(size_t index) const {
  return safetensors::kHeaderLengthBytes + header_size_ + header_.offsets[index].first;
}

uint64_t SafetensorsFile::nbytes(size_t index) const {
  return header_.offsets[index].second - header_.offsets[index].first;
}

}  // namespace moe_adapter
