// File: protocol/wire_limits.h
//
// Bounds on every client-controlled string and list of proto moe_adapter.v1
// (docs/server.md, "Limits"). A peer is untrusted: each field is checked
// against its bound before it is used, kept or quoted, so a megabyte name
// costs the server one refused message (INVALID_ARGUMENT naming the field and
// the limit), not megabytes per copy kept or a status message too large for
// the client to receive. Real checkpoints stay far below every bound (the
// longest Qwen3 key is under 100 bytes).
//
// Example:
//   if (name.size() > wire::kMaxTensorNameBytes) return error;
//
// Thread-safety: constants only.
#ifndef MOE_ADAPTER_PROTOCOL_WIRE_LIMITS_H_
#define MOE_ADAPTER_PROTOCOL_WIRE_LIMITS_H_

#include <cstddef>

namespace moe_adapter {
namespace wire {

// TensorHeader.name of an input tensor.
inline constexpr size_t kMaxTensorNameBytes = 4096;
// TensorHeader.name anywhere on the wire: a server's output key derives from
// an input name and adds at most an expert id and a suffix.
inline constexpr size_t kMaxWireNameBytes = kMaxTensorNameBytes + 64;
// TensorHeader.dtype (safetensors names are at most 7 bytes: "F8_E4M3").
inline constexpr size_t kMaxDTypeBytes = 32;
// TensorHeader.shape: dimensions (expert tensors have 3).
inline constexpr size_t kMaxShapeRank = 8;
// TensorHeader.metadata: entries, key and value bytes, and all of them together.
inline constexpr size_t kMaxMetadataEntries = 64;
inline constexpr size_t kMaxMetadataKeyBytes = 256;
inline constexpr size_t kMaxMetadataValueBytes = 4096;
inline constexpr size_t kMaxMetadataTotalBytes = 64 * 1024;

// StreamOptions.config_json and .adapter_config_json (a Qwen3 config.json is
// about 2 KB).
inline constexpr size_t kMaxConfigJsonBytes = 1 << 20;
// StreamOptions.exclude_key_regex.
inline constexpr size_t kMaxRegexBytes = 4096;
// StreamOptions.lora_layout, .dtype and Geometry.config_dtype (names such as
// "peft-v0.19", "torch.bfloat16").
inline constexpr size_t kMaxOptionNameBytes = 32;
// Geometry.mlp_only_layers: entries.
inline constexpr size_t kMaxMlpOnlyLayers = 4096;

}  // namespace wire
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_PROTOCOL_WIRE_LIMITS_H_
