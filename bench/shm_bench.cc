// shm_bench: the shared-memory data plane (issue 15 item 2, docs/server.md
// "Shared memory") against memcpy of the same bytes and against the streamed
// path over the same Unix socket, all in one run.
//
//   shm_bench [--num-experts 128 --hidden-size 2048 --moe-intermediate-size 768]
//             [--repeat 3] [--server-bin PATH]
//
// One MoE layer (E experts, H, I, bf16) lies in a sealed, fallocate()d input
// memfd, as a client that owns native (ToHF) or HF (FromHF) tensors would
// hold them; a real moe-adapter-server (child process, --listen unix:///...)
// converts it into a second memfd, the output region, which the client reads
// in place. Timed from the side-channel registration to the stream's OK.
// Baselines, same run: memcpy of the same bytes from the input memfd into the
// output memfd with as many threads as the machine has (the server's worker
// pool has as many), and the streamed path (include/moe_adapter/client.h)
// over the same socket. Every figure is the best of --repeat runs. Prints
// markdown rows `| what | measured | baseline (same run) | ratio | target |`.
// Exit status 1 on any error (the outputs are checked: names, sizes, and the
// bytes of one tensor per direction against the streamed path's).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "moe_adapter/client.h"
#include "moe_adapter/convert_options.h"
#include "moe_adapter/tensor.h"
#include "moe_adapter/v1/adapter.grpc.pb.h"
#include "protocol/options_codec.h"
#include "server/shm_wire.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
namespace shm_wire = moe_adapter::server::shm_wire;
namespace v1 = moe_adapter::v1;

pid_t g_server = -1;

[[noreturn]] void Die(const std::string& msg) {
  if (g_server > 0) kill(g_server, SIGKILL);
  std::fprintf(stderr, "shm_bench: %s\n", msg.c_str());
  std::exit(1);
}

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// A sealed memfd of `size` bytes, every page allocated (the server refuses
// regions it would have to allocate), mapped read-write here.
struct Region {
  int fd = -1;
  uint8_t* data = nullptr;
  uint64_t size = 0;
  explicit Region(uint64_t n) : size(n) {
    fd = memfd_create("shm-bench", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0 || ftruncate(fd, static_cast<off_t>(n)) != 0 || fallocate(fd, 0, 0, static_cast<off_t>(n)) != 0) {
      Die(absl::StrCat("memfd of ", n, " bytes: ", std::strerror(errno)));
    }
    void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED) Die("mmap failed");
    data = static_cast<uint8_t*>(p);
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) Die("F_ADD_SEALS failed");
  }
  ~Region() {
    munmap(data, size);
    close(fd);
  }
};

// Tensors as (name, shape, offset in the input region), bf16.
struct Entry {
  std::string name;
  std::vector<int64_t> shape;
  uint64_t offset, bytes;
};

std::vector<Entry> NativeLayout(int64_t E, int64_t H, int64_t I) {
  const std::string p = "model.layers.0.mlp.experts.";
  const uint64_t gu = static_cast<uint64_t>(E * H * 2 * I) * 2;
  return {{p + "gate_and_up_projs", {E, H, 2 * I}, 0, gu},
          {p + "down_projs", {E, I, H}, gu, static_cast<uint64_t>(E * I * H) * 2}};
}

std::vector<Entry> HfLayout(int64_t E, int64_t H, int64_t I) {
  const std::string p = "model.layers.0.mlp.experts.";
  const uint64_t one = static_cast<uint64_t>(I * H) * 2;
  std::vector<Entry> out;
  for (int64_t e = 0; e < E; ++e) {
    const uint64_t off = static_cast<uint64_t>(e) * 3 * one;
    const std::string q = absl::StrCat(p, e, ".");
    out.push_back({q + "gate_proj.weight", {I, H}, off, one});
    out.push_back({q + "up_proj.weight", {I, H}, off + one, one});
    out.push_back({q + "down_proj.weight", {H, I}, off + 2 * one, one});
  }
  return out;
}

void FillRandomBf16(uint8_t* base, size_t n) {
  auto fill = [base](size_t begin, size_t end, uint64_t seed) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = begin; i + 8 <= end; i += 8) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      const uint64_t v = x & 0x3FFF3FFF3FFF3FFFull;
      std::memcpy(base + i, &v, 8);
    }
  };
  const size_t half = (n / 2) & ~size_t{7};
  std::thread t(fill, half, n, 2);
  fill(0, half, 1);
  t.join();
}

std::string Register(const std::string& path, const Region& in, const Region& out) {
  const int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) Die("connect to the side channel failed");
  char req[shm_wire::kRequestBytes] = {'M', 'O', 'E', 'S', shm_wire::kVersion,
                                       shm_wire::kInputRegion | shm_wire::kOutputRegion, 0, 0};
  const int fds[2] = {in.fd, out.fd};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(fds))] = {};
  iovec iov{req, sizeof(req)};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(fds));
  std::memcpy(CMSG_DATA(c), fds, sizeof(fds));
  if (sendmsg(s, &msg, MSG_NOSIGNAL) < 0) Die("sendmsg failed");
  uint8_t reply[shm_wire::kMaxReplyBytes];
  const ssize_t n = recv(s, reply, sizeof(reply), 0);
  close(s);
  if (n < static_cast<ssize_t>(shm_wire::kReplyHeaderBytes) || reply[6] != 0 || reply[7] != 0) {
    Die(absl::StrCat("registration refused: ",
                     n >= 42 ? std::string(reinterpret_cast<char*>(reply) + 42, static_cast<size_t>(n) - 42) : ""));
  }
  return std::string(reinterpret_cast<char*>(reply) + 8, shm_wire::kTokenChars);
}

// ShmConvert(): one conversion through the regions; fills `outputs` (name ->
// offset, bytes in the output region).
double ShmConvert(const std::string& target, const std::string& shm_path, bool to_hf,
                  const moe_adapter::ConvertOptions& opts, const std::vector<Entry>& in, const Region& input,
                  const Region& output, std::map<std::string, std::pair<uint64_t, uint64_t>>* outputs) {
  const auto t0 = Clock::now();
  const std::string token = Register(shm_path, input, output);
  auto stub = v1::MoeAdapter::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  auto stream = to_hf ? stub->ToHF(&ctx) : stub->FromHF(&ctx);
  v1::ConvertRequest o;
  *o.mutable_options() = moe_adapter::wire::StreamOptionsToWire(opts, 0);
  o.mutable_options()->set_shared_memory_token(token);
  stream->Write(o);
  for (const Entry& e : in) {
    v1::ConvertRequest h;
    v1::TensorHeader* th = h.mutable_header();
    th->set_name(e.name);
    th->set_dtype("BF16");
    for (int64_t d : e.shape) th->add_shape(d);
    th->set_byte_length(e.bytes);
    th->set_region_offset(e.offset);
    stream->Write(h);
  }
  stream->WritesDone();
  outputs->clear();
  v1::ConvertResponse r;
  while (stream->Read(&r)) {
    if (r.has_header()) {
      if (!r.header().has_region_offset()) Die("an output came in chunks, not in the region");
      (*outputs)[r.header().name()] = {r.header().region_offset(), r.header().byte_length()};
    }
  }
  grpc::Status s = stream->Finish();
  if (!s.ok()) Die(absl::StrCat(to_hf ? "ToHF" : "FromHF", " through the regions: ", s.error_message()));
  return Seconds(t0, Clock::now());
}

// Streamed(): the same conversion through the client library; every
// output's size is kept, and the bytes of the first few (for the check).
struct StreamedOutputs {
  std::map<std::string, uint64_t> sizes;
  std::map<std::string, moe_adapter::Bytes> sample;
};
double Streamed(moe_adapter::RemoteClient* client, bool to_hf, const moe_adapter::ConvertOptions& opts,
                const std::vector<Entry>& in, const Region& input, StreamedOutputs* kept) {
  auto sink = [kept](moe_adapter::NamedTensor t) {
    kept->sizes[t.name] = t.tensor.nbytes();
    if (kept->sample.size() < 4) kept->sample[t.name] = std::move(t.tensor.data);
    return absl::OkStatus();
  };
  auto session = client->Open(to_hf ? moe_adapter::RemoteRpc::kToHf : moe_adapter::RemoteRpc::kFromHf, opts, sink);
  if (!session.ok()) Die(session.status().ToString());
  const auto t0 = Clock::now();
  for (const Entry& e : in) {
    moe_adapter::NamedTensor t{e.name,
                               {moe_adapter::DType::kBF16, e.shape,
                                moe_adapter::Bytes::Wrap(input.data + e.offset, e.bytes, nullptr)}};
    absl::Status s = (*session)->Send(t);
    if (!s.ok()) Die(s.ToString());
  }
  auto summary = (*session)->Finish();
  if (!summary.ok()) Die(summary.status().ToString());
  return Seconds(t0, Clock::now());
}

double Memcpy(const Region& from, const Region& to, uint64_t n) {
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  const auto t0 = Clock::now();
  std::vector<std::thread> pool;
  const uint64_t part = (n / threads + 63) / 64 * 64;
  for (unsigned i = 0; i < threads; ++i) {
    const uint64_t b = std::min<uint64_t>(n, i * part), e = std::min<uint64_t>(n, b + part);
    pool.emplace_back([&, b, e] { std::memcpy(to.data + b, from.data + b, e - b); });
  }
  for (std::thread& t : pool) t.join();
  return Seconds(t0, Clock::now());
}

}  // namespace

int main(int argc, char** argv) {
  int64_t E = 128, H = 2048, I = 768;
  int repeat = 3;
  std::string bin;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string f = argv[i], v = argv[i + 1];
    if (f == "--num-experts") E = std::atoll(v.c_str());
    else if (f == "--hidden-size") H = std::atoll(v.c_str());
    else if (f == "--moe-intermediate-size") I = std::atoll(v.c_str());
    else if (f == "--repeat") repeat = std::atoi(v.c_str());
    else if (f == "--server-bin") bin = v;
    else Die("usage: shm_bench [--num-experts N --hidden-size N --moe-intermediate-size N] [--repeat N] [--server-bin PATH]");
  }
  if (bin.empty()) {
    char buf[4096];
    const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    const std::string self(buf, n > 0 ? static_cast<size_t>(n) : 0);
    bin = self.substr(0, self.rfind('/')) + "/../server/moe-adapter-server";
  }
  const uint64_t payload = static_cast<uint64_t>(E * H * I * 3) * 2;
  Region input(payload), output(payload + 64 * static_cast<uint64_t>(3 * E + 2) + 4096);
  FillRandomBf16(input.data, payload);

  const std::string sock = absl::StrCat("/tmp/moe-shm-bench-", getpid(), ".sock");
  const std::string log = sock + ".log";
  std::vector<std::string> args = {bin, "--listen", "unix://" + sock, "--metrics-listen=", "--shutdown-grace", "1s"};
  std::vector<char*> av;
  for (std::string& a : args) av.push_back(a.data());
  av.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (posix_spawn(&g_server, bin.c_str(), &fa, nullptr, av.data(), environ) != 0) Die("cannot start " + bin);
  posix_spawn_file_actions_destroy(&fa);
  auto listening = [&log] {
    FILE* f = std::fopen(log.c_str(), "r");
    char line[4096];
    bool found = false;
    while (f && !found && std::fgets(line, sizeof line, f)) found = std::strstr(line, "listening on") != nullptr;
    if (f) std::fclose(f);
    return found;
  };
  for (int i = 0; i < 400 && !listening(); ++i) usleep(50000);
  moe_adapter::ClientOptions co;
  co.target = "unix://" + sock;
  auto client = moe_adapter::RemoteClient::Connect(co);
  if (!client.ok() || !(*client)->Health().ok()) Die("the server did not start (see " + log + ")");

  moe_adapter::ConvertOptions opts;
  opts.geometry.num_experts = E;
  opts.geometry.hidden_size = H;
  opts.geometry.moe_intermediate_size = I;
  std::fprintf(stderr, "layer: E=%lld H=%lld I=%lld, %.3f GB; %u hardware threads; the machine is shared and noisy\n",
               static_cast<long long>(E), static_cast<long long>(H), static_cast<long long>(I), payload / 1e9,
               std::thread::hardware_concurrency());
  for (bool to_hf : {true, false}) {
    const char* rpc = to_hf ? "ToHF" : "FromHF";
    const std::vector<Entry> in = to_hf ? NativeLayout(E, H, I) : HfLayout(E, H, I);
    double shm = 1e30, copy = 1e30, streamed = 1e30;
    std::map<std::string, std::pair<uint64_t, uint64_t>> placed;
    StreamedOutputs kept;
    // A first conversion of each kind warms the server's buffers, as a
    // running server's next layer finds them.
    ShmConvert(co.target, sock + ".shm", to_hf, opts, in, input, output, &placed);
    for (int r = 0; r < repeat; ++r) {
      shm = std::min(shm, ShmConvert(co.target, sock + ".shm", to_hf, opts, in, input, output, &placed));
      copy = std::min(copy, Memcpy(input, output, payload));
      kept = StreamedOutputs();
      streamed = std::min(streamed, Streamed(client->get(), to_hf, opts, in, input, &kept));
      std::fprintf(stderr, "%s run %d: shm %.3f s, memcpy %.3f s, streamed %.3f s (best so far)\n", rpc, r, shm, copy,
                   streamed);
    }
    // Same outputs as the streamed path (a memcpy ran into the region since:
    // convert once more first).
    ShmConvert(co.target, sock + ".shm", to_hf, opts, in, input, output, &placed);
    uint64_t total = 0;
    for (const auto& [name, where] : placed) {
      total += where.second;
      auto size = kept.sizes.find(name);
      auto sample = kept.sample.find(name);
      if (size == kept.sizes.end() || size->second != where.second ||
          (sample != kept.sample.end() &&
           std::memcmp(sample->second.data(), output.data + where.first, where.second) != 0)) {
        Die(absl::StrCat(rpc, ": output ", name, " differs from the streamed path's"));
      }
    }
    if (total != payload || placed.size() != kept.sizes.size()) Die(absl::StrCat(rpc, ": outputs are incomplete"));
    const double gbs = payload / shm / 1e9;
    std::printf("| shared-memory %s of the layer vs memcpy of the same bytes (%u threads) | %.2f GB/s | %.2f GB/s | %.2f | >= 0.5 |\n",
                rpc, std::thread::hardware_concurrency(), gbs, payload / copy / 1e9, copy / shm);
    std::printf("| shared-memory %s of the layer vs the streamed path over the same Unix socket | %.2f GB/s | %.2f GB/s | %.2f | >= 8 |\n",
                rpc, gbs, payload / streamed / 1e9, streamed / shm);
    std::fflush(stdout);
  }
  kill(g_server, SIGTERM);
  int status;
  waitpid(g_server, &status, 0);
  unlink(log.c_str());
  return 0;
}
