// Writing a directory conversion into an existing, empty output directory.
//
// The library (checkpoint/output_dir.h) stages its output beside the output path
// and renames it into place, which needs write access to the parent. A container user is often
// given only the output folder itself (a bind mount it may write into, in a
// parent it may not): then the conversion is staged in a hidden folder
// inside that directory and its entries are moved up at the end. On any
// error the directory is left empty again, as it was found.
#ifndef MOE_ADAPTER_CLIENT_CLI_EMPTY_DIR_OUTPUT_H_
#define MOE_ADAPTER_CLIENT_CLI_EMPTY_DIR_OUTPUT_H_

#include <string>

#include "absl/status/status.h"

namespace moe_adapter::cli {

class EmptyDirOutput {
 public:
  explicit EmptyDirOutput(std::string dir);
  // Removes the staged result unless Commit() succeeded.
  ~EmptyDirOutput();
  EmptyDirOutput(const EmptyDirOutput&) = delete;
  EmptyDirOutput& operator=(const EmptyDirOutput&) = delete;

  // Where the library writes its (directory) output: a new path inside `dir`.
  const std::string& staging() const { return staging_; }
  // Commit(): moves every entry of staging() into `dir` and removes
  // staging(); on failure moves back what it moved, leaving `dir` empty.
  absl::Status Commit();

 private:
  std::string dir_, staging_;
  bool committed_ = false;
};

}  // namespace moe_adapter::cli

#endif  // MOE_ADAPTER_CLIENT_CLI_EMPTY_DIR_OUTPUT_H_
