// File: server/worker_pool.h
//
// Threads that run conversion jobs off gRPC's callback threads, so a slab
// transpose or a group flush never stalls other streams' reactions. Jobs of
// one stream never overlap (the stream submits its next job when the previous
// one has finished); jobs of different streams run in parallel.
//
// Example:
//   WorkerPool pool(4);
//   pool.Submit([] { ConvertOneSlab(); });
//
// Thread-safety: Submit() may be called from any thread. The destructor runs
// every job already submitted, then joins the threads.
#ifndef MOE_ADAPTER_SERVER_WORKER_POOL_H_
#define MOE_ADAPTER_SERVER_WORKER_POOL_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace moe_adapter {
namespace server {

class WorkerPool {
 public:
  // `threads` <= 0: one per hardware thread (at least 2).
  explicit WorkerPool(int threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void Submit(std::function<void()> job);

 private:
  void Loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;  // guarded by mu_
  bool stop_ = false;                        // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace server
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_SERVER_WORKER_POOL_H_
