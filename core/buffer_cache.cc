#include "core/buffer_cache.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

namespace moe_adapter {
namespace buffer_cache {
namespace {

struct Cache {
  std::mutex mu;
  std::multimap<size_t, void*> blocks;
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
  auto it = c.blocks.find(size);
  if (it == c.blocks.end()) return nullptr;
  void* p = it->second;
  c.blocks.erase(it);
  c.bytes -= size;
  return p;
}

void Give(void* p, size_t size) {
  Cache& c = Get();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    if (size >= kMinBytes && c.bytes + size <= c.cap) {
      c.blocks.emplace(size, p);
      c.bytes += size;
      return;
    }
  }
  std::free(p);
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
