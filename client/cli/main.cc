// moe-adapter: the command-line shell over the conversion library.
// Exit status (spec §15.7): 0 success, 1 conversion or input error, 2 usage error.
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/cli/flags.h"
#include "moe_adapter/convert_options.h"
#include "moe_adapter/file_convert.h"

namespace moe_adapter::cli {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;

const std::vector<FlagSpec>& ConvertFlags() {
  static const std::vector<FlagSpec> specs = {
      {"input", "PATH", "input .safetensors file"},
      {"output", "PATH", "output .safetensors file (written atomically)"},
      {"config", "PATH", "HF config.json giving the geometry (and MoE layers, dtype)"},
      {"num-experts", "E", "number of routed experts (without --config)"},
      {"hidden-size", "H", "hidden size (without --config)"},
      {"moe-intermediate-size", "I", "expert intermediate size (without --config)"},
      {"lora-layout", "LAYOUT", "peft-v0.19 (default for to-hf) | peft-v0.18 | per-expert"},
      {"adapter-config", "PATH", "adapter_config.json of a PEFT adapter (from-hf: decides the layout)"},
      {"dtype", "DTYPE", "bfloat16 | float16 | float32: cast expert weights (from-hf default: config dtype)"},
      {"exclude-key-regex", "RE", "to-hf: drop output keys this RE2 regex matches at their start"},
      {"ep-rank", "K", "expert-parallel rank (with --ep-size)"},
      {"ep-size", "N", "expert-parallel world size"},
      {"overwrite", nullptr, "replace an existing output"},
      {"quiet", nullptr, "print nothing on success"},
      {"help", nullptr, "show this help"},
  };
  return specs;
}

std::string Usage() {
  return absl::StrCat(
      "usage:\n"
      "  moe-adapter to-hf   --input IN --output OUT GEOMETRY [options]\n"
      "  moe-adapter from-hf --input IN --output OUT GEOMETRY [options]\n"
      "GEOMETRY: --config config.json | --num-experts E --hidden-size H --moe-intermediate-size I\n"
      "options:\n",
      FlagsHelp(ConvertFlags()));
}

// A usage error: wrong flags or values; exit 2.
struct UsageError {
  std::string message;
};

absl::StatusOr<std::string> ReadFile(const std::string& path, size_t limit) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat("cannot read \"", path, "\""));
  std::ostringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  if (s.size() > limit) {
    return absl::InvalidArgumentError(absl::StrCat("\"", path, "\" is larger than ", limit, " bytes"));
  }
  return s;
}

absl::StatusOr<int64_t> IntFlag(const ParsedFlags& f, const std::string& name) {
  int64_t v;
  if (!absl::SimpleAtoi(f.Get(name), &v)) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, " must be an integer, got \"", f.Get(name), "\""));
  }
  return v;
}

// Builds ConvertOptions from flags. Usage problems come back as
// kInvalidArgument with `usage` set; unreadable files as other errors.
absl::StatusOr<ConvertOptions> OptionsFromFlags(const ParsedFlags& f, bool* usage) {
  ConvertOptions o;
  *usage = true;
  const bool trio = f.Has("num-experts") || f.Has("hidden-size") || f.Has("moe-intermediate-size");
  if (f.Has("config")) {
    *usage = false;
    absl::StatusOr<std::string> text = ReadFile(f.Get("config"), 16 << 20);
    if (!text.ok()) return text.status();
    absl::StatusOr<Geometry> g = ParseHfConfig(*text);
    if (!g.ok()) return absl::Status(g.status().code(), absl::StrCat(f.Get("config"), ": ", g.status().message()));
    o.geometry = *g;
    *usage = true;
    if (f.Has("num-experts")) { auto v = IntFlag(f, "num-experts"); if (!v.ok()) return v.status(); o.geometry.num_experts = *v; }
    if (f.Has("hidden-size")) { auto v = IntFlag(f, "hidden-size"); if (!v.ok()) return v.status(); o.geometry.hidden_size = *v; }
    if (f.Has("moe-intermediate-size")) { auto v = IntFlag(f, "moe-intermediate-size"); if (!v.ok()) return v.status(); o.geometry.moe_intermediate_size = *v; }
  } else if (trio) {
    for (const char* name : {"num-experts", "hidden-size", "moe-intermediate-size"}) {
      if (!f.Has(name)) {
        return absl::InvalidArgumentError(absl::StrCat("geometry needs --num-experts, --hidden-size and "
                                                       "--moe-intermediate-size together (missing --", name, ")"));
      }
    }
    auto e = IntFlag(f, "num-experts"); if (!e.ok()) return e.status();
    auto h = IntFlag(f, "hidden-size"); if (!h.ok()) return h.status();
    auto i = IntFlag(f, "moe-intermediate-size"); if (!i.ok()) return i.status();
    o.geometry.num_experts = *e;
    o.geometry.hidden_size = *h;
    o.geometry.moe_intermediate_size = *i;
  } else {
    return absl::InvalidArgumentError("no geometry: pass --config config.json, or --num-experts, --hidden-size "
                                      "and --moe-intermediate-size");
  }
  if (f.Has("lora-layout")) {
    auto l = ParseLoraLayout(f.Get("lora-layout"));
    if (!l.ok()) return l.status();
    o.lora_layout = *l;
  }
  if (f.Has("dtype")) {
    auto d = ParseTorchDType(f.Get("dtype"));
    if (!d.ok()) return d.status();
    o.dtype = *d;
  }
  o.exclude_key_regex = f.Get("exclude-key-regex");
  if (f.Has("ep-rank") != f.Has("ep-size")) {
    return absl::InvalidArgumentError("--ep-rank and --ep-size go together");
  }
  if (f.Has("ep-size")) {
    auto k = IntFlag(f, "ep-rank"); if (!k.ok()) return k.status();
    auto n = IntFlag(f, "ep-size"); if (!n.ok()) return n.status();
    o.ep_rank = *k;
    o.ep_size = *n;
  }
  if (f.Has("adapter-config")) {
    *usage = false;
    auto text = ReadFile(f.Get("adapter-config"), 16 << 20);
    if (!text.ok()) return text.status();
    o.adapter_config_json = *text;
    *usage = true;
  }
  absl::Status v = ValidateOptions(o);
  if (!v.ok()) return v;
  *usage = false;
  return o;
}

int RunConvert(Direction dir, const std::vector<std::string>& args) {
  absl::StatusOr<ParsedFlags> f = ParseFlags(ConvertFlags(), args);
  if (!f.ok()) {
    std::cerr << "moe-adapter: " << f.status().message() << "\n" << Usage();
    return kExitUsage;
  }
  if (f->Has("help")) {
    std::cout << Usage();
    return kExitOk;
  }
  if (!f->positional.empty()) {
    std::cerr << "moe-adapter: unexpected argument \"" << f->positional[0] << "\"\n";
    return kExitUsage;
  }
  if (!f->Has("input") || !f->Has("output")) {
    std::cerr << "moe-adapter: --input and --output are required\n" << Usage();
    return kExitUsage;
  }
  bool usage = false;
  absl::StatusOr<ConvertOptions> opts = OptionsFromFlags(*f, &usage);
  if (!opts.ok()) {
    std::cerr << "moe-adapter: " << (usage ? "usage: " : "error: ") << opts.status().message() << "\n";
    return usage ? kExitUsage : kExitError;
  }
  FileConvertOptions fo;
  fo.overwrite = f->Has("overwrite");
  FileConvertStats stats;
  absl::Status s = ConvertFile(dir, f->Get("input"), f->Get("output"), *opts, fo, &stats);
  for (const std::string& w : stats.warnings) std::cerr << "moe-adapter: warning: " << w << "\n";
  if (!s.ok()) {
    std::cerr << "moe-adapter: error: " << s.message() << "\n";
    return kExitError;
  }
  if (!f->Has("quiet")) {
    std::cerr << "moe-adapter: " << (dir == Direction::kToHf ? "to-hf" : "from-hf") << ": " << stats.tensors_in
              << " tensors in, " << stats.tensors_out << " out, " << stats.bytes_out << " bytes -> "
              << f->Get("output") << "\n";
  }
  return kExitOk;
}

}  // namespace

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    (args.empty() ? std::cerr : std::cout) << Usage();
    return args.empty() ? kExitUsage : kExitOk;
  }
  const std::string cmd = args[0];
  args.erase(args.begin());
  if (cmd == "to-hf") return RunConvert(Direction::kToHf, args);
  if (cmd == "from-hf") return RunConvert(Direction::kFromHf, args);
  std::cerr << "moe-adapter: unknown command \"" << cmd << "\"\n" << Usage();
  return kExitUsage;
}

}  // namespace moe_adapter::cli

int main(int argc, char** argv) { return moe_adapter::cli::Main(argc, argv); }
