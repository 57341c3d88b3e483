// What the parts of a from_hf session share (core/from_hf.cc): the options,
// the family, the expert range, the output registry and the byte counters
// a server holds a stream's memory budget to.
#ifndef MOE_ADAPTER_CORE_FROM_HF_STATE_H_
#define MOE_ADAPTER_CORE_FROM_HF_STATE_H_

#include <optional>
#include <string>
#include <utility>

#include "core/expert_parallel.h"
#include "core/key_mapping.h"
#include "core/model_family.h"
#include "core/session_common.h"
#include "core/tensor_route.h"
#include "moe_adapter/converter.h"

namespace moe_adapter {

using LayerKey = std::pair<std::string, int64_t>;  // (prefix, layer)

struct FromHfState {
  FromHfState(const ConvertOptions& o, const ModelFamily& f, const Device& d)
      : opts(o),
        family(f),
        device(d),
        range(EpRange(o.geometry.num_experts, o.ep_size, o.ep_rank)),
        target(o.dtype ? o.dtype : o.geometry.config_dtype) {}

  ConvertOptions opts;
  const ModelFamily& family;
  Device device;
  ExpertRange range;
  std::optional<DType> target;  // the base experts' dtype; unset: keep the input's
  OutputRegistry registry;
  size_t held = 0;  // tensor data held now (HeldBytes())
  // Bookkeeping beyond the registries: completed and touched groups, groups'
  // and LoRA groups' keys and flags, deferred names (KeptBytes()).
  size_t kept = 0;
};

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_FROM_HF_STATE_H_
