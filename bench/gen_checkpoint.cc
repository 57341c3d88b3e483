// Writes a synthetic Qwen3-MoE checkpoint for benchmarks: `layers` MoE layers
// of E experts (H, I) in bf16, in the HF per-expert or the native grouped
// layout, as one file or a sharded directory. Values are pseudo-random bits.
//
//   gen_checkpoint --format hf|native --experts 128 --hidden 2048 --inter 768
//                  --layers 1 --out layer.safetensors [--shard-bytes N --dir]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "checkpoint/shard_lanes.h"
#include "core/safetensors_writer.h"
#include "moe_adapter/tensor.h"

namespace {

moe_adapter::Tensor Random(moe_adapter::Shape shape, uint64_t seed) {
  moe_adapter::Tensor t = moe_adapter::Tensor::Allocate(moe_adapter::DType::kBF16, std::move(shape));
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  auto* p = reinterpret_cast<uint64_t*>(t.mutable_data());
  for (size_t i = 0; i < t.nbytes() / 8; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[i] = x & 0x3FFF3FFF3FFF3FFFull;  // finite bf16 values
  }
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  std::string format = "hf", out;
  int64_t E = 128, H = 2048, I = 768, layers = 1;
  uint64_t shard_bytes = 0;
  bool dir = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() { return std::string(i + 1 < argc ? argv[++i] : ""); };
    if (a == "--format") format = next();
    else if (a == "--experts") E = std::atoll(next().c_str());
    else if (a == "--hidden") H = std::atoll(next().c_str());
    else if (a == "--inter") I = std::atoll(next().c_str());
    else if (a == "--layers") layers = std::atoll(next().c_str());
    else if (a == "--out") out = next();
    else if (a == "--shard-bytes") shard_bytes = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--dir") dir = true;
    else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  if (out.empty() || (format != "hf" && format != "native")) {
    std::fprintf(stderr, "usage: gen_checkpoint --format hf|native --out PATH [--experts E --hidden H --inter I --layers N --dir --shard-bytes N]\n");
    return 2;
  }
  std::unique_ptr<moe_adapter::StreamingSafetensorsWriter> file;
  std::unique_ptr<moe_adapter::ShardLanes> shards;
  if (dir) {
    if (std::system(("mkdir -p '" + out + "'").c_str()) != 0) return 1;
    shards = std::make_unique<moe_adapter::ShardLanes>(out, "model", shard_bytes, 1);
  } else {
    auto w = moe_adapter::StreamingSafetensorsWriter::Create(out);
    if (!w.ok()) {
      std::fprintf(stderr, "%s\n", std::string(w.status().message()).c_str());
      return 1;
    }
    file = std::move(*w);
  }
  auto add = [&](std::string name, moe_adapter::Tensor t) {
    absl::Status s = dir ? shards->Add(0, {std::move(name), std::move(t)}) : file->Add({std::move(name), std::move(t)});
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
      std::exit(1);
    }
  };
  uint64_t seed = 1;
  for (int64_t l = 0; l < layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".mlp.");
    add(p + "gate.weight", Random({E, H}, seed++));
    if (format == "native") {
      add(p + "experts.gate_and_up_projs", Random({E, H, 2 * I}, seed++));
      add(p + "experts.down_projs", Random({E, I, H}, seed++));
    } else {
      for (int64_t e = 0; e < E; ++e) {
        const std::string q = absl::StrCat(p, "experts.", e, ".");
        add(q + "gate_proj.weight", Random({I, H}, seed++));
        add(q + "up_proj.weight", Random({I, H}, seed++));
        add(q + "down_proj.weight", Random({H, I}, seed++));
      }
    }
  }
  absl::Status s = dir ? shards->Finish().status() : file->Finish();
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 1;
  }
  if (dir) {
    std::FILE* f = std::fopen((out + "/config.json").c_str(), "w");
    std::fprintf(f,
                 "{\"architectures\": [\"Qwen3MoeForCausalLM\"], \"model_type\": \"qwen3_moe\", \"num_experts\": %lld, "
                 "\"hidden_size\": %lld, \"moe_intermediate_size\": %lld, \"num_hidden_layers\": %lld, "
                 "\"decoder_sparse_step\": 1, \"mlp_only_layers\": [], \"torch_dtype\": \"bfloat16\"}\n",
                 static_cast<long long>(E), static_cast<long long>(H), static_cast<long long>(I),
                 static_cast<long long>(layers));
    std::fclose(f);
  }
  return 0;
}
