// File: checkpoint/output_dir.h
//
// Where a conversion writes, and what it may remove there. The result is
// staged in a temporary sibling of the output, ".NAME.tmp-PID-N" (same
// filesystem, so the final rename is atomic), and renamed over the output at
// the end. A CLI never deletes or leaves what is not its own, so:
//   - RemoveTree() never follows a symbolic link, at any depth;
//   - an existing output is replaced only as CheckOutput() allows (rule below);
//   - a running conversion holds flock() on its temporary directory, and the
//     next run beside the same output removes temporaries whose process is
//     gone (RemoveStaleTemporaries());
//   - on SIGINT/SIGTERM/SIGHUP the live temporaries are removed before the
//     process exits with 128 + the signal (StartInterruptCleanup(), the CLI).
//
// Example:
//   StagedOutput staged(output, /*directory=*/true);
//   RETURN_IF_ERROR(staged.Create());
//   ... write files into staged.work_dir() ...
//   RETURN_IF_ERROR(staged.Commit(overwrite));  // or destroy it: all removed
#ifndef MOE_ADAPTER_CHECKPOINT_OUTPUT_DIR_H_
#define MOE_ADAPTER_CHECKPOINT_OUTPUT_DIR_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace moe_adapter {

// RemoveTree(): removes `path` (a file, a link or a directory tree) without
// following symbolic links: a link is unlinked as a link, and directories are
// entered with openat(O_NOFOLLOW | O_DIRECTORY) and emptied with unlinkat(),
// so an entry swapped for a link meanwhile is not traversed either (which a
// path-based walk such as std::filesystem::remove_all cannot promise). A
// missing `path` is OK.
absl::Status RemoveTree(const std::string& path);

// What already is at the output path.
enum class ExistingOutput { kNone, kEmptyDirectory, kDirectory, kFile, kLink };

// CheckOutput(): whether a conversion of a file (`directory` false) or a
// directory may write `output`, and what is there. Without `overwrite` only
// a missing output or an empty directory (for a directory input) is allowed.
// With it:
//   - a symbolic link is replaced by the output (what it points to is never
//     touched), a regular file by a file output;
//   - a non-empty directory only when it looks like an output this tool
//     writes: every entry (not following links) is a regular file or a
//     symbolic link, none is hidden (".x"), at least one ends in
//     ".safetensors", and every name ends in ".safetensors",
//     ".safetensors.index.json" or a checkpoint side file's extension
//     (".json", ".txt", ".md", ".model", ".jinja", ".py", ".tiktoken",
//     ".yaml", ".yml") or is "LICENSE" or "NOTICE". The error names the first
//     entry that breaks the rule.
// FIFOs, sockets and devices are never replaced. Errors: kAlreadyExists
// (needs --overwrite), kInvalidArgument (file vs directory mismatch),
// kFailedPrecondition (refused).
absl::StatusOr<ExistingOutput> CheckOutput(const std::string& output, bool directory, bool overwrite);

// RemoveStaleTemporaries(): removes the temporaries of `output` that earlier
// runs left behind (killed, crashed): entries beside it named exactly
// ".NAME.tmp-PID-N", ".NAME.tmp-PID-N.d" or ".NAME.tmp-PID-N.old", owned by
// this user, whose process no longer exists (kill(PID, 0) fails with ESRCH)
// and whose flock() is free (a live run in another PID namespace still holds
// it). Returns one notice per removed entry. Best effort: what cannot be
// checked or removed is left alone.
std::vector<std::string> RemoveStaleTemporaries(const std::string& output);

// StagedOutput: the temporary of one conversion. The work directory (where
// the files are written) is the temporary itself for a directory output,
// ".NAME.tmp-PID-N.d" for a file output. Destroyed before Commit(), it
// removes everything it made.
class StagedOutput {
 public:
  StagedOutput(std::string output, bool directory);
  ~StagedOutput();
  StagedOutput(const StagedOutput&) = delete;
  StagedOutput& operator=(const StagedOutput&) = delete;

  // Create(): makes and locks the work directory. kCancelled after an
  // interrupt signal.
  absl::Status Create();
  const std::string& work_dir() const { return work_; }

  // Commit(): checks the output again (CheckOutput) and moves the result
  // into place: the work directory, or `file_name` inside it for a file
  // output. A replaced output is removed with RemoveTree() afterwards.
  absl::Status Commit(bool overwrite, const std::string& file_name = "");

 private:
  std::string output_, temp_, work_, old_;
  bool directory_;
  int lock_fd_ = -1;
  bool registered_ = false;
  bool committed_ = false;
};

// StartInterruptCleanup(): blocks SIGINT, SIGTERM and SIGHUP in the calling
// thread and hands them to a watcher thread (sigwait): on one, it removes
// every live temporary output (a conversion can create or commit none
// meanwhile), writes "PROGRAM: interrupted by SIGINT; removed ..." to stderr
// and exits with 128 + the signal number (130, 143, 129). The cleanup runs in
// an ordinary thread, not in a signal handler, so it may allocate and lock.
// Call it first in main(), before any thread exists: threads inherit the
// mask, and a thread that does not block the signals could be killed by one.
void StartInterruptCleanup(const char* program);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CHECKPOINT_OUTPUT_DIR_H_
