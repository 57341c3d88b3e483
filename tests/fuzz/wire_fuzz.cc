// Fuzzes the receiving side of the tensor framing: wire::Decode() of a gRPC
// byte buffer (protocol/wire_message.cc) and the FrameReader that checks
// headers, chunks and CRCs (protocol/frame_codec.cc). Built twice:
// MOE_FUZZ_RESPONSE=0 decodes ConvertRequests as the server does (options go
// through StreamConfigFromWire), =1 ConvertResponses as the client library
// (client/remote_converter.cc) does.
//
// Input: records [u8 cut][u24 little-endian n][n bytes], each one message
// (the last may be short; n up to 16 MiB so that one message can be as big
// as the input). `cut` splits the message into two slices, as gRPC
// hands over a message that straddles its read buffers.
// Invariants: chunk offsets stay inside the declared byte_length, a decoded
// chunk re-encodes to a message that decodes to the same bytes, and error
// messages fit in a gRPC status.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "protocol/frame_codec.h"
#include "protocol/wire_message.h"
#include "tests/fuzz/fuzz_util.h"
#if !MOE_FUZZ_RESPONSE
#include "protocol/options_codec.h"
#endif

namespace moe_adapter {
namespace {

#if MOE_FUZZ_RESPONSE
using Message = v1::ConvertResponse;
constexpr int kChunkField = wire::kResponseChunkField;
#else
using Message = v1::ConvertRequest;
constexpr int kChunkField = wire::kRequestChunkField;
#endif

constexpr uint64_t kMaxChunk = 64 << 10;
// Tensors up to this size are reassembled (and ASan checks every copy).
constexpr uint64_t kMaxBuffered = 1 << 20;

void CheckError(const absl::Status& s) {
  FUZZ_CHECK(!s.ok());
#if !MOE_FUZZ_RESPONSE
  fuzz::CheckStatusMessageFits(s);
#endif
}

std::string Flatten(const wire::Payload& p) {
  std::string s(p.size(), '\0');
  p.CopyTo(reinterpret_cast<uint8_t*>(s.data()));
  return s;
}

grpc::ByteBuffer Buffer(const uint8_t* data, size_t n, size_t cut) {
  std::vector<grpc::Slice> slices;
  cut = n == 0 ? 0 : cut % (n + 1);
  if (cut > 0) slices.emplace_back(data, cut);
  if (n > cut) slices.emplace_back(data + cut, n - cut);
  return slices.empty() ? grpc::ByteBuffer() : grpc::ByteBuffer(slices.data(), slices.size());
}

class Receiver {
 public:
  void Handle(wire::Inbound<Message>* in) {
    if (in->is_chunk) {
      Chunk(in->chunk);
      return;
    }
    switch (in->message.kind_case()) {
      case Message::kHeader: {
        absl::StatusOr<const wire::FrameHeader*> h = frames_.Begin(in->message.header());
        if (!h.ok()) {
          CheckError(h.status());
          return;
        }
        const wire::FrameHeader& header = **h;
        absl::StatusOr<int64_t> numel = NumElements(header.info.shape, DTypeSize(header.info.dtype));
        FUZZ_CHECK(numel.ok());
        FUZZ_CHECK(static_cast<uint64_t>(*numel) * DTypeSize(header.info.dtype) == header.byte_length);
        buffer_.assign(header.byte_length <= kMaxBuffered ? header.byte_length : 0, 0);
        if (frames_.complete()) CheckEnd();
        return;
      }
#if MOE_FUZZ_RESPONSE
      case Message::kSummary:
        (void)in->message.summary().ByteSizeLong();
        return;
#else
      case Message::kOptions: {
        absl::StatusOr<wire::StreamConfig> cfg =
            wire::StreamConfigFromWire(in->message.options(), wire::kDefaultChunkBytes, kMaxChunk);
        if (!cfg.ok()) CheckError(cfg.status());
        return;
      }
#endif
      default:
        return;
    }
  }

  void Close() {
    absl::Status s = frames_.Close();
    if (!s.ok()) CheckError(s);
  }

 private:
  void Chunk(const wire::Payload& chunk) {
    absl::StatusOr<uint64_t> offset = frames_.Chunk(chunk);
    if (!offset.ok()) {
      CheckError(offset.status());
      return;
    }
    const uint64_t length = frames_.header().byte_length;
    FUZZ_CHECK(*offset <= length && chunk.size() <= length - *offset);
    FUZZ_CHECK(chunk.size() <= kMaxChunk);
    if (!buffer_.empty()) chunk.CopyTo(buffer_.data() + *offset);

    // What a forwarding peer sends on (EncodeChunk of the slices) decodes to
    // the same bytes.
    grpc::ByteBuffer again = wire::EncodeChunk(kChunkField, chunk);
    wire::Inbound<Message> round;
    FUZZ_CHECK(wire::Decode(&again, &round).ok());
    FUZZ_CHECK(round.is_chunk && Flatten(round.chunk) == Flatten(chunk));

    if (frames_.complete()) CheckEnd();
  }

  void CheckEnd() {
    const bool crc_matches = Crc32c(buffer_.data(), buffer_.size()) == frames_.header().crc32c;
    absl::Status s = frames_.End();
    FUZZ_CHECK(!frames_.in_tensor());
    if (!s.ok()) CheckError(s);
    // When the whole tensor was reassembled, End() agrees with a CRC of it.
    if (buffer_.size() == frames_.header().byte_length) FUZZ_CHECK(s.ok() == crc_matches);
  }

  wire::FrameReader frames_{kMaxChunk};
  std::vector<uint8_t> buffer_;
};

}  // namespace
}  // namespace moe_adapter

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace moe_adapter;
  Receiver receiver;
  size_t at = 0;
  while (at + 4 <= size) {
    const size_t cut = data[at];
    const size_t declared = data[at + 1] | (size_t{data[at + 2]} << 8) | (size_t{data[at + 3]} << 16);
    const size_t n = std::min(declared, size - at - 4);
    grpc::ByteBuffer buffer = Buffer(data + at + 4, n, cut);
    at += 4 + n;
    wire::Inbound<Message> in;
    absl::Status s = wire::Decode(&buffer, &in);
    if (!s.ok()) {
      CheckError(s);
      continue;
    }
    receiver.Handle(&in);
  }
  receiver.Close();
  return 0;
}
