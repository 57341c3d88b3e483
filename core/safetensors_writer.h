// File: core/safetensors_writer.h
//
// Writes safetensors files. Tensors are stored with ascending data offsets in
// the order they are given (that order is the file's order, spec §15.6); the
// JSON header lists "__metadata__" first and then the tensors in that order,
// padded with spaces so the data starts 8-byte aligned, as the official writer
// does. Readers must not rely on the JSON key order.
//
// Three writers, one file each:
//   - WriteSafetensors() (safetensors_writer.cc): all tensors at hand, one call.
//   - StreamingSafetensorsWriter (safetensors_writer_streaming.cc): tensors
//     arrive one at a time and must not be held. Their bytes go to an
//     anonymous spool file next to the output (same filesystem), and Finish()
//     writes header + spool (copy_file_range).
//   - ShardedSafetensorsWriter (safetensors_writer_sharded.cc): the
//     transformers layout, model-0000k-of-0000N shards of at most
//     max_shard_bytes of tensor data + an index, or a single model.safetensors
//     when everything fits.
// They share the checks and the header (safetensors_writer_header.h) and the
// checked syscalls (safetensors_writer_io.h).
//
// Example:
//   ASSIGN_OR_RETURN(auto w, StreamingSafetensorsWriter::Create(path, {{"format", "pt"}}));
//   for (...) RETURN_IF_ERROR(w->Add(tensor));
//   RETURN_IF_ERROR(w->Finish());
//
// Errors: every syscall is checked; messages name the path and strerror. A
// writer that fails, or is destroyed or Abort()ed before Finish(), removes
// what it wrote. These writers write the final path directly: write to a
// temporary name and rename when the output must appear atomically.
//
// Thread-safety: a writer object is used by one thread at a time.
#ifndef MOE_ADAPTER_CORE_SAFETENSORS_WRITER_H_
#define MOE_ADAPTER_CORE_SAFETENSORS_WRITER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/safetensors_format.h"
#include "moe_adapter/tensor.h"

namespace moe_adapter {

struct SafetensorsWriteOptions {
  // fsync() each file before closing it (durability at a cost in speed).
  bool fsync = false;
  // StreamingSafetensorsWriter only. 0: tensor data goes to an unlinked spool
  // and is copied behind the header at Finish(). > 0: this many bytes are
  // reserved for the JSON header at the start of the output, which is then
  // written in place (data written once); the header is padded with spaces
  // (valid JSON whitespace, as the official writer pads) to fill them. A
  // header that outgrows the reservation falls back to one copy.
  uint64_t reserve_header_bytes = 0;
};

// WriteSafetensors(): writes `tensors` in the given order to `path` (created
// or truncated). kInvalidArgument for a duplicate name, the reserved name
// "__metadata__", a name that is not UTF-8 or bytes that do not match
// dtype x shape; the file is removed on any error.
absl::Status WriteSafetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                              const std::map<std::string, std::string>& metadata = {},
                              const SafetensorsWriteOptions& options = {});

// StreamingSafetensorsWriter: memory O(1) in the tensor data.
class StreamingSafetensorsWriter {
 public:
  // Create(): checks that a spool can be made in the directory of `path`.
  static absl::StatusOr<std::unique_ptr<StreamingSafetensorsWriter>> Create(
      const std::string& path, std::map<std::string, std::string> metadata = {},
      SafetensorsWriteOptions options = {});

  StreamingSafetensorsWriter(const StreamingSafetensorsWriter&) = delete;
  StreamingSafetensorsWriter& operator=(const StreamingSafetensorsWriter&) = delete;
  // Aborts unless Finish() succeeded.
  ~StreamingSafetensorsWriter();

  // Add(): appends the tensor's bytes to the spool. A duplicate or reserved
  // name is kInvalidArgument and leaves the writer usable; an I/O error
  // aborts the writer.
  absl::Status Add(const NamedTensor& tensor);

  // Finish(): writes `path` = length + header + data, then drops the spool.
  // On error `path` is removed. The writer is done either way.
  absl::Status Finish();

  // Abort(): drops the spool and any partial output. No-op after Finish().
  void Abort();

  const std::string& path() const { return path_; }
  size_t num_tensors() const { return infos_.size(); }
  // data_bytes(): tensor bytes added so far (the data section's size).
  uint64_t data_bytes() const { return data_bytes_; }

 private:
  StreamingSafetensorsWriter() = default;
  absl::Status FinishInPlace(const absl::StatusOr<std::string>& header);

  std::string path_;
  std::map<std::string, std::string> metadata_;
  SafetensorsWriteOptions options_;
  int spool_fd_ = -1;  // unlinked at creation: nothing is left after a crash
  uint64_t data_start_ = 0;  // > 0: spool_fd_ is the output itself, data from here
  bool done_ = false;
  uint64_t data_bytes_ = 0;
  std::vector<TensorInfo> infos_;
  std::vector<std::pair<uint64_t, uint64_t>> offsets_;
  absl::flat_hash_set<std::string> names_;
};

struct ShardedWriterOptions {
  // "model" -> model.safetensors / model-00001-of-00003.safetensors +
  // model.safetensors.index.json. Adapters use "adapter_model" with
  // max_shard_bytes = 0 (PEFT always writes one adapter_model.safetensors).
  std::string base_name = "model";
  // Tensor bytes per shard (headers not counted, as transformers); 0 = one file.
  uint64_t max_shard_bytes = safetensors::kDefaultMaxShardBytes;
  // "__metadata__" of every shard, e.g. {{"format", "pt"}}.
  std::map<std::string, std::string> metadata;
  SafetensorsWriteOptions write;
};

// ShardedSafetensorsWriter: streams tensors into shards in `dir` (which must
// exist). A tensor goes to the current shard unless it would push it past
// max_shard_bytes and the shard already holds a tensor (so one oversized
// tensor gets a shard of its own). Shards are written as hidden temporary
// files (".model-00001.safetensors.tmp") and renamed by Finish(), once the
// shard count N is known. Files of an earlier checkpoint in `dir` are not
// removed: give it an empty directory.
class ShardedSafetensorsWriter {
 public:
  static absl::StatusOr<std::unique_ptr<ShardedSafetensorsWriter>> Create(
      const std::string& dir, ShardedWriterOptions options = {});

  ShardedSafetensorsWriter(const ShardedSafetensorsWriter&) = delete;
  ShardedSafetensorsWriter& operator=(const ShardedSafetensorsWriter&) = delete;
  ~ShardedSafetensorsWriter();  // aborts unless Finish() succeeded

  // Add(): duplicate names across shards are kInvalidArgument.
  absl::Status Add(const NamedTensor& tensor);

  // Finish(): renames the shards and writes the index when N > 1, as
  // transformers does: {"metadata": {"total_parameters", "total_size"},
  // "weight_map": {key: shard}}, keys sorted, indent 2. Returns the
  // files written, shards in order then the index. With no tensor at all it
  // writes one valid empty <base>.safetensors.
  absl::StatusOr<std::vector<std::string>> Finish();

  // Abort(): removes every file this writer made. No-op after Finish().
  void Abort();

 private:
  ShardedSafetensorsWriter() = default;
  absl::Status StartShard();
  absl::Status CloseShard();

  std::string dir_;
  ShardedWriterOptions options_;
  std::unique_ptr<StreamingSafetensorsWriter> current_;
  std::vector<std::string> temp_paths_;                     // finished shards, not yet renamed
  std::vector<std::string> final_paths_;                    // renamed so far (removed on failure)
  std::vector<std::pair<std::string, size_t>> weight_map_;  // key -> shard
  absl::flat_hash_set<std::string> names_;
  uint64_t total_bytes_ = 0;  // index "total_size"
  uint64_t total_numel_ = 0;  // index "total_parameters" (transformers 5)
  bool done_ = false;
};

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_SAFETENSORS_WRITER_H_
