// File: moe_adapter/file_convert.h
//
// Converting safetensors files in-process (the embedded mode): read with mmap,
// stream every tensor through a conversion session, write the output under a
// temporary name in the output's folder and rename it at the end, so the
// output is either complete or absent.
//
// Example:
//   moe_adapter::ConvertOptions opts = ...;
//   moe_adapter::FileConvertStats stats;
//   absl::Status s = moe_adapter::ConvertFile(moe_adapter::Direction::kToHf,
//                                             "native.safetensors", "hf.safetensors",
//                                             opts, {}, &stats);
#ifndef MOE_ADAPTER_FILE_CONVERT_H_
#define MOE_ADAPTER_FILE_CONVERT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "moe_adapter/convert_options.h"

namespace moe_adapter {

enum class Direction { kToHf, kFromHf };

// FileConvertOptions: what happens around the conversion.
struct FileConvertOptions {
  // Replace an existing output (refused otherwise, spec §15.7).
  bool overwrite = false;
};

// FileConvertStats: what a conversion did.
struct FileConvertStats {
  int64_t tensors_in = 0;
  int64_t tensors_out = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  size_t peak_held_bytes = 0;  // from_hf: the most bytes held in incomplete groups
  std::vector<std::string> warnings;
};

// ConvertFile(): one .safetensors file to another. On error nothing is left
// at `output` (and an existing output is untouched).
absl::Status ConvertFile(Direction direction, const std::string& input, const std::string& output,
                         const ConvertOptions& options, const FileConvertOptions& file_options,
                         FileConvertStats* stats);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_FILE_CONVERT_H_
