#include "client/cli/files.h"

#include <sys/stat.h>

#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"

namespace moe_adapter::cli {

absl::StatusOr<std::string> ReadFile(const std::string& path, size_t limit) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("\"", path, "\" is a directory, not a file"));
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot read \"", path, "\""));
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  if (size < 0) return absl::NotFoundError(absl::StrCat("cannot read \"", path, "\""));
  if (static_cast<uint64_t>(size) > limit) {
    return absl::InvalidArgumentError(absl::StrCat("\"", path, "\" is larger than ", limit, " bytes"));
  }
  f.seekg(0);
  std::string s(static_cast<size_t>(size), '\0');
  if (size > 0 && !f.read(&s[0], size)) return absl::NotFoundError(absl::StrCat("cannot read \"", path, "\""));
  return s;
}

}  // namespace moe_adapter::cli
