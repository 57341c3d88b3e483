// Fuzzes adapter_config.json handling: the layout it decides
// (core/peft_version.cc), the config written beside a converted adapter
// (checkpoint/adapter_config.cc), ValidateOptions()'s check of it, and the
// peft_version string parser. Invariant: a config written for a ParamWrapper
// layout is read back as that layout.
#include <cstdint>
#include <optional>
#include <string>

#include "checkpoint/adapter_config.h"
#include "core/peft_version.h"
#include "moe_adapter/convert_options.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace moe_adapter;
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)ParsePeftVersion(text);

  std::string source;
  absl::StatusOr<std::optional<LoraLayout>> layout = LayoutFromAdapterConfig(text, &source);
  if (!layout.ok()) FUZZ_CHECK(layout.status().code() == absl::StatusCode::kInvalidArgument);

  ConvertOptions options;
  options.geometry.num_experts = 4;
  options.geometry.hidden_size = 8;
  options.geometry.moe_intermediate_size = 6;
  options.adapter_config_json = text;
  (void)ValidateOptions(options);

  const std::optional<int64_t> rank = size % 2 ? std::optional<int64_t>(5) : std::nullopt;
  const std::optional<double> alpha = size % 3 ? std::optional<double>(16.0) : std::nullopt;
  for (LoraLayout l : {LoraLayout::kPeftV019, LoraLayout::kPeftV018, LoraLayout::kPerExpert}) {
    absl::StatusOr<std::string> written = AdapterConfigForHf(text, l, rank, alpha);
    if (!written.ok()) continue;
    std::string again;
    absl::StatusOr<std::optional<LoraLayout>> read = LayoutFromAdapterConfig(*written, &again);
    FUZZ_CHECK(read.ok());
    if (l != LoraLayout::kPerExpert) FUZZ_CHECK(read->has_value() && **read == l);
  }
  return 0;
}
