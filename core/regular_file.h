// File: core/regular_file.h
//
// Opening input files as regular files only. A FIFO opened for reading
// blocks until a writer appears (forever, for a stray one), and a character
// device such as /dev/zero reads without end: both are refused before any
// read, with a message saying what the path is. The open itself uses
// O_NONBLOCK, so it cannot hang on a FIFO either. Symlinks to regular files
// work as the files they point to.
//
// Example:
//   ASSIGN_OR_RETURN(std::string text, ReadRegularFile(path, 16 << 20));
//   // a FIFO: kInvalidArgument "dir/config.json is a FIFO, not a regular file"
#ifndef MOE_ADAPTER_CORE_REGULAR_FILE_H_
#define MOE_ADAPTER_CORE_REGULAR_FILE_H_

#include <sys/stat.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moe_adapter {

// FileTypeName(): what st_mode says the file is: "a regular file",
// "a directory", "a FIFO", "a character device", "a block device",
// "a socket", "a symbolic link".
const char* FileTypeName(mode_t mode);

// NotRegularFileError(): kInvalidArgument "PATH is a FIFO, not a regular file".
absl::Status NotRegularFileError(absl::string_view path, mode_t mode);

// OpenRegularFile(): a read-only descriptor (close-on-exec, blocking) of the
// regular file `path`, with its stat in `*st` when given. Anything else is
// kInvalidArgument (NotRegularFileError); open errors name the path.
absl::StatusOr<int> OpenRegularFile(const std::string& path, struct stat* st = nullptr);

// ReadRegularFile(): the whole file; kInvalidArgument when it is not a
// regular file or holds more than `limit` bytes (nothing beyond is read).
absl::StatusOr<std::string> ReadRegularFile(const std::string& path, uint64_t limit);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_REGULAR_FILE_H_
