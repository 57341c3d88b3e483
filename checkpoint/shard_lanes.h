// Writes one checkpoint's safetensors shards from several independent lanes
// (one per conversion stream) into a directory. Each lane fills its own
// shards in order; Finish() numbers all shards lane by lane
// (model-00001-of-0000N.safetensors ...), writes model.safetensors.index.json
// as transformers does, or names a lone shard model.safetensors. So output
// order = lane order, then emission order within a lane.
#ifndef MOE_ADAPTER_CHECKPOINT_SHARD_LANES_H_
#define MOE_ADAPTER_CHECKPOINT_SHARD_LANES_H_

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/safetensors_writer.h"
#include "moe_adapter/tensor.h"

namespace moe_adapter {

class ShardLanes {
 public:
  // `dir` exists and is empty (the caller's temporary output directory).
  // max_shard_bytes = 0: one shard per lane. `metadata` goes into every
  // shard's __metadata__ (e.g. the EP slice).
  ShardLanes(std::string dir, std::string base_name, uint64_t max_shard_bytes, int lanes,
             std::map<std::string, std::string> metadata = {});
  ~ShardLanes();

  // SetHeaderReserve(): an upper bound of the header bytes of each of the
  // lane's files, so data is written once, in place (see
  // SafetensorsWriteOptions::reserve_header_bytes). 0: spool and copy.
  void SetHeaderReserve(int lane, uint64_t bytes) { lanes_[lane].header_reserve = bytes; }

  // Add(): thread-safe across lanes; one thread per lane. Duplicate keys
  // across lanes are kInvalidArgument.
  absl::Status Add(int lane, const NamedTensor& tensor);

  // Finish(): the final file names (relative to dir), shards then index.
  absl::StatusOr<std::vector<std::string>> Finish();

  uint64_t total_bytes() const { return total_bytes_; }

 private:
  struct Shard {
    std::string temp_path;
    std::vector<std::string> keys;
    uint64_t bytes = 0;
  };
  struct Lane {
    uint64_t header_reserve = 0;
    std::unique_ptr<StreamingSafetensorsWriter> writer;
    std::vector<Shard> shards;
  };
  absl::Status CloseCurrent(Lane& lane);

  std::string dir_;
  std::string base_;
  uint64_t max_bytes_;
  std::vector<Lane> lanes_;
  std::mutex mu_;  // guards names_ and total_bytes_
  absl::flat_hash_set<std::string> names_;
  uint64_t total_bytes_ = 0;
  std::map<std::string, std::string> metadata_;
};

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CHECKPOINT_SHARD_LANES_H_
