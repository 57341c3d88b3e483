// TransposeCast(): the fast path, or an installed override (tests select the
// ATen reference this way without the core depending on libtorch).
#include <atomic>

#include "core/transpose.h"

namespace moe_adapter {
namespace {
std::atomic<TransposeFn> g_override{nullptr};
}  // namespace

void SetTransposeOverride(TransposeFn fn) { g_override.store(fn); }

void TransposeCast(const TransposeArgs& args) {
  if (TransposeFn fn = g_override.load(std::memory_order_relaxed)) {
    fn(args);
  } else {
    TransposeCastBlocked(args);
  }
}

}  // namespace moe_adapter
