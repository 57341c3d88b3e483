// Expert-parallel ranges (spec §7): which experts rank k of W owns.
#ifndef MOE_ADAPTER_CORE_EXPERT_PARALLEL_H_
#define MOE_ADAPTER_CORE_EXPERT_PARALLEL_H_

#include <cstdint>
#include <map>
#include <string>

namespace moe_adapter {

// ExpertRange: global expert ids [begin, end).
struct ExpertRange {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
  bool contains(int64_t e) const { return e >= begin && e < end; }
};

// EpRange(): the reference's rule. With b = E / W and m = E % W, rank k < m
// owns b+1 experts from k(b+1); rank k >= m owns b from kb + m. Ranks beyond E
// get the empty range [E, E). Requires E >= 0, W >= 1, 0 <= k < W.
ExpertRange EpRange(int64_t num_experts, int64_t ep_size, int64_t ep_rank);

// EpMetadata(): what an output reports about its EP slice (spec §15.4), as
// safetensors __metadata__ entries.
std::map<std::string, std::string> EpMetadata(int64_t num_experts, int64_t ep_size,
                                              int64_t ep_rank);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_EXPERT_PARALLEL_H_
