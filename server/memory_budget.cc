#include "server/memory_budget.h"

#include <algorithm>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/metrics.h"

namespace moe_adapter {
namespace server {

MemoryBudget::MemoryBudget(uint64_t per_stream_bytes, uint64_t total_bytes, Metrics* metrics)
    : per_stream_(per_stream_bytes), total_(total_bytes), metrics_(metrics) {}

MemoryBudget::Account::~Account() {
  SetHeld(0);
  SetReserved(0);
}

absl::Status MemoryBudget::Account::Reserve(uint64_t bytes, absl::string_view what) {
  if (bytes > budget_->per_stream_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        what, " needs ", bytes, " bytes held at once on the server, more than the per-stream memory budget of ",
        budget_->per_stream_, " bytes (--max-stream-memory)"));
  }
  if (bytes <= reserved_) return absl::OkStatus();
  const uint64_t delta = bytes - reserved_;
  uint64_t cur = budget_->reserved_.load(std::memory_order_relaxed);
  do {
    uint64_t after = 0;
    if (__builtin_add_overflow(cur, delta, &after) || after > budget_->total_) {
      const uint64_t left = budget_->total_ > cur ? budget_->total_ - cur : 0;
      return absl::ResourceExhaustedError(absl::StrCat(
          what, " needs ", delta, " more bytes on the server, but only ", left, " of the total memory budget of ",
          budget_->total_, " bytes (--max-total-memory) are free; retry later"));
    }
  } while (!budget_->reserved_.compare_exchange_weak(cur, cur + delta, std::memory_order_relaxed));
  reserved_ = bytes;
  return absl::OkStatus();
}

void MemoryBudget::Account::SetHeld(uint64_t bytes) {
  if (bytes == held_) return;
  if (bytes > held_) {
    budget_->held_.fetch_add(bytes - held_, std::memory_order_relaxed);
  } else {
    budget_->held_.fetch_sub(held_ - bytes, std::memory_order_relaxed);
  }
  if (budget_->metrics_) budget_->metrics_->BufferedDelta(static_cast<int64_t>(bytes) - static_cast<int64_t>(held_));
  held_ = bytes;
  peak_ = std::max(peak_, held_);
  // Bytes that exist are counted even past an estimate: the total stays honest.
  if (held_ > reserved_) SetReserved(held_);
}

void MemoryBudget::Account::Settle() { SetReserved(held_); }

void MemoryBudget::Account::SetReserved(uint64_t bytes) {
  if (bytes > reserved_) {
    budget_->reserved_.fetch_add(bytes - reserved_, std::memory_order_relaxed);
  } else {
    budget_->reserved_.fetch_sub(reserved_ - bytes, std::memory_order_relaxed);
  }
  reserved_ = bytes;
}

std::optional<uint64_t> ParseCgroupMemoryLimit(const std::string& text) {
  uint64_t v = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &v) || v >= (uint64_t{1} << 62)) return std::nullopt;
  return v;
}

std::optional<uint64_t> ContainerMemoryLimit() {
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream f(path);
    std::string text;
    if (f && std::getline(f, text)) return ParseCgroupMemoryLimit(text);
  }
  return std::nullopt;
}

uint64_t BufferCacheCeiling(uint64_t container_limit, uint64_t total_budget) {
  constexpr uint64_t kProcess = uint64_t{256} << 20;
  return container_limit > total_budget + kProcess ? container_limit - total_budget - kProcess : 0;
}

}  // namespace server
}  // namespace moe_adapter
