// File: moe_adapter/checkpoint_convert.h
//
// Converting whole checkpoints: a .safetensors file, a sharded checkpoint
// directory (model.safetensors.index.json or every shard) or a PEFT adapter
// directory, through one or several conversion streams (in-process, or gRPC
// streams to one or many servers). The output is written into a temporary
// directory beside the output path and renamed at the end: it is complete or
// absent. What an existing output may be replaced (symbolic links are
// replaced, never followed; --overwrite removes only a directory that looks
// like a checkpoint) is described at CheckOutput() in checkpoint/output_dir.h;
// temporaries that killed runs left beside the output are removed.
//
// Example:
//   moe_adapter::CheckpointConvertOptions copts;            // one embedded stream
//   absl::StatusOr<moe_adapter::ConvertSummary> s = moe_adapter::ConvertCheckpoint(
//       moe_adapter::Direction::kFromHf, "Qwen3-30B-A3B/", "native/", options, copts);
#ifndef MOE_ADAPTER_CHECKPOINT_CONVERT_H_
#define MOE_ADAPTER_CHECKPOINT_CONVERT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "moe_adapter/convert_options.h"
#include "moe_adapter/converter.h"

namespace moe_adapter {

enum class Direction { kToHf, kFromHf };

// ConversionStream: one ordered stream of input tensors through a converter.
// Outputs reach the sink given when it was opened, in order, possibly from
// another thread (never two at once).
class ConversionStream {
 public:
  virtual ~ConversionStream() = default;
  virtual absl::Status Send(const NamedTensor& input) = 0;
  // Finish(): flushes; every output has reached the sink when it returns OK.
  virtual absl::Status Finish() = 0;
  // PeakHeldBytes(): the most tensor bytes the converter held at once
  // (0 when unknown, e.g. remote).
  virtual size_t PeakHeldBytes() const { return 0; }
  // RetainsInputs(): true when the stream keeps references to input bytes
  // after Send() returns (so the caller must not release them early).
  virtual bool RetainsInputs() const { return false; }
  virtual std::vector<std::string> Warnings() const = 0;
};

// StreamOpener: opens one stream (an in-process session, a server stream...).
using StreamOpener = std::function<absl::StatusOr<std::unique_ptr<ConversionStream>>(
    Direction, const ConvertOptions&, TensorSink)>;

// OpenEmbeddedStream(): the in-process core (the default), on `device`.
absl::StatusOr<std::unique_ptr<ConversionStream>> OpenEmbeddedStream(Direction direction,
                                                                       const ConvertOptions& options,
                                                                       TensorSink sink, const Device& device = {});

// EmbeddedStreams(): an opener for in-process streams on `device`.
StreamOpener EmbeddedStreams(Device device);

// Progress: counts so far, for progress bars.
struct Progress {
  int64_t tensors_done = 0;
  int64_t tensors_total = 0;
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
};

struct CheckpointConvertOptions {
  // Replace an existing output.
  bool overwrite = false;
  // Tensor bytes per output shard (transformers' 5 GB default; 0 = one file).
  uint64_t max_shard_bytes = 5'000'000'000;
  // One opener per parallel stream ("lane"); empty = one embedded stream.
  // to_hf splits the input into contiguous ranges; from_hf keeps every
  // tensor of a layer on one stream (a group completes only where all its
  // experts arrive, spec §15.7). Adapters always use one stream.
  std::vector<StreamOpener> streams;
  // lora_alpha for an adapter_config.json written from scratch (to_hf of an
  // adapter without one): required then, since a wrong scale loads silently.
  std::optional<double> lora_alpha;
  // Called after each input tensor (from any stream's thread, serialised).
  std::function<void(const Progress&)> progress;
  // Called with a one-line notice for each stale temporary of an earlier,
  // killed run that was removed beside the output.
  std::function<void(const std::string&)> notice;
};

struct ConvertSummary {
  bool input_is_directory = false;
  bool adapter = false;
  int64_t tensors_in = 0;
  int64_t tensors_out = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  size_t peak_held_bytes = 0;
  int streams = 1;
  double seconds = 0;
  std::vector<std::string> files;  // written, relative to the output directory (or the file name)
  std::vector<std::string> warnings;
};

// ConvertCheckpoint(): `input` is a .safetensors file (output: a file) or a
// directory (output: a directory with shards + index, non-tensor files such
// as config.json and tokenizer files copied, and for adapters
// adapter_model.safetensors + adapter_config.json matching the layout written).
absl::StatusOr<ConvertSummary> ConvertCheckpoint(Direction direction, const std::string& input,
                                                 const std::string& output, const ConvertOptions& options,
                                                 const CheckpointConvertOptions& copts);

// InputFiles: what a checkpoint path holds, for option defaults.
struct InputFiles {
  bool is_directory = false;
  bool is_adapter = false;          // adapter_model.safetensors present
  std::string config_json;          // path of config.json, empty if none
  std::string adapter_config_json;  // path of adapter_config.json, empty if none
};
absl::StatusOr<InputFiles> DescribeInput(const std::string& path);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CHECKPOINT_CONVERT_H_
