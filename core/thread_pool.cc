#include "core/thread_pool.h"

#include <algorithm>

namespace moe_adapter {
namespace internal {
namespace {

// About 20-50 us of pause instructions.
constexpr int kSpinsBeforeSleep = 2000;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Claims the first unclaimed item of a share (its owner's end).
bool TakeFront(std::atomic<uint64_t>& bounds, int64_t* item) {
  uint64_t v = bounds.load(std::memory_order_relaxed);
  for (;;) {
    const uint32_t front = static_cast<uint32_t>(v), back = static_cast<uint32_t>(v >> 32);
    if (front >= back) return false;
    if (bounds.compare_exchange_weak(v, v + 1, std::memory_order_relaxed)) {
      *item = front;
      return true;
    }
  }
}

// Claims the last unclaimed item of a share (a thief's end).
bool TakeBack(std::atomic<uint64_t>& bounds, int64_t* item) {
  uint64_t v = bounds.load(std::memory_order_relaxed);
  for (;;) {
    const uint32_t front = static_cast<uint32_t>(v), back = static_cast<uint32_t>(v >> 32);
    if (front >= back) return false;
    if (bounds.compare_exchange_weak(v, v - (uint64_t{1} << 32), std::memory_order_relaxed)) {
      *item = back - 1;
      return true;
    }
  }
}

}  // namespace

WorkerPool& WorkerPool::Get() {
  static WorkerPool* pool = new WorkerPool();  // leaked on purpose: no teardown race at exit
  return *pool;
}

int WorkerPool::NumWorkers() {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(workers_.size());
}

void WorkerPool::EnsureWorkers(int count) {
  count = std::min(count, kMaxThreads - 1);
  std::lock_guard<std::mutex> lock(mu_);
  while (static_cast<int>(workers_.size()) < count) {
    workers_.emplace_back([this] { WorkerLoop(); });
    workers_.back().detach();
  }
}

void WorkerPool::Drain(Job* job, int slot) {
  int64_t item;
  while (TakeFront(job->shares[slot].bounds, &item)) job->fn(job->ctx, item);
  for (int k = 1; k < job->slots; ++k) {
    std::atomic<uint64_t>& victim = job->shares[(slot + k) % job->slots].bounds;
    while (TakeBack(victim, &item)) job->fn(job->ctx, item);
  }
}

void WorkerPool::Run(int64_t n, int threads, void (*fn)(void*, int64_t), void* ctx) {
  if (n <= 0) return;
  const int helpers = static_cast<int>(std::min<int64_t>({threads - 1, n - 1, kMaxThreads - 1}));
  // Busy means another stream's slab is being split right now; the cores are
  // taken anyway, so doing this one inline costs nothing and cannot deadlock.
  // Shares count items in 32 bits; no slab comes near that many work items.
  if (helpers <= 0 || n > UINT32_MAX || busy_.exchange(true, std::memory_order_acquire)) {
    for (int64_t i = 0; i < n; ++i) fn(ctx, i);
    return;
  }
  EnsureWorkers(helpers);
  Job job;
  job.fn = fn;
  job.ctx = ctx;
  job.slots = helpers + 1;
  for (int s = 0; s < job.slots; ++s) {
    const uint64_t front = static_cast<uint64_t>(n * s / job.slots);
    const uint64_t back = static_cast<uint64_t>(n * (s + 1) / job.slots);
    job.shares[s].bounds.store(back << 32 | front, std::memory_order_relaxed);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &job;
    epoch_.fetch_add(1, std::memory_order_relaxed);
  }
  cv_.notify_all();
  Drain(&job, 0);
  {
    // From here no worker can join; those that did are finishing one item.
    std::lock_guard<std::mutex> lock(mu_);
    job_ = nullptr;
  }
  // A helper still inside an item is usually microseconds from done, so spin
  // briefly; if it was preempted, sleep instead: an idle core lets the
  // scheduler move it here rather than make it wait for its own core.
  for (int spins = 0; spins < kSpinsBeforeSleep; ++spins) {
    if (job.active.load(std::memory_order_acquire) == 0) break;
    CpuRelax();
  }
  if (job.active.load(std::memory_order_acquire) != 0) {
    std::unique_lock<std::mutex> lock(done_mu_);
    done_cv_.wait(lock, [&] { return job.active.load(std::memory_order_acquire) == 0; });
  }
  busy_.store(false, std::memory_order_release);
}

void WorkerPool::WorkerLoop() {
  uint64_t seen = 0;
  for (;;) {
    // Slabs of one tensor come back to back: watching for the next job a
    // little longer than a caller takes to issue it saves a futex wake-up,
    // tens of microseconds, per call.
    for (int spins = 0; spins < kSpinsBeforeSleep; ++spins) {
      if (epoch_.load(std::memory_order_relaxed) != seen) break;
      CpuRelax();
    }
    Job* job = nullptr;
    int slot = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return epoch_.load(std::memory_order_relaxed) != seen; });
      seen = epoch_.load(std::memory_order_relaxed);
      job = job_;
      if (job == nullptr || job->helpers + 1 >= job->slots) continue;
      slot = ++job->helpers;
      job->active.fetch_add(1, std::memory_order_relaxed);
    }
    Drain(job, slot);
    // Last touch of the job: the caller may free it as soon as active is zero.
    if (job->active.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(done_mu_);
      done_cv_.notify_all();
    }
  }
}

}  // namespace internal
}  // namespace moe_adapter
