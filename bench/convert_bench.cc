// Core conversion of one Qwen3-30B-A3B MoE layer (E=128, H=2048, I=768, bf16,
// 1.2 GB of expert weights) through the public session API, against memcpy of
// the same bytes in the same run. Results are ratios: these machines are
// shared and noisy.
//
//   build/bench/convert_bench --benchmark_min_time=1
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "core/buffer_cache.h"
#include "core/transpose.h"
#include "moe_adapter/converter.h"

namespace moe_adapter {
namespace {

constexpr int64_t kE = 128, kH = 2048, kI = 768;
constexpr size_t kLayerBytes = static_cast<size_t>(kE * kH * 3 * kI) * 2;

Tensor Filled(Shape shape) {
  Tensor t = Tensor::Allocate(DType::kBF16, std::move(shape));
  std::mt19937_64 rng(1);
  auto* p = reinterpret_cast<uint64_t*>(t.mutable_data());
  for (size_t i = 0; i < t.nbytes() / 8; ++i) p[i] = rng();
  return t;
}

ConvertOptions Options(int threads) {
  SetConversionThreads(threads);
  ConvertOptions o;
  o.geometry.num_experts = kE;
  o.geometry.hidden_size = kH;
  o.geometry.moe_intermediate_size = kI;
  return o;
}

const std::vector<NamedTensor>& NativeLayer() {
  static auto* t = new std::vector<NamedTensor>{
      {"model.layers.0.mlp.experts.gate_and_up_projs", Filled({kE, kH, 2 * kI})},
      {"model.layers.0.mlp.experts.down_projs", Filled({kE, kI, kH})}};
  return *t;
}

const std::vector<NamedTensor>& HfLayer() {
  static auto* t = [] {
    auto* v = new std::vector<NamedTensor>;
    for (int64_t e = 0; e < kE; ++e) {
      const std::string p = absl::StrCat("model.layers.0.mlp.experts.", e, ".");
      v->push_back({p + "gate_proj.weight", Filled({kI, kH})});
      v->push_back({p + "up_proj.weight", Filled({kI, kH})});
      v->push_back({p + "down_proj.weight", Filled({kH, kI})});
    }
    return v;
  }();
  return *t;
}

void BM_Memcpy(benchmark::State& state) {
  std::vector<char> src(kLayerBytes, 1), dst(kLayerBytes);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), kLayerBytes);
    benchmark::DoNotOptimize(dst.data());
  }
  state.SetBytesProcessed(state.iterations() * kLayerBytes);
}

void BM_ToHf(benchmark::State& state) {
  SetTransposeImpl(state.range(1) ? TransposeImpl::kAten : TransposeImpl::kBlocked);
  ConvertOptions o = Options(static_cast<int>(state.range(0)));
  const auto& in = NativeLayer();
  for (auto _ : state) {
    auto conv = *ToHfConverter::Create(o);
    size_t out = 0;
    for (const auto& t : in) {
      absl::Status s = conv->Convert(t, [&](NamedTensor n) {
        out += n.tensor.nbytes();
        return absl::OkStatus();
      });
      if (!s.ok()) state.SkipWithError(std::string(s.message()).c_str());
    }
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(state.iterations() * kLayerBytes);
  SetTransposeImpl(TransposeImpl::kBlocked);
}

absl::Status FromHfLayer(const ConvertOptions& o) {
  auto conv = *FromHfConverter::Create(o);
  size_t out = 0;
  auto sink = [&](NamedTensor n) {
    out += n.tensor.nbytes();
    return absl::OkStatus();
  };
  for (const auto& t : HfLayer()) {
    absl::Status s = conv->Add(t, sink);
    if (!s.ok()) return s;
  }
  benchmark::DoNotOptimize(out);
  return absl::OkStatus();
}

// Steady state: every layer of a checkpoint after the first reuses the first
// one's grouped buffers (core/buffer_cache.h); one untimed layer warms them.
void BM_FromHf(benchmark::State& state) {
  SetTransposeImpl(state.range(1) ? TransposeImpl::kAten : TransposeImpl::kBlocked);
  ConvertOptions o = Options(static_cast<int>(state.range(0)));
  (void)FromHfLayer(o);
  for (auto _ : state) {
    absl::Status s = FromHfLayer(o);
    if (!s.ok()) state.SkipWithError(std::string(s.message()).c_str());
  }
  state.SetBytesProcessed(state.iterations() * kLayerBytes);
  SetTransposeImpl(TransposeImpl::kBlocked);
}

// A checkpoint's first layer: fresh grouped buffers, paying their first-touch
// page faults (kernel zeroing) inside the conversion.
void BM_FromHfColdBuffers(benchmark::State& state) {
  ConvertOptions o = Options(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    state.PauseTiming();
    buffer_cache::Clear();
    state.ResumeTiming();
    absl::Status s = FromHfLayer(o);
    if (!s.ok()) state.SkipWithError(std::string(s.message()).c_str());
  }
  state.SetBytesProcessed(state.iterations() * kLayerBytes);
}

// Args: {threads, reference (1 = ATen transposes)}.
BENCHMARK(BM_Memcpy)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ToHf)->Args({2, 0})->Args({1, 0})->Args({2, 1})->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FromHf)->Args({2, 0})->Args({1, 0})->Args({2, 1})->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FromHfColdBuffers)->Args({2})->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace moe_adapter

BENCHMARK_MAIN();
