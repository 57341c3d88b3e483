// CudaExpertConverter: host slabs -> GPU transpose/cast -> host outputs, as a
// pipeline of expert chunks over num_buffers streams (see cuda_convert.h).
#include "core/cuda/cuda_convert.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace moe_adapter {
namespace cuda {
namespace {

std::string ErrText(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + " (" + std::to_string(static_cast<int>(e)) + "): " +
         cudaGetErrorString(e);
}

CudaStatus FromCuda(cudaError_t e, const std::string& what) {
  if (e == cudaSuccess) return CudaStatus::Ok();
  CudaStatus st;
  if (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice || e == cudaErrorInvalidDevice) {
    st.code = kCudaNoDevice;
    st.message = "no CUDA device: " + what + ": " + ErrText(e);
  } else {
    st.code = static_cast<int>(e);
    st.message = what + ": " + ErrText(e);
  }
  return st;
}

CudaStatus Invalid(const std::string& msg) {
  CudaStatus st;
  st.code = kCudaInvalidArgument;
  st.message = msg;
  return st;
}

#define MA_CUDA_RETURN(call)                                  \
  do {                                                        \
    const cudaError_t ma_err_ = (call);                       \
    if (ma_err_ != cudaSuccess) return FromCuda(ma_err_, #call); \
  } while (0)

bool ValidType(ElemType t) { return t == ElemType::kF32 || t == ElemType::kBF16 || t == ElemType::kF16; }

struct CopyOp {
  void* dst;
  const void* src;
  size_t bytes;
};

// A small persistent pool for host memcpy (staging pageable memory). The
// calling thread works too. Each Run() gets its own batch object, so a slow
// worker of an earlier batch can never touch a later one.
class CopyPool {
 public:
  explicit CopyPool(int threads) {
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
  }
  ~CopyPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  void Run(const std::vector<CopyOp>& ops) {
    size_t total = 0;
    for (const auto& op : ops) total += op.bytes;
    if (total == 0) return;
    const size_t parts = workers_.size() + 1;
    const size_t piece = std::max<size_t>(size_t{1} << 20, (total + 4 * parts - 1) / (4 * parts));
    auto batch = std::make_shared<Batch>();
    for (const auto& op : ops) {
      for (size_t off = 0; off < op.bytes; off += piece) {
        batch->pieces.push_back({static_cast<char*>(op.dst) + off, static_cast<const char*>(op.src) + off,
                                 std::min(piece, op.bytes - off)});
      }
    }
    if (workers_.empty() || batch->pieces.size() == 1) {
      for (const auto& p : batch->pieces) std::memcpy(p.dst, p.src, p.bytes);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      batch_ = batch;
      ++generation_;
    }
    cv_.notify_all();
    Work(*batch);
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return batch->done.load() == batch->pieces.size(); });
    batch_.reset();
  }

 private:
  struct Batch {
    std::vector<CopyOp> pieces;
    std::atomic<size_t> next{0};
    std::atomic<size_t> done{0};
  };

  void Work(Batch& b) {
    for (size_t i = b.next.fetch_add(1); i < b.pieces.size(); i = b.next.fetch_add(1)) {
      std::memcpy(b.pieces[i].dst, b.pieces[i].src, b.pieces[i].bytes);
      if (b.done.fetch_add(1) + 1 == b.pieces.size()) {
        std::lock_guard<std::mutex> lock(mu_);
        done_cv_.notify_all();
      }
    }
  }

  void WorkerLoop() {
    uint64_t seen = 0;
    for (;;) {
      std::shared_ptr<Batch> b;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        b = batch_;
      }
      if (b) Work(*b);
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::shared_ptr<Batch> batch_;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

bool IsPinned(const void* p) {
  cudaPointerAttributes attr;
  const cudaError_t e = cudaPointerGetAttributes(&attr, p);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear
    return false;
  }
  return attr.type == cudaMemoryTypeHost;
}

// One batched transpose over host memory: B items, each an [R, C] matrix of
// `st` made of src_np equal pieces (in order), producing a [C, R] matrix of
// `dt` made of dst_np equal pieces.
struct Job {
  ElemType st, dt;
  int64_t B, R, C;
  int src_np = 1, dst_np = 1;
  std::vector<const char*> src;  // B * src_np
  std::vector<char*> dst;        // B * dst_np
  // True when the pieces are consecutive parts of one caller buffer, so that
  // adjacent pieces may be moved with one copy. Pieces from separate buffers
  // are never merged, even when adjacent in memory: a DMA range may not span
  // two pinned allocations (cudaErrorInvalidValue).
  bool src_one_buffer = false, dst_one_buffer = false;
  bool direct_in = false, direct_out = false;
  size_t SrcItemBytes() const { return static_cast<size_t>(R * C) * ElemSize(st); }
  size_t DstItemBytes() const { return static_cast<size_t>(R * C) * ElemSize(dt); }
};

struct Task {
  const Job* job;
  int64_t b0, b1;
  size_t SrcBytes() const { return static_cast<size_t>(b1 - b0) * job->SrcItemBytes(); }
  size_t DstBytes() const { return static_cast<size_t>(b1 - b0) * job->DstItemBytes(); }
};

// Host pieces of items [b0, b1) as (host pointer, offset in the device
// buffer, bytes); with `merge`, pieces adjacent in host memory become one.
template <class Ptr>
std::vector<std::pair<Ptr, std::pair<size_t, size_t>>> Pieces(const std::vector<Ptr>& ptrs, int np,
                                                               size_t item_bytes, int64_t b0, int64_t b1,
                                                               bool merge) {
  std::vector<std::pair<Ptr, std::pair<size_t, size_t>>> out;
  const size_t pb = item_bytes / static_cast<size_t>(np);
  size_t off = 0;
  for (int64_t b = b0; b < b1; ++b) {
    for (int p = 0; p < np; ++p, off += pb) {
      Ptr ptr = ptrs[static_cast<size_t>(b * np + p)];
      if (merge && !out.empty() && out.back().first + out.back().second.second == ptr) {
        out.back().second.second += pb;
      } else {
        out.push_back({ptr, {off, pb}});
      }
    }
  }
  return out;
}

}  // namespace

bool CudaAvailable(std::string* why) {
  return CudaDeviceCount(why) > 0;
}

int CudaDeviceCount(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    if (why != nullptr) *why = "no CUDA device: " + ErrText(e);
    return 0;
  }
  if (n <= 0 && why != nullptr) *why = "no CUDA device: the runtime reports 0 devices";
  return n;
}

CudaStatus GetCudaDeviceInfo(int index, CudaDeviceInfo* info) {
  std::string why;
  const int n = CudaDeviceCount(&why);
  if (n == 0) return CudaStatus{kCudaNoDevice, why};
  if (index < 0 || index >= n) {
    return CudaStatus{kCudaNoDevice, "no CUDA device: index " + std::to_string(index) + " of " + std::to_string(n)};
  }
  cudaDeviceProp p;
  MA_CUDA_RETURN(cudaGetDeviceProperties(&p, index));
  info->index = index;
  info->name = p.name;
  info->cc_major = p.major;
  info->cc_minor = p.minor;
  info->multiprocessors = p.multiProcessorCount;
  info->total_memory = static_cast<int64_t>(p.totalGlobalMem);
  info->l2_bytes = p.l2CacheSize;
  MA_CUDA_RETURN(cudaDriverGetVersion(&info->driver_version));
  MA_CUDA_RETURN(cudaRuntimeGetVersion(&info->runtime_version));
  return CudaStatus::Ok();
}

CudaStatus AllocPinned(size_t bytes, void** out) {
  *out = nullptr;
  MA_CUDA_RETURN(cudaHostAlloc(out, bytes == 0 ? 1 : bytes, cudaHostAllocPortable));
  return CudaStatus::Ok();
}

void FreePinned(void* p) {
  if (p != nullptr) cudaFreeHost(p);
}

CudaStatus RegisterHostMemory(void* p, size_t bytes, bool read_only) {
  unsigned flags = cudaHostRegisterPortable;
  if (read_only) flags |= cudaHostRegisterReadOnly;
  MA_CUDA_RETURN(cudaHostRegister(p, bytes, flags));
  return CudaStatus::Ok();
}

CudaStatus UnregisterHostMemory(void* p) {
  MA_CUDA_RETURN(cudaHostUnregister(p));
  return CudaStatus::Ok();
}

struct CudaExpertConverter::Impl {
  CudaConverterOptions opts;
  CudaConvertStats stats;
  std::unique_ptr<CopyPool> pool;
  struct Stage {
    cudaStream_t stream = nullptr;
    cudaEvent_t done = nullptr;
    void* d_in = nullptr;
    void* d_out = nullptr;
    size_t d_in_bytes = 0, d_out_bytes = 0;
    void* h_in = nullptr;
    void* h_out = nullptr;
    size_t h_in_bytes = 0, h_out_bytes = 0;
  };
  std::vector<Stage> stages;

  ~Impl() {
    cudaSetDevice(opts.device);
    for (auto& s : stages) {
      if (s.stream != nullptr) cudaStreamSynchronize(s.stream);
      cudaFree(s.d_in);
      cudaFree(s.d_out);
      if (s.h_in != nullptr) cudaFreeHost(s.h_in);
      if (s.h_out != nullptr) cudaFreeHost(s.h_out);
      if (s.done != nullptr) cudaEventDestroy(s.done);
      if (s.stream != nullptr) cudaStreamDestroy(s.stream);
    }
    cudaGetLastError();
  }

  void SyncAllQuietly() {
    for (auto& s : stages) cudaStreamSynchronize(s.stream);
    cudaGetLastError();
  }

  static CudaStatus Grow(void** p, size_t* have, size_t need, bool pinned) {
    if (*have >= need) return CudaStatus::Ok();
    if (pinned) {
      if (*p != nullptr) cudaFreeHost(*p);
      *p = nullptr;
      *have = 0;
      const cudaError_t e = cudaHostAlloc(p, need, cudaHostAllocPortable);
      if (e != cudaSuccess) return FromCuda(e, "cudaHostAlloc(" + std::to_string(need) + " bytes)");
    } else {
      cudaFree(*p);
      *p = nullptr;
      *have = 0;
      const cudaError_t e = cudaMalloc(p, need);
      if (e != cudaSuccess) return FromCuda(e, "cudaMalloc(" + std::to_string(need) + " bytes)");
    }
    *have = need;
    return CudaStatus::Ok();
  }

  CudaStatus Enqueue(const Task& t, Stage& s) {
    const Job& j = *t.job;
    if (j.direct_in) {
      for (const auto& pc : Pieces(j.src, j.src_np, j.SrcItemBytes(), t.b0, t.b1, j.src_one_buffer)) {
        MA_CUDA_RETURN(cudaMemcpyAsync(static_cast<char*>(s.d_in) + pc.second.first, pc.first, pc.second.second,
                                       cudaMemcpyHostToDevice, s.stream));
      }
    } else {
      MA_CUDA_RETURN(cudaMemcpyAsync(s.d_in, s.h_in, t.SrcBytes(), cudaMemcpyHostToDevice, s.stream));
    }
    DeviceTransposeArgs a;
    a.src = s.d_in;
    a.src_type = j.st;
    a.src_ld = j.C;
    a.src_batch_stride = j.R * j.C;
    a.dst = s.d_out;
    a.dst_type = j.dt;
    a.dst_ld = j.R;
    a.dst_batch_stride = j.R * j.C;
    a.batch = t.b1 - t.b0;
    a.rows = j.R;
    a.cols = j.C;
    std::string why;
    const int rc = LaunchTransposeCast(a, s.stream, TransposeVariant::kAuto, &why);
    if (rc != 0) return CudaStatus{rc, why};
    if (j.direct_out) {
      for (const auto& pc : Pieces(j.dst, j.dst_np, j.DstItemBytes(), t.b0, t.b1, j.dst_one_buffer)) {
        MA_CUDA_RETURN(cudaMemcpyAsync(pc.first, static_cast<char*>(s.d_out) + pc.second.first, pc.second.second,
                                       cudaMemcpyDeviceToHost, s.stream));
      }
    } else {
      MA_CUDA_RETURN(cudaMemcpyAsync(s.h_out, s.d_out, t.DstBytes(), cudaMemcpyDeviceToHost, s.stream));
    }
    MA_CUDA_RETURN(cudaEventRecord(s.done, s.stream));
    return CudaStatus::Ok();
  }

  void Gather(const Task& t, Stage& s) {
    const Job& j = *t.job;
    std::vector<CopyOp> ops;
    for (const auto& pc : Pieces(j.src, j.src_np, j.SrcItemBytes(), t.b0, t.b1, j.src_one_buffer)) {
      ops.push_back({static_cast<char*>(s.h_in) + pc.second.first, pc.first, pc.second.second});
    }
    pool->Run(ops);
  }

  void Scatter(const Task& t, Stage& s) {
    const Job& j = *t.job;
    std::vector<CopyOp> ops;
    for (const auto& pc : Pieces(j.dst, j.dst_np, j.DstItemBytes(), t.b0, t.b1, j.dst_one_buffer)) {
      ops.push_back({pc.first, static_cast<const char*>(s.h_out) + pc.second.first, pc.second.second});
    }
    pool->Run(ops);
  }

  CudaStatus Run(std::vector<Job>& jobs) {
    const auto t0 = std::chrono::steady_clock::now();
    stats = CudaConvertStats();
    MA_CUDA_RETURN(cudaSetDevice(opts.device));
    std::vector<Task> tasks;
    size_t max_in = 0, max_out = 0, max_staged_in = 0, max_staged_out = 0;
    stats.direct_in = stats.direct_out = true;
    for (Job& j : jobs) {
      if (j.B == 0 || j.R == 0 || j.C == 0) continue;
      j.direct_in = std::all_of(j.src.begin(), j.src.end(), [](const char* p) { return IsPinned(p); });
      j.direct_out = std::all_of(j.dst.begin(), j.dst.end(), [](char* p) { return IsPinned(p); });
      stats.direct_in = stats.direct_in && j.direct_in;
      stats.direct_out = stats.direct_out && j.direct_out;
      const int64_t per = std::max<int64_t>(
          1, opts.chunk_bytes / static_cast<int64_t>(std::max<size_t>(1, j.SrcItemBytes())));
      for (int64_t b0 = 0; b0 < j.B; b0 += per) {
        Task t{&j, b0, std::min(j.B, b0 + per)};
        tasks.push_back(t);
        max_in = std::max(max_in, t.SrcBytes());
        max_out = std::max(max_out, t.DstBytes());
        if (!j.direct_in) max_staged_in = std::max(max_staged_in, t.SrcBytes());
        if (!j.direct_out) max_staged_out = std::max(max_staged_out, t.DstBytes());
        stats.bytes_in += static_cast<int64_t>(t.SrcBytes());
        stats.bytes_out += static_cast<int64_t>(t.DstBytes());
      }
    }
    stats.chunks = static_cast<int>(tasks.size());
    if (tasks.empty()) return CudaStatus::Ok();
    const int n_stages = static_cast<int>(stages.size());
    for (auto& s : stages) {
      CudaStatus st = Grow(&s.d_in, &s.d_in_bytes, max_in, false);
      if (st.ok()) st = Grow(&s.d_out, &s.d_out_bytes, max_out, false);
      if (st.ok() && max_staged_in > 0) st = Grow(&s.h_in, &s.h_in_bytes, max_staged_in, true);
      if (st.ok() && max_staged_out > 0) st = Grow(&s.h_out, &s.h_out_bytes, max_staged_out, true);
      if (!st.ok()) return st;
    }
    std::vector<int64_t> pending(static_cast<size_t>(n_stages), -1);
    auto finish = [&](int si) -> CudaStatus {
      const int64_t k = pending[static_cast<size_t>(si)];
      if (k < 0) return CudaStatus::Ok();
      MA_CUDA_RETURN(cudaEventSynchronize(stages[static_cast<size_t>(si)].done));
      if (!tasks[static_cast<size_t>(k)].job->direct_out) {
        Scatter(tasks[static_cast<size_t>(k)], stages[static_cast<size_t>(si)]);
      }
      pending[static_cast<size_t>(si)] = -1;
      return CudaStatus::Ok();
    };
    CudaStatus st;
    const int64_t n = static_cast<int64_t>(tasks.size());
    if (!tasks[0].job->direct_in) Gather(tasks[0], stages[0]);
    for (int64_t k = 0; k < n && st.ok(); ++k) {
      const int si = static_cast<int>(k % n_stages);
      st = Enqueue(tasks[static_cast<size_t>(k)], stages[static_cast<size_t>(si)]);
      if (!st.ok()) break;
      pending[static_cast<size_t>(si)] = k;
      if (k + 1 < n) {
        const int s1 = static_cast<int>((k + 1) % n_stages);
        const Task& next = tasks[static_cast<size_t>(k + 1)];
        const int64_t pk = pending[static_cast<size_t>(s1)];
        // The next chunk's staging buffer (or the previous owner's staged
        // output) must be free before the host touches it. With direct
        // transfers both ways, stream order alone protects the buffers.
        if (pk >= 0 && (!next.job->direct_in || !tasks[static_cast<size_t>(pk)].job->direct_out)) {
          st = finish(s1);
          if (!st.ok()) break;
        }
        if (!next.job->direct_in) Gather(next, stages[static_cast<size_t>(s1)]);
      }
    }
    // Drain in task order.
    for (int64_t k = std::max<int64_t>(0, n - n_stages); k < n && st.ok(); ++k) {
      st = finish(static_cast<int>(k % n_stages));
    }
    if (!st.ok()) {
      SyncAllQuietly();
      return st;
    }
    for (auto& s : stages) MA_CUDA_RETURN(cudaStreamSynchronize(s.stream));
    MA_CUDA_RETURN(cudaGetLastError());
    stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return CudaStatus::Ok();
  }
};

CudaExpertConverter::CudaExpertConverter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaExpertConverter::~CudaExpertConverter() = default;

CudaStatus CudaExpertConverter::Create(const CudaConverterOptions& options,
                                       std::unique_ptr<CudaExpertConverter>* out) {
  out->reset();
  if (options.num_buffers < 1 || options.num_buffers > 16) return Invalid("num_buffers must be in [1, 16]");
  if (options.chunk_bytes <= 0) return Invalid("chunk_bytes must be positive");
  std::string why;
  const int n = CudaDeviceCount(&why);
  if (n == 0) return CudaStatus{kCudaNoDevice, why};
  if (options.device < 0 || options.device >= n) {
    return CudaStatus{kCudaNoDevice, "no CUDA device: index " + std::to_string(options.device) + " of " +
                                         std::to_string(n)};
  }
  auto impl = std::make_unique<Impl>();
  impl->opts = options;
  if (impl->opts.host_threads <= 0) {
    const unsigned hc = std::thread::hardware_concurrency();
    // All cores up to 16: on the H200 host (16 cores) staging pageable memory
    // ran at 0.45x of the pinned pipeline with 16 threads vs 0.32x with 8.
    impl->opts.host_threads = static_cast<int>(std::max(1u, std::min(16u, hc)));
  }
  MA_CUDA_RETURN(cudaSetDevice(options.device));
  impl->stages.resize(static_cast<size_t>(options.num_buffers));
  for (auto& s : impl->stages) {
    MA_CUDA_RETURN(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
    MA_CUDA_RETURN(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
  }
  impl->pool = std::make_unique<CopyPool>(impl->opts.host_threads);
  out->reset(new CudaExpertConverter(std::move(impl)));
  return CudaStatus::Ok();
}

const CudaConvertStats& CudaExpertConverter::last_stats() const { return impl_->stats; }
const CudaConverterOptions& CudaExpertConverter::options() const { return impl_->opts; }

namespace {

CudaStatus CheckLayer(int64_t E, int64_t H, int64_t I, ElemType src, ElemType dst) {
  if (!ValidType(src) || !ValidType(dst)) return Invalid("element type must be f32, bf16 or f16");
  if (E < 0 || H < 0 || I < 0) return Invalid("negative E, H or I");
  if (E > 0 && H > 0 && I > 0 &&
      (E > (int64_t{1} << 40) / H || E * H > (int64_t{1} << 40) / (2 * I))) {
    return Invalid("E*H*2I too large");
  }
  return CudaStatus::Ok();
}

Job MakeJob(ElemType st, ElemType dt, int64_t B, int64_t R, int64_t C) {
  Job j;
  j.st = st;
  j.dt = dt;
  j.B = B;
  j.R = R;
  j.C = C;
  return j;
}

// Pointers to B consecutive items of `item_bytes` starting at base.
template <class P>
std::vector<P> Consecutive(P base, int64_t B, size_t item_bytes) {
  std::vector<P> v(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) v[static_cast<size_t>(b)] = base + static_cast<size_t>(b) * item_bytes;
  return v;
}

}  // namespace

CudaStatus CudaExpertConverter::ToHf(const void* G, const void* D, int64_t E, int64_t H, int64_t I, ElemType src,
                                     ElemType dst, void* out_gate_up, void* out_down) {
  CudaStatus st = CheckLayer(E, H, I, src, dst);
  if (!st.ok()) return st;
  if ((G != nullptr && out_gate_up == nullptr) || (D != nullptr && out_down == nullptr)) {
    return Invalid("ToHf: an input without its output buffer");
  }
  std::vector<Job> jobs;
  if (G != nullptr) {
    Job j = MakeJob(src, dst, E, H, 2 * I);
    j.src_one_buffer = true;
    j.src = Consecutive(static_cast<const char*>(G), E, j.SrcItemBytes());
    j.dst_one_buffer = true;
    j.dst = Consecutive(static_cast<char*>(out_gate_up), E, j.DstItemBytes());
    jobs.push_back(std::move(j));
  }
  if (D != nullptr) {
    Job j = MakeJob(src, dst, E, I, H);
    j.src_one_buffer = true;
    j.src = Consecutive(static_cast<const char*>(D), E, j.SrcItemBytes());
    j.dst_one_buffer = true;
    j.dst = Consecutive(static_cast<char*>(out_down), E, j.DstItemBytes());
    jobs.push_back(std::move(j));
  }
  return impl_->Run(jobs);
}

CudaStatus CudaExpertConverter::ToHfExperts(const void* G, const void* D, int64_t E, int64_t H, int64_t I,
                                            ElemType src, ElemType dst, void* const* gate, void* const* up,
                                            void* const* down) {
  CudaStatus st = CheckLayer(E, H, I, src, dst);
  if (!st.ok()) return st;
  if ((G != nullptr && (gate == nullptr || up == nullptr)) || (D != nullptr && down == nullptr)) {
    return Invalid("ToHfExperts: an input without its output pointer array");
  }
  std::vector<Job> jobs;
  if (G != nullptr) {
    Job j = MakeJob(src, dst, E, H, 2 * I);
    j.src_one_buffer = true;
    j.src = Consecutive(static_cast<const char*>(G), E, j.SrcItemBytes());
    j.dst_np = 2;
    j.dst.resize(static_cast<size_t>(2 * E));
    for (int64_t e = 0; e < E; ++e) {
      if (gate[e] == nullptr || up[e] == nullptr) return Invalid("ToHfExperts: null gate/up pointer");
      j.dst[static_cast<size_t>(2 * e)] = static_cast<char*>(gate[e]);
      j.dst[static_cast<size_t>(2 * e + 1)] = static_cast<char*>(up[e]);
    }
    jobs.push_back(std::move(j));
  }
  if (D != nullptr) {
    Job j = MakeJob(src, dst, E, I, H);
    j.src_one_buffer = true;
    j.src = Consecutive(static_cast<const char*>(D), E, j.SrcItemBytes());
    j.dst.resize(static_cast<size_t>(E));
    for (int64_t e = 0; e < E; ++e) {
      if (down[e] == nullptr) return Invalid("ToHfExperts: null down pointer");
      j.dst[static_cast<size_t>(e)] = static_cast<char*>(down[e]);
    }
    jobs.push_back(std::move(j));
  }
  return impl_->Run(jobs);
}

CudaStatus CudaExpertConverter::FromHf(const void* gate_up, const void* down, int64_t E, int64_t H, int64_t I,
                                       ElemType src, ElemType dst, void* out_G, void* out_D) {
  CudaStatus st = CheckLayer(E, H, I, src, dst);
  if (!st.ok()) return st;
  if ((gate_up != nullptr && out_G == nullptr) || (down != nullptr && out_D == nullptr)) {
    return Invalid("FromHf: an input without its output buffer");
  }
  std::vector<Job> jobs;
  if (gate_up != nullptr) {
    Job j = MakeJob(src, dst, E, 2 * I, H);
    j.src_one_buffer = true;
    j.src = Consecutive(static_cast<const char*>(gate_up), E, j.SrcItemBytes());
    j.dst_one_buffer = true;
    j.dst = Consecutive(static_cast<char*>(out_G), E, j.DstItemBytes());
    jobs.push_back(std::move(j));
  }
  if (down != nullptr) {
    Job j = MakeJob(src, dst, E, H, I);
    j.src_one_buffer = true;
    j.src = Consecutive(static_cast<const char*>(down), E, j.SrcItemBytes());
    j.dst_one_buffer = true;
    j.dst = Consecutive(static_cast<char*>(out_D), E, j.DstItemBytes());
    jobs.push_back(std::move(j));
  }
  return impl_->Run(jobs);
}

CudaStatus CudaExpertConverter::FromHfExperts(const void* const* gate, const void* const* up,
                                              const void* const* down, int64_t E, int64_t H, int64_t I,
                                              ElemType src, ElemType dst, void* out_G, void* out_D) {
  CudaStatus st = CheckLayer(E, H, I, src, dst);
  if (!st.ok()) return st;
  if (((gate != nullptr || up != nullptr) && out_G == nullptr) || (down != nullptr && out_D == nullptr)) {
    return Invalid("FromHfExperts: an input without its output buffer");
  }
  if ((gate == nullptr) != (up == nullptr)) return Invalid("FromHfExperts: gate and up go together");
  std::vector<Job> jobs;
  if (gate != nullptr) {
    Job j = MakeJob(src, dst, E, 2 * I, H);
    j.src_np = 2;
    j.src.resize(static_cast<size_t>(2 * E));
    for (int64_t e = 0; e < E; ++e) {
      if (gate[e] == nullptr || up[e] == nullptr) return Invalid("FromHfExperts: null gate/up pointer");
      j.src[static_cast<size_t>(2 * e)] = static_cast<const char*>(gate[e]);
      j.src[static_cast<size_t>(2 * e + 1)] = static_cast<const char*>(up[e]);
    }
    j.dst_one_buffer = true;
    j.dst = Consecutive(static_cast<char*>(out_G), E, j.DstItemBytes());
    jobs.push_back(std::move(j));
  }
  if (down != nullptr) {
    Job j = MakeJob(src, dst, E, H, I);
    j.src.resize(static_cast<size_t>(E));
    for (int64_t e = 0; e < E; ++e) {
      if (down[e] == nullptr) return Invalid("FromHfExperts: null down pointer");
      j.src[static_cast<size_t>(e)] = static_cast<const char*>(down[e]);
    }
    j.dst_one_buffer = true;
    j.dst = Consecutive(static_cast<char*>(out_D), E, j.DstItemBytes());
    jobs.push_back(std::move(j));
  }
  return impl_->Run(jobs);
}

}  // namespace cuda
}  // namespace moe_adapter
