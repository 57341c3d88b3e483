#include "core/buffer_cache.h"

#include <cstdlib>
#include <algorithm>
#include <iterator>
#include <list>
#include <utility>
#include <mutex>
#include <vector>

namespace moe_adapter {
namespace buffer_cache {
namespace {

struct Cache {
  std::mutex mu;
  // Most recently given last: when a new block does not fit, the oldest
  // ones (likely a previous checkpoint's shapes) make room for it.
  std::list<std::pair<size_t, void*>> blocks;
  size_t bytes = 0;
  size_t cap = [] {
    const char* env = std::getenv("MOE_ADAPTER_BUFFER_CACHE");
    return env ? static_cast<size_t>(std::strtoull(env, nullptr, 10)) : size_t{2} << 30;
  }();
};

// Leaked: blocks may be given back during static destruction.
Cache& Get() {
  static Cache* c = new Cache;
  return *c;
}

}  // namespace

void* Take(size_t size) {
  Cache& c = Get();
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = std::find_if(c.blocks.rbegin(), c.blocks.rend(), [size](const auto& b) { return b.first == size; });
  if (it == c.blocks.rend()) return nullptr;
  void* p = it->second;
  c.blocks.erase(std::next(it).base());
  c.bytes -= size;
  return p;
}

void Give(void* p, size_t size) {
  Cache& c = Get();
  std::vector<void*> evicted;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    if (size < kMinBytes || size > c.cap) {
      evicted.push_back(p);
    } else {
      while (c.bytes + size > c.cap) {
        evicted.push_back(c.blocks.front().second);
        c.bytes -= c.blocks.front().first;
        c.blocks.pop_front();
      }
      c.blocks.emplace_back(size, p);
      c.bytes += size;
    }
  }
  for (void* q : evicted) std::free(q);  // outside the lock: munmap is slow
}

void SetCap(size_t bytes) {
  Cache& c = Get();
  std::vector<void*> evicted;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    c.cap = bytes;
    while (c.bytes > c.cap) {
      evicted.push_back(c.blocks.front().second);
      c.bytes -= c.blocks.front().first;
      c.blocks.pop_front();
    }
  }
  for (void* q : evicted) std::free(q);
}

void Clear() {
  Cache& c = Get();
  std::lock_guard<std::mutex> lock(c.mu);
  for (auto& [size, p] : c.blocks) std::free(p);
  c.blocks.clear();
  c.bytes = 0;
}

size_t CachedBytes() {
  Cache& c = Get();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.bytes;
}

}  // namespace buffer_cache
}  // namespace moe_adapter
