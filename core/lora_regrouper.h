// from_hf's per-expert LoRA (spec §6.2 reverse, §15.3): each layer's
// per-expert lora_A / lora_B are regrouped into A_gu, B_gu, A_dn, B_dn, each
// emitted once all E experts of every part feeding it arrived. The gate and
// up lora_A share one grouped A and must be equal bit for bit.
#ifndef MOE_ADAPTER_CORE_LORA_REGROUPER_H_
#define MOE_ADAPTER_CORE_LORA_REGROUPER_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/from_hf_state.h"

namespace moe_adapter {

class LoraRegrouper {
 public:
  explicit LoraRegrouper(FromHfState& state);

  absl::StatusOr<TensorPlan> Plan(TensorPlan& plan, const KeyParts& at, KeyRole role);
  absl::Status Add(const TensorPlan& plan, const KeyParts& at, KeyRole role, const Tensor& in, const TensorSink& sink);
  // CheckComplete(): names the first part of a layer that lacks experts.
  absl::Status CheckComplete();

 private:
  static constexpr int kMaxSubs = 8;
  // One layer's LoRA being regrouped; a "sub" is one of the family's
  // per-expert LoRA pairs (subs_).
  struct Group {
    Tensor out[4];               // A_gu [E,H,r], B_gu [E,r,2I], A_dn [E,I,r], B_dn [E,r,H]
    int64_t rank[2] = {-1, -1};  // gate/up projection, down projection
    std::vector<uint8_t> have[kMaxSubs];
    int64_t count[kMaxSubs] = {};
    bool emitted[4] = {false, false, false, false};
    DType dtype = DType::kF32;
    bool dtype_set = false;
  };

  absl::StatusOr<size_t> OutBytes(const std::string& key, int out, int64_t r, DType dt) const;
  size_t FlagBytes() const;
  int SubOf(KeyRole role) const;
  bool SharedSlotFilled(const Group& grp, int sub, int64_t e) const;
  std::string SharedNames(KeyRole grouped) const;

  FromHfState& s_;
  std::vector<const RolePair*> subs_;  // the family's per-expert LoRA pairs, in table order
  std::map<LayerKey, Group> groups_;
};

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_LORA_REGROUPER_H_
