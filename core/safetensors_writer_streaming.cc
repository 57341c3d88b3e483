// StreamingSafetensorsWriter (safetensors_writer.h): tensors are spooled, or
// written in place behind a reserved header, and the header comes last.
#include "core/safetensors_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/internal/status_macros.h"
#include "core/quote.h"
#include "core/safetensors_writer_header.h"
#include "core/safetensors_writer_io.h"

namespace moe_adapter {
namespace {

using safetensors::BuildHeader;
using safetensors::CheckMetadata;
using safetensors::CheckTensor;
using safetensors::CreateOutput;
using safetensors::SyncAndClose;
using safetensors::WriteAll;

// Copies `size` bytes from offset 0 of `in` to the current offset of `out`.
// copy_file_range stays in the kernel (and can share extents on btrfs/XFS);
// where it is refused (old kernel, cross-filesystem) read/write 8 MiB at a time.
absl::Status CopyFd(int in, uint64_t size, int out, absl::string_view out_path) {
  loff_t in_off = 0;
  bool kernel_copy = true;
  while (static_cast<uint64_t>(in_off) < size && kernel_copy) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(size - in_off, uint64_t{1} << 30));
    const ssize_t n = ::copy_file_range(in, &in_off, out, nullptr, want, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL ||
                  errno == EBADF)) {
      kernel_copy = false;
      break;
    }
    if (n < 0) return safetensors::ErrnoStatus(errno, "cannot copy tensor data into", out_path);
    if (n == 0) {
      return absl::DataLossError(
          absl::StrCat(out_path, ": the data spool ended at ", in_off, " bytes, expected ", size));
    }
  }
  if (static_cast<uint64_t>(in_off) >= size) return absl::OkStatus();
  std::unique_ptr<char[]> buf(new char[safetensors::kCopyChunkBytes]);
  while (static_cast<uint64_t>(in_off) < size) {
    const size_t want =
        static_cast<size_t>(std::min<uint64_t>(size - in_off, safetensors::kCopyChunkBytes));
    const ssize_t n = ::pread(in, buf.get(), want, in_off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return safetensors::ErrnoStatus(errno, "cannot read the data spool of", out_path);
    if (n == 0) {
      return absl::DataLossError(
          absl::StrCat(out_path, ": the data spool ended at ", in_off, " bytes, expected ", size));
    }
    RETURN_IF_ERROR(WriteAll(out, buf.get(), static_cast<size_t>(n), out_path));
    in_off += n;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<StreamingSafetensorsWriter>> StreamingSafetensorsWriter::Create(
    const std::string& path, std::map<std::string, std::string> metadata,
    SafetensorsWriteOptions options) {
  RETURN_IF_ERROR(CheckMetadata(metadata, path));
  if (options.reserve_header_bytes > 0) {
    // Data goes straight to its final place behind a reserved header area.
    const uint64_t reserve = (options.reserve_header_bytes + safetensors::kDataAlignment - 1) /
                             safetensors::kDataAlignment * safetensors::kDataAlignment;
    // Read-write: a header that outgrows the reservation reads the data back.
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return safetensors::ErrnoStatus(errno, "cannot create", path);
    const uint64_t start = safetensors::kHeaderLengthBytes + reserve;
    if (::lseek(fd, static_cast<off_t>(start), SEEK_SET) < 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(path.c_str());
      return safetensors::ErrnoStatus(err, "cannot seek in", path);
    }
    std::unique_ptr<StreamingSafetensorsWriter> w(new StreamingSafetensorsWriter());
    w->path_ = path;
    w->metadata_ = std::move(metadata);
    w->options_ = options;
    w->spool_fd_ = fd;
    w->data_start_ = start;
    return w;
  }
  // Same directory, so same filesystem: copy_file_range can work and the
  // spool's space is where the output's will be.
  std::string name = absl::StrCat(path, ".spool.XXXXXX");
  const int fd = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) {
    return safetensors::ErrnoStatus(errno, "cannot create a data spool next to", path);
  }
  // Unlinked at once: the open descriptor keeps it, and no crash leaves it.
  if (::unlink(name.c_str()) != 0) {
    const int err = errno;
    ::close(fd);
    return safetensors::ErrnoStatus(err, "cannot unlink the data spool", name);
  }
  std::unique_ptr<StreamingSafetensorsWriter> w(new StreamingSafetensorsWriter());
  w->path_ = path;
  w->metadata_ = std::move(metadata);
  w->options_ = options;
  w->spool_fd_ = fd;
  return w;
}

StreamingSafetensorsWriter::~StreamingSafetensorsWriter() { Abort(); }

absl::Status StreamingSafetensorsWriter::Add(const NamedTensor& tensor) {
  if (done_) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_, ": writer already finished or aborted"));
  }
  RETURN_IF_ERROR(CheckTensor(tensor, path_));
  if (names_.contains(tensor.name)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": tensor ", Quote(tensor.name), " added twice"));
  }
  const uint64_t n = tensor.tensor.nbytes();
  absl::Status s =
      WriteAll(spool_fd_, tensor.tensor.data.data(), n, absl::StrCat("the data spool of ", path_));
  if (!s.ok()) {
    Abort();
    return s;
  }
  names_.insert(tensor.name);
  infos_.push_back(tensor.info());
  offsets_.emplace_back(data_bytes_, data_bytes_ + n);
  data_bytes_ += n;
  return absl::OkStatus();
}

absl::Status StreamingSafetensorsWriter::Finish() {
  if (done_) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_, ": writer already finished or aborted"));
  }
  done_ = true;
  absl::Status s;
  absl::StatusOr<std::string> header = BuildHeader(infos_, offsets_, metadata_, path_);
  if (data_start_ > 0) return FinishInPlace(header);
  if (!header.ok()) {
    s = header.status();
  } else {
    absl::StatusOr<int> out = CreateOutput(path_);
    if (!out.ok()) {
      s = out.status();
    } else {
      s = WriteAll(*out, header->data(), header->size(), path_);
      if (s.ok()) s = CopyFd(spool_fd_, data_bytes_, *out, path_);
      if (s.ok()) {
        s = SyncAndClose(*out, options_.fsync, path_);
      } else {
        ::close(*out);
      }
      if (!s.ok()) ::unlink(path_.c_str());
    }
  }
  ::close(spool_fd_);
  spool_fd_ = -1;
  return s;
}

absl::Status StreamingSafetensorsWriter::FinishInPlace(const absl::StatusOr<std::string>& header) {
  const int fd = spool_fd_;
  spool_fd_ = -1;
  absl::Status s = header.status();
  const uint64_t reserve = data_start_ - safetensors::kHeaderLengthBytes;
  if (s.ok() && header->size() - safetensors::kHeaderLengthBytes <= reserve) {
    // Pad the JSON with spaces to fill the reservation exactly.
    std::string h(safetensors::kHeaderLengthBytes, '\0');
    for (size_t i = 0; i < safetensors::kHeaderLengthBytes; ++i) h[i] = static_cast<char>((reserve >> (8 * i)) & 0xff);
    h.append(*header, safetensors::kHeaderLengthBytes, std::string::npos);
    h.resize(data_start_, ' ');
    if (::pwrite(fd, h.data(), h.size(), 0) != static_cast<ssize_t>(h.size())) {
      s = safetensors::ErrnoStatus(errno, "cannot write the header of", path_);
    }
    if (s.ok()) {
      s = SyncAndClose(fd, options_.fsync, path_);
    } else {
      ::close(fd);
    }
  } else if (s.ok()) {
    // The header outgrew its reservation: one copy behind the real header.
    const std::string relayout = absl::StrCat(path_, ".relayout");
    absl::StatusOr<int> out = CreateOutput(relayout);
    s = out.status();
    if (s.ok()) {
      s = WriteAll(*out, header->data(), header->size(), relayout);
      loff_t in_off = static_cast<loff_t>(data_start_);
      uint64_t left = data_bytes_;
      while (s.ok() && left > 0) {
        ssize_t n = ::copy_file_range(fd, &in_off, *out, nullptr, std::min<uint64_t>(left, uint64_t{1} << 30), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          // Fall back to read/write for filesystems without copy_file_range.
          std::vector<char> buf(8 << 20);
          while (s.ok() && left > 0) {
            ssize_t r = ::pread(fd, buf.data(), std::min<uint64_t>(left, buf.size()), in_off);
            if (r <= 0) {
              s = safetensors::ErrnoStatus(r < 0 ? errno : EIO, "cannot read back", path_);
              break;
            }
            s = WriteAll(*out, buf.data(), static_cast<size_t>(r), relayout);
            in_off += r;
            left -= static_cast<uint64_t>(r);
          }
          break;
        }
        left -= static_cast<uint64_t>(n);
      }
      if (s.ok()) {
        s = SyncAndClose(*out, options_.fsync, relayout);
      } else {
        ::close(*out);
      }
      if (s.ok() && ::rename(relayout.c_str(), path_.c_str()) != 0) {
        s = safetensors::ErrnoStatus(errno, "cannot rename to", path_);
      }
      if (!s.ok()) ::unlink(relayout.c_str());
    }
    ::close(fd);
  } else {
    ::close(fd);
  }
  if (!s.ok()) ::unlink(path_.c_str());
  return s;
}

void StreamingSafetensorsWriter::Abort() {
  if (done_) return;
  done_ = true;
  // Spool mode: the spool is already unlinked and the output exists only
  // inside Finish(). In-place mode: the partial output goes.
  if (spool_fd_ >= 0) ::close(spool_fd_);
  spool_fd_ = -1;
  if (data_start_ > 0) ::unlink(path_.c_str());
}

}  // namespace moe_adapter
