#include "protocol/frame_codec.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/safetensors_format.h"
#include "moe_adapter/dtype.h"
#include "protocol/wire_limits.h"

namespace moe_adapter {
namespace wire {

std::string CrcHex(uint32_t crc) { return absl::StrFormat("0x%08x", crc); }

namespace {

using safetensors::Quote;

// "tensor \"name\"" for messages, the name cut to Quote()'s bound.
std::string TensorRef(absl::string_view name) { return absl::StrCat("tensor ", Quote(name)); }

absl::Status TooLong(absl::string_view name, absl::string_view field, size_t size, size_t limit) {
  return absl::InvalidArgumentError(
      absl::StrCat(TensorRef(name), ": ", field, " of ", size, " bytes exceeds the limit of ", limit, " bytes"));
}

absl::Status CheckMetadata(const v1::TensorHeader& h) {
  const auto& md = h.metadata();
  if (md.size() > kMaxMetadataEntries) {
    return absl::InvalidArgumentError(absl::StrCat(TensorRef(h.name()), ": ", md.size(),
                                                   " metadata entries exceed the limit of ", kMaxMetadataEntries));
  }
  size_t total = 0;
  for (const auto& [k, v] : md) {
    if (k.size() > kMaxMetadataKeyBytes) return TooLong(h.name(), "metadata key", k.size(), kMaxMetadataKeyBytes);
    if (v.size() > kMaxMetadataValueBytes) {
      return TooLong(h.name(), absl::StrCat("metadata value of key ", Quote(k)), v.size(), kMaxMetadataValueBytes);
    }
    total += k.size() + v.size();  // bounded by 64 x (256 + 4096): cannot wrap
  }
  if (total > kMaxMetadataTotalBytes) return TooLong(h.name(), "metadata", total, kMaxMetadataTotalBytes);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<FrameHeader> ParseHeader(const v1::TensorHeader& h, size_t max_name_bytes) {
  FrameHeader out;
  if (h.name().empty()) return absl::InvalidArgumentError("tensor header without a name");
  const std::string& name = h.name();
  // Bounds first: nothing below keeps or quotes more than they allow.
  if (name.size() > max_name_bytes) return TooLong(name, "name", name.size(), max_name_bytes);
  if (h.dtype().size() > kMaxDTypeBytes) return TooLong(name, "dtype string", h.dtype().size(), kMaxDTypeBytes);
  if (static_cast<size_t>(h.shape_size()) > kMaxShapeRank) {
    return absl::InvalidArgumentError(absl::StrCat(TensorRef(name), ": shape of rank ", h.shape_size(),
                                                   " exceeds the limit of ", kMaxShapeRank, " dimensions"));
  }
  absl::Status md = CheckMetadata(h);
  if (!md.ok()) return md;
  absl::StatusOr<DType> dtype = ParseDType(h.dtype());
  if (!dtype.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(TensorRef(name), ": unknown dtype ", Quote(h.dtype()),
                                                   " (safetensors names: F32, BF16, ...)"));
  }
  out.info.name = name;
  out.info.dtype = *dtype;
  out.info.shape.assign(h.shape().begin(), h.shape().end());
  // NumElements() refuses negative dims and products (x itemsize) beyond int64
  // (checked multiplication), so the byte count below cannot have wrapped.
  absl::StatusOr<int64_t> numel = NumElements(out.info.shape, DTypeSize(*dtype));
  if (!numel.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(TensorRef(name), ": shape ", ShapeString(out.info.shape), " of ",
                                                   h.dtype(), " is invalid: ", numel.status().message()));
  }
  const uint64_t bytes = static_cast<uint64_t>(*numel) * DTypeSize(*dtype);
  if (bytes != h.byte_length()) {
    return absl::InvalidArgumentError(absl::StrCat(TensorRef(name), ": byte_length ", h.byte_length(),
                                                   " does not match shape ", ShapeString(out.info.shape), " of ",
                                                   h.dtype(), " (", bytes, " bytes)"));
  }
  out.byte_length = h.byte_length();
  out.crc32c = h.crc32c();
  out.metadata.insert(h.metadata().begin(), h.metadata().end());
  return out;
}

v1::TensorHeader MakeHeader(const TensorInfo& info, uint64_t byte_length, uint32_t crc,
                            const std::map<std::string, std::string>& metadata) {
  v1::TensorHeader h;
  h.set_name(info.name);
  h.set_dtype(std::string(DTypeName(info.dtype)));
  for (int64_t d : info.shape) h.add_shape(d);
  h.set_byte_length(byte_length);
  h.set_crc32c(crc);
  for (const auto& [k, v] : metadata) (*h.mutable_metadata())[k] = v;
  return h;
}

absl::StatusOr<const FrameHeader*> FrameReader::Begin(const v1::TensorHeader& header) {
  if (in_tensor_) {
    return absl::InvalidArgumentError(absl::StrCat(TensorRef(header_.info.name), " is truncated: ", received_, " of ",
                                                   header_.byte_length, " bytes arrived before the header of ",
                                                   TensorRef(header.name())));
  }
  absl::StatusOr<FrameHeader> h = ParseHeader(header, max_name_);
  if (!h.ok()) return h.status();
  header_ = std::move(*h);
  in_tensor_ = true;
  received_ = 0;
  crc_.Reset();
  return &header_;
}

absl::StatusOr<uint64_t> FrameReader::Account(uint64_t size) {
  if (!in_tensor_) return absl::InvalidArgumentError("a chunk arrived without a tensor header before it");
  if (size > max_chunk_) {
    return absl::InvalidArgumentError(absl::StrCat(TensorRef(header_.info.name), ": chunk of ", size,
                                                   " bytes exceeds the chunk size ", max_chunk_));
  }
  if (size > header_.byte_length - received_) {
    return absl::InvalidArgumentError(absl::StrCat(TensorRef(header_.info.name), ": chunk goes beyond the declared ",
                                                   "byte_length ", header_.byte_length, " (", received_, " + ", size,
                                                   " bytes)"));
  }
  const uint64_t offset = received_;
  received_ += size;
  return offset;
}

absl::StatusOr<uint64_t> FrameReader::Chunk(absl::string_view data) {
  absl::StatusOr<uint64_t> offset = Account(data.size());
  if (offset.ok()) crc_.Update(data.data(), data.size());
  return offset;
}

absl::StatusOr<uint64_t> FrameReader::Chunk(const Payload& data) {
  absl::StatusOr<uint64_t> offset = Account(data.size());
  if (offset.ok()) {
    for (const grpc::Slice& s : data.pieces()) crc_.Update(s.begin(), s.size());
  }
  return offset;
}

absl::Status FrameReader::End() {
  if (!complete()) {
    return absl::InternalError(absl::StrCat(TensorRef(header_.info.name), ": End() before its last byte"));
  }
  in_tensor_ = false;
  if (crc_.value() != header_.crc32c) {
    return absl::InvalidArgumentError(absl::StrCat(TensorRef(header_.info.name), ": CRC32C mismatch (header says ",
                                                   CrcHex(header_.crc32c), ", the bytes give ", CrcHex(crc_.value()),
                                                   ")"));
  }
  return absl::OkStatus();
}

absl::Status FrameReader::Close() const {
  if (!in_tensor_) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(TensorRef(header_.info.name), " is truncated: the stream ended after ",
                                                 received_, " of ", header_.byte_length, " bytes"));
}

}  // namespace wire
}  // namespace moe_adapter
