#include "client/cli/options_from_flags.h"

#include <optional>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/cli/progress.h"
#include "core/byte_size.h"
#include "core/quote.h"
#include "core/regular_file.h"
#include "core/safetensors_format.h"

namespace moe_adapter::cli {
namespace {

absl::StatusOr<int64_t> IntFlag(const ParsedFlags& f, const std::string& name) {
  int64_t v;
  if (!absl::SimpleAtoi(f.Get(name), &v)) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, " must be an integer, got ", Quote(f.Get(name))));
  }
  return v;
}

// The sizes given as flags, each parsed as an integer, in flag order.
absl::StatusOr<GeometrySizes> SizesFromFlags(const ParsedFlags& f) {
  GeometrySizes sizes;
  for (auto [flag, size] : {std::pair<const char*, std::optional<int64_t>*>{"num-experts", &sizes.num_experts},
                            {"hidden-size", &sizes.hidden_size},
                            {"moe-intermediate-size", &sizes.moe_intermediate_size}}) {
    if (!f.Has(flag)) continue;
    absl::StatusOr<int64_t> v = IntFlag(f, flag);
    if (!v.ok()) return v.status();
    *size = *v;
  }
  return sizes;
}

}  // namespace

absl::StatusOr<ConvertOptions> OptionsFromFlags(const ParsedFlags& f, const InputFiles& input, bool* usage) {
  ConvertOptions o;
  *usage = true;
  const bool trio = f.Has("num-experts") || f.Has("hidden-size") || f.Has("moe-intermediate-size");
  const std::string config = f.Has("config") ? f.Get("config") : trio ? "" : input.config_json;
  if (!config.empty()) {
    *usage = false;
    absl::StatusOr<std::string> text = ReadRegularFile(config, 16 << 20);
    if (!text.ok()) return text.status();
    absl::StatusOr<Geometry> g = ParseHfConfig(*text, f.Get("family"));
    if (!g.ok()) return absl::Status(g.status().code(), absl::StrCat(config, ": ", g.status().message()));
    *usage = true;
    absl::StatusOr<GeometrySizes> sizes = SizesFromFlags(f);
    if (!sizes.ok()) return sizes.status();
    o.geometry = ApplyGeometrySizes(*g, *sizes);
  } else if (trio) {
    for (const char* name : {"num-experts", "hidden-size", "moe-intermediate-size"}) {
      if (!f.Has(name)) {
        return absl::InvalidArgumentError(absl::StrCat("geometry needs --num-experts, --hidden-size and "
                                                       "--moe-intermediate-size together (missing --", name, ")"));
      }
    }
    absl::StatusOr<GeometrySizes> sizes = SizesFromFlags(f);
    if (!sizes.ok()) return sizes.status();
    o.geometry = ApplyGeometrySizes(Geometry{}, *sizes);
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
  o.family = f.Get("family");
  o.quantization = f.Has("quantization");
  if (f.Has("ep-rank") != f.Has("ep-size")) {
    return absl::InvalidArgumentError("--ep-rank and --ep-size go together");
  }
  if (f.Has("ep-size")) {
    auto k = IntFlag(f, "ep-rank"); if (!k.ok()) return k.status();
    auto n = IntFlag(f, "ep-size"); if (!n.ok()) return n.status();
    o.ep_rank = *k;
    o.ep_size = *n;
  }
  const std::string adapter_config = f.Has("adapter-config") ? f.Get("adapter-config") : input.adapter_config_json;
  if (!adapter_config.empty()) {
    *usage = false;
    auto text = ReadRegularFile(adapter_config, 16 << 20);
    if (!text.ok()) return text.status();
    o.adapter_config_json = *text;
    *usage = true;
  }
  absl::Status v = ValidateOptions(o);
  if (!v.ok()) return v;
  *usage = false;
  return o;
}

#ifdef MOE_ADAPTER_HAVE_CLIENT
absl::StatusOr<ClientOptions> ClientFromFlags(const ParsedFlags& f, bool* usage) {
  ClientOptions c;
  *usage = true;
  auto read = [&](const char* flag, std::string* out) -> absl::Status {
    if (!f.Has(flag)) return absl::OkStatus();
    *usage = false;
    absl::StatusOr<std::string> text = ReadRegularFile(f.Get(flag), 1 << 20);
    if (!text.ok()) return text.status();
    *out = *text;
    *usage = true;
    return absl::OkStatus();
  };
  for (auto [flag, out] : {std::pair<const char*, std::string*>{"tls-ca", &c.tls_root_certs_pem},
                           {"tls-cert", &c.tls_client_cert_pem},
                           {"tls-key", &c.tls_client_key_pem},
                           {"token-file", &c.bearer_token}}) {
    absl::Status s = read(flag, out);
    if (!s.ok()) return s;
  }
  while (!c.bearer_token.empty() && (c.bearer_token.back() == '\n' || c.bearer_token.back() == '\r' ||
                                     c.bearer_token.back() == ' ')) {
    c.bearer_token.pop_back();
  }
  if (f.Has("tls-cert") != f.Has("tls-key")) return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  c.use_tls = f.Has("tls-ca") || f.Has("tls-cert");
  c.tls_server_name = f.Get("tls-server-name");
  if (f.Has("chunk-size")) {
    absl::StatusOr<uint64_t> n = ParseByteSize(f.Get("chunk-size"));
    if (!n.ok() || *n == 0 || *n > (64u << 20)) {
      return absl::InvalidArgumentError("--chunk-size must be between 1 byte and 64MiB");
    }
    c.chunk_bytes = *n;
  }
  if (f.Has("timeout")) {
    double secs;
    if (!absl::SimpleAtod(f.Get("timeout"), &secs) || !(secs > 0)) {
      return absl::InvalidArgumentError("--timeout must be a positive number of seconds");
    }
    c.deadline = absl::Seconds(secs);
  }
  *usage = false;
  return c;
}

#endif

}  // namespace moe_adapter::cli
