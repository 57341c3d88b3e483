// Placeholder until the blocked kernel lands: routes to the reference.
#include <thread>
#include <atomic>
#include "core/transpose.h"

namespace moe_adapter {
namespace { std::atomic<int> g_threads{0}; }
void TransposeCastBlocked(const TransposeArgs& args) { TransposeCastAten(args); }
void SetConversionThreads(int n) { g_threads.store(n); }
int ConversionThreads() {
  int n = g_threads.load();
  return n > 0 ? n : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}
}  // namespace moe_adapter
