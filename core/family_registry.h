// File: core/family_registry.h
//
// The registry of model families (core/model_family.h): the built-in ones
// (core/families/builtin.cc, the first is the default) and any registered at
// run time. Families are found by name (ConvertOptions::family) or by a
// config.json (model_type, then architectures; a nested text_config too).
// Families are never removed, so the pointers handed out live for the process.
// Thread-safe.
#ifndef MOE_ADAPTER_CORE_FAMILY_REGISTRY_H_
#define MOE_ADAPTER_CORE_FAMILY_REGISTRY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/model_family.h"
#include "moe_adapter/convert_options.h"
#include "nlohmann/json_fwd.hpp"

namespace moe_adapter {

// BuiltinFamilySpecs(): core/families/builtin.cc.
std::vector<ModelFamilySpec> BuiltinFamilySpecs();

// DefaultFamily(): the family of a conversion that names none and whose
// config.json (if any) names no known family.
const ModelFamily& DefaultFamily();

// FindFamily(): the family called `name`; kInvalidArgument naming the known
// families otherwise.
absl::StatusOr<const ModelFamily*> FindFamily(absl::string_view name);

// FamilyForConfig(): the family a parsed config.json names by model_type,
// else by an architectures entry (top level first, then the sub-objects
// families nest their fields in, e.g. text_config);
// nullptr when it names none the registry knows.
const ModelFamily* FamilyForConfig(const nlohmann::json& config);

// ResolveFamily(): options.family, else the family config.json named
// (geometry.config_family), else the default.
absl::StatusOr<const ModelFamily*> ResolveFamily(const ConvertOptions& options);

// RegisterModelFamily(): adds a family. kAlreadyExists for a taken name;
// kInvalidArgument for an inconsistent spec (a pair whose role has no key
// pattern, a block outside its blocks); kUnimplemented for what the
// converters cannot do yet (interleaved or untransposed per-expert blocks,
// key renames, fp32-forced tensors), so a spec is never half applied. An
// already-grouped HF layout (hf_grouped) needs one gate/up and one down stack.
absl::Status RegisterModelFamily(ModelFamilySpec spec);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_FAMILY_REGISTRY_H_
