// The Qwen3-MoE family: its key tables (spec §2, §3, §6). A second MoE family
// is a second file like this one, not a change to the converters.
#ifndef MOE_ADAPTER_CORE_QWEN3_MOE_H_
#define MOE_ADAPTER_CORE_QWEN3_MOE_H_

#include "core/key_mapping.h"

namespace moe_adapter {

struct ModelFamily {
  const char* name;
  const KeyTable* native;  // keys to_hf converts
  const KeyTable* hf;      // keys from_hf converts
  const KeyTable* all;     // every row, to name outputs of either direction
};

// Qwen3MoeFamily(): the tables, compiled once (thread-safe).
const ModelFamily& Qwen3MoeFamily();

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_QWEN3_MOE_H_
