#include "moe_adapter/file_convert.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>

#include "absl/strings/str_cat.h"
#include "core/internal/status_macros.h"
#include "core/safetensors_reader.h"
#include "core/safetensors_writer.h"
#include "moe_adapter/converter.h"

namespace moe_adapter {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// A name beside `output`, so the final rename stays on one filesystem.
std::string TempNameFor(const std::string& output) {
  std::random_device rd;
  const size_t slash = output.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : output.substr(0, slash + 1);
  const std::string base = slash == std::string::npos ? output : output.substr(slash + 1);
  return absl::StrCat(dir, ".", base, ".tmp-", getpid(), "-", rd() % 1000000);
}

// Writes through a temporary file; Commit() renames it into place. Anything
// else (error, early return) removes it.
class AtomicOutput {
 public:
  explicit AtomicOutput(std::string output) : output_(std::move(output)), temp_(TempNameFor(output_)) {}
  ~AtomicOutput() {
    if (writer_) writer_->Abort();
    if (!committed_) ::unlink(temp_.c_str());
  }
  absl::Status Open(std::map<std::string, std::string> metadata) {
    ASSIGN_OR_RETURN(writer_, StreamingSafetensorsWriter::Create(temp_, std::move(metadata)));
    return absl::OkStatus();
  }
  StreamingSafetensorsWriter& writer() { return *writer_; }
  absl::Status Commit(bool overwrite) {
    RETURN_IF_ERROR(writer_->Finish());
    writer_.reset();
    if (!overwrite && Exists(output_)) {
      return absl::AlreadyExistsError(absl::StrCat("output \"", output_, "\" appeared during the conversion"));
    }
    if (::rename(temp_.c_str(), output_.c_str()) != 0) {
      return absl::InternalError(absl::StrCat("rename to \"", output_, "\": ", std::strerror(errno)));
    }
    committed_ = true;
    return absl::OkStatus();
  }

 private:
  std::string output_;
  std::string temp_;
  std::unique_ptr<StreamingSafetensorsWriter> writer_;
  bool committed_ = false;
};

absl::Status Annotate(const absl::Status& s, const std::string& path) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
}

}  // namespace

absl::Status ConvertFile(Direction direction, const std::string& input, const std::string& output,
                         const ConvertOptions& options, const FileConvertOptions& file_options,
                         FileConvertStats* stats) {
  FileConvertStats local;
  if (!stats) stats = &local;
  if (!file_options.overwrite && Exists(output)) {
    return absl::AlreadyExistsError(
        absl::StrCat("output \"", output, "\" exists; pass --overwrite to replace it"));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<SafetensorsFile> in, SafetensorsFile::Open(input));
  AtomicOutput out(output);
  auto sink = [&](NamedTensor t) -> absl::Status {
    ++stats->tensors_out;
    stats->bytes_out += t.tensor.nbytes();
    return out.writer().Add(t);
  };

  if (direction == Direction::kToHf) {
    ASSIGN_OR_RETURN(std::unique_ptr<ToHfConverter> conv, ToHfConverter::Create(options));
    RETURN_IF_ERROR(out.Open({}));
    for (size_t i = 0; i < in->num_tensors(); ++i) {
      NamedTensor t = in->GetAt(i);
      ++stats->tensors_in;
      stats->bytes_in += t.tensor.nbytes();
      RETURN_IF_ERROR(Annotate(conv->Convert(t, sink), input));
    }
    RETURN_IF_ERROR(Annotate(conv->Finish(), input));
    stats->warnings = conv->Warnings();
  } else {
    ASSIGN_OR_RETURN(std::unique_ptr<FromHfConverter> conv, FromHfConverter::Create(options));
    RETURN_IF_ERROR(out.Open(conv->OutputMetadata()));
    for (size_t i = 0; i < in->num_tensors(); ++i) {
      NamedTensor t = in->GetAt(i);
      ++stats->tensors_in;
      stats->bytes_in += t.tensor.nbytes();
      RETURN_IF_ERROR(Annotate(conv->Add(t, sink), input));
      stats->peak_held_bytes = std::max(stats->peak_held_bytes, conv->HeldBytes());
    }
    RETURN_IF_ERROR(Annotate(conv->Finish(sink), input));
    stats->warnings = conv->Warnings();
  }
  return out.Commit(file_options.overwrite);
}

}  // namespace moe_adapter
