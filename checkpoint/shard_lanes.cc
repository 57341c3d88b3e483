#include "checkpoint/shard_lanes.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/internal/status_macros.h"
#include "nlohmann/json.hpp"
#include "core/quote.h"

namespace moe_adapter {

ShardLanes::ShardLanes(std::string dir, std::string base_name, uint64_t max_shard_bytes, int lanes,
                       std::map<std::string, std::string> metadata)
    : dir_(std::move(dir)),
      base_(std::move(base_name)),
      max_bytes_(max_shard_bytes),
      lanes_(lanes),
      metadata_(std::move(metadata)) {}

ShardLanes::~ShardLanes() {
  for (Lane& lane : lanes_) {
    if (lane.writer) lane.writer->Abort();
    for (const Shard& s : lane.shards) ::unlink(s.temp_path.c_str());
  }
}

absl::Status ShardLanes::CloseCurrent(Lane& lane) {
  if (!lane.writer) return absl::OkStatus();
  absl::Status s = lane.writer->Finish();
  lane.writer.reset();
  return s;
}

absl::Status ShardLanes::Add(int lane_index, const NamedTensor& t) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!names_.insert(t.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("output key ", Quote(t.name), " written twice"));
    }
    total_bytes_ += t.tensor.nbytes();
  }
  Lane& lane = lanes_[lane_index];
  const uint64_t n = t.tensor.nbytes();
  if (lane.writer && max_bytes_ > 0 && !lane.shards.back().keys.empty() &&
      lane.shards.back().bytes + n > max_bytes_) {
    RETURN_IF_ERROR(CloseCurrent(lane));
  }
  if (!lane.writer) {
    Shard s;
    s.temp_path = absl::StrCat(dir_, "/.lane", lane_index, "-", lane.shards.size(), ".safetensors.tmp");
    SafetensorsWriteOptions wo;
    wo.reserve_header_bytes = lane.header_reserve;
    ASSIGN_OR_RETURN(lane.writer, StreamingSafetensorsWriter::Create(s.temp_path, metadata_, wo));
    lane.shards.push_back(std::move(s));
  }
  RETURN_IF_ERROR(lane.writer->Add(t));
  lane.shards.back().keys.push_back(t.name);
  lane.shards.back().bytes += n;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ShardLanes::Finish() {
  for (Lane& lane : lanes_) RETURN_IF_ERROR(CloseCurrent(lane));
  std::vector<const Shard*> all;
  for (const Lane& lane : lanes_) {
    for (const Shard& s : lane.shards) all.push_back(&s);
  }
  std::vector<std::string> files;
  if (all.empty()) {
    // A valid empty checkpoint.
    const std::string name = base_ + ".safetensors";
    RETURN_IF_ERROR(WriteSafetensors(absl::StrCat(dir_, "/", name), {}, metadata_));
    files.push_back(name);
    return files;
  }
  const size_t n = all.size();
  nlohmann::json weight_map = nlohmann::json::object();
  for (size_t i = 0; i < n; ++i) {
    const std::string name = n == 1 ? base_ + ".safetensors"
                                    : absl::StrFormat("%s-%05d-of-%05d.safetensors", base_, i + 1, n);
    const std::string path = absl::StrCat(dir_, "/", name);
    if (::rename(all[i]->temp_path.c_str(), path.c_str()) != 0) {
      return absl::InternalError(absl::StrCat("rename to \"", path, "\": ", std::strerror(errno)));
    }
    for (const std::string& k : all[i]->keys) weight_map[k] = name;
    files.push_back(name);
  }
  for (Lane& lane : lanes_) lane.shards.clear();
  if (n > 1) {
    nlohmann::json index = {{"metadata", {{"total_size", total_bytes_}}}, {"weight_map", weight_map}};
    const std::string name = base_ + ".safetensors.index.json";
    std::ofstream f(absl::StrCat(dir_, "/", name));
    f << index.dump(2) << "\n";
    if (!f) return absl::InternalError(absl::StrCat("cannot write ", dir_, "/", name));
    files.push_back(name);
  }
  return files;
}

}  // namespace moe_adapter
