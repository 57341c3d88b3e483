// stream_bench: the service over loopback against a raw gRPC byte stream,
// both measured in the same run, and the server's peak RSS per RPC.
//
//   stream_bench [--num-experts 128 --hidden-size 2048 --moe-intermediate-size 768]
//                [--repeat 3] [--server-bin PATH] [--work DIR] [--chunk-bytes 4128768]
//                [--verbose] [--only transports]
//
// 1. Baseline: RawStream.Push (bench/raw_stream.proto) served in this process
//    on 127.0.0.1:0; the server echoes every chunk, so the same bytes move
//    both ways, in the same chunking and with the same message limits as the
//    real client and server (chunk + wire::kMessageSlackBytes).
// 2. ToHF and FromHF of one MoE layer (E experts, H, I, bf16) through the real
//    moe-adapter-server, started as a child process (a fresh one per repeat
//    and RPC, which then converts the layer twice: its first stream pays the
//    new process's first touch of its buffers, the second is a running
//    server's next layer, the targeted figure), with the client library
//    (include/moe_adapter/client.h). Timed from the first Send() to Finish();
//    GB/s of payload (one way).
// 3. The server's VmHWM (/proc/<pid>/status) after both streams.
// 4. ToHF and FromHF as in 2, with the server listening on a Unix socket
//    (--listen unix:///...) instead of 127.0.0.1: the same client library,
//    target unix:///...; rows Unix socket vs TCP loopback, from the same run.
//    `--only transports` runs this part alone (both transports, interleaved).
//
// Every figure is the best of --repeat runs (peak RSS: the largest). Prints
// markdown rows `| what | measured | baseline (same run) | ratio | target |`
// (bench/report.py prints them in its table). Exit status 1 on any error.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "moe_adapter/client.h"
#include "moe_adapter/convert_options.h"
#include "moe_adapter/tensor.h"
#include "raw_stream.grpc.pb.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

// Same slack as protocol/frame_codec.h (wire::kMessageSlackBytes): the real
// client and server allow chunk + 1 MiB per received message.
constexpr size_t kMessageSlackBytes = 1u << 20;

struct Flags {
  int64_t experts = 128, hidden = 2048, inter = 768;
  int repeat = 3;
  size_t chunk_bytes = moe_adapter::ClientOptions().chunk_bytes;  // what clients use by default
  std::string server_bin;
  std::string work;
  bool verbose = false;
  // --only raw, raw-store-forward, tohf or fromhf: that part alone (for
  // profiling); one line per run instead of the table. --only transports:
  // the Unix socket vs TCP rows alone.
  std::string only;
  // --transport tcp|unix: what --only tohf/fromhf uses.
  bool unix_socket = false;
};

// The running server child, killed by Die() (exit() runs no destructors).
std::atomic<pid_t> g_server_pid{-1};

[[noreturn]] void Die(const std::string& msg) {
  if (pid_t pid = g_server_pid.load(); pid > 0) kill(pid, SIGKILL);
  std::fprintf(stderr, "stream_bench: %s\n", msg.c_str());
  std::exit(1);
}

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

double CpuSecondsSelf() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

// ---------------------------------------------------------------------------
// The layer, generated once: one buffer, viewed as the native grouped tensors
// or as the HF per-expert ones (the values are random either way).

moe_adapter::Bytes RandomBf16(size_t nbytes) {
  moe_adapter::Bytes b = moe_adapter::Bytes::Allocate(nbytes);
  uint8_t* base = b.mutable_data();
  // Two threads (the machine's cores); each its own xorshift stream.
  auto fill = [&](size_t begin, size_t end, uint64_t seed) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    size_t i = begin;
    for (; i + 8 <= end; i += 8) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      const uint64_t v = x & 0x3FFF3FFF3FFF3FFFull;  // finite bf16 values
      std::memcpy(base + i, &v, 8);
    }
    for (; i < end; ++i) base[i] = 0x3F;
  };
  const size_t half = (nbytes / 2) & ~size_t{7};
  std::thread t(fill, half, nbytes, 2);
  fill(0, half, 1);
  t.join();
  return b;
}

struct Layer {
  moe_adapter::Bytes all;
  std::vector<moe_adapter::NamedTensor> native;  // 2 grouped tensors
  std::vector<moe_adapter::NamedTensor> hf;      // 3 E per-expert tensors
};

Layer MakeLayer(int64_t E, int64_t H, int64_t I) {
  using moe_adapter::DType;
  const size_t es = 2;  // bf16
  Layer l;
  l.all = RandomBf16(static_cast<size_t>(E * H * I * 3) * es);
  const std::string p = "model.layers.0.mlp.experts.";
  const size_t gu = static_cast<size_t>(E * H * 2 * I) * es;
  l.native.push_back({p + "gate_and_up_projs", {DType::kBF16, {E, H, 2 * I}, l.all.Slice(0, gu)}});
  l.native.push_back({p + "down_projs", {DType::kBF16, {E, I, H}, l.all.Slice(gu, l.all.size() - gu)}});
  const size_t one = static_cast<size_t>(I * H) * es;
  for (int64_t e = 0; e < E; ++e) {
    const size_t off = static_cast<size_t>(e) * 3 * one;
    const std::string q = absl::StrCat(p, e, ".");
    l.hf.push_back({q + "gate_proj.weight", {DType::kBF16, {I, H}, l.all.Slice(off, one)}});
    l.hf.push_back({q + "up_proj.weight", {DType::kBF16, {I, H}, l.all.Slice(off + one, one)}});
    l.hf.push_back({q + "down_proj.weight", {DType::kBF16, {H, I}, l.all.Slice(off + 2 * one, one)}});
  }
  return l;
}

// ---------------------------------------------------------------------------
// The baseline: RawStream, echoed by an in-process sync server whose handler
// reads on its own thread while a second thread writes (one read and one write
// in flight at once, as the real server's reactor does).

class RawStreamService final : public moe_adapter::bench::RawStream::Service {
 public:
  grpc::Status Push(grpc::ServerContext*,
                    grpc::ServerReaderWriter<moe_adapter::bench::Chunk, moe_adapter::bench::Chunk>* stream) override {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<moe_adapter::bench::Chunk> queue;
    bool done = false, failed = false;
    constexpr size_t kMaxQueued = 4;
    std::thread writer([&] {
      for (;;) {
        moe_adapter::bench::Chunk c;
        {
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock, [&] { return !queue.empty() || done; });
          if (queue.empty()) return;
          c = std::move(queue.front());
          queue.pop_front();
        }
        cv.notify_all();
        if (!stream->Write(c)) {
          std::lock_guard<std::mutex> lock(mu);
          failed = true;
          cv.notify_all();
          return;
        }
      }
    });
    for (;;) {
      moe_adapter::bench::Chunk c;
      if (!stream->Read(&c)) break;
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return queue.size() < kMaxQueued || failed; });
      if (failed) break;
      queue.push_back(std::move(c));
      cv.notify_all();
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      done = true;
    }
    cv.notify_all();
    writer.join();
    return failed ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed") : grpc::Status::OK;
  }
};

// Which raw server: the callback API (default) or the sync one; and, for
// --only raw-store-forward, an echo that holds every chunk until the input
// ends (the shape of FromHF, whose outputs can only start when the group is
// complete), a diagnostic rather than the baseline.
bool g_raw_callback = true;
bool g_store_forward = false;

// The same echo with the callback API (the one the real server uses): a
// reactor with one read and one write in flight and up to kMaxQueued chunks
// between them.
class EchoReactor final : public grpc::ServerBidiReactor<moe_adapter::bench::Chunk, moe_adapter::bench::Chunk> {
 public:
  EchoReactor() {
    std::lock_guard<std::mutex> lock(mu_);
    reading_ = true;
    StartRead(&in_);
  }
  void OnReadDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    reading_ = false;
    if (!ok) {
      input_done_ = true;
    } else {
      queue_.push_back(std::move(in_));
      in_.Clear();
    }
    Pump();
  }
  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (!ok) failed_ = true;
    Pump();
  }
  void OnDone() override { delete this; }

 private:
  static constexpr size_t kMaxQueued = 4;
  void Pump() {
    if (finished_) return;
    if (failed_) {
      if (!writing_ && !reading_) {
        finished_ = true;
        Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
      }
      return;
    }
    if (!writing_ && !queue_.empty() && (!g_store_forward || input_done_)) {
      out_ = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
      StartWrite(&out_);
    }
    if (!reading_ && !input_done_ && (queue_.size() < kMaxQueued || g_store_forward)) {
      reading_ = true;
      StartRead(&in_);
    }
    if (input_done_ && !writing_ && !reading_ && queue_.empty()) {
      finished_ = true;
      Finish(grpc::Status::OK);
    }
  }

  std::mutex mu_;
  moe_adapter::bench::Chunk in_, out_;
  std::deque<moe_adapter::bench::Chunk> queue_;
  bool reading_ = false, writing_ = false, input_done_ = false, failed_ = false, finished_ = false;
};

class RawStreamCallbackService final : public moe_adapter::bench::RawStream::CallbackService {
 public:
  grpc::ServerBidiReactor<moe_adapter::bench::Chunk, moe_adapter::bench::Chunk>* Push(
      grpc::CallbackServerContext*) override {
    return new EchoReactor();
  }
};


class RawServer {
 public:
  explicit RawServer(size_t chunk_bytes) {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    if (g_raw_callback) {
      b.RegisterService(&callback_service_);
    } else {
      b.RegisterService(&service_);
    }
    b.SetMaxReceiveMessageSize(static_cast<int>(chunk_bytes + kMessageSlackBytes));
    server_ = b.BuildAndStart();
    if (!server_ || port_ == 0) Die("cannot start the raw gRPC stream server on 127.0.0.1:0");
  }
  ~RawServer() { server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1)); }
  int port() const { return port_; }

 private:
  RawStreamService service_;
  RawStreamCallbackService callback_service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

// RawRun(): pushes `total` bytes from `src` in chunks (one copy into each
// message, as any plain protobuf client does) while a reader thread takes the
// echo; seconds from the first write to Finish(). Each run gets a fresh server
// and connection, as each conversion gets a fresh server process (gRPC's
// flow-control windows start cold in both).
double RawRun(const uint8_t* src, size_t total, size_t chunk) {
  RawServer server(chunk);
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(chunk + kMessageSlackBytes));
  auto channel = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", server.port()),
                                           grpc::InsecureChannelCredentials(), args);
  auto stub = moe_adapter::bench::RawStream::NewStub(channel);
  // Connected before the clock starts, as the conversions are (Health(), Open()).
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
    Die("cannot connect to the raw gRPC stream server");
  }
  grpc::ClientContext ctx;
  auto stream = stub->Push(&ctx);
  std::atomic<uint64_t> echoed{0};
  std::thread reader([&] {
    moe_adapter::bench::Chunk in;
    while (stream->Read(&in)) echoed += in.data().size();
  });
  moe_adapter::bench::Chunk out;
  const auto t0 = Clock::now();
  bool ok = true;
  for (size_t off = 0; off < total && ok; off += chunk) {
    const size_t n = std::min(chunk, total - off);
    out.mutable_data()->assign(reinterpret_cast<const char*>(src) + off, n);
    ok = stream->Write(out);
  }
  stream->WritesDone();
  reader.join();
  grpc::Status st = stream->Finish();
  const auto t1 = Clock::now();
  if (!ok || !st.ok()) Die(absl::StrCat("raw gRPC stream failed: ", st.error_message()));
  if (echoed != total) Die(absl::StrCat("raw gRPC stream echoed ", echoed.load(), " of ", total, " bytes"));
  return Seconds(t0, t1);
}

// ---------------------------------------------------------------------------
// The real server, as a child process.

// Where the server listens: 127.0.0.1:0 or a Unix socket (a path in /tmp).
enum class Transport { kTcp, kUnix };

class ServerProcess {
 public:
  ServerProcess(const std::string& bin, bool verbose, Transport transport = Transport::kTcp) : verbose_(verbose) {
    if (transport == Transport::kUnix) unix_ = absl::StrCat("unix:///tmp/moe-stream-bench-", getpid(), ".sock");
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) Die("pipe2 failed");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    std::vector<std::string> args = {bin, "--listen", unix_.empty() ? "127.0.0.1:0" : unix_, "--metrics-listen=",
                                     "--shutdown-grace", "1s"};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, bin.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) Die(absl::StrCat("cannot start ", bin, ": ", std::strerror(rc)));
    g_server_pid = pid_;
    err_ = fdopen(fds[0], "r");
    // The first line tells the address: "moe-adapter-server: listening on
    // 127.0.0.1:PORT" (or "... on unix:///PATH").
    char line[4096];
    while (target_.empty() && std::fgets(line, sizeof line, err_)) {
      log_ += line;
      const char* at = std::strstr(line, "listening on ");
      if (!at) continue;
      std::string addr(at + std::strlen("listening on "));
      addr = addr.substr(0, addr.find_first_of(" \n"));
      int port = 0;
      if (addr == unix_ || (unix_.empty() && absl::SimpleAtoi(addr.substr(addr.rfind(':') + 1), &port) && port > 0)) {
        target_ = addr;
      }
    }
    if (target_.empty()) {
      Stop();
      Die(absl::StrCat(bin, " did not start:\n", log_));
    }
    drain_ = std::thread([this] {
      char l[4096];
      while (std::fgets(l, sizeof l, err_)) {
        std::lock_guard<std::mutex> lock(mu_);
        log_ += l;
        if (verbose_) std::fputs(l, stderr);
      }
    });
  }
  ~ServerProcess() { Stop(); }

  // target(): what a client connects to: 127.0.0.1:PORT or unix:///PATH.
  const std::string& target() const { return target_; }
  pid_t pid() const { return pid_; }

  // Field "VmHWM" (peak resident set) of /proc/<pid>/status, in bytes.
  uint64_t PeakRss() const { return StatusField("VmHWM:"); }

  // User + system CPU seconds the server has used so far.
  double CpuSeconds() const {
    std::ifstream f(absl::StrCat("/proc/", pid_, "/stat"));
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const size_t close = s.rfind(')');
    if (close == std::string::npos) return 0;
    std::istringstream in(s.substr(close + 2));
    std::string field;
    double ut = 0, st = 0;
    for (int i = 3; i <= 15 && in >> field; ++i) {
      if (i == 14) ut = std::atof(field.c_str());
      if (i == 15) st = std::atof(field.c_str());
    }
    return (ut + st) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }

  std::string Log() {
    std::lock_guard<std::mutex> lock(mu_);
    return log_;
  }

  void Stop() {
    if (pid_ > 0) {
      g_server_pid = -1;
      kill(pid_, SIGTERM);
      int status = 0;
      for (int i = 0; i < 100; ++i) {  // 5 s, then SIGKILL
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
          pid_ = -1;
          break;
        }
        usleep(50000);
      }
      if (pid_ > 0) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        pid_ = -1;
      }
    }
    if (drain_.joinable()) drain_.join();
    if (err_) {
      std::fclose(err_);
      err_ = nullptr;
    }
  }

 private:
  uint64_t StatusField(const char* name) const {
    std::ifstream f(absl::StrCat("/proc/", pid_, "/status"));
    std::string line;
    while (std::getline(f, line)) {
      if (line.rfind(name, 0) == 0) return std::strtoull(line.c_str() + std::strlen(name), nullptr, 10) * 1024;
    }
    Die(absl::StrCat("no ", name, " in /proc/", pid_, "/status"));
  }

  bool verbose_;
  pid_t pid_ = -1;
  std::string unix_;  // the unix: address listened on; "" for TCP
  std::string target_;
  FILE* err_ = nullptr;
  std::thread drain_;
  std::mutex mu_;
  std::string log_;
};

struct ConvResult {
  double seconds = 0;       // the warm stream (the server's second)
  double cold_seconds = 0;  // the fresh server's first stream
  uint64_t peak_rss = 0;    // over both streams
  uint64_t idle_rss = 0;
  double server_cpu = 0;    // the warm stream's
  double client_cpu = 0;
};

// Stream(): one conversion of the layer through `client`; seconds from the
// first Send() to Finish(), and the CPU both sides used.
double Stream(const Flags& f, const Layer& layer, moe_adapter::RemoteRpc rpc, moe_adapter::RemoteClient* client,
              ServerProcess* server, double* client_cpu, double* server_cpu) {
  const bool to_hf = rpc == moe_adapter::RemoteRpc::kToHf;
  const char* what = to_hf ? "ToHF" : "FromHF";
  moe_adapter::ConvertOptions opts;
  opts.geometry.num_experts = f.experts;
  opts.geometry.hidden_size = f.hidden;
  opts.geometry.moe_intermediate_size = f.inter;
  std::atomic<uint64_t> out_bytes{0}, out_tensors{0};
  auto sink = [&](moe_adapter::NamedTensor t) {
    out_bytes += t.tensor.nbytes();
    ++out_tensors;
    return absl::OkStatus();  // dropped at once: the bench holds no output
  };
  absl::StatusOr<std::unique_ptr<moe_adapter::RemoteSession>> session = client->Open(rpc, opts, sink);
  if (!session.ok()) Die(absl::StrCat(what, ": open: ", session.status().ToString(), "\n", server->Log()));
  const std::vector<moe_adapter::NamedTensor>& in = to_hf ? layer.native : layer.hf;
  const double cpu0 = CpuSecondsSelf(), scpu0 = server->CpuSeconds();
  const auto t0 = Clock::now();
  for (const moe_adapter::NamedTensor& t : in) {
    absl::Status s = (*session)->Send(t);
    if (!s.ok()) Die(absl::StrCat(what, ": send \"", t.name, "\": ", s.ToString(), "\n", server->Log()));
  }
  absl::StatusOr<moe_adapter::RemoteSummary> summary = (*session)->Finish();
  const auto t1 = Clock::now();
  *client_cpu = CpuSecondsSelf() - cpu0;
  *server_cpu = server->CpuSeconds() - scpu0;
  if (!summary.ok()) Die(absl::StrCat(what, ": ", summary.status().ToString(), "\n", server->Log()));
  const uint64_t expect_tensors = to_hf ? layer.hf.size() : layer.native.size();
  if (out_bytes != layer.all.size() || out_tensors != expect_tensors) {
    Die(absl::StrCat(what, ": got ", out_tensors.load(), " tensors / ", out_bytes.load(), " bytes back, expected ",
                     expect_tensors, " / ", layer.all.size()));
  }
  return Seconds(t0, t1);
}

// Convert(): two conversions of the layer on a fresh server. The first pays
// for the new process's first touch of its buffers (for FromHF, 1.2 GB of
// groups; on this VM that costs anywhere from 0.1 to 3 s); the second is what
// a running server does for every further layer of a checkpoint, whose
// buffers it reuses (core/buffer_cache.h). Peak RSS covers both.
ConvResult Convert(const Flags& f, const Layer& layer, moe_adapter::RemoteRpc rpc,
                   Transport transport = Transport::kTcp) {
  ServerProcess server(f.server_bin, f.verbose, transport);
  moe_adapter::ClientOptions co;
  co.target = server.target();
  co.chunk_bytes = f.chunk_bytes;
  absl::StatusOr<std::unique_ptr<moe_adapter::RemoteClient>> client = moe_adapter::RemoteClient::Connect(co);
  if (!client.ok()) Die(absl::StrCat("connect: ", client.status().ToString()));
  absl::Status health;
  for (int i = 0; i < 50; ++i) {
    health = (*client)->Health();
    if (health.ok()) break;
    usleep(100000);
  }
  if (!health.ok()) Die(absl::StrCat("server not healthy: ", health.ToString(), "\n", server.Log()));
  ConvResult r;
  r.idle_rss = server.PeakRss();
  double ccpu = 0, scpu = 0;
  r.cold_seconds = Stream(f, layer, rpc, client->get(), &server, &ccpu, &scpu);
  r.seconds = Stream(f, layer, rpc, client->get(), &server, &r.client_cpu, &r.server_cpu);
  r.peak_rss = server.PeakRss();
  return r;
}

std::string ServerBinNextTo(const char* argv0) {
  // <build>/bench/stream_bench -> <build>/server/moe-adapter-server
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  std::string self = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string(argv0);
  std::string dir = self.substr(0, self.rfind('/') == std::string::npos ? 0 : self.rfind('/'));
  if (dir.empty()) dir = ".";
  return dir + "/../server/moe-adapter-server";
}

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  f.server_bin = ServerBinNextTo(argv[0]);
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i], v;
    bool has_value = false;
    if (size_t eq = a.find('='); eq != std::string::npos) {
      v = a.substr(eq + 1);
      a.resize(eq);
      has_value = true;
    }
    auto value = [&]() -> std::string {
      if (has_value) return v;
      if (i + 1 >= argc) Die(absl::StrCat(a, " needs a value"));
      return argv[++i];
    };
    auto integer = [&](int64_t* out) {
      const std::string s = value();
      if (!absl::SimpleAtoi(s, out) || *out <= 0) Die(absl::StrCat(a, ": not a positive integer: \"", s, "\""));
    };
    int64_t n = 0;
    if (a == "--num-experts") integer(&f.experts);
    else if (a == "--hidden-size") integer(&f.hidden);
    else if (a == "--moe-intermediate-size") integer(&f.inter);
    else if (a == "--repeat") integer(&n), f.repeat = static_cast<int>(n);
    else if (a == "--chunk-bytes") integer(&n), f.chunk_bytes = static_cast<size_t>(n);
    else if (a == "--server-bin") f.server_bin = value();
    else if (a == "--work") f.work = value();  // accepted for run_all.sh; nothing is written
    else if (a == "--verbose") f.verbose = true;
    else if (a == "--raw-api") {
      const std::string api = value();
      if (api != "sync" && api != "callback") Die("--raw-api: sync or callback");
      g_raw_callback = api == "callback";
    }
    else if (a == "--transport") {
      const std::string t = value();
      if (t != "tcp" && t != "unix") Die("--transport: tcp or unix");
      f.unix_socket = t == "unix";
    }
    else if (a == "--only") {
      f.only = value();
      if (f.only != "raw" && f.only != "tohf" && f.only != "fromhf" && f.only != "raw-store-forward" &&
          f.only != "transports") {
        Die("--only: raw, raw-store-forward, tohf, fromhf or transports");
      }
      if (f.only == "raw-store-forward") g_store_forward = g_raw_callback = true;
    }
    else if (a == "--help" || a == "-h") {
      std::printf(
          "usage: stream_bench [--num-experts E] [--hidden-size H] [--moe-intermediate-size I] [--repeat N]\n"
          "                    [--server-bin PATH] [--chunk-bytes N] [--work DIR] [--verbose]\n"
          "                    [--raw-api callback|sync] [--transport tcp|unix]   (--only tohf/fromhf)\n"
          "                    [--only raw|raw-store-forward|tohf|fromhf]   (one part alone, for profiling; no table)\n"
          "                    [--only transports]   (the Unix socket vs TCP loopback rows alone)\n");
      std::exit(0);
    } else {
      Die(absl::StrCat("unknown flag ", a));
    }
  }
  if (access(f.server_bin.c_str(), X_OK) != 0) Die(absl::StrCat("no server binary at ", f.server_bin, " (--server-bin)"));
  return f;
}

void Row(const std::string& what, const std::string& measured, const std::string& baseline, double ratio,
         const std::string& target, bool met) {
  std::printf("| %s | %s | %s | %.2f | %s %s |\n", what.c_str(), measured.c_str(), baseline.c_str(), ratio,
              target.c_str(), met ? "met" : "**not met**");
}

std::string Fixed(double v, const char* unit) {
  char b[64];
  std::snprintf(b, sizeof b, "%.2f %s", v, unit);
  return b;
}

std::string Mb(double bytes) {
  char b[64];
  std::snprintf(b, sizeof b, "%.0f MB", bytes / 1e6);
  return b;
}

// The Unix socket rows: the warm stream of each transport, same run.
void TransportRow(const char* rpc, double unix_seconds, double tcp_seconds, double payload) {
  const double unix_gbs = payload / unix_seconds / 1e9, tcp_gbs = payload / tcp_seconds / 1e9;
  std::printf("| service %s over a Unix socket vs TCP loopback (a running server's next layer) | %s | %s | %.2f |  |\n",
              rpc, Fixed(unix_gbs, "GB/s").c_str(), Fixed(tcp_gbs, "GB/s").c_str(), unix_gbs / tcp_gbs);
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  const Flags f = ParseFlags(argc, argv);
  const auto g0 = Clock::now();
  const Layer layer = MakeLayer(f.experts, f.hidden, f.inter);
  const double payload = static_cast<double>(layer.all.size());
  if (f.verbose) {
    std::fprintf(stderr, "layer: E=%lld H=%lld I=%lld, %.3f GB, generated in %.2f s\n",
                 static_cast<long long>(f.experts), static_cast<long long>(f.hidden), static_cast<long long>(f.inter),
                 payload / 1e9, Seconds(g0, Clock::now()));
  }

  if (f.only == "transports") {
    using moe_adapter::RemoteRpc;
    double to[2] = {1e30, 1e30}, from[2] = {1e30, 1e30};  // [tcp, unix]
    for (int r = 0; r < f.repeat; ++r) {
      for (Transport t : {Transport::kTcp, Transport::kUnix}) {
        const int i = t == Transport::kUnix;
        to[i] = std::min(to[i], Convert(f, layer, RemoteRpc::kToHf, t).seconds);
        from[i] = std::min(from[i], Convert(f, layer, RemoteRpc::kFromHf, t).seconds);
      }
      if (f.verbose) {
        std::fprintf(stderr, "run %d: ToHF tcp %.3f s unix %.3f s | FromHF tcp %.3f s unix %.3f s (best so far)\n", r,
                     to[0], to[1], from[0], from[1]);
      }
    }
    TransportRow("ToHF", to[1], to[0], payload);
    TransportRow("FromHF", from[1], from[0], payload);
    return 0;
  }
  if (!f.only.empty()) {
    const Transport transport = f.unix_socket ? Transport::kUnix : Transport::kTcp;
    for (int r = 0; r < f.repeat; ++r) {
      const double c0 = CpuSecondsSelf();
      if (f.only == "raw" || f.only == "raw-store-forward") {
        const double t = RawRun(layer.all.data(), layer.all.size(), f.chunk_bytes);
        std::printf("%s: %.3f s, %.2f GB/s, cpu %.2f s\n", f.only.c_str(), t, payload / t / 1e9,
                    CpuSecondsSelf() - c0);
      } else {
        const ConvResult c =
            Convert(f, layer, f.only == "tohf" ? moe_adapter::RemoteRpc::kToHf : moe_adapter::RemoteRpc::kFromHf,
                    transport);
        std::printf("%s: fresh server %.3f s (%.2f GB/s), warm %.3f s (%.2f GB/s, cpu client %.2f s server %.2f s), "
                    "server peak %s\n",
                    f.only.c_str(), c.cold_seconds, payload / c.cold_seconds / 1e9, c.seconds,
                    payload / c.seconds / 1e9, c.client_cpu, c.server_cpu, Mb(static_cast<double>(c.peak_rss)).c_str());
      }
    }
    return 0;
  }

  double raw_best = 1e30, to_best = 1e30, from_best = 1e30, to_cold = 1e30, from_cold = 1e30;
  double to_unix_best = 1e30, from_unix_best = 1e30;
  uint64_t to_rss = 0, from_rss = 0, idle_rss = 0;
  // Interleaved, so that a slow spell of the machine hits every kind alike.
  for (int r = 0; r < f.repeat; ++r) {
    const double c0 = CpuSecondsSelf();
    const double raw_s = RawRun(layer.all.data(), layer.all.size(), f.chunk_bytes);
    const double raw_cpu = CpuSecondsSelf() - c0;
    raw_best = std::min(raw_best, raw_s);
    const ConvResult to = Convert(f, layer, moe_adapter::RemoteRpc::kToHf);
    const ConvResult from = Convert(f, layer, moe_adapter::RemoteRpc::kFromHf);
    to_unix_best = std::min(to_unix_best, Convert(f, layer, moe_adapter::RemoteRpc::kToHf, Transport::kUnix).seconds);
    from_unix_best =
        std::min(from_unix_best, Convert(f, layer, moe_adapter::RemoteRpc::kFromHf, Transport::kUnix).seconds);
    to_best = std::min(to_best, to.seconds);
    from_best = std::min(from_best, from.seconds);
    to_cold = std::min(to_cold, to.cold_seconds);
    from_cold = std::min(from_cold, from.cold_seconds);
    to_rss = std::max(to_rss, to.peak_rss);
    from_rss = std::max(from_rss, from.peak_rss);
    idle_rss = std::max({idle_rss, to.idle_rss, from.idle_rss});
    if (f.verbose) {
      std::fprintf(stderr,
                   "run %d: raw %.3f s (%.2f GB/s, cpu %.2f s) | ToHF fresh %.3f s, warm %.3f s (%.2f GB/s, cpu client "
                   "%.2f s server %.2f s, peak %s) | FromHF fresh %.3f s, warm %.3f s (%.2f GB/s, cpu client %.2f s "
                   "server %.2f s, peak %s)\n",
                   r, raw_s, payload / raw_s / 1e9, raw_cpu, to.cold_seconds, to.seconds, payload / to.seconds / 1e9,
                   to.client_cpu, to.server_cpu, Mb(static_cast<double>(to.peak_rss)).c_str(), from.cold_seconds,
                   from.seconds, payload / from.seconds / 1e9, from.client_cpu, from.server_cpu,
                   Mb(static_cast<double>(from.peak_rss)).c_str());
    }
  }

  const double raw_gbs = payload / raw_best / 1e9;
  const double to_gbs = payload / to_best / 1e9, from_gbs = payload / from_best / 1e9;
  Row("service ToHF over loopback (a running server's next layer) vs raw gRPC stream", Fixed(to_gbs, "GB/s"), Fixed(raw_gbs, "GB/s"),
      to_gbs / raw_gbs, ">= 0.7", to_gbs / raw_gbs >= 0.7);
  Row("service FromHF over loopback (a running server's next layer) vs raw gRPC stream", Fixed(from_gbs, "GB/s"),
      Fixed(raw_gbs, "GB/s"), from_gbs / raw_gbs, ">= 0.7", from_gbs / raw_gbs >= 0.7);
  const double to_cold_gbs = payload / to_cold / 1e9, from_cold_gbs = payload / from_cold / 1e9;
  std::printf("| service ToHF, a fresh server's first stream vs raw gRPC stream | %s | %s | %.2f |  |\n",
              Fixed(to_cold_gbs, "GB/s").c_str(), Fixed(raw_gbs, "GB/s").c_str(), to_cold_gbs / raw_gbs);
  std::printf("| service FromHF, a fresh server's first stream (first touch of its groups) vs raw gRPC stream "
              "| %s | %s | %.2f |  |\n",
              Fixed(from_cold_gbs, "GB/s").c_str(), Fixed(raw_gbs, "GB/s").c_str(), from_cold_gbs / raw_gbs);
  TransportRow("ToHF", to_unix_best, to_best, payload);
  TransportRow("FromHF", from_unix_best, from_best, payload);
  const double to_limit = 256e6, from_limit = payload + 256e6;
  Row("server peak RSS, ToHF of the layer", Mb(static_cast<double>(to_rss)), Mb(to_limit), to_rss / to_limit,
      "<= 1.00", to_rss <= to_limit);
  Row("server peak RSS, FromHF of the layer", Mb(static_cast<double>(from_rss)),
      absl::StrCat("one layer ", Mb(payload), " + 256 MB"), from_rss / from_limit, "<= 1.00",
      from_rss <= from_limit);
  std::printf("| (process baseline: idle `moe-adapter-server`) | %s | | | |\n", Mb(static_cast<double>(idle_rss)).c_str());
  std::fflush(stdout);
  return 0;
}
