// moe-adapter to-hf / from-hf: a checkpoint, file or adapter converted here
// (embedded) or through servers (--server), written atomically.
#include <unistd.h>

#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "checkpoint/output_dir.h"
#include "client/cli/commands.h"
#include "client/cli/empty_dir_output.h"
#include "client/cli/flags.h"
#include "client/cli/options_from_flags.h"
#include "client/cli/progress.h"
#include "client/cli/report.h"
#include "core/byte_size.h"
#include "core/safetensors_format.h"
#include "moe_adapter/checkpoint_convert.h"
#include "moe_adapter/device.h"
#include "nlohmann/json.hpp"
#ifdef MOE_ADAPTER_HAVE_CLIENT
#include "client/cli/targets.h"
#include "moe_adapter/client.h"
#include "moe_adapter/remote_streams.h"
#endif

namespace moe_adapter::cli {
namespace {

const std::vector<FlagSpec>& ConvertFlags() {
  static const std::vector<FlagSpec> specs = {
      {"input", "PATH", "input .safetensors file, checkpoint directory or PEFT adapter directory"},
      {"output", "PATH", "output file or directory (written atomically)"},
      {"config", "PATH", "HF config.json giving the geometry (default: INPUT/config.json)"},
      {"num-experts", "E", "number of routed experts (without --config)"},
      {"hidden-size", "H", "hidden size (without --config)"},
      {"moe-intermediate-size", "I", "expert intermediate size (without --config)"},
      {"family", "NAME", "model family: qwen3_moe, glm4_moe, deepseek_v3, qwen3_next, gpt_oss, qwen3_vl_moe (default: from config.json)"},
      {"lora-layout", "LAYOUT", "peft-v0.19 (default for to-hf) | peft-v0.18 | per-expert"},
      {"adapter-config", "PATH", "adapter_config.json (default: INPUT/adapter_config.json); decides the layout"},
      {"lora-alpha", "A", "to-hf of an adapter without adapter_config.json: its lora_alpha"},
      {"max-shard-size", "SIZE", "output shard size for directories, e.g. 5GB (default), 500MB, 0 = one file"},
      {"dtype", "DTYPE", "bfloat16 | float16 | float32: cast expert weights (from-hf default: config dtype)"},
      {"exclude-key-regex", "RE", "to-hf: drop output keys this RE2 regex matches at their start"},
      {"quantization", nullptr, "to-hf: the reference's quantization=True (Qwen3-MoE: no effect; GPT-OSS: refused)"},
      {"ep-rank", "K", "expert-parallel rank (with --ep-size)"},
      {"ep-size", "N", "expert-parallel world size"},
      {"device", "DEV", "cpu (default) | cuda | cuda:N | auto: where expert transposes run (local mode)"},
      {"server", "ADDR", "convert through a server (host:port, dns:///name:port or unix:///path); repeat for several"},
      {"streams", "N", "parallel streams over the servers (default: one per server address)"},
      {"tls-ca", "PATH", "PEM CA certificate(s): use TLS and verify the server"},
      {"tls-cert", "PATH", "PEM client certificate (mTLS, with --tls-key)"},
      {"tls-key", "PATH", "PEM client key (mTLS)"},
      {"tls-server-name", "NAME", "expected server name in its certificate"},
      {"token-file", "PATH", "file holding the bearer token the server expects"},
      {"chunk-size", "SIZE", "wire chunk size (default 4MiB-64KiB)"},
      {"timeout", "SECONDS", "deadline of each stream (default: none)"},
      {"overwrite", nullptr, "replace an existing output (an existing empty directory needs no --overwrite)"},
      {"quiet", nullptr, "no progress bar and no summary"},
      {"json", nullptr, "print a JSON summary on stdout (errors too: {\"error\": {\"code\", \"message\"}})"},
      {"help", nullptr, "show this help"},
  };
  return specs;
}

std::string ConvertHelp(Direction dir) {
  const bool to_hf = dir == Direction::kToHf;
  return absl::StrCat(
      "usage: moe-adapter ", to_hf ? "to-hf  " : "from-hf", " --input IN --output OUT [GEOMETRY] [flags]\n",
      to_hf ? "Converts native grouped experts (and native LoRA) to the Hugging Face per-expert layout (PEFT).\n"
            : "Converts Hugging Face per-expert experts (and PEFT LoRA) to native grouped experts.\n",
      "IN/OUT: a .safetensors file, a checkpoint directory or a PEFT adapter directory; OUT must not exist,\n"
      "        or be an empty directory, unless --overwrite\n"
      "GEOMETRY: --config config.json | --num-experts E --hidden-size H --moe-intermediate-size I\n"
      "          (default: config.json inside an input directory)\n"
      "Exit status: 0 success, 1 conversion or input error, 2 usage error.\n"
      "flags:\n",
      FlagsHelp(ConvertFlags()));
}

// RemoteOpeners(): --streams openers (default one per server address) over
// the --server targets, dns:/// ones expanded (targets.h).
#ifdef MOE_ADAPTER_HAVE_CLIENT
absl::StatusOr<std::vector<StreamOpener>> RemoteOpeners(const ParsedFlags& f, bool* usage) {
  absl::StatusOr<ClientOptions> base = ClientFromFlags(f, usage);
  if (!base.ok()) return base.status();
  std::vector<std::shared_ptr<RemoteClient>> clients;
  for (const std::string& target : f.All("server")) {
    for (const Endpoint& ep : ExpandTarget(target)) {
      ClientOptions c = *base;
      c.target = ep.target;
      if (c.tls_server_name.empty()) c.tls_server_name = ep.host;
      absl::StatusOr<std::unique_ptr<RemoteClient>> client = RemoteClient::Connect(c);
      if (!client.ok()) {
        *usage = false;
        return client.status();
      }
      clients.push_back(std::move(*client));
    }
  }
  int streams = static_cast<int>(clients.size());
  if (f.Has("streams")) {
    if (!absl::SimpleAtoi(f.Get("streams"), &streams) || streams < 1 || streams > 256) {
      *usage = true;
      return absl::InvalidArgumentError("--streams must be in [1, 256]");
    }
  }
  // Streams spread over the servers (and expanded addresses) in turn.
  std::vector<StreamOpener> out;
  for (int i = 0; i < streams; ++i) out.push_back(RemoteStreams(clients[i % clients.size()]));
  *usage = false;
  return out;
}
#else
absl::StatusOr<std::vector<StreamOpener>> RemoteOpeners(const ParsedFlags&, bool* usage) {
  *usage = false;
  return absl::UnimplementedError("this build has no gRPC client (MOE_ADAPTER_BUILD_SERVICE=OFF)");
}
#endif

}  // namespace

int RunConvert(Direction dir, const std::vector<std::string>& args) {
  const Reporter report(dir == Direction::kToHf ? "to-hf" : "from-hf", WantsJson(args));
  absl::StatusOr<ParsedFlags> f = ParseFlags(ConvertFlags(), args, {"server"});
  if (!f.ok()) return report.Usage(f.status().message());
  if (f->Has("help")) {
    std::cout << ConvertHelp(dir);
    return kExitOk;
  }
  if (!f->positional.empty()) return report.Usage(absl::StrCat("unexpected argument ", safetensors::Quote(f->positional[0])));
  if (!f->Has("input") || !f->Has("output")) return report.Usage("--input and --output are required");
  absl::StatusOr<InputFiles> input = DescribeInput(f->Get("input"));
  if (!input.ok()) return report.Error(input.status());
  bool usage = false;
  absl::StatusOr<ConvertOptions> opts = OptionsFromFlags(*f, *input, &usage);
  if (!opts.ok()) return usage ? report.Usage(opts.status().message()) : report.Error(opts.status());
  CheckpointConvertOptions copts;
  copts.overwrite = f->Has("overwrite");
  if (f->Has("max-shard-size")) {
    absl::StatusOr<uint64_t> size = ParseByteSize(f->Get("max-shard-size"));
    if (!size.ok()) return report.Usage(absl::StrCat("--max-shard-size: ", size.status().message()));
    copts.max_shard_bytes = *size;
  }
  if (f->Has("lora-alpha")) {
    double alpha;
    if (!absl::SimpleAtod(f->Get("lora-alpha"), &alpha) || !(alpha > 0)) {
      return report.Usage("--lora-alpha must be a positive number");
    }
    copts.lora_alpha = alpha;
  }
  absl::StatusOr<Device> device = OpenDevice(f->Get("device", "cpu"));
  if (!device.ok()) {
    const std::string message = absl::StrCat("--device ", f->Get("device"), ": ", device.status().message());
    return device.status().code() == absl::StatusCode::kInvalidArgument
               ? report.Usage(message)
               : report.Error(absl::Status(device.status().code(), message));
  }
  if (f->Has("server")) {
    if (f->Has("device")) return report.Usage("--device selects the local device; the server has its own --device");
    absl::StatusOr<std::vector<StreamOpener>> remote = RemoteOpeners(*f, &usage);
    if (!remote.ok()) return usage ? report.Usage(remote.status().message()) : report.Error(remote.status());
    copts.streams = *remote;
  } else {
    copts.streams = {EmbeddedStreams(*device)};
  }
  // An existing empty directory takes a directory conversion without
  // --overwrite, staged inside it (output_dir.h): only it needs to be writable.
  std::optional<EmptyDirOutput> into_empty;
  absl::StatusOr<ExistingOutput> existing = CheckOutput(f->Get("output"), input->is_directory, copts.overwrite);
  if (existing.ok() && *existing == ExistingOutput::kEmptyDirectory) into_empty.emplace(f->Get("output"));
  const std::string written_to = into_empty ? into_empty->staging() : f->Get("output");
  const bool quiet = f->Has("quiet");
  ProgressBar bar(!quiet && ::isatty(STDERR_FILENO));
  copts.progress = [&bar](const Progress& p) { bar.Update(p); };
  copts.notice = [](const std::string& m) { std::cerr << "moe-adapter: " << m << "\n"; };
  absl::StatusOr<ConvertSummary> summary = ConvertCheckpoint(dir, f->Get("input"), written_to, *opts, copts);
  bar.Done();
  if (!summary.ok()) return report.Error(summary.status());
  if (into_empty) {
    absl::Status moved = into_empty->Commit();
    if (!moved.ok()) return report.Error(moved);
  }
  for (const std::string& w : summary->warnings) std::cerr << "moe-adapter: warning: " << w << "\n";
  if (report.json()) {
    nlohmann::json j = {{"direction", dir == Direction::kToHf ? "to-hf" : "from-hf"},
                        {"input", f->Get("input")},
                        {"output", f->Get("output")},
                        {"adapter", summary->adapter},
                        {"tensors_in", summary->tensors_in},
                        {"tensors_out", summary->tensors_out},
                        {"bytes_in", summary->bytes_in},
                        {"bytes_out", summary->bytes_out},
                        {"peak_held_bytes", summary->peak_held_bytes},
                        {"streams", summary->streams},
                        {"seconds", summary->seconds},
                        {"files", summary->files},
                        {"warnings", summary->warnings}};
    std::cout << DumpJson(j) << "\n";
  } else if (!quiet) {
    std::cerr << "moe-adapter: " << (dir == Direction::kToHf ? "to-hf" : "from-hf") << ": " << summary->tensors_in
              << " tensors in, " << summary->tensors_out << " out, " << HumanBytes(summary->bytes_out) << " in "
              << summary->seconds << " s -> " << f->Get("output") << "\n";
  }
  return kExitOk;
}

}  // namespace moe_adapter::cli
