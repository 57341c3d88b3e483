// File: protocol/frame_codec.h
//
// The tensor framing of proto moe_adapter.v1 (see adapter.proto): a
// TensorHeader, then the tensor's raw little-endian bytes in chunks. Both
// ends use this file: the server to receive inputs and send outputs, the
// client library (moe_adapter_client) to send inputs and reassemble outputs.
//
// Everything a header claims is checked before the receiver allocates for it
// or keeps any of it: the bounds of wire_limits.h (name, dtype string, rank,
// metadata), a known dtype, non-negative dims whose byte count does not
// overflow, and byte_length == numel x itemsize. Then chunks are checked against the
// declared length as they arrive, and the CRC32C when the last byte is in.
//
// Example (receiving):
//   wire::FrameReader reader(max_chunk_bytes);
//   ASSIGN_OR_RETURN(const wire::FrameHeader* h, reader.Begin(msg.header()));
//   ... for each chunk message:
//   ASSIGN_OR_RETURN(uint64_t offset, reader.Chunk(in.chunk));   // wire::Payload
//   in.chunk.CopyTo(buffer + offset);
//   if (reader.complete()) RETURN_IF_ERROR(reader.End());   // CRC check
//   ... at the end of the stream:
//   RETURN_IF_ERROR(reader.Close());                         // nothing truncated
//
// Errors are INVALID_ARGUMENT and name the tensor.
//
// Thread-safety: a FrameReader belongs to one stream and is used by one
// thread at a time.
#ifndef MOE_ADAPTER_PROTOCOL_FRAME_CODEC_H_
#define MOE_ADAPTER_PROTOCOL_FRAME_CODEC_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "moe_adapter/crc32c.h"
#include "moe_adapter/tensor.h"
#include "moe_adapter/v1/adapter.pb.h"
#include "protocol/wire_limits.h"
#include "protocol/wire_message.h"

namespace moe_adapter {
namespace wire {

// Chunk size when neither side asks for one: 4 MiB less 64 KiB, so that a
// chunk message (the bytes plus at most 6 bytes of tag and length) stays
// within the 4 MiB that every gRPC implementation receives by default.
inline constexpr uint64_t kDefaultChunkBytes = (4u << 20) - (64u << 10);
// Room a message needs beyond its chunk (options, header names, metadata).
inline constexpr uint64_t kMessageSlackBytes = 1u << 20;

// FrameHeader: a validated TensorHeader.
struct FrameHeader {
  TensorInfo info;
  uint64_t byte_length = 0;
  uint32_t crc32c = 0;
  std::map<std::string, std::string> metadata;
};

// ParseHeader(): validates a wire header (see the file comment); a name
// longer than `max_name_bytes` is refused.
absl::StatusOr<FrameHeader> ParseHeader(const v1::TensorHeader& header,
                                        size_t max_name_bytes = kMaxWireNameBytes);

// MakeHeader(): the wire header of a tensor whose bytes have CRC32C `crc`.
v1::TensorHeader MakeHeader(const TensorInfo& info, uint64_t byte_length, uint32_t crc,
                            const std::map<std::string, std::string>& metadata = {});

// FrameReader: the receiving side of one stream's tensors, in order.
class FrameReader {
 public:
  // `max_chunk_bytes`: larger chunks are refused; so are names longer than
  // `max_name_bytes` (a server reading inputs passes kMaxTensorNameBytes).
  explicit FrameReader(uint64_t max_chunk_bytes, size_t max_name_bytes = kMaxWireNameBytes)
      : max_chunk_(max_chunk_bytes), max_name_(max_name_bytes) {}

  // Begin(): the next tensor's header. Refused while a tensor is incomplete
  // (that one was truncated). The returned header lives until the next Begin().
  absl::StatusOr<const FrameHeader*> Begin(const v1::TensorHeader& header);

  // Chunk(): accounts the next chunk of the current tensor and hashes it.
  // Returns the offset of its first byte in the tensor.
  absl::StatusOr<uint64_t> Chunk(absl::string_view data);
  absl::StatusOr<uint64_t> Chunk(const Payload& data);

  // in_tensor(): between Begin() and End().
  bool in_tensor() const { return in_tensor_; }
  // complete(): all byte_length bytes of the current tensor have arrived.
  bool complete() const { return in_tensor_ && received_ == header_.byte_length; }
  uint64_t received() const { return received_; }
  const FrameHeader& header() const { return header_; }

  // End(): once complete(): verifies the CRC32C and closes the tensor.
  absl::Status End();

  // Close(): the stream ended; an unfinished tensor is an error.
  absl::Status Close() const;

 private:
  // Account(): checks and counts a chunk of `size` bytes; its offset.
  absl::StatusOr<uint64_t> Account(uint64_t size);

  uint64_t max_chunk_;
  size_t max_name_;
  FrameHeader header_;
  bool in_tensor_ = false;
  uint64_t received_ = 0;
  Crc32cHasher crc_;
};

// CrcHex(): "0x1a2b3c4d", for messages.
std::string CrcHex(uint32_t crc);

}  // namespace wire
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_PROTOCOL_FRAME_CODEC_H_
