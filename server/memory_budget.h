// File: server/memory_budget.h
//
// Memory budgets (spec §15.8): bytes a stream must hold, not bytes that pass
// through. Each stream owns an Account; before it allocates for a tensor it
// Reserve()s the most it will hold while that tensor is in progress, which is
// refused (RESOURCE_EXHAUSTED, naming the tensor and the budget) when it would
// exceed the per-stream budget or what is left of the total one. Reservations
// are what the total budget counts, so two streams cannot both be promised
// the last free bytes. SetHeld() reports the bytes actually held (the
// moe_adapter_buffered_bytes gauge); Settle() returns the unused part of a
// reservation once the tensor is done.
//
// Example:
//   MemoryBudget budget(6ull << 30, 16ull << 30, &metrics);
//   MemoryBudget::Account account(&budget);
//   RETURN_IF_ERROR(account.Reserve(held_now + slab_bytes, "tensor \"x\""));
//   std::vector<uint8_t> slab(slab_bytes);
//   account.SetHeld(held_now + slab_bytes);
//
// Thread-safety: MemoryBudget is thread-safe. An Account is used by one
// thread at a time (its stream's); it must not outlive its MemoryBudget.
#ifndef MOE_ADAPTER_SERVER_MEMORY_BUDGET_H_
#define MOE_ADAPTER_SERVER_MEMORY_BUDGET_H_

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace moe_adapter {
namespace server {

class Metrics;

// ParseCgroupMemoryLimit(): the byte limit in a cgroup v2 memory.max or v1
// memory.limit_in_bytes file; nullopt for "max", a v1 "unlimited" value
// (>= 2^62) or anything unreadable.
std::optional<uint64_t> ParseCgroupMemoryLimit(const std::string& text);
// ContainerMemoryLimit(): this process's cgroup memory limit, if any.
std::optional<uint64_t> ContainerMemoryLimit();
// BufferCacheCeiling(): what the buffer cache (core/buffer_cache.h) may keep
// beyond the streams' budget under a container limit: the limit, less the
// total budget, less 256 MiB for the process itself; 0 when nothing is left.
uint64_t BufferCacheCeiling(uint64_t container_limit, uint64_t total_budget);

class MemoryBudget {
 public:
  // `metrics` may be null.
  MemoryBudget(uint64_t per_stream_bytes, uint64_t total_bytes, Metrics* metrics);

  uint64_t per_stream_limit() const { return per_stream_; }
  uint64_t total_limit() const { return total_; }
  // held(): bytes all streams hold now (the gauge's value).
  uint64_t held() const { return held_.load(std::memory_order_relaxed); }
  // reserved(): bytes promised to streams.
  uint64_t reserved() const { return reserved_.load(std::memory_order_relaxed); }

  class Account {
   public:
    explicit Account(MemoryBudget* budget) : budget_(budget) {}
    ~Account();
    Account(const Account&) = delete;
    Account& operator=(const Account&) = delete;

    // Reserve(): this stream will hold up to `bytes` in total. `what` names
    // the cause for the error message, e.g. `tensor "model.x"`.
    absl::Status Reserve(uint64_t bytes, absl::string_view what);
    // SetHeld(): the bytes this stream holds now.
    void SetHeld(uint64_t bytes);
    // Settle(): shrinks the reservation to what is held.
    void Settle();

    uint64_t held() const { return held_; }
    uint64_t reserved() const { return reserved_; }
    uint64_t peak() const { return peak_; }

   private:
    void SetReserved(uint64_t bytes);

    MemoryBudget* budget_;
    uint64_t held_ = 0;
    uint64_t reserved_ = 0;
    uint64_t peak_ = 0;
  };

 private:
  uint64_t per_stream_;
  uint64_t total_;
  Metrics* metrics_;
  std::atomic<uint64_t> reserved_{0};
  std::atomic<uint64_t> held_{0};
};

}  // namespace server
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_SERVER_MEMORY_BUDGET_H_
