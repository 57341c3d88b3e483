// from_hf's base experts (spec §5, §7.1, §10): per-expert HF weights are
// transposed straight into their group's output buffer (on a device: held
// until the group is complete, then converted in one batched call), so only
// the incomplete groups are held. Which part goes where is the family's
// role-pair table.
#ifndef MOE_ADAPTER_CORE_BASE_GROUPER_H_
#define MOE_ADAPTER_CORE_BASE_GROUPER_H_

#include <array>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/from_hf_state.h"

namespace moe_adapter {

class BaseGrouper {
 public:
  explicit BaseGrouper(FromHfState& state) : s_(state) {}

  // Plan(): checks a per-expert base weight's header; sets kind and hold_bytes.
  absl::StatusOr<TensorPlan> Plan(TensorPlan& plan, const KeyParts& at, KeyRole role);
  // Add(): its data; emits the group once complete.
  absl::Status Add(const KeyParts& at, KeyRole role, const Tensor& in, const TensorSink& sink);
  // CheckComplete(): the reference's missing-weights message (spec §10), and
  // with a full config, every MoE layer present.
  absl::Status CheckComplete();

 private:
  // A grouped base tensor being assembled: [E_local, H, 2I] or [E_local, I, H].
  struct Group {
    Tensor out;
    // On a device, inputs wait here (shared, not copied) until the group is
    // complete: [slot][block] (0 = gate or down, 1 = up).
    std::vector<std::array<Tensor, 2>> pending;
    // Per local expert: bit `block` set once that part arrived.
    std::vector<uint8_t> have;
    std::vector<DType> part_dtype;  // dtype of the first part seen per expert
    int64_t missing_parts = 0;
  };

  size_t GroupFlagBytes() const;
  std::string PartNames(KeyRole native) const;
  absl::Status GroupOnDevice(KeyRole native, Group& grp);
  static std::string LayersText(const std::set<int64_t>& layers);
  static std::string ShortKey(std::string key);

  FromHfState& s_;
  std::map<std::string, Group> groups_;
  std::set<std::string> completed_;
  std::set<LayerKey> touched_;
};

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_BASE_GROUPER_H_
