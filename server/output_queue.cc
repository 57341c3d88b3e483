#include "server/output_queue.h"

#include <algorithm>
#include <utility>

namespace moe_adapter {
namespace server {

void OutputQueue::PushTensor(v1::TensorHeader header, Bytes data) {
  PushHeader(std::move(header));
  if (data.size() == 0) return;
  Entry e{Entry::Kind::kTensorData, {}, std::move(data), 0, {}, 0};
  bytes_ += e.data.size();
  entries_.push_back(std::move(e));
}

void OutputQueue::PushHeader(v1::TensorHeader header) {
  Entry e{Entry::Kind::kMessage, {}, {}, 0, {}, 0};
  *e.message.mutable_header() = std::move(header);
  PushMessage(std::move(e));
}

void OutputQueue::PushMessage(Entry e) {
  // A header holds a name of up to 4 KiB and its metadata: thousands queued
  // behind a slow reader are memory like any other.
  e.message_bytes = e.message.SpaceUsedLong();
  bytes_ += e.message_bytes;
  entries_.push_back(std::move(e));
}

void OutputQueue::PushChunk(wire::Payload chunk) {
  Entry e{Entry::Kind::kChunk, {}, {}, 0, std::move(chunk), 0};
  bytes_ += e.chunk.size();
  entries_.push_back(std::move(e));
}

void OutputQueue::PushSummary(v1::StreamSummary summary) {
  Entry e{Entry::Kind::kMessage, {}, {}, 0, {}, 0};
  *e.message.mutable_summary() = std::move(summary);
  PushMessage(std::move(e));
}

bool OutputQueue::Next(grpc::ByteBuffer* msg, uint64_t* payload) {
  *payload = 0;
  if (entries_.empty()) return false;
  Entry& e = entries_.front();
  switch (e.kind) {
    case Entry::Kind::kMessage:
      *msg = wire::EncodeMessage(e.message);
      bytes_ -= e.message_bytes;
      entries_.pop_front();
      return true;
    case Entry::Kind::kChunk:
      *payload = e.chunk.size();
      bytes_ -= e.chunk.size();
      *msg = wire::EncodeChunk(wire::kResponseChunkField, e.chunk);
      entries_.pop_front();
      return true;
    case Entry::Kind::kTensorData: {
      const uint64_t n = std::min<uint64_t>(chunk_bytes_, e.data.size() - e.offset);
      *msg = wire::EncodeChunk(wire::kResponseChunkField, e.data, e.offset, n);
      e.offset += n;
      *payload = n;
      if (e.offset == e.data.size()) {
        bytes_ -= e.data.size();  // the last reference may go: the tensor is freed here
        entries_.pop_front();
      }
      return true;
    }
  }
  return false;
}

void OutputQueue::Clear() {
  entries_.clear();
  bytes_ = 0;
}

}  // namespace server
}  // namespace moe_adapter
