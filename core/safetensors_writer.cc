// WriteSafetensors(): the whole-file writer. The streaming and sharded
// writers are safetensors_writer_streaming.cc and safetensors_writer_sharded.cc.
#include "core/safetensors_writer.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "core/internal/status_macros.h"
#include "core/quote.h"
#include "core/safetensors_writer_header.h"
#include "core/safetensors_writer_io.h"

namespace moe_adapter {

using safetensors::BuildHeader;
using safetensors::CheckTensor;
using safetensors::CreateOutput;
using safetensors::SyncAndClose;
using safetensors::WriteAll;

absl::Status WriteSafetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                              const std::map<std::string, std::string>& metadata,
                              const SafetensorsWriteOptions& options) {
  absl::flat_hash_set<absl::string_view> names;
  std::vector<TensorInfo> infos;
  std::vector<std::pair<uint64_t, uint64_t>> offsets;
  infos.reserve(tensors.size());
  offsets.reserve(tensors.size());
  uint64_t cursor = 0;
  for (const NamedTensor& t : tensors) {
    RETURN_IF_ERROR(CheckTensor(t, path));
    if (!names.insert(t.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor ", Quote(t.name), " given twice"));
    }
    infos.push_back(t.info());
    offsets.emplace_back(cursor, cursor + t.tensor.nbytes());
    cursor += t.tensor.nbytes();
  }
  ASSIGN_OR_RETURN(std::string header, BuildHeader(infos, offsets, metadata, path));
  ASSIGN_OR_RETURN(int fd, CreateOutput(path));
  absl::Status s = WriteAll(fd, header.data(), header.size(), path);
  for (size_t i = 0; s.ok() && i < tensors.size(); ++i) {
    s = WriteAll(fd, tensors[i].tensor.data.data(), tensors[i].tensor.nbytes(), path);
  }
  if (s.ok()) {
    s = SyncAndClose(fd, options.fsync, path);
  } else {
    ::close(fd);
  }
  if (!s.ok()) ::unlink(path.c_str());
  return s;
}

}  // namespace moe_adapter
