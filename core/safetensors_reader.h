// File: core/safetensors_reader.h
//
// Reads one .safetensors file by mmap'ing it: the header is validated as
// strictly as the official reader does (and a tensor named twice is refused
// too), and tensors come back as views of the mapping, never copies.
//
// Example:
//   ASSIGN_OR_RETURN(std::shared_ptr<SafetensorsFile> file,
//                    SafetensorsFile::Open("model.safetensors"));
//   for (size_t i = 0; i < file->tensors().size(); ++i) {
//     NamedTensor t = file->GetAt(i);  // bytes point into the mapping
//     ...
//   }
//
// Ownership: every returned tensor holds a reference to the SafetensorsFile,
// so the mapping lives until the last tensor is gone, even after the caller
// drops the file handle. A file truncated by another process while mapped
// makes reads fault (SIGBUS); that is the usual mmap contract.
//
// Thread-safety: a SafetensorsFile is immutable after Open(); all methods are
// const and safe to call from several threads.
#ifndef MOE_ADAPTER_CORE_SAFETENSORS_READER_H_
#define MOE_ADAPTER_CORE_SAFETENSORS_READER_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "moe_adapter/tensor.h"

namespace moe_adapter {

// SafetensorsHeader: a validated header. `tensors` and `offsets` are parallel
// and sorted by data offset (the file's order, spec §15.6), zero-size tensors
// sharing an offset by name. Offsets are relative to the data section.
struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;
  std::vector<std::pair<uint64_t, uint64_t>> offsets;  // [begin, end)
  std::map<std::string, std::string> metadata;
};

namespace safetensors_internal {

// TensorsByName: hash and equality that let a flat_hash_set<size_t> of
// positions in a vector of TensorInfo be looked up by name, so a name index
// costs a few bytes per tensor instead of a second copy of every name.
struct TensorsByName {
  using is_transparent = void;
  const std::vector<TensorInfo>* tensors = nullptr;
  absl::string_view Name(size_t i) const { return (*tensors)[i].name; }
  static absl::string_view Name(absl::string_view s) { return s; }
  template <typename K>
  size_t operator()(const K& k) const {
    return absl::Hash<absl::string_view>()(Name(k));
  }
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return Name(a) == Name(b);
  }
};
using TensorNameIndex = absl::flat_hash_set<size_t, TensorsByName, TensorsByName>;

}  // namespace safetensors_internal

// ParseSafetensorsHeader(): validates the JSON header `json` of a file whose
// data section holds `data_size` bytes. The tensors, sorted by offset, must
// tile [0, data_size) exactly. kInvalidArgument for any defect, with a message
// starting with `source` (the file path) and naming the key.
// The JSON is streamed (core/json_limits.h: nesting <= 64, no duplicate keys)
// straight into the result, so memory stays a small multiple of the header
// (about 3x) instead of a DOM's tens of times; with several defects, the
// first one in the file is reported.
absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(absl::string_view json, uint64_t data_size,
                                                         absl::string_view source);

// SafetensorsFile: one mmap'ed, validated safetensors file.
class SafetensorsFile : public std::enable_shared_from_this<SafetensorsFile> {
 public:
  // Open(): maps `path` read-only. kNotFound when it does not exist,
  // kInvalidArgument for a malformed file, other errno errors as their codes.
  static absl::StatusOr<std::shared_ptr<SafetensorsFile>> Open(const std::string& path);

  // ReadHeader(): Open()'s checks, keeping only the header (the mapping is
  // dropped): what a reader of many shards' headers needs.
  static absl::StatusOr<SafetensorsHeader> ReadHeader(const std::string& path);

  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }

  // tensors(): in data-offset order.
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  size_t num_tensors() const { return header_.tensors.size(); }

  // The `__metadata__` map (empty when the header has none).
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }

  // IndexOf(): position of `name` in tensors(), kNotFound when absent.
  absl::StatusOr<size_t> IndexOf(absl::string_view name) const;
  bool Contains(absl::string_view name) const { return index_.find(name) != index_.end(); }

  // Get(): the tensor named `name` (kNotFound when absent), a view of the mapping.
  absl::StatusOr<NamedTensor> Get(absl::string_view name) const;

  // GetAt(): the tensor at `index` < num_tensors(), a view of the mapping.
  NamedTensor GetAt(size_t index) const;

  // data_offset(): absolute file offset of the first byte of tensor `index`.
  uint64_t data_offset(size_t index) const;
  // nbytes(): byte size of tensor `index`.
  uint64_t nbytes(size_t index) const;

  // header_size(): N, the JSON header's length (data starts at 8 + N).
  uint64_t header_size() const { return header_size_; }
  size_t file_size() const { return size_; }
  // mapped_data(): the whole file, file_size() bytes.
  const uint8_t* mapped_data() const { return base_; }

  // ReleasePages(): drops this process's mapping of the pages that lie
  // wholly inside tensor `index`'s bytes (they stay in the page cache). A
  // streaming reader calls it once a tensor is consumed, so resident memory
  // stays bounded however large the file; touching the tensor again simply
  // faults its pages back in from the file.
  void ReleasePages(size_t index) const;

 private:
  SafetensorsFile() = default;

  std::string path_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  uint64_t header_size_ = 0;
  SafetensorsHeader header_;
  safetensors_internal::TensorNameIndex index_;  // positions in header_.tensors
};

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_SAFETENSORS_READER_H_
