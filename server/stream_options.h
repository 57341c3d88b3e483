// File: server/stream_options.h
//
// The first message of every conversion stream (v1::StreamOptions) turned
// into the core's ConvertOptions, validated by the core's ValidateOptions():
// geometry from `geometry` and/or a config.json body, layout, dtype, regex,
// EP rank and size, adapter config; plus the stream's chunk size.
//
// Example:
//   ASSIGN_OR_RETURN(StreamConfig cfg, StreamConfigFromWire(msg.options(), limits));
//   ASSIGN_OR_RETURN(auto conv, ToHfConverter::Create(cfg.options));
//
// Errors: INVALID_ARGUMENT, the message starting with "options: ".
#ifndef MOE_ADAPTER_SERVER_STREAM_OPTIONS_H_
#define MOE_ADAPTER_SERVER_STREAM_OPTIONS_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "moe_adapter/convert_options.h"
#include "moe_adapter/v1/adapter.pb.h"

namespace moe_adapter {
namespace server {

struct StreamConfig {
  ConvertOptions options;
  // Bytes per chunk, both directions.
  uint64_t chunk_bytes = 0;
};

// StreamConfigFromWire(): `default_chunk` when the client asks for none;
// more than `max_chunk` is refused, and so is any string or list over its
// bound in wire_limits.h (before it is parsed).
absl::StatusOr<StreamConfig> StreamConfigFromWire(const v1::StreamOptions& wire, uint64_t default_chunk,
                                                  uint64_t max_chunk);

}  // namespace server
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_SERVER_STREAM_OPTIONS_H_
