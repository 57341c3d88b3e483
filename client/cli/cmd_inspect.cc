// moe-adapter inspect PATH: what a checkpoint or adapter holds, from its
// headers (moe_adapter/inspect.h) and, for adapters, adapter_config.json.
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cli/commands.h"
#include "client/cli/flags.h"
#include "client/cli/progress.h"
#include "client/cli/report.h"
#include "core/regular_file.h"
#include "moe_adapter/checkpoint_convert.h"
#include "moe_adapter/inspect.h"
#include "nlohmann/json.hpp"

namespace moe_adapter::cli {
namespace {

using json = nlohmann::json;

const std::vector<FlagSpec>& InspectFlags() {
  static const std::vector<FlagSpec> specs = {
      {"config", "PATH", "config.json (default: PATH/config.json): geometry, and ParamWrapper layouts by shape"},
      {"adapter-config", "PATH", "adapter_config.json (default: PATH/adapter_config.json)"},
      {"json", nullptr, "print JSON on stdout (errors too)"},
      {"help", nullptr, "show this help"},
  };
  return specs;
}

std::string InspectHelp() {
  return absl::StrCat(
      "usage: moe-adapter inspect PATH [--config config.json] [--adapter-config adapter_config.json] [--json]\n"
      "PATH: a .safetensors file, a checkpoint directory or a PEFT adapter directory.\n"
      "Prints the format, LoRA layout, rank, alpha and targets of an adapter, the geometry, layers,\n"
      "tensor counts by dtype and size. Reads headers only.\n"
      "options:\n",
      FlagsHelp(InspectFlags()));
}

// Why `path` is not a safetensors file, when its first bytes say so
// (8-byte little-endian header length, then a JSON object); "" otherwise.
std::string NotSafetensorsReason(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return "";
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  std::ifstream f(path, std::ios::binary);
  unsigned char head[9] = {0};
  f.read(reinterpret_cast<char*>(head), sizeof(head));
  if (size < 10) {
    return absl::StrCat("it is ", size, " bytes long; a safetensors file starts with an 8-byte header length and a "
                        "JSON header");
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | head[i];
  if (n > size - 8) {
    return absl::StrCat("its first 8 bytes give a header length of ", n, " bytes, but only ", size - 8,
                        " bytes follow");
  }
  if (head[8] != '{') return "its header does not start with a JSON object";
  return "";
}

// The deepest nesting of `text` as JSON (brackets outside strings): refused
// beyond a small bound before any parser recurses on it.
int JsonDepth(const std::string& text) {
  int depth = 0, max_depth = 0;
  bool in_string = false, escape = false;
  for (char c : text) {
    if (in_string) {
      if (escape) escape = false;
      else if (c == '\\') escape = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      max_depth = std::max(max_depth, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return max_depth;
}

// What adapter_config.json says about the adapter (the fields users check).
struct AdapterConfigView {
  std::optional<double> r, lora_alpha;
  std::vector<std::string> target_parameters, target_modules;
  std::string peft_version;
  bool use_rslora = false;
};

absl::StatusOr<AdapterConfigView> ReadAdapterConfig(const std::string& path, const std::string& text) {
  if (JsonDepth(text) > 32) return absl::InvalidArgumentError(absl::StrCat(path, ": JSON nested deeper than 32"));
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  AdapterConfigView v;
  auto number = [&](const char* key) -> std::optional<double> {
    auto it = j.find(key);
    return it != j.end() && it->is_number() ? std::optional<double>(it->get<double>()) : std::nullopt;
  };
  auto strings = [&](const char* key) {
    std::vector<std::string> out;
    auto it = j.find(key);
    if (it == j.end()) return out;
    if (it->is_string()) out.push_back(Bounded(it->get<std::string>()));
    if (it->is_array()) {
      for (const json& e : *it) {
        if (e.is_string() && out.size() < 64) out.push_back(Bounded(e.get<std::string>()));
      }
    }
    return out;
  };
  v.r = number("r");
  v.lora_alpha = number("lora_alpha");
  v.target_parameters = strings("target_parameters");
  v.target_modules = strings("target_modules");
  if (j.contains("peft_version") && j["peft_version"].is_string()) v.peft_version = Bounded(j["peft_version"].get<std::string>());
  v.use_rslora = j.value("use_rslora", false) == true;
  return v;
}

std::string Num(double v) {
  return v == static_cast<int64_t>(v) ? std::to_string(static_cast<int64_t>(v)) : absl::StrCat(v);
}

// "0-23, 30" from sorted layer numbers.
std::string Ranges(const std::vector<int64_t>& v) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    parts.push_back(j == i ? absl::StrCat(v[i]) : absl::StrCat(v[i], "-", v[j]));
    i = j + 1;
  }
  return absl::StrJoin(parts, ", ");
}

// "24 float32, 2 bfloat16": most common first.
std::string DtypeCounts(const std::map<std::string, int64_t>& dtypes) {
  std::vector<std::pair<std::string, int64_t>> v(dtypes.begin(), dtypes.end());
  std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::vector<std::string> parts;
  for (const auto& [name, n] : v) parts.push_back(absl::StrCat(n, " ", name));
  return absl::StrJoin(parts, ", ");
}

}  // namespace

int RunInspect(const std::vector<std::string>& args) {
  const Reporter report("inspect", WantsJson(args));
  absl::StatusOr<ParsedFlags> f = ParseFlags(InspectFlags(), args);
  if (!f.ok()) return report.Usage(f.status().message());
  if (f->Has("help")) {
    std::cout << InspectHelp();
    return kExitOk;
  }
  if (f->positional.size() != 1) {
    return report.Usage(f->positional.empty() ? "inspect needs a PATH" : "inspect takes one PATH");
  }
  const std::string path = f->positional[0];
  absl::StatusOr<InputFiles> in = DescribeInput(path);
  if (!in.ok()) return report.Error(in.status());
  std::optional<Geometry> geometry;
  const std::string config = f->Has("config") ? f->Get("config") : in->config_json;
  if (!config.empty()) {
    absl::StatusOr<std::string> text = ReadRegularFile(config, 16 << 20);
    absl::StatusOr<Geometry> g = text.ok() ? ParseHfConfig(*text) : absl::StatusOr<Geometry>(text.status());
    if (!g.ok()) return report.Error(absl::Status(g.status().code(), absl::StrCat(config, ": ", g.status().message())));
    geometry = *g;
  }
  std::string adapter_config_text;
  std::optional<AdapterConfigView> adapter;
  const std::string ac = f->Has("adapter-config") ? f->Get("adapter-config") : in->adapter_config_json;
  if (!ac.empty()) {
    absl::StatusOr<std::string> text = ReadRegularFile(ac, 16 << 20);
    if (!text.ok()) return report.Error(text.status());
    absl::StatusOr<AdapterConfigView> v = ReadAdapterConfig(ac, *text);
    if (!v.ok()) return report.Error(v.status());
    adapter_config_text = *text;
    adapter = *v;
  }
  absl::StatusOr<CheckpointInfo> info = InspectCheckpoint(path, geometry, adapter_config_text);
  if (!info.ok()) {
    const std::string why = NotSafetensorsReason(path);
    if (!why.empty()) {
      return report.Error(absl::InvalidArgumentError(absl::StrCat(path, " is not a safetensors file: ", why)));
    }
    return report.Error(info.status());
  }
  const bool is_adapter = adapter.has_value() || in->is_adapter ||
                          std::any_of(info->formats.begin(), info->formats.end(),
                                      [](const std::string& s) { return s.find("lora") != std::string::npos; });
  // Geometry: the config's when given (the shapes cannot tell E of an
  // adapter), else what the shapes imply.
  auto pick = [&](const std::optional<int64_t>& from_shapes, int64_t Geometry::*field) -> std::optional<int64_t> {
    if (geometry) return (*geometry).*field;
    return from_shapes;
  };
  const std::optional<int64_t> e = pick(info->num_experts, &Geometry::num_experts);
  const std::optional<int64_t> h = pick(info->hidden_size, &Geometry::hidden_size);
  const std::optional<int64_t> i = pick(info->moe_intermediate_size, &Geometry::moe_intermediate_size);
  const std::string geometry_source = geometry ? config : "tensor shapes";
  auto opt = [](const std::optional<int64_t>& v) { return v ? json(*v) : json(nullptr); };
  auto optd = [](const std::optional<double>& v) { return v ? json(*v) : json(nullptr); };
  if (report.json()) {
    json j = {{"path", path},
              {"family", info->family},
              {"formats", info->formats},
              {"lora_layout", info->lora_layout ? json(*info->lora_layout) : json(nullptr)},
              {"lora_layout_source", info->lora_layout_source},
              {"num_experts", opt(e)},
              {"hidden_size", opt(h)},
              {"moe_intermediate_size", opt(i)},
              {"geometry_source", geometry_source},
              {"lora_rank", opt(info->lora_rank)},
              {"expert_layers", info->expert_layers},
              {"tensors", info->tensors},
              {"shards", info->shards},
              {"bytes", info->bytes},
              {"dtypes", info->dtypes},
              {"roles", info->roles}};
    if (is_adapter) {
      j["adapter"] = {{"config", ac.empty() ? json(nullptr) : json(ac)},
                      {"r", adapter ? optd(adapter->r) : json(nullptr)},
                      {"lora_alpha", adapter ? optd(adapter->lora_alpha) : json(nullptr)},
                      {"target_parameters", adapter ? adapter->target_parameters : std::vector<std::string>{}},
                      {"target_modules", adapter ? adapter->target_modules : std::vector<std::string>{}},
                      {"peft_version", adapter && !adapter->peft_version.empty() ? json(adapter->peft_version)
                                                                                  : json(nullptr)}};
    }
    std::cout << DumpJson(j) << "\n";
    return kExitOk;
  }
  auto show = [](const std::optional<int64_t>& v) { return v ? std::to_string(*v) : std::string("?"); };
  std::cout << "path:         " << path << "\n";
  std::cout << "family:       " << info->family << (geometry ? "" : " (the default: no config.json)") << "\n";
  std::cout << "format:       "
            << (info->formats.empty() ? "no expert tensors" : absl::StrJoin(info->formats, ", "))
            << (is_adapter ? " (LoRA adapter)" : "") << "\n";
  if (is_adapter) {
    if (info->lora_layout) {
      std::cout << "lora layout:  " << *info->lora_layout
                << (info->lora_layout_source.empty() ? "" : " (from " + info->lora_layout_source + ")") << "\n";
    }
    std::string rank = info->lora_rank ? absl::StrCat(*info->lora_rank, " (expert tensors)") : "";
    if (adapter && adapter->r) {
      const bool differs = info->lora_rank && *info->lora_rank != static_cast<int64_t>(*adapter->r);
      if (!info->lora_rank) rank = absl::StrCat(Num(*adapter->r), " (adapter_config.json)");
      else if (differs) absl::StrAppend(&rank, "; adapter_config.json says r=", Num(*adapter->r));
    }
    std::cout << "lora rank:    " << (rank.empty() ? "unknown" : rank) << "\n";
    std::string alpha = "unknown (no adapter_config.json)";
    if (adapter) {
      alpha = adapter->lora_alpha ? Num(*adapter->lora_alpha) : "not in adapter_config.json";
      if (adapter->lora_alpha && (adapter->r || info->lora_rank)) {
        const double r = adapter->r ? *adapter->r : static_cast<double>(*info->lora_rank);
        if (r > 0) {
          absl::StrAppend(&alpha, " (scale alpha/", adapter->use_rslora ? "sqrt(r)" : "r", " = ",
                          Num(adapter->use_rslora ? *adapter->lora_alpha / std::sqrt(r) : *adapter->lora_alpha / r),
                          ")");
        }
      }
    }
    std::cout << "lora alpha:   " << alpha << "\n";
    if (adapter) {
      std::cout << "targets:      parameters: "
                << (adapter->target_parameters.empty() ? "none" : absl::StrJoin(adapter->target_parameters, ", "))
                << "; modules: "
                << (adapter->target_modules.empty() ? "none" : absl::StrJoin(adapter->target_modules, ", ")) << "\n";
      if (!adapter->peft_version.empty()) std::cout << "peft version: " << adapter->peft_version << "\n";
    }
  }
  if (!e && !h && !i) {
    std::cout << "geometry:     unknown (give --config config.json)\n";
  } else {
    std::cout << "geometry:     E=" << show(e) << " H=" << show(h) << " I=" << show(i) << " (from " << geometry_source
              << ")\n";
  }
  if (geometry && ((info->hidden_size && *info->hidden_size != geometry->hidden_size) ||
                   (info->moe_intermediate_size && *info->moe_intermediate_size != geometry->moe_intermediate_size))) {
    std::cout << "              note: the tensor shapes imply H=" << show(info->hidden_size)
              << " I=" << show(info->moe_intermediate_size) << "\n";
  }
  std::cout << "layers:       "
            << (info->expert_layers.empty() ? "none hold experts"
                                            : absl::StrCat(Ranges(info->expert_layers), " (",
                                                           info->expert_layers.size(), " with experts)"))
            << "\n";
  std::cout << "tensors:      " << info->tensors << " in " << info->shards << " file(s), " << HumanBytes(info->bytes)
            << "\n";
  std::cout << "dtypes:       " << (info->dtypes.empty() ? "none" : DtypeCounts(info->dtypes)) << "\n";
  return kExitOk;
}

}  // namespace moe_adapter::cli
