// File: core/checkpoint_reader.h
//
// A checkpoint on disk: one .safetensors file, or a directory of shards. The
// directory forms, in the order they are looked for:
//   1. model.safetensors.index.json          (transformers' sharded layout)
//   2. adapter_model.safetensors             (a PEFT adapter: one file)
//   3. exactly one other *safetensors.index.json
//   4. every *.safetensors file, sorted by name (dotfiles skipped)
// Open() reads every shard's header once (not its data) and checks that the
// index and the shards agree: every file named exists and stays inside the
// directory, every key is in the shard the index names, every tensor of a
// shard is listed, and no key lives in two shards. The data is then streamed
// shard by shard with OpenShard(), so only one mapping need be open at a time.
//
// Example:
//   ASSIGN_OR_RETURN(SafetensorsCheckpoint ckpt, SafetensorsCheckpoint::Open(dir));
//   for (size_t s = 0; s < ckpt.shards().size(); ++s) {
//     ASSIGN_OR_RETURN(std::shared_ptr<SafetensorsFile> f, ckpt.OpenShard(s));
//     for (size_t i = 0; i < f->num_tensors(); ++i) Consume(f->GetAt(i));
//   }
//
// Thread-safety: immutable after Open(); const methods may run concurrently.
#ifndef MOE_ADAPTER_CORE_CHECKPOINT_READER_H_
#define MOE_ADAPTER_CORE_CHECKPOINT_READER_H_

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/safetensors_reader.h"
#include "moe_adapter/tensor.h"

namespace moe_adapter {

class SafetensorsCheckpoint {
 public:
  // Shard: one file and what its header declares, in data-offset order.
  struct Shard {
    std::string path;
    std::vector<TensorInfo> tensors;
  };

  // Open(): `path` is a .safetensors file or a directory (see the file
  // comment). kNotFound when it does not exist or holds no safetensors file;
  // kInvalidArgument when a shard or the index is malformed or they disagree.
  static absl::StatusOr<SafetensorsCheckpoint> Open(const std::string& path);

  // path(): as given to Open().
  const std::string& path() const { return path_; }
  // index_path(): the index file used, empty when there is none.
  const std::string& index_path() const { return index_path_; }
  // index_metadata(): the index's "metadata" object; string values as they
  // are, other values as their JSON text ("total_size" -> "90656").
  const std::map<std::string, std::string>& index_metadata() const { return index_metadata_; }

  // shards(): sorted by file name.
  const std::vector<Shard>& shards() const { return shards_; }
  std::vector<std::string> shard_paths() const;
  size_t num_tensors() const { return shard_of_.size(); }

  // ShardOf(): the position in shards() of the shard holding `name` (kNotFound).
  absl::StatusOr<size_t> ShardOf(absl::string_view name) const;

  // OpenShard(): maps shard `index` < shards().size().
  absl::StatusOr<std::shared_ptr<SafetensorsFile>> OpenShard(size_t index) const;

 private:
  std::string path_;
  std::string index_path_;
  std::map<std::string, std::string> index_metadata_;
  std::vector<Shard> shards_;
  absl::flat_hash_map<std::string, size_t> shard_of_;
};

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_CHECKPOINT_READER_H_
