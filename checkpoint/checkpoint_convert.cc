#include "moe_adapter/checkpoint_convert.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "checkpoint/adapter_config.h"
#include "checkpoint/output_dir.h"
#include "checkpoint/shard_lanes.h"
#include "core/checkpoint_reader.h"
#include "core/expert_parallel.h"
#include "core/family_registry.h"
#include "core/regular_file.h"
#include "core/internal/status_macros.h"
#include "core/quant/fp8_pairing.h"
#include "core/safetensors_writer.h"
#include "moe_adapter/file_convert.h"

namespace moe_adapter {
namespace {

bool IsDir(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool Exists(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

std::string Join(const std::string& dir, const std::string& name) { return dir + "/" + name; }

// The visible files of an input directory, to copy along. Subdirectories
// are not part of a checkpoint's files; a FIFO, device or dangling link where
// a file should be is an error (copying it would hang or never end).
absl::StatusOr<std::vector<std::string>> ListFiles(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return absl::InternalError(absl::StrCat("cannot list \"", dir, "\": ", std::strerror(errno)));
  absl::Status s;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.empty() || n[0] == '.') continue;
    struct stat st;
    if (::stat(Join(dir, n).c_str(), &st) != 0) {
      s = absl::NotFoundError(absl::StrCat("cannot read \"", Join(dir, n), "\": ", std::strerror(errno)));
      break;
    }
    if (S_ISDIR(st.st_mode)) continue;
    if (!S_ISREG(st.st_mode)) {
      s = NotRegularFileError(Join(dir, n), st.st_mode);
      break;
    }
    out.push_back(n);
  }
  ::closedir(d);
  if (!s.ok()) return s;
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<std::string> ReadText(const std::string& path) { return ReadRegularFile(path, 16 << 20); }

absl::Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  f.close();
  if (!f) return absl::InternalError(absl::StrCat("cannot write \"", path, "\""));
  return absl::OkStatus();
}

absl::Status CopyFile(const std::string& from, const std::string& to) {
  ASSIGN_OR_RETURN(const int in, OpenRegularFile(from));
  // The work directory is new and ours: a name already there is not.
  int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (out < 0) {
    ::close(in);
    return absl::InternalError(absl::StrCat("create \"", to, "\": ", std::strerror(errno)));
  }
  std::vector<char> buf(1 << 20);
  absl::Status s;
  for (;;) {
    ssize_t n = ::read(in, buf.data(), buf.size());
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      s = absl::InternalError(absl::StrCat("read \"", from, "\": ", std::strerror(errno)));
      break;
    }
    for (ssize_t off = 0; off < n;) {
      ssize_t w = ::write(out, buf.data() + off, n - off);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        s = absl::InternalError(absl::StrCat("write \"", to, "\": ", std::strerror(errno)));
        break;
      }
      off += w;
    }
    if (!s.ok()) break;
  }
  ::close(in);
  if (::close(out) != 0 && s.ok()) s = absl::InternalError(absl::StrCat("close \"", to, "\": ", std::strerror(errno)));
  return s;
}

// The layer a key belongs to ("...layers.12...." -> 12), or -1.
int64_t LayerOf(const std::string& key) {
  size_t pos = key.rfind("layers.");
  while (pos != std::string::npos) {
    size_t end = pos + 7;
    size_t digits = end;
    while (digits < key.size() && key[digits] >= '0' && key[digits] <= '9') ++digits;
    int64_t layer;
    if (digits > end && digits < key.size() && key[digits] == '.' &&
        absl::SimpleAtoi(absl::string_view(key).substr(end, digits - end), &layer)) {
      return layer;
    }
    if (pos == 0) break;
    pos = key.rfind("layers.", pos - 1);
  }
  return -1;
}

// KeepFp8PairsTogether(): an FP8 weight and its block scale must reach the
// same stream (only there can the weight be dequantised). Keys inside a
// layer already share its group; keys outside any layer (group -1, spread
// freely) that form such a pair get a group of their own, after the layers.
void KeepFp8PairsTogether(const std::vector<std::string>& names, std::vector<int64_t>& group) {
  std::set<std::string> scaled;
  for (const std::string& n : names) {
    if (IsFp8Scale(n)) scaled.insert(n.substr(0, n.size() - kFp8ScaleSuffix.size()));
  }
  if (scaled.empty()) return;
  std::map<std::string, int64_t> ids;
  const int64_t first = int64_t{1} << 40;  // beyond any layer number
  for (size_t i = 0; i < names.size(); ++i) {
    if (group[i] >= 0) continue;
    const std::string& n = names[i];
    std::string weight = IsFp8Scale(n) ? n.substr(0, n.size() - kFp8ScaleSuffix.size()) : n;
    if (!scaled.count(weight)) continue;
    group[i] = ids.emplace(weight, first + static_cast<int64_t>(ids.size())).first->second;
  }
}

struct Item {
  size_t shard;
  size_t index;
  uint64_t bytes;
  int lane = 0;
};

// Splits items into `lanes` contiguous runs of similar byte counts; from_hf
// keeps a layer's items in one run (items are sorted by layer first).
void AssignLanes(std::vector<Item>& items, const std::vector<int64_t>& group, int lanes) {
  uint64_t total = 0;
  for (const Item& it : items) total += it.bytes;
  uint64_t acc = 0;
  int lane = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const bool group_start = i == 0 || group[i] != group[i - 1] || group[i] < 0;
    if (group_start && lane + 1 < lanes && acc >= total * (lane + 1) / lanes) ++lane;
    items[i].lane = lane;
    acc += items[i].bytes;
  }
}

std::optional<int64_t> ExpertLoraRank(const SafetensorsCheckpoint& ckpt, const ModelFamily& family) {
  for (const auto& shard : ckpt.shards()) {
    for (const TensorInfo& t : shard.tensors) {
      KeyParts parts;
      absl::StatusOr<KeyRole> role = family.native().Classify(t.name, &parts);
      if (t.shape.size() == 3 && role.ok() &&
          (*role == KeyRole::kNativeLoraGateUpA || *role == KeyRole::kNativeLoraDownA)) {
        return t.shape[2];
      }
    }
  }
  return std::nullopt;
}

// The plan: every input tensor, in the order it is sent, each on its lane.
struct LanePlan {
  std::vector<std::shared_ptr<SafetensorsFile>> shards;
  std::vector<Item> items;
  int lanes = 1;

  const std::string& Name(const Item& it) const { return shards[it.shard]->tensors()[it.index].name; }
};

// Inputs in file order; from_hf regroups them by layer so that one stream
// sees every expert of a layer.
absl::StatusOr<LanePlan> PlanLanes(Direction direction, const SafetensorsCheckpoint& ckpt, bool is_adapter,
                                   size_t streams) {
  LanePlan plan;
  std::vector<std::shared_ptr<SafetensorsFile>>& shards = plan.shards;
  for (size_t s = 0; s < ckpt.shards().size(); ++s) {
    ASSIGN_OR_RETURN(std::shared_ptr<SafetensorsFile> f, ckpt.OpenShard(s));
    shards.push_back(std::move(f));
  }
  std::vector<Item>& items = plan.items;
  std::vector<int64_t> group;
  for (size_t s = 0; s < shards.size(); ++s) {
    for (size_t i = 0; i < shards[s]->num_tensors(); ++i) items.push_back({s, i, shards[s]->nbytes(i)});
  }
  int lanes = streams == 0 ? 1 : static_cast<int>(streams);
  if (is_adapter) lanes = 1;  // small, and its LoRA layout is decided over the whole adapter
  lanes = std::max(1, std::min<int>(lanes, static_cast<int>(std::max<size_t>(items.size(), 1))));
  for (const Item& it : items) group.push_back(direction == Direction::kFromHf ? LayerOf(plan.Name(it)) : -1);
  if (direction == Direction::kFromHf && lanes > 1) {
    std::vector<std::string> names;
    for (const Item& it : items) names.push_back(shards[it.shard]->tensors()[it.index].name);
    KeepFp8PairsTogether(names, group);
    std::vector<size_t> order(items.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return group[a] < group[b]; });
    std::vector<Item> sorted_items;
    std::vector<int64_t> sorted_group;
    for (size_t i : order) {
      sorted_items.push_back(items[i]);
      sorted_group.push_back(group[i]);
    }
    items.swap(sorted_items);
    group.swap(sorted_group);
  }
  AssignLanes(items, group, lanes);
  plan.lanes = lanes;
  return plan;
}

// Header size bound per lane, from the input headers: entries each input
// can produce times a generous entry size.
void ReserveHeaders(const LanePlan& plan, Direction direction, const ConvertOptions& options,
                    const ModelFamily& family, ShardLanes& writer) {
  for (int l = 0; l < plan.lanes; ++l) {
    uint64_t bound = 1024;
    for (const Item& it : plan.items) {
      if (it.lane != l) continue;
      const std::string& name = plan.Name(it);
      uint64_t entries = 1;
      KeyParts parts;
      absl::StatusOr<KeyRole> role = family.native().Classify(name, &parts);
      if (direction == Direction::kToHf && (!role.ok() || *role != KeyRole::kOther)) {
        entries = 2 * static_cast<uint64_t>(options.geometry.num_experts);
      }
      bound += entries * (name.size() + 160);
    }
    writer.SetHeaderReserve(l, bound);
  }
}

// What the lanes' streams produced, besides the files `writer` holds.
struct LaneResults {
  int64_t tensors_in = 0;
  uint64_t bytes_in = 0;
  int64_t tensors_out = 0;
  uint64_t bytes_out = 0;
  size_t peak_held_bytes = 0;
  std::vector<std::string> warnings;  // each once, in lane order
};

// Opens one stream per lane and sends it the lane's items, in order, on a
// thread of its own when there are several lanes; the first failure stops
// every lane.
absl::StatusOr<LaneResults> RunLanes(Direction direction, const std::string& input, const LanePlan& plan,
                                     const ConvertOptions& stream_options, const CheckpointConvertOptions& copts,
                                     ShardLanes& writer) {
  const int lanes = plan.lanes;
  const std::vector<Item>& items = plan.items;
  const std::vector<std::shared_ptr<SafetensorsFile>>& shards = plan.shards;
  Progress progress;
  progress.tensors_total = static_cast<int64_t>(items.size());
  for (const Item& it : items) progress.bytes_total += it.bytes;

  std::mutex progress_mu;
  std::atomic<int64_t> tensors_out{0};
  std::atomic<uint64_t> bytes_out{0};
  std::vector<absl::Status> lane_status(lanes);
  std::vector<size_t> lane_peak(lanes, 0);
  std::vector<std::vector<std::string>> lane_warnings(lanes);
  std::atomic<bool> failed{false};

  auto run_lane = [&](int lane) {
    TensorSink sink = [&, lane](NamedTensor t) -> absl::Status {
      tensors_out.fetch_add(1);
      bytes_out.fetch_add(t.tensor.nbytes());
      return writer.Add(lane, t);
    };
    const StreamOpener& open = copts.streams.empty() ? EmbeddedStreams(Device{}) : copts.streams[lane];
    absl::StatusOr<std::unique_ptr<ConversionStream>> stream = open(direction, stream_options, sink);
    if (!stream.ok()) {
      lane_status[lane] = stream.status();
      failed = true;
      return;
    }
    for (const Item& it : items) {
      if (it.lane != lane) continue;
      if (failed.load()) return;
      absl::Status s;
      {
        NamedTensor t = shards[it.shard]->GetAt(it.index);
        s = (*stream)->Send(t);
      }
      // Consumed: keep resident memory to what the converter holds.
      if (s.ok() && !(*stream)->RetainsInputs()) shards[it.shard]->ReleasePages(it.index);
      if (!s.ok()) {
        lane_status[lane] = absl::Status(s.code(), absl::StrCat(shards[it.shard]->path(), ": ", s.message()));
        failed = true;
        return;
      }
      if (copts.progress) {
        std::lock_guard<std::mutex> lock(progress_mu);
        ++progress.tensors_done;
        progress.bytes_done += it.bytes;
        copts.progress(progress);
      }
    }
    absl::Status s = (*stream)->Finish();
    if (!s.ok()) {
      lane_status[lane] = absl::Status(s.code(), absl::StrCat(input, ": ", s.message()));
      failed = true;
      return;
    }
    lane_peak[lane] = (*stream)->PeakHeldBytes();
    lane_warnings[lane] = (*stream)->Warnings();
  };
  if (lanes == 1) {
    run_lane(0);
  } else {
    std::vector<std::thread> threads;
    for (int l = 0; l < lanes; ++l) threads.emplace_back(run_lane, l);
    for (auto& t : threads) t.join();
  }
  for (const absl::Status& s : lane_status) RETURN_IF_ERROR(s);

  LaneResults results;
  results.tensors_in = progress.tensors_total;
  results.bytes_in = progress.bytes_total;
  results.tensors_out = tensors_out.load();
  results.bytes_out = bytes_out.load();
  for (int l = 0; l < lanes; ++l) {
    results.peak_held_bytes = std::max(results.peak_held_bytes, lane_peak[l]);
    for (const auto& w : lane_warnings[l]) {
      if (std::find(results.warnings.begin(), results.warnings.end(), w) == results.warnings.end()) {
        results.warnings.push_back(w);
      }
    }
  }
  return results;
}

// A file in, a file out: one lane wrote one file; several lanes wrote one
// shard each (max_shard_bytes = 0), merged here in lane order. Returns the
// file's name in `out_dir`.
absl::StatusOr<std::string> OneOutputFile(const std::string& out_dir, const std::vector<std::string>& written,
                                          const std::map<std::string, std::string>& metadata) {
  if (written.size() == 1) return written[0];
  const std::string output_file = ".merged.safetensors";
  ASSIGN_OR_RETURN(auto merged, StreamingSafetensorsWriter::Create(Join(out_dir, output_file), metadata));
  for (const std::string& name : written) {
    if (!absl::EndsWith(name, ".safetensors")) continue;
    ASSIGN_OR_RETURN(std::shared_ptr<SafetensorsFile> part, SafetensorsFile::Open(Join(out_dir, name)));
    for (size_t i = 0; i < part->num_tensors(); ++i) RETURN_IF_ERROR(merged->Add(part->GetAt(i)));
  }
  RETURN_IF_ERROR(merged->Finish());
  return output_file;
}

// Non-tensor files travel with the checkpoint (config, tokenizer, ...).
// Appends the names copied to `written`.
absl::Status CopySideFiles(const std::string& input, bool skip_adapter_config, const std::string& out_dir,
                           std::vector<std::string>& written) {
  ASSIGN_OR_RETURN(const std::vector<std::string> side_files, ListFiles(input));
  for (const std::string& name : side_files) {
    if (absl::EndsWith(name, ".safetensors") || absl::EndsWith(name, ".safetensors.index.json")) continue;
    if (name == "adapter_config.json" && skip_adapter_config) continue;
    RETURN_IF_ERROR(CopyFile(Join(input, name), Join(out_dir, name)));
    written.push_back(name);
  }
  return absl::OkStatus();
}

// An adapter going to HF gets the adapter_config.json PEFT reads, made from
// the one given (options, else the input's) and the adapter's LoRA rank.
absl::Status WriteHfAdapterConfig(const InputFiles& files, const SafetensorsCheckpoint& ckpt,
                                  const ConvertOptions& options, const ModelFamily& family,
                                  const CheckpointConvertOptions& copts, const std::string& out_dir) {
  std::string input_config;
  if (!options.adapter_config_json.empty()) {
    input_config = options.adapter_config_json;
  } else if (!files.adapter_config_json.empty()) {
    ASSIGN_OR_RETURN(input_config, ReadText(files.adapter_config_json));
  }
  ASSIGN_OR_RETURN(std::string cfg,
                   AdapterConfigForHf(input_config, LoraLayoutToWrite(options, family),
                                      ExpertLoraRank(ckpt, family), copts.lora_alpha, family));
  return WriteText(Join(out_dir, "adapter_config.json"), cfg);
}

}  // namespace

absl::StatusOr<InputFiles> DescribeInput(const std::string& path) {
  InputFiles f;
  if (!Exists(path)) return absl::NotFoundError(absl::StrCat("input \"", path, "\" does not exist"));
  f.is_directory = IsDir(path);
  if (!f.is_directory) return f;
  if (Exists(Join(path, "config.json"))) f.config_json = Join(path, "config.json");
  if (Exists(Join(path, "adapter_config.json"))) f.adapter_config_json = Join(path, "adapter_config.json");
  f.is_adapter = Exists(Join(path, "adapter_model.safetensors"));
  return f;
}

absl::StatusOr<ConvertSummary> ConvertCheckpoint(Direction direction, const std::string& input,
                                                 const std::string& output, const ConvertOptions& options,
                                                 const CheckpointConvertOptions& copts) {
  const auto start = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(InputFiles files, DescribeInput(input));
  ConvertSummary summary;
  summary.input_is_directory = files.is_directory;
  summary.adapter = files.is_adapter;
  RETURN_IF_ERROR(CheckOutput(output, files.is_directory, copts.overwrite).status());
  for (const std::string& notice : RemoveStaleTemporaries(output)) {
    if (copts.notice) copts.notice(notice);
  }
  ASSIGN_OR_RETURN(SafetensorsCheckpoint ckpt, SafetensorsCheckpoint::Open(input));
  ASSIGN_OR_RETURN(const LanePlan plan, PlanLanes(direction, ckpt, files.is_adapter, copts.streams.size()));
  summary.streams = plan.lanes;
  ConvertOptions stream_options = options;
  if (plan.lanes > 1) {
    // Each stream sees some layers only; the whole-checkpoint rule is checked
    // here, from the headers, before any data moves.
    stream_options.partial_checkpoint = true;
    std::vector<std::string> keys;
    for (const Item& it : plan.items) keys.push_back(plan.Name(it));
    RETURN_IF_ERROR(CheckMoeLayerCoverage(options, keys, direction == Direction::kToHf));
  } else if (direction == Direction::kToHf && plan.items.size() == 1) {
    // One tensor is a single-tensor conversion (the reference's
    // convert_single_tensor_to_hf, the ConvertTensor RPC): there is no model
    // whose layers it could be missing.
    stream_options.partial_checkpoint = true;
  }

  StagedOutput staged(output, files.is_directory);
  RETURN_IF_ERROR(staged.Create());
  const std::string& out_dir = staged.work_dir();

  std::map<std::string, std::string> metadata;
  if (direction == Direction::kFromHf && options.ep_size > 1) {
    metadata = EpMetadata(options.geometry.num_experts, options.ep_size, options.ep_rank);
  }
  const bool single_file = !files.is_directory || files.is_adapter;
  ShardLanes writer(out_dir, files.is_adapter ? "adapter_model" : "model",
                    single_file ? 0 : copts.max_shard_bytes, plan.lanes, metadata);
  ASSIGN_OR_RETURN(const ModelFamily* family, ResolveFamily(options));
  ReserveHeaders(plan, direction, options, *family, writer);
  ASSIGN_OR_RETURN(LaneResults results, RunLanes(direction, input, plan, stream_options, copts, writer));
  ASSIGN_OR_RETURN(std::vector<std::string> written, writer.Finish());
  summary.tensors_in = results.tensors_in;
  summary.bytes_in = results.bytes_in;
  summary.tensors_out = results.tensors_out;
  summary.bytes_out = results.bytes_out;
  summary.peak_held_bytes = results.peak_held_bytes;
  summary.warnings = std::move(results.warnings);

  std::string output_file;
  if (!files.is_directory) {
    ASSIGN_OR_RETURN(output_file, OneOutputFile(out_dir, written, metadata));
    summary.files = {output.substr(output.rfind('/') == std::string::npos ? 0 : output.rfind('/') + 1)};
  } else {
    const bool hf_adapter = files.is_adapter && direction == Direction::kToHf;
    RETURN_IF_ERROR(CopySideFiles(input, hf_adapter, out_dir, written));
    if (hf_adapter) {
      RETURN_IF_ERROR(WriteHfAdapterConfig(files, ckpt, options, *family, copts, out_dir));
      written.push_back("adapter_config.json");
    }
    summary.files = written;
  }
  RETURN_IF_ERROR(staged.Commit(copts.overwrite, output_file));
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

absl::Status ConvertFile(Direction direction, const std::string& input, const std::string& output,
                         const ConvertOptions& options, bool overwrite, ConvertSummary* summary) {
  CheckpointConvertOptions copts;
  copts.overwrite = overwrite;
  ASSIGN_OR_RETURN(ConvertSummary s, ConvertCheckpoint(direction, input, output, options, copts));
  if (summary) *summary = std::move(s);
  return absl::OkStatus();
}

}  // namespace moe_adapter
