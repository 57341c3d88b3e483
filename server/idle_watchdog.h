// File: server/idle_watchdog.h
//
// IdleWatchdog: one thread that, a few times per period, asks every watched
// stream whether it has been waiting on its client too long (the stream
// decides and ends itself; stream_reactor.h). One thread for all streams, so
// an idle stream costs a set entry, not a thread or a timer of its own.
//
// Example (what service.cc does):
//   IdleWatchdog watchdog(absl::Seconds(1));
//   watchdog.Add(reactor);      // when the stream starts
//   watchdog.Remove(reactor);   // in OnDone, before the reactor may be deleted
//
// Thread-safety: Add() and Remove() may be called from any thread. Check()
// runs on the watchdog's thread with the watchdog's lock held, so after
// Remove() returns the watchdog never touches that stream again; Check() must
// therefore never call Add() or Remove().
#ifndef MOE_ADAPTER_SERVER_IDLE_WATCHDOG_H_
#define MOE_ADAPTER_SERVER_IDLE_WATCHDOG_H_

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "absl/time/time.h"

namespace moe_adapter {
namespace server {

class IdleWatchdog {
 public:
  // Watched: what a stream implements to be watched.
  class Watched {
   public:
    // CheckIdle(): ends the stream if it has waited on its client too long
    // at `now`. Must not block.
    virtual void CheckIdle(std::chrono::steady_clock::time_point now) = 0;

   protected:
    ~Watched() = default;
  };

  // `period`: how often every stream is checked (a stream is ended at most
  // `period` after its limit).
  explicit IdleWatchdog(absl::Duration period);
  ~IdleWatchdog();  // stops and joins the thread
  IdleWatchdog(const IdleWatchdog&) = delete;
  IdleWatchdog& operator=(const IdleWatchdog&) = delete;

  void Add(Watched* stream);
  // Remove(): waits for a Check() of `stream` in progress.
  void Remove(Watched* stream);

  // PeriodFor(): the period that ends a stream within a quarter of the
  // shortest limit after it (10 ms to 1 s).
  static absl::Duration PeriodFor(absl::Duration shortest_limit);

 private:
  void Loop();

  const std::chrono::nanoseconds period_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<Watched*> streams_;  // guarded by mu_
  bool stop_ = false;           // guarded by mu_
  std::thread thread_;
};

}  // namespace server
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_SERVER_IDLE_WATCHDOG_H_
