#include "core/safetensors_format.h"

#include "absl/strings/str_cat.h"

namespace moe_adapter {
namespace safetensors {

absl::Status ErrnoStatus(int err, absl::string_view what, absl::string_view path) {
  return absl::ErrnoToStatus(err, absl::StrCat(what, " ", path));
}

}  // namespace safetensors
}  // namespace moe_adapter
