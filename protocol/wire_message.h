// File: protocol/wire_message.h
//
// The messages of proto moe_adapter.v1 as gRPC byte buffers, so that tensor
// bytes cross the process boundary without being copied into and out of
// protobuf strings. A chunk message (ConvertRequest.chunk,
// ConvertResponse.chunk) is, in protobuf's wire format, one tag byte, a varint
// length and the bytes: EncodeChunk() sends that prefix and then a slice that
// points at the tensor's own memory (keeping its owner alive for as long as
// gRPC needs it), and Decode() hands the bytes over as the slices gRPC
// received them in (wire::Payload), to be copied once, into their destination.
//
// Any other message (options, headers, summaries: small) goes through
// protobuf as usual. So does a chunk message in a form other than the one
// above (unknown fields, a repeated field, another encoder's quirks): Decode()
// falls back to protobuf's parser, which accepts everything protobuf accepts.
// Peers built from adapter.proto with any gRPC stack interoperate unchanged.
//
// Example (receiving on the server):
//   wire::Inbound<v1::ConvertRequest> in;
//   RETURN_IF_ERROR(wire::Decode(&byte_buffer, &in));
//   if (in.is_chunk) in.chunk.CopyTo(dst);  else use in.message
// Example (sending a tensor's bytes):
//   grpc::ByteBuffer b = wire::EncodeChunk(wire::kResponseChunkField, tensor.data, offset, n);
//
// Thread-safety: values; a Payload may be read from any thread.
#ifndef MOE_ADAPTER_PROTOCOL_WIRE_MESSAGE_H_
#define MOE_ADAPTER_PROTOCOL_WIRE_MESSAGE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include "absl/status/status.h"
#include "google/protobuf/message_lite.h"
#include "moe_adapter/tensor.h"
#include "moe_adapter/v1/adapter.pb.h"

namespace moe_adapter {
namespace wire {

// The `bytes chunk` field numbers of adapter.proto.
inline constexpr int kRequestChunkField = v1::ConvertRequest::kChunkFieldNumber;
inline constexpr int kResponseChunkField = v1::ConvertResponse::kChunkFieldNumber;

// Payload: a chunk's bytes, held in gRPC slices (reference counted, no copy).
class Payload {
 public:
  Payload() = default;
  explicit Payload(std::vector<grpc::Slice> pieces);

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const std::vector<grpc::Slice>& pieces() const { return pieces_; }
  // CopyTo(): writes the size() bytes to `dst`.
  void CopyTo(uint8_t* dst) const;

 private:
  std::vector<grpc::Slice> pieces_;
  size_t size_ = 0;
};

// Inbound: one decoded message; `chunk` is set instead of message.chunk.
template <class Message>
struct Inbound {
  Message message;
  bool is_chunk = false;
  Payload chunk;
};

// Decode(): empties `buffer` into `out`. INVALID_ARGUMENT when protobuf cannot
// parse it.
absl::Status Decode(grpc::ByteBuffer* buffer, Inbound<v1::ConvertRequest>* out);
absl::Status Decode(grpc::ByteBuffer* buffer, Inbound<v1::ConvertResponse>* out);

// EncodeMessage(): `message` serialised (for the small messages).
grpc::ByteBuffer EncodeMessage(const google::protobuf::MessageLite& message);

// EncodeChunk(): a chunk message carrying [offset, offset + n) of `data`
// without copying it; the buffer keeps `data`'s owner alive.
grpc::ByteBuffer EncodeChunk(int field, const Bytes& data, size_t offset, size_t n);
// EncodeChunk(): a chunk message carrying `payload`'s slices (forwarding).
grpc::ByteBuffer EncodeChunk(int field, const Payload& payload);
// EncodeChunkCopy(): a chunk message holding a copy of [data, data + n), for
// memory whose owner is not known.
grpc::ByteBuffer EncodeChunkCopy(int field, const void* data, size_t n);

}  // namespace wire
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_PROTOCOL_WIRE_MESSAGE_H_
