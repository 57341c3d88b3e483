// File: protocol/options_codec.h
//
// The one mapping between the core's ConvertOptions and the first message of
// every conversion stream (v1::StreamOptions), used by both ends. From the
// wire, the options are turned into ConvertOptions validated by the core's ValidateOptions():
// geometry from `geometry` and/or a config.json body, layout, dtype, regex,
// EP rank and size, adapter config; plus the stream's chunk size.
//
// Example:
//   ASSIGN_OR_RETURN(StreamConfig cfg, StreamConfigFromWire(msg.options(), limits));
//   ASSIGN_OR_RETURN(auto conv, ToHfConverter::Create(cfg.options));
//
// Errors: INVALID_ARGUMENT, the message starting with "options: ".
#ifndef MOE_ADAPTER_PROTOCOL_OPTIONS_CODEC_H_
#define MOE_ADAPTER_PROTOCOL_OPTIONS_CODEC_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "moe_adapter/convert_options.h"
#include "moe_adapter/v1/adapter.pb.h"

namespace moe_adapter {
namespace wire {

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

// StreamOptionsToWire(): what a client sends for `options`; the server's
// StreamConfigFromWire() gives back the same ConvertOptions.
v1::StreamOptions StreamOptionsToWire(const ConvertOptions& options, uint64_t chunk_bytes);

}  // namespace wire
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_PROTOCOL_OPTIONS_CODEC_H_
