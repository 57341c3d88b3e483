// File: core/model_family.h
//
// A model family as data. Everything that differs between MoE families (key
// patterns, which HF tensor feeds which grouped tensor at which columns,
// config.json field names, PEFT target names, the LoRA tables) is a field of
// ModelFamilySpec; the converters only ask it. A family is one file under
// core/families/ holding one ModelFamilySpec (docs/architecture.md, "How to
// add a model family"), plus its line in core/families/builtin.cc.
//
// The grouped (native) side is the same for every family: base experts are
// gate_and_up_projs [E, H, 2I] and down_projs [E, I, H]; grouped LoRA is
// A_gu [E, H, r], B_gu [E, r, 2I], A_dn [E, I, r], B_dn [E, r, H]. A family
// says how its HF tensors map onto those.
#ifndef MOE_ADAPTER_CORE_MODEL_FAMILY_H_
#define MOE_ADAPTER_CORE_MODEL_FAMILY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "core/key_mapping.h"
#include "core/lora_layouts.h"
#include "moe_adapter/convert_options.h"

namespace moe_adapter {

// GateUpOrder: how the gate and up blocks share the grouped tensor's last dim.
enum class GateUpOrder {
  kConcatenated,  // columns [0, I) gate, [I, 2I) up (Qwen3, DeepSeek, GLM)
  kInterleaved,   // column 2j gate j, 2j+1 up j (GPT-OSS)
};

// RolePair: one HF tensor role and where, per expert, it sits in a grouped
// tensor. The grouped per-expert slot is 2-D; its last dim holds `blocks`
// blocks of equal width and this role fills block `block`. block == kShared:
// the role fills the whole slot, together with every other kShared role of
// the same grouped tensor, which must then be equal bit for bit (the gate and
// up lora_A share one grouped A_gu).
struct RolePair {
  static constexpr int kShared = -1;
  KeyRole hf;
  KeyRole grouped;
  int block;
  int blocks;
  bool transpose;     // HF per expert is [out, in] (nn.Linear), the slot [in, out]
  GateUpOrder order;  // placement of the blocks (meaningful when blocks > 1)
};

// DenseLayerRule: which layers of a full config.json have no routed experts.
enum class DenseLayerRule {
  kNone,         // every layer is an MoE layer
  kSparseStep,   // L is MoE iff L not in mlp_only_layers and (L+1) % decoder_sparse_step == 0 (Qwen3)
  kFirstKDense,  // L < first_k_dense_replace is dense (DeepSeek-V3, GLM-4.5)
};

// ConfigFields: where config.json keeps the geometry. Each list is tried in
// order, the first present field wins; the first name is the one errors cite.
struct ConfigFields {
  std::vector<const char*> num_experts;        // E
  std::vector<const char*> hidden_size;        // H
  std::vector<const char*> intermediate_size;  // I (the expert width)
  // A sub-object holding the text model's fields (multimodal wrappers), read
  // when the top level has none of the hidden_size fields; nullptr: none.
  const char* nested = nullptr;
  DenseLayerRule dense_layers = DenseLayerRule::kNone;
  // The dtype comes from the top level even when the other fields are
  // nested (Qwen3-VL-MoE: the model copies its top-level torch_dtype into
  // text_config).
  bool dtype_at_top = false;
};

// KeyRename: a substring of pass-through keys renamed between the sides
// (Qwen3-Next's HF ".mlp.shared_expert." is native ".mlp.shared_experts.").
struct KeyRename {
  const char* hf;
  const char* native;
};

// GroupedShape: what one tensor of an already-grouped HF layout holds.
enum class GroupedShape {
  kRenameOnly,  // not an expert stack (a router): renamed, never sliced or cast
  kGateUp,      // [E, H, 2I]
  kDown,        // [E, I, H]
  kGateUpBias,  // [E, 2I]
  kDownBias,    // [E, H]
};

// GroupedTensor: one tensor of a family whose HF checkpoint is already
// grouped (hf_grouped): its key on each side (core/key_mapping.h templates;
// the converters rename one into the other, nothing else moves). Expert
// stacks (every shape but kRenameOnly) are validated against the geometry,
// EP-sliced on dim 0 and cast by from_hf like the other families' grouped
// tensors. hf_role/native_role, when not kOther, also enter the family's key
// tables, so that layer coverage and inspect see these keys.
struct GroupedTensor {
  const char* hf;
  const char* native;
  GroupedShape shape;
  KeyRole hf_role = KeyRole::kOther;
  KeyRole native_role = KeyRole::kOther;
};

// PeftTargets: the names adapter_config.json lists for the expert LoRA.
struct PeftTargets {
  std::vector<const char*> param_wrapper;  // target_parameters (ParamWrapper layouts)
  std::vector<const char*> per_expert;     // target_modules (the per-expert split)
};

// ModelFamilySpec: one family, plain data.
struct ModelFamilySpec {
  const char* name;                         // as ConvertOptions::family names it
  std::vector<const char*> model_types;     // config.json model_type values that select it
  std::vector<const char*> architectures;   // config.json architectures entries that select it
  std::vector<KeyRow> keys;                 // every key pattern, both sides (core/key_mapping.h)
  std::vector<RolePair> pairs;              // base expert pairs, then per-expert LoRA pairs
  ConfigFields config;
  PeftTargets peft;
  // The PEFT ParamWrapper LoRA tables (core/lora_layouts.h); empty: the
  // family offers no ParamWrapper LoRA.
  absl::Span<const PwRow> param_wrapper_rows;
  LoraLayout default_lora_layout = LoraLayout::kPeftV019;  // what to_hf writes unless told
  // The HF checkpoint is already grouped (GPT-OSS, Qwen3-VL-MoE): converting
  // renames the `grouped` tensors (core/grouped_rename.h); `pairs` is empty.
  bool hf_grouped = false;
  std::vector<GroupedTensor> grouped;
  // hf_grouped: `X_blocks`/`X_scales` MXFP4 pairs of an expert stack X are
  // decoded by from_hf (core/quant/mxfp4.h).
  bool mxfp4 = false;
  // Not implemented by the converters yet; the registry refuses a family
  // that uses them rather than ignoring them (issue 13 adds them):
  std::vector<KeyRename> renames;        // pass-through key renames
  std::vector<const char*> fp32_params;  // key suffixes both directions upcast to F32
};

// ModelFamily: a spec with its key tables compiled, as the registry holds it.
class ModelFamily {
 public:
  explicit ModelFamily(ModelFamilySpec spec);
  ModelFamily(const ModelFamily&) = delete;  // the lookups point into spec_
  ModelFamily& operator=(const ModelFamily&) = delete;

  const ModelFamilySpec& spec() const { return spec_; }
  const std::string& name() const { return name_; }
  const KeyTable& native() const { return *native_; }  // keys to_hf converts
  const KeyTable& hf() const { return *hf_; }          // keys from_hf converts
  const KeyTable& all() const { return *all_; }        // every row, to name outputs

  // PairFor(): the pair of HF role `hf`, or nullptr.
  const RolePair* PairFor(KeyRole hf) const;
  // PairsInto(): the pairs feeding grouped role `grouped`, in table order.
  const std::vector<const RolePair*>& PairsInto(KeyRole grouped) const;
  // IsBaseRole(): a base expert weight, grouped or per-expert (not LoRA).
  bool IsBaseRole(KeyRole role) const;

 private:
  ModelFamilySpec spec_;
  std::string name_;
  std::unique_ptr<KeyTable> native_, hf_, all_;
  // Per KeyRole, computed once: sessions ask per tensor and per slab.
  std::vector<const RolePair*> pair_for_;
  std::vector<std::vector<const RolePair*>> pairs_into_;
};

// GroupedSlot: one expert's 2-D slot of a grouped tensor, for geometry `g`
// (LoRA slots with rank r). Names are for messages ("H", "2I").
struct GroupedSlot {
  int64_t rows, cols;
  const char* rows_name;
  const char* cols_name;
  const char* block_name;  // one part's columns: "I" of gate_up's "2I"
};
GroupedSlot BaseSlot(KeyRole grouped, const Geometry& g);

// BlockWidth(): the columns a pair fills in a slot `cols` wide.
inline int64_t BlockWidth(const RolePair& p, int64_t cols) {
  return p.block == RolePair::kShared ? cols : cols / p.blocks;
}
// BlockOffset(): the first column a pair fills (concatenated blocks).
inline int64_t BlockOffset(const RolePair& p, int64_t cols) {
  return p.block == RolePair::kShared ? 0 : p.block * (cols / p.blocks);
}

// LoraLayoutToWrite(): the layout to_hf writes: the option, else the family's default.
LoraLayout LoraLayoutToWrite(const ConvertOptions& options, const ModelFamily& family);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_MODEL_FAMILY_H_
