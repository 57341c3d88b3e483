#include "core/buffer_cache.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <list>
#include <mutex>
#include <optional>
#include <vector>

namespace moe_adapter {
namespace buffer_cache {
namespace {

struct Block {
  size_t size;
  void* p;
  std::chrono::steady_clock::time_point given;
};

struct Cache {
  std::mutex mu;
  // Most recently given last: when room is needed, the oldest blocks (likely
  // a previous checkpoint's shapes) go first.
  std::list<Block> blocks;
  size_t bytes = 0;
  // Largest block ever given: the automatic cap keeps two of them.
  size_t largest = 0;
  // Set by MOE_ADAPTER_BUFFER_CACHE or SetCap(); otherwise automatic.
  std::optional<size_t> fixed_cap = []() -> std::optional<size_t> {
    const char* env = std::getenv("MOE_ADAPTER_BUFFER_CACHE");
    if (env == nullptr) return std::nullopt;
    return static_cast<size_t>(std::strtoull(env, nullptr, 10));
  }();

  size_t ceiling = SIZE_MAX;

  size_t cap() const {
    return fixed_cap ? *fixed_cap : std::min(ceiling, std::max(kDefaultCapBytes, 2 * largest));
  }

  // Evict(): frees the oldest blocks (into `out`, freed by the caller outside
  // the lock: munmap is slow) until `bytes + room <= cap()`.
  void Evict(size_t room, std::vector<void*>* out) {
    while (!blocks.empty() && bytes + room > cap()) {
      out->push_back(blocks.front().p);
      bytes -= blocks.front().size;
      blocks.pop_front();
    }
  }
};

// Leaked: blocks may be given back during static destruction.
Cache& Get() {
  static Cache* c = new Cache;
  return *c;
}

void FreeAll(const std::vector<void*>& blocks) {
  for (void* p : blocks) std::free(p);
}

// ChangeLimits(): applies `change` to the cap settings, then evicts what no
// longer fits.
template <class F>
void ChangeLimits(F change) {
  Cache& c = Get();
  std::vector<void*> evicted;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    change(c);
    c.Evict(0, &evicted);
  }
  FreeAll(evicted);
}

}  // namespace

void* Take(size_t size) {
  Cache& c = Get();
  std::vector<void*> evicted;
  void* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = std::find_if(c.blocks.rbegin(), c.blocks.rend(), [size](const Block& b) { return b.size == size; });
    if (it != c.blocks.rend()) {
      p = it->p;
      c.blocks.erase(std::next(it).base());
      c.bytes -= size;
    } else {
      // A size the cache does not hold: the caller allocates it fresh, so
      // cached blocks plus this one stay within the cap.
      c.Evict(size, &evicted);
    }
  }
  FreeAll(evicted);
  return p;
}

void Give(void* p, size_t size) {
  Cache& c = Get();
  std::vector<void*> evicted;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    if (!c.fixed_cap) c.largest = std::max(c.largest, size);
    if (size < kMinBytes || size > c.cap()) {
      evicted.push_back(p);
    } else {
      c.Evict(size, &evicted);
      c.blocks.push_back({size, p, std::chrono::steady_clock::now()});
      c.bytes += size;
    }
  }
  FreeAll(evicted);
}

size_t ReleaseIdle(std::chrono::steady_clock::duration idle) {
  Cache& c = Get();
  std::vector<void*> evicted;
  size_t freed = 0;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    const auto before = std::chrono::steady_clock::now() - idle;
    // Oldest first: stop at the first block given recently enough.
    while (!c.blocks.empty() && c.blocks.front().given <= before) {
      evicted.push_back(c.blocks.front().p);
      freed += c.blocks.front().size;
      c.bytes -= c.blocks.front().size;
      c.blocks.pop_front();
    }
  }
  FreeAll(evicted);
  return freed;
}

void SetCap(size_t bytes) {
  ChangeLimits([bytes](Cache& c) { c.fixed_cap = bytes; });
}

void UseAutomaticCap() {
  ChangeLimits([](Cache& c) { c.fixed_cap.reset(); });
}

void SetCeiling(size_t bytes) {
  ChangeLimits([bytes](Cache& c) { c.ceiling = bytes; });
}

void Clear() {
  Cache& c = Get();
  std::vector<void*> evicted;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    for (const Block& b : c.blocks) evicted.push_back(b.p);
    c.blocks.clear();
    c.bytes = 0;
  }
  FreeAll(evicted);
}

size_t CachedBytes() {
  Cache& c = Get();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.bytes;
}

size_t CapBytes() {
  Cache& c = Get();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.cap();
}

}  // namespace buffer_cache
}  // namespace moe_adapter
