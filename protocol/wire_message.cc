#include "protocol/wire_message.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace moe_adapter {
namespace wire {
namespace {

// Length-delimited wire type (protobuf encoding: tag = field << 3 | 2).
constexpr uint8_t kLengthDelimited = 2;
// One tag byte (fields 1..15) and a varint of at most 10 bytes.
constexpr size_t kMaxPrefix = 11;

size_t WritePrefix(int field, uint64_t length, uint8_t* out) {
  size_t p = 0;
  out[p++] = static_cast<uint8_t>((field << 3) | kLengthDelimited);
  do {
    uint8_t b = length & 0x7F;
    length >>= 7;
    if (length) b |= 0x80;
    out[p++] = b;
  } while (length);
  return p;
}

// ParsePrefix(): the chunk length when `head` (the message's first bytes)
// starts with the chunk field's tag and a well-formed varint; 0 otherwise.
size_t ParsePrefix(int field, const uint8_t* head, size_t n, uint64_t* length) {
  if (n < 2 || head[0] != ((field << 3) | kLengthDelimited)) return 0;
  uint64_t v = 0;
  for (size_t i = 1; i < n && i < kMaxPrefix; ++i) {
    v |= static_cast<uint64_t>(head[i] & 0x7F) << (7 * (i - 1));
    if (!(head[i] & 0x80)) {
      *length = v;
      return i + 1;
    }
  }
  return 0;
}

void ReleaseBytes(void* owner) { delete static_cast<Bytes*>(owner); }

template <class Message>
absl::Status DecodeAs(grpc::ByteBuffer* buffer, int chunk_field, Inbound<Message>* out) {
  out->message.Clear();
  out->is_chunk = false;
  out->chunk = Payload();
  std::vector<grpc::Slice> slices;
  if (buffer->Length() > 0 && !buffer->Dump(&slices).ok()) {
    buffer->Clear();
    return absl::InvalidArgumentError("a message whose bytes could not be read");
  }
  buffer->Clear();
  size_t total = 0;
  uint8_t head[kMaxPrefix];
  size_t head_len = 0;
  for (const grpc::Slice& s : slices) {
    const size_t take = std::min(kMaxPrefix - head_len, s.size());
    std::memcpy(head + head_len, s.begin(), take);
    head_len += take;
    total += s.size();
  }
  uint64_t length = 0;
  const size_t prefix = ParsePrefix(chunk_field, head, head_len, &length);
  if (prefix > 0 && prefix + length == total) {
    // The message is exactly one chunk field: keep its bytes where they are.
    std::vector<grpc::Slice> pieces;
    size_t skip = prefix;
    for (grpc::Slice& s : slices) {
      if (skip >= s.size()) {
        skip -= s.size();
        continue;
      }
      pieces.push_back(skip ? s.sub(skip, s.size()) : std::move(s));
      skip = 0;
    }
    out->is_chunk = true;
    out->chunk = Payload(std::move(pieces));
    return absl::OkStatus();
  }
  std::string flat;
  flat.reserve(total);
  for (const grpc::Slice& s : slices) flat.append(reinterpret_cast<const char*>(s.begin()), s.size());
  if (!out->message.ParseFromString(flat)) {
    return absl::InvalidArgumentError(
        absl::StrCat("a message that is not a valid ", Message::descriptor()->full_name(), " (", total, " bytes)"));
  }
  if (out->message.kind_case() == Message::kChunk) {
    out->is_chunk = true;
    const std::string& c = out->message.chunk();
    out->chunk = c.empty() ? Payload() : Payload({grpc::Slice(c.data(), c.size())});
    out->message.clear_chunk();
  }
  return absl::OkStatus();
}

}  // namespace

Payload::Payload(std::vector<grpc::Slice> pieces) : pieces_(std::move(pieces)) {
  for (const grpc::Slice& s : pieces_) size_ += s.size();
}

void Payload::CopyTo(uint8_t* dst) const {
  for (const grpc::Slice& s : pieces_) {
    std::memcpy(dst, s.begin(), s.size());
    dst += s.size();
  }
}

absl::Status Decode(grpc::ByteBuffer* buffer, Inbound<v1::ConvertRequest>* out) {
  return DecodeAs(buffer, kRequestChunkField, out);
}

absl::Status Decode(grpc::ByteBuffer* buffer, Inbound<v1::ConvertResponse>* out) {
  return DecodeAs(buffer, kResponseChunkField, out);
}

grpc::ByteBuffer EncodeMessage(const google::protobuf::MessageLite& message) {
  const std::string bytes = message.SerializeAsString();
  grpc::Slice slice(bytes.data(), bytes.size());
  return grpc::ByteBuffer(&slice, 1);
}

grpc::ByteBuffer EncodeChunk(int field, const Bytes& data, size_t offset, size_t n) {
  uint8_t head[kMaxPrefix];
  std::vector<grpc::Slice> slices;
  slices.emplace_back(head, WritePrefix(field, n, head));
  if (n > 0) {
    auto* owner = new Bytes(data.Slice(offset, n));
    slices.emplace_back(const_cast<uint8_t*>(owner->data()), n, &ReleaseBytes, owner);
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

grpc::ByteBuffer EncodeChunk(int field, const Payload& payload) {
  uint8_t head[kMaxPrefix];
  std::vector<grpc::Slice> slices;
  slices.reserve(payload.pieces().size() + 1);
  slices.emplace_back(head, WritePrefix(field, payload.size(), head));
  slices.insert(slices.end(), payload.pieces().begin(), payload.pieces().end());
  return grpc::ByteBuffer(slices.data(), slices.size());
}

grpc::ByteBuffer EncodeChunkCopy(int field, const void* data, size_t n) {
  uint8_t head[kMaxPrefix];
  std::vector<grpc::Slice> slices;
  slices.emplace_back(head, WritePrefix(field, n, head));
  if (n > 0) slices.emplace_back(data, n);
  return grpc::ByteBuffer(slices.data(), slices.size());
}

}  // namespace wire
}  // namespace moe_adapter
