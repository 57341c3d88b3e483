#include "core/safetensors_writer_header.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/internal/status_macros.h"
#include "core/safetensors_format.h"

namespace moe_adapter {
namespace safetensors {
namespace {

using json = nlohmann::json;

// JsonString(): `s` as a quoted JSON string; kInvalidArgument when it is not
// UTF-8 (a header is UTF-8 JSON; nlohmann throws on such strings).
absl::StatusOr<std::string> JsonString(const std::string& s, absl::string_view what) {
  try {
    return json(s).dump();
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is not valid UTF-8: ", e.what()));
  }
}

}  // namespace

absl::Status CheckTensor(const NamedTensor& t, absl::string_view path) {
  if (t.name == safetensors::kMetadataKey) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": tensor name \"", safetensors::kMetadataKey, "\" is reserved for metadata"));
  }
  const size_t itemsize = DTypeSize(t.tensor.dtype);
  absl::StatusOr<int64_t> numel = NumElements(t.tensor.shape, itemsize);
  if (!numel.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": tensor ", Quote(t.name), ": ", numel.status().message()));
  }
  const uint64_t need = static_cast<uint64_t>(*numel) * itemsize;
  if (need != t.tensor.nbytes()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": tensor ", Quote(t.name), ": ", DTypeName(t.tensor.dtype), " ",
        ShapeString(t.tensor.shape), " needs ", need, " bytes, got ", t.tensor.nbytes()));
  }
  return JsonString(t.name, absl::StrCat(path, ": tensor name ", Quote(t.name))).status();
}

absl::Status CheckMetadata(const std::map<std::string, std::string>& metadata,
                           absl::string_view path) {
  for (const auto& [k, v] : metadata) {
    RETURN_IF_ERROR(JsonString(k, absl::StrCat(path, ": metadata key")).status());
    RETURN_IF_ERROR(JsonString(v, absl::StrCat(path, ": metadata value of ", Quote(k))).status());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> BuildHeader(const std::vector<TensorInfo>& infos,
                                        const std::vector<std::pair<uint64_t, uint64_t>>& offsets,
                                        const std::map<std::string, std::string>& metadata,
                                        absl::string_view path) {
  std::string text = "{";
  if (!metadata.empty()) {
    absl::StrAppend(&text, "\"", safetensors::kMetadataKey, "\":{");
    bool first = true;
    for (const auto& [k, v] : metadata) {
      ASSIGN_OR_RETURN(std::string key, JsonString(k, absl::StrCat(path, ": metadata key")));
      ASSIGN_OR_RETURN(std::string value,
                       JsonString(v, absl::StrCat(path, ": metadata value of ", Quote(k))));
      absl::StrAppend(&text, first ? "" : ",", key, ":", value);
      first = false;
    }
    text += "}";
  }
  for (size_t i = 0; i < infos.size(); ++i) {
    const TensorInfo& info = infos[i];
    ASSIGN_OR_RETURN(std::string name,
                     JsonString(info.name, absl::StrCat(path, ": tensor name ", Quote(info.name))));
    absl::StrAppend(&text, (i == 0 && metadata.empty()) ? "" : ",", name, ":{\"dtype\":\"",
                    DTypeName(info.dtype), "\",\"shape\":[", absl::StrJoin(info.shape, ","),
                    "],\"data_offsets\":[", offsets[i].first, ",", offsets[i].second, "]}");
  }
  text += "}";
  const size_t pad = (safetensors::kDataAlignment - text.size() % safetensors::kDataAlignment) %
                     safetensors::kDataAlignment;
  text.append(pad, ' ');
  if (text.size() > safetensors::kMaxHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": header of ", text.size(), " bytes exceeds the readers' limit of ",
                     safetensors::kMaxHeaderBytes, " bytes (too many tensors for one file)"));
  }
  std::string out(safetensors::kHeaderLengthBytes, '\0');
  const uint64_t n = text.size();
  for (size_t i = 0; i < safetensors::kHeaderLengthBytes; ++i) {
    out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  }
  return out + text;
}

}  // namespace safetensors
}  // namespace moe_adapter
