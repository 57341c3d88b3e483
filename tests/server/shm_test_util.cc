#include "tests/server/shm_test_util.h"

#include <dirent.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "moe_adapter/crc32c.h"
#include "moe_adapter/dtype.h"
#include "moe_adapter/v1/adapter.grpc.pb.h"
#include "protocol/options_codec.h"
#include "server/shm_wire.h"

namespace moe_adapter::server_testing {
namespace wire_layout = ::moe_adapter::server::shm_wire;

Memfd::Memfd(uint64_t size, int seals, bool allocate) : size_(size) {
  fd_ = ::memfd_create("moe-shm-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd_ < 0 || ::ftruncate(fd_, static_cast<off_t>(size)) != 0) std::abort();
  if (allocate && size > 0 && ::fallocate(fd_, 0, 0, static_cast<off_t>(size)) != 0) std::abort();
  // A writable mapping would make F_SEAL_WRITE fail (EBUSY).
  if (size > 0 && !(seals & F_SEAL_WRITE)) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) std::abort();
    data_ = static_cast<uint8_t*>(p);
  }
  if (seals != 0 && ::fcntl(fd_, F_ADD_SEALS, seals) != 0) std::abort();
}

Memfd::~Memfd() { Close(); }

void Memfd::Close() {
  if (data_) ::munmap(data_, size_);
  if (fd_ >= 0) ::close(fd_);
  data_ = nullptr;
  fd_ = -1;
}

std::string RequestBytes(bool input, bool output) {
  std::string r(wire_layout::kMagic, 4);
  r.push_back(static_cast<char>(wire_layout::kVersion));
  r.push_back(static_cast<char>((input ? wire_layout::kInputRegion : 0) | (output ? wire_layout::kOutputRegion : 0)));
  r.append(2, '\0');
  return r;
}

Reply Register(const std::string& path, const std::string& request, const std::vector<int>& fds) {
  Reply reply;
  const int s = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (s < 0) std::abort();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(s);
    reply.message = absl::StrCat("connect: ", std::strerror(errno));
    return reply;
  }
  std::vector<char> control(CMSG_SPACE(sizeof(int) * std::max<size_t>(fds.size(), 1)));
  iovec iov{const_cast<char*>(request.data()), request.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  if (::sendmsg(s, &msg, MSG_NOSIGNAL) < 0) {
    ::close(s);
    reply.message = absl::StrCat("sendmsg: ", std::strerror(errno));
    return reply;
  }
  timeval tv{10, 0};
  ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  uint8_t buf[1024];
  const ssize_t n = ::recv(s, buf, sizeof(buf), 0);
  ::close(s);
  if (n < static_cast<ssize_t>(wire_layout::kReplyHeaderBytes)) return reply;
  if (std::memcmp(buf, wire_layout::kMagic, 4) != 0 || buf[4] != wire_layout::kVersion) return reply;
  reply.code = buf[6] | (buf[7] << 8);
  reply.token.assign(reinterpret_cast<char*>(buf + 8), wire_layout::kTokenChars);
  const size_t len = buf[40] | (buf[41] << 8);
  if (wire_layout::kReplyHeaderBytes + len != static_cast<size_t>(n)) {
    reply.code = -2;  // a malformed reply
    return reply;
  }
  reply.message.assign(reinterpret_cast<char*>(buf + wire_layout::kReplyHeaderBytes), len);
  return reply;
}

Reply RegisterRegions(const std::string& path, const Memfd* input, const Memfd* output) {
  std::vector<int> fds;
  if (input) fds.push_back(input->fd());
  if (output) fds.push_back(output->fd());
  return Register(path, RequestBytes(input != nullptr, output != nullptr), fds);
}

uint64_t RegionBytes(const TensorList& tensors) {
  uint64_t n = 64;
  for (const NamedTensor& t : tensors) n += (t.tensor.nbytes() + 63) / 64 * 64;
  return n;
}

v1::ConvertRequest OptionsWithToken(const ConvertOptions& options, const std::string& token, uint64_t chunk) {
  v1::ConvertRequest m;
  *m.mutable_options() = wire::StreamOptionsToWire(options, chunk);
  m.mutable_options()->set_shared_memory_token(token);
  return m;
}

namespace {

using Stream = grpc::ClientReaderWriter<v1::ConvertRequest, v1::ConvertResponse>;

std::unique_ptr<Stream> Open(v1::MoeAdapter::Stub* stub, grpc::ClientContext* ctx, const std::string& rpc) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  if (rpc == "ToHF") return stub->ToHF(ctx);
  if (rpc == "FromHF") return stub->FromHF(ctx);
  return stub->ConvertTensor(ctx);
}

NamedTensor FromHeader(const v1::TensorHeader& h, Bytes data) {
  NamedTensor t;
  t.name = h.name();
  t.tensor.dtype = ParseDType(h.dtype()).value_or(DType::kU8);
  t.tensor.shape.assign(h.shape().begin(), h.shape().end());
  t.tensor.data = std::move(data);
  return t;
}

}  // namespace

ShmRun ShmStream(const std::string& target, const std::string& rpc, const ConvertOptions& options,
                 const std::string& token, const TensorList& inputs, Memfd* input, const Memfd* output, bool with_crc,
                 size_t chunk, const std::function<void()>& after_first) {
  ShmRun run;
  std::vector<uint64_t> offsets;
  if (input) {
    uint64_t at = 0;
    for (const NamedTensor& t : inputs) {
      const Bytes& d = t.tensor.data;
      if (at + d.size() > input->size()) std::abort();  // the test sized the region
      if (d.size()) std::memcpy(input->data() + at, d.data(), d.size());
      offsets.push_back(at);
      at = (at + d.size() + 63) / 64 * 64;
    }
  }
  const size_t send_chunk = chunk ? chunk : size_t{1} << 20;
  auto stub = v1::MoeAdapter::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  std::unique_ptr<Stream> stream = Open(stub.get(), &ctx, rpc);
  // Outputs are read while inputs are written: a streamed output that the
  // client does not take stops the server from reading further inputs.
  std::thread reader([&] {
    v1::ConvertResponse r;
    std::optional<v1::TensorHeader> current;
    std::string bytes;
    while (stream->Read(&r)) {
      if (r.has_header()) {
        const v1::TensorHeader& h = r.header();
        run.headers.push_back(h);
        if (h.has_region_offset()) {
          const bool inside = output && h.region_offset() <= output->size() &&
                              h.byte_length() <= output->size() - h.region_offset();
          run.outputs.push_back(FromHeader(
              h, inside ? Bytes::CopyOf(output->data() + h.region_offset(), h.byte_length()) : Bytes()));
        } else if (h.byte_length() == 0) {
          run.outputs.push_back(FromHeader(h, Bytes()));
        } else {
          current = h;
          bytes.clear();
        }
      } else if (r.kind_case() == v1::ConvertResponse::kChunk && current) {
        bytes += r.chunk();
        if (bytes.size() >= current->byte_length()) {
          if (Crc32c(bytes.data(), bytes.size()) != current->crc32c()) run.bad_crcs.push_back(current->name());
          run.outputs.push_back(FromHeader(*current, Bytes::CopyOf(bytes.data(), bytes.size())));
          current.reset();
        }
      } else if (r.has_summary()) {
        run.summary = r.summary();
      }
    }
  });
  bool open = stream->Write(OptionsWithToken(options, token, chunk));
  for (size_t i = 0; i < inputs.size(); ++i) {
    const NamedTensor& t = inputs[i];
    if (i == 1 && after_first) after_first();
    if (!open) break;
    const Bytes& d = t.tensor.data;
    v1::ConvertRequest h;
    h.mutable_header()->set_name(t.name);
    h.mutable_header()->set_dtype(std::string(DTypeName(t.tensor.dtype)));
    for (int64_t dim : t.tensor.shape) h.mutable_header()->add_shape(dim);
    h.mutable_header()->set_byte_length(d.size());
    if (input) {
      h.mutable_header()->set_region_offset(offsets[i]);
      if (with_crc) h.mutable_header()->set_crc32c(Crc32c(d.data(), d.size()));
      open = stream->Write(h);
      continue;
    }
    h.mutable_header()->set_crc32c(Crc32c(d.data(), d.size()));
    open = stream->Write(h);
    for (size_t off = 0; open && off < d.size(); off += send_chunk) {
      v1::ConvertRequest c;
      c.set_chunk(std::string(reinterpret_cast<const char*>(d.data()) + off, std::min(send_chunk, d.size() - off)));
      open = stream->Write(c);
    }
  }
  stream->WritesDone();
  reader.join();
  run.status = stream->Finish();
  return run;
}

std::vector<std::string> MappedMemfds(pid_t pid) {
  std::ifstream maps(absl::StrCat("/proc/", pid, "/maps"));
  std::vector<std::string> out;
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find("/memfd:") != std::string::npos) out.push_back(line);
  }
  return out;
}

int OpenFds(pid_t pid) {
  DIR* d = ::opendir(absl::StrCat("/proc/", pid, "/fd").c_str());
  if (!d) return -1;
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n;
}

}  // namespace moe_adapter::server_testing
