// File: server/job_queue.h
//
// A queue of conversion jobs and the threads that run them, off gRPC's
// callback threads, so a slab transpose or a group flush never stalls other
// streams' reactions. (Not core/thread_pool.h's WorkerPool, which splits one
// transpose's loop over threads.) Jobs of
// one stream never overlap (the stream submits its next job when the previous
// one has finished); jobs of different streams run in parallel.
//
// Example:
//   JobQueue jobs(4);
//   jobs.Submit([] { ConvertOneSlab(); });
//
// Thread-safety: Submit() may be called from any thread. The destructor runs
// every job already submitted, then joins the threads.
#ifndef MOE_ADAPTER_SERVER_JOB_QUEUE_H_
#define MOE_ADAPTER_SERVER_JOB_QUEUE_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace moe_adapter {
namespace server {

class JobQueue {
 public:
  // `threads` <= 0: one per hardware thread (at least 2).
  explicit JobQueue(int threads);
  ~JobQueue();
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

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

#endif  // MOE_ADAPTER_SERVER_JOB_QUEUE_H_
