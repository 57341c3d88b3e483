// TensorRoute: where a planned tensor goes, known from its key: its family
// role and the key's slots. Sessions keep it in the plan
// (TensorPlan::route), so callers carry it without seeing it.
#ifndef MOE_ADAPTER_CORE_TENSOR_ROUTE_H_
#define MOE_ADAPTER_CORE_TENSOR_ROUTE_H_

#include "core/key_mapping.h"

namespace moe_adapter {

struct TensorRoute {
  KeyRole role = KeyRole::kOther;
  KeyParts at;
  // A session's own table row, for sessions that route by their own table
  // instead of the family's roles (core/grouped_rename.cc).
  int row = -1;
};

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_TENSOR_ROUTE_H_
