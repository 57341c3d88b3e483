// File: moe_adapter/remote_streams.h
//
// Server streams as ConversionStreams, so ConvertCheckpoint() can convert a
// checkpoint through one or many servers (one stream per lane).
//
// Example (two servers, in parallel):
//   CheckpointConvertOptions c;
//   for (const char* addr : {"10.0.0.1:50051", "10.0.0.2:50051"}) {
//     ClientOptions o; o.target = addr;
//     c.streams.push_back(RemoteStreams(*RemoteClient::Connect(o)));
//   }
//   ConvertCheckpoint(Direction::kFromHf, "in/", "out/", options, c);
#ifndef MOE_ADAPTER_REMOTE_STREAMS_H_
#define MOE_ADAPTER_REMOTE_STREAMS_H_

#include <memory>

#include "moe_adapter/checkpoint_convert.h"
#include "moe_adapter/client.h"

namespace moe_adapter {

// RemoteStreams(): opens a ToHF/FromHF stream on `client` per lane. Several
// lanes may share one client: with a dns:/// target that resolves to several
// servers, gRPC's round_robin policy spreads the streams over them.
StreamOpener RemoteStreams(std::shared_ptr<RemoteClient> client);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_REMOTE_STREAMS_H_
