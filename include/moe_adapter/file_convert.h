// File: moe_adapter/file_convert.h
//
// One .safetensors file to another, in-process: a convenience over
// ConvertCheckpoint() (checkpoint_convert.h) with one embedded stream.
#ifndef MOE_ADAPTER_FILE_CONVERT_H_
#define MOE_ADAPTER_FILE_CONVERT_H_

#include <string>

#include "absl/status/status.h"
#include "moe_adapter/checkpoint_convert.h"

namespace moe_adapter {

// ConvertFile(): on error nothing is left at `output` (an existing output is
// untouched unless `overwrite` and the conversion succeeded).
absl::Status ConvertFile(Direction direction, const std::string& input, const std::string& output,
                         const ConvertOptions& options, bool overwrite = false,
                         ConvertSummary* summary = nullptr);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_FILE_CONVERT_H_
