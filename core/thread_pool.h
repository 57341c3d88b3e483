// A process-wide pool of persistent workers for splitting one large call
// (a slab transpose) across cores. Threads are created on first need and live
// for the process, so a call costs a wake-up, not a thread start.
#ifndef MOE_ADAPTER_CORE_THREAD_POOL_H_
#define MOE_ADAPTER_CORE_THREAD_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace moe_adapter {
namespace internal {

class WorkerPool {
 public:
  // The shared pool; never destroyed, so workers cannot outlive it at exit.
  static WorkerPool& Get();

  // Calls body(i) once for every i in [0, n), on the calling thread plus up to
  // threads - 1 workers, and returns when all calls have finished. Each
  // participant walks its own contiguous share of [0, n) in order, then takes
  // single items from the back of the others' shares: neighbouring items stay
  // on one core (memory locality), and a thread that is preempted or never
  // wakes holds up at most the one item it is running. The pool runs one loop
  // at a time: while another caller's loop holds it, this one runs entirely on
  // the calling thread, so concurrent callers never wait on each other and
  // cannot deadlock. body must not throw.
  template <class F>
  void ParallelFor(int64_t n, int threads, F&& body) {
    using Body = std::remove_reference_t<F>;
    Run(
        n, threads, [](void* ctx, int64_t i) { (*static_cast<Body*>(ctx))(i); },
        const_cast<void*>(static_cast<const void*>(&body)));
  }

  // Number of worker threads started so far (the caller is not counted).
  int NumWorkers();

  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

 private:
  // More would only oversubscribe; it bounds a misconfigured thread count.
  static constexpr int kMaxThreads = 64;

  // One participant's share: unclaimed items [front, back), packed as
  // back << 32 | front so owner and thieves claim with a single CAS. A line
  // each, or every claim would bounce the neighbours' line too.
  struct alignas(64) Share {
    std::atomic<uint64_t> bounds{0};
  };

  struct Job {
    void (*fn)(void*, int64_t) = nullptr;
    void* ctx = nullptr;
    int slots = 0;               // shares: the caller's (0) and one per helper
    int helpers = 0;             // workers that joined (guarded by mu_)
    std::atomic<int> active{0};  // joined workers still inside the job
    Share shares[kMaxThreads];
  };

  WorkerPool() = default;
  void Run(int64_t n, int threads, void (*fn)(void*, int64_t), void* ctx);
  void EnsureWorkers(int count);
  void WorkerLoop();
  static void Drain(Job* job, int slot);

  std::atomic<bool> busy_{false};  // a caller owns the pool
  std::mutex mu_;
  std::condition_variable cv_;  // workers: a job was published
  std::mutex done_mu_;
  std::condition_variable done_cv_;  // the caller: the last helper left its job
  Job* job_ = nullptr;               // guarded by mu_
  // Bumped per published job, under mu_; read without it by spinning workers.
  std::atomic<uint64_t> epoch_{0};
  std::vector<std::thread> workers_;  // guarded by mu_
};

}  // namespace internal
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_THREAD_POOL_H_
