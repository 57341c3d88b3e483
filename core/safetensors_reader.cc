#include "core/safetensors_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <numeric>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "core/internal/status_macros.h"
#include "core/regular_file.h"
#include "core/json_limits.h"
#include "core/safetensors_format.h"

namespace moe_adapter {
namespace {

using json = nlohmann::json;
using safetensors::Quote;

absl::Status Invalid(absl::string_view source, absl::string_view msg) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": ", msg));
}

// What one tensor entry held, gathered from its events and checked at its
// end, field by field in a fixed order, so the message for an entry does not
// depend on the order its fields were written in.
struct EntryFields {
  // "dtype"
  bool has_dtype = false;
  std::string dtype;            // when a string
  const char* dtype_found = nullptr;  // the type found instead of a string
  // "shape"
  bool has_shape = false;
  const char* shape_found = nullptr;  // the type found instead of an array
  Shape shape;
  std::string shape_problem;  // the first element that is not a dimension
  // "data_offsets"
  bool has_offsets = false;
  const char* offsets_found = nullptr;  // the type found instead of an array
  size_t offsets_count = 0;
  uint64_t bounds[2] = {0, 0};
  std::string bound_found[2];  // what stood where a non-negative integer belongs

  // Check(): the entry as the official reader checks it; `where` names it.
  absl::Status Check(const std::string& where, uint64_t data_size, DType* dtype_out,
                     std::pair<uint64_t, uint64_t>* offsets) const {
    if (!has_dtype) return Invalid(where, "missing \"dtype\"");
    if (dtype_found != nullptr) {
      return Invalid(where, absl::StrCat("\"dtype\" must be a string, found ", dtype_found));
    }
    absl::StatusOr<DType> parsed = ParseDType(dtype);
    if (!parsed.ok()) return Invalid(where, parsed.status().message());
    if (!has_shape) return Invalid(where, "missing \"shape\"");
    if (shape_found != nullptr) {
      return Invalid(where,
                     absl::StrCat("\"shape\" must be an array of integers, found ", shape_found));
    }
    if (!shape_problem.empty()) return Invalid(where, shape_problem);
    const size_t itemsize = DTypeSize(*parsed);
    absl::StatusOr<int64_t> numel = NumElements(shape, itemsize);
    if (!numel.ok()) return Invalid(where, numel.status().message());
    const uint64_t need = static_cast<uint64_t>(*numel) * itemsize;

    if (!has_offsets) return Invalid(where, "missing \"data_offsets\"");
    if (offsets_found != nullptr || offsets_count != 2) {
      return Invalid(where,
                     absl::StrCat("\"data_offsets\" must be an array of 2 non-negative "
                                  "integers [begin, end], found ",
                                  offsets_found != nullptr
                                      ? std::string(offsets_found)
                                      : absl::StrCat("an array of ", offsets_count)));
    }
    for (size_t i = 0; i < 2; ++i) {
      if (!bound_found[i].empty()) {
        return Invalid(where, absl::StrCat("\"data_offsets\"[", i,
                                           "] must be a non-negative integer, found ",
                                           bound_found[i]));
      }
    }
    const uint64_t begin = bounds[0], end = bounds[1];
    const std::string shown = absl::StrCat("data_offsets [", begin, ", ", end, "]");
    if (begin > end) {
      return Invalid(where, absl::StrCat(shown, " are reversed (expected begin <= end)"));
    }
    if (end > data_size) {
      return Invalid(where, absl::StrCat(shown, " run past the end of the data section (",
                                         data_size, " bytes; file truncated?)"));
    }
    if (end - begin != need) {
      return Invalid(where, absl::StrCat(shown, " span ", end - begin, " bytes, but ",
                                         DTypeName(*parsed), " ", ShapeString(shape), " needs ",
                                         need, " bytes"));
    }
    *dtype_out = *parsed;
    *offsets = {begin, end};
    return absl::OkStatus();
  }
};

// HeaderEvents: the header's SAX events straight into TensorInfo/offsets and
// the metadata map, so that memory stays proportional to the header (a DOM
// of it costs tens of times its size). Unknown fields of an entry are
// skipped, as the official reader ignores them.
class HeaderEvents final : public JsonEvents {
 public:
  HeaderEvents(absl::string_view text, uint64_t data_size, absl::string_view source,
               absl::string_view where)
      : text_(text), data_size_(data_size), source_(source), where_(where) {}

  SafetensorsHeader& header() { return header_; }

  bool ChecksRootKeys() const override { return true; }

  bool null() override { return Scalar(json::value_t::null, ""); }
  bool boolean(bool) override { return Scalar(json::value_t::boolean, ""); }
  bool number_integer(int64_t v) override {
    if (skip_ > 0) return true;
    if (depth_ == 3 && field_ == Field::kShape && entry_.shape_problem.empty()) {
      // nlohmann reports only negative integers here.
      entry_.shape_problem = absl::StrCat("negative dimension ", v, " at position ",
                                          entry_.shape.size(), " of \"shape\"");
      return true;
    }
    return Scalar(json::value_t::number_integer, absl::StrCat(v));
  }
  bool number_unsigned(uint64_t v) override {
    if (skip_ > 0) return true;
    if (depth_ == 3 && field_ == Field::kShape) {
      if (!entry_.shape_problem.empty()) return true;
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        entry_.shape_problem = absl::StrCat("shape dimension ", entry_.shape.size(), " is ", v,
                                            ", more than int64 can hold");
      } else {
        entry_.shape.push_back(static_cast<int64_t>(v));
      }
      return true;
    }
    if (depth_ == 3 && field_ == Field::kOffsets) {
      if (entry_.offsets_count < 2) entry_.bounds[entry_.offsets_count] = v;
      ++entry_.offsets_count;
      return true;
    }
    return Scalar(json::value_t::number_unsigned, "");
  }
  bool number_float(double, const std::string& literal) override {
    return Scalar(json::value_t::number_float, Printable(literal));
  }
  bool string(std::string& v) override {
    if (skip_ > 0) return true;
    if (depth_ == 2 && in_metadata_) {
      header_.metadata[meta_key_] = std::move(v);
      return true;
    }
    if (depth_ == 2 && field_ == Field::kDtype) {
      entry_.dtype = std::move(v);
      return true;
    }
    return Scalar(json::value_t::string, "");
  }
  bool start_object() override { return Open(json::value_t::object); }
  bool key(std::string& k) override {
    if (skip_ > 0) return true;
    if (depth_ == 1) {
      in_metadata_ = k == safetensors::kMetadataKey;
      // Every earlier entry is complete (or the parse stopped), so a name
      // seen before is in `names_`.
      if (in_metadata_ ? seen_metadata_ : names_.find(absl::string_view(k)) != names_.end()) {
        return Fail(JsonDuplicateKeyError(where_, k));
      }
      if (in_metadata_) seen_metadata_ = true;
      if (!in_metadata_) name_ = std::move(k);
    } else if (depth_ == 2 && in_metadata_) {
      meta_key_ = std::move(k);
    } else {  // depth 2, a tensor entry
      field_ = k == "dtype"          ? Field::kDtype
               : k == "shape"        ? Field::kShape
               : k == "data_offsets" ? Field::kOffsets
                                     : Field::kOther;
      if (field_ == Field::kDtype) entry_.has_dtype = true;
      if (field_ == Field::kShape) entry_.has_shape = true;
      if (field_ == Field::kOffsets) entry_.has_offsets = true;
    }
    return true;
  }
  bool end_object() override { return Close(); }
  bool start_array() override { return Open(json::value_t::array); }
  bool end_array() override { return Close(); }

 private:
  enum class Field { kNone, kDtype, kShape, kOffsets, kOther };

  std::string EntryWhere() const { return absl::StrCat(source_, ": tensor ", Quote(name_)); }

  // A value that is not a container at the current position. `shown` is how
  // a number is written in a message ("" for other types).
  bool Scalar(json::value_t type, const std::string& shown) {
    if (skip_ > 0) return true;
    switch (depth_) {
      case 0:
        return Fail(Invalid(where_, absl::StrCat("must be a JSON object, found ",
                                                 JsonTypeName(type))));
      case 1:
        return Fail(NotAnObject(type));
      case 2:
        if (in_metadata_) return Fail(MetadataNotString(type));
        if (field_ == Field::kDtype) entry_.dtype_found = JsonTypeName(type);
        if (field_ == Field::kShape) entry_.shape_found = JsonTypeName(type);
        if (field_ == Field::kOffsets) entry_.offsets_found = JsonTypeName(type);
        return true;
      default:  // depth 3: an element of "shape" or "data_offsets"
        Element(type, shown);
        return true;
    }
  }

  void Element(json::value_t type, const std::string& shown) {
    if (field_ == Field::kShape && entry_.shape_problem.empty()) {
      entry_.shape_problem = absl::StrCat("shape dimension ", entry_.shape.size(),
                                          " must be an integer, found ", JsonTypeName(type));
    } else if (field_ == Field::kOffsets) {
      if (entry_.offsets_count < 2) {
        entry_.bound_found[entry_.offsets_count] = shown.empty() ? JsonTypeName(type) : shown;
      }
      ++entry_.offsets_count;
    }
  }

  absl::Status NotAnObject(json::value_t type) const {
    if (in_metadata_) {
      return Invalid(where_, absl::StrCat("\"", safetensors::kMetadataKey,
                                          "\" must be an object of strings, found ",
                                          JsonTypeName(type)));
    }
    return Invalid(EntryWhere(), absl::StrCat("entry must be an object with dtype, shape and "
                                              "data_offsets, found ",
                                              JsonTypeName(type)));
  }
  absl::Status MetadataNotString(json::value_t type) const {
    return Invalid(where_, absl::StrCat("\"", safetensors::kMetadataKey, "\" entry ",
                                        Quote(meta_key_), " must be a string, found ",
                                        JsonTypeName(type)));
  }

  bool Open(json::value_t type) {
    if (skip_ > 0) {
      ++skip_;
      return true;
    }
    switch (depth_) {
      case 0:
        if (type != json::value_t::object) {
          return Fail(Invalid(where_, absl::StrCat("must be a JSON object, found ",
                                                   JsonTypeName(type))));
        }
        // nlohmann skips a byte-order mark and leading spaces; the official
        // reader refuses both, and so do we, so that every file we accept it
        // accepts too.
        if (text_.empty() || text_.front() != '{') {
          return Fail(Invalid(
              where_, "must start with '{' (found a byte-order mark or leading whitespace)"));
        }
        break;
      case 1:
        if (type != json::value_t::object) return Fail(NotAnObject(type));
        if (!in_metadata_) entry_ = EntryFields();
        field_ = Field::kNone;
        break;
      case 2:
        if (in_metadata_) return Fail(MetadataNotString(type));
        if (type == json::value_t::array &&
            (field_ == Field::kShape || field_ == Field::kOffsets)) {
          break;  // its elements arrive at depth 3
        }
        if (field_ == Field::kDtype) entry_.dtype_found = JsonTypeName(type);
        if (field_ == Field::kShape) entry_.shape_found = JsonTypeName(type);
        if (field_ == Field::kOffsets) entry_.offsets_found = JsonTypeName(type);
        skip_ = 1;
        return true;
      default:  // a container inside "shape" or "data_offsets"
        Element(type, "");
        skip_ = 1;
        return true;
    }
    ++depth_;
    return true;
  }

  bool Close() {
    if (skip_ > 0) {
      --skip_;
      return true;
    }
    --depth_;
    if (depth_ == 1 && !in_metadata_) {  // a tensor entry ends
      TensorInfo info;
      std::pair<uint64_t, uint64_t> offsets;
      absl::Status s = entry_.Check(EntryWhere(), data_size_, &info.dtype, &offsets);
      if (!s.ok()) return Fail(std::move(s));
      info.name = std::move(name_);
      info.shape = std::move(entry_.shape);
      header_.tensors.push_back(std::move(info));
      header_.offsets.push_back(offsets);
      names_.insert(header_.tensors.size() - 1);
    }
    return true;
  }

  const absl::string_view text_;
  const uint64_t data_size_;
  const absl::string_view source_;  // the file path
  const absl::string_view where_;   // "<path>: header"
  SafetensorsHeader header_;        // tensors in file order
  const safetensors_internal::TensorsByName by_name_{&header_.tensors};
  safetensors_internal::TensorNameIndex names_{0, by_name_, by_name_};  // of header_.tensors
  bool seen_metadata_ = false;

  int depth_ = 0;  // containers open, skipped ones not counted
  int skip_ = 0;   // > 0 inside a value that is ignored or already judged
  bool in_metadata_ = false;
  std::string name_;      // the tensor whose entry is open
  std::string meta_key_;  // the metadata key whose value comes next
  Field field_ = Field::kNone;
  EntryFields entry_;
};

}  // namespace

absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(absl::string_view text, uint64_t data_size,
                                                         absl::string_view source) {
  const std::string where = absl::StrCat(source, ": header");
  HeaderEvents events(text, data_size, source, where);
  RETURN_IF_ERROR(ParseJsonEvents(text, where, safetensors::kMaxHeaderBytes, &events));
  SafetensorsHeader& unsorted = events.header();

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
  // A FIFO or device by mistake is refused without hanging (regular_file.h).
  struct stat st;
  ASSIGN_OR_RETURN(const int fd, OpenRegularFile(path, &st));
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
  const safetensors_internal::TensorsByName by_name{&file->header_.tensors};
  file->index_ = safetensors_internal::TensorNameIndex(file->header_.tensors.size(), by_name, by_name);
  for (size_t i = 0; i < file->header_.tensors.size(); ++i) file->index_.insert(i);
  return file;
}

absl::StatusOr<SafetensorsHeader> SafetensorsFile::ReadHeader(const std::string& path) {
  ASSIGN_OR_RETURN(std::shared_ptr<SafetensorsFile> file, Open(path));
  file->index_.clear();
  return std::move(file->header_);
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
  return *it;
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
