// File: server/output_queue.h
//
// The messages a stream still has to send, in order: output tensors (a header,
// then their bytes cut into chunks only when the chunk is about to be sent,
// each chunk a slice of the tensor's own memory: see wire_message.h),
// pass-through chunks forwarded in the slices they arrived in, and the final
// summary. bytes()
// is what the queue keeps alive; the reactor stops reading input while it is
// above a small window, which is how gRPC's flow control reaches back to the
// client instead of an unbounded queue growing here.
//
// Example:
//   OutputQueue q(4 << 20);
//   q.PushTensor(header, tensor.data);
//   grpc::ByteBuffer msg;
//   uint64_t payload;
//   while (q.Next(&msg, &payload)) Send(msg);
//
// Thread-safety: none; the owning reactor serialises access.
#ifndef MOE_ADAPTER_SERVER_OUTPUT_QUEUE_H_
#define MOE_ADAPTER_SERVER_OUTPUT_QUEUE_H_

#include <cstdint>
#include <deque>
#include <string>

#include <grpcpp/support/byte_buffer.h>

#include "moe_adapter/tensor.h"
#include "moe_adapter/v1/adapter.pb.h"
#include "protocol/wire_message.h"

namespace moe_adapter {
namespace server {

class OutputQueue {
 public:
  explicit OutputQueue(uint64_t chunk_bytes) : chunk_bytes_(chunk_bytes) {}

  // PushTensor(): `header` then `data` (header.byte_length bytes) in chunks.
  void PushTensor(v1::TensorHeader header, Bytes data);
  // PushHeader() / PushChunk(): a tensor forwarded as its chunks arrive.
  void PushHeader(v1::TensorHeader header);
  void PushChunk(wire::Payload chunk);
  void PushSummary(v1::StreamSummary summary);

  // Next(): the next message, encoded, into `msg`; `payload` = tensor bytes
  // in it. False when nothing is queued.
  bool Next(grpc::ByteBuffer* msg, uint64_t* payload);

  bool empty() const { return entries_.empty(); }
  // bytes(): what the queue keeps alive: tensor bytes, and the memory of
  // the queued headers and summary.
  uint64_t bytes() const { return bytes_; }
  void Clear();

 private:
  struct Entry {
    enum class Kind { kMessage, kTensorData, kChunk } kind;
    v1::ConvertResponse message;  // kMessage: a header or the summary
    Bytes data;                   // kTensorData
    uint64_t offset = 0;          // kTensorData: bytes already sent
    wire::Payload chunk;          // kChunk
    uint64_t message_bytes = 0;   // kMessage: its memory, counted in bytes_
  };
  void PushMessage(Entry e);

  uint64_t chunk_bytes_;
  std::deque<Entry> entries_;
  uint64_t bytes_ = 0;
};

}  // namespace server
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_SERVER_OUTPUT_QUEUE_H_
