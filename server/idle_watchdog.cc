#include "server/idle_watchdog.h"

#include <algorithm>

namespace moe_adapter {
namespace server {

IdleWatchdog::IdleWatchdog(absl::Duration period)
    : period_(absl::ToChronoNanoseconds(period)), thread_([this] { Loop(); }) {}

IdleWatchdog::~IdleWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void IdleWatchdog::Add(Watched* stream) {
  std::lock_guard<std::mutex> lock(mu_);
  streams_.insert(stream);
}

void IdleWatchdog::Remove(Watched* stream) {
  std::lock_guard<std::mutex> lock(mu_);
  streams_.erase(stream);
}

absl::Duration IdleWatchdog::PeriodFor(absl::Duration shortest_limit) {
  return std::clamp(shortest_limit / 4, absl::Milliseconds(10), absl::Seconds(1));
}

void IdleWatchdog::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, period_, [this] { return stop_; })) {
    // The lock stays held: Remove() (from OnDone) waits until the stream's
    // check is over, so no check ever runs on a deleted stream. A check only
    // takes its stream's lock and, at most, starts a Finish.
    const auto now = std::chrono::steady_clock::now();
    for (Watched* s : streams_) s->CheckIdle(now);
  }
}

}  // namespace server
}  // namespace moe_adapter
