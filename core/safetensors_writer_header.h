// What every safetensors writer (safetensors_writer.h) checks before it
// writes, and the header it writes: shared by the three writers.
#ifndef MOE_ADAPTER_CORE_SAFETENSORS_WRITER_HEADER_H_
#define MOE_ADAPTER_CORE_SAFETENSORS_WRITER_HEADER_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "moe_adapter/tensor.h"

namespace moe_adapter {
namespace safetensors {

// CheckTensor(): kInvalidArgument, naming `path`, for the reserved name
// "__metadata__", a name that is not UTF-8, or bytes that do not match
// dtype x shape.
absl::Status CheckTensor(const NamedTensor& t, absl::string_view path);

// CheckMetadata(): kInvalidArgument when a key or value is not UTF-8.
absl::Status CheckMetadata(const std::map<std::string, std::string>& metadata,
                           absl::string_view path);

// BuildHeader(): the 8-byte length + JSON, padded with spaces to end 8-byte
// aligned. Built by hand, not with ordered_json, whose insertion is a linear
// search (quadratic for the ~10^4 tensors of a large checkpoint file); the
// result is the compact JSON the official writer emits, metadata first.
absl::StatusOr<std::string> BuildHeader(const std::vector<TensorInfo>& infos,
                                        const std::vector<std::pair<uint64_t, uint64_t>>& offsets,
                                        const std::map<std::string, std::string>& metadata,
                                        absl::string_view path);

}  // namespace safetensors
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_SAFETENSORS_WRITER_HEADER_H_
