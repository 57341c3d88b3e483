#include "core/expert_parallel.h"

#include "absl/strings/str_cat.h"

namespace moe_adapter {

ExpertRange EpRange(int64_t num_experts, int64_t ep_size, int64_t ep_rank) {
  const int64_t b = num_experts / ep_size;
  const int64_t m = num_experts % ep_size;
  ExpertRange r;
  if (ep_rank < m) {
    r.begin = ep_rank * (b + 1);
    r.end = r.begin + b + 1;
  } else {
    r.begin = ep_rank * b + m;
    r.end = r.begin + b;
  }
  return r;
}

std::map<std::string, std::string> EpMetadata(int64_t num_experts, int64_t ep_size,
                                              int64_t ep_rank) {
  ExpertRange r = EpRange(num_experts, ep_size, ep_rank);
  return {
      {"moe_adapter.ep_rank", absl::StrCat(ep_rank)},
      {"moe_adapter.ep_size", absl::StrCat(ep_size)},
      {"moe_adapter.expert_range", absl::StrCat(r.begin, ":", r.end)},
      {"moe_adapter.num_experts", absl::StrCat(num_experts)},
  };
}

}  // namespace moe_adapter
