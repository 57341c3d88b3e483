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

// ---- Scaling with layer size ------------------------------------------------
// One layer of E experts, hidden size H and I = 3H/8 (the ratio of Qwen3-30B-A3B
// and Qwen3-235B-A22B), converted whole, 2 threads, against memcpy of the same
// bytes in the same run: cost per byte should not grow with the layer.

struct ScaledLayer {
  int64_t e, h, i;
  Bytes all;
  size_t bytes() const { return all.size(); }
};

ScaledLayer MakeScaledLayer(int64_t e, int64_t h) {
  ScaledLayer l{e, h, 3 * h / 8, {}};
  const size_t n = static_cast<size_t>(l.e * l.h * l.i * 3) * 2;
  l.all = Bytes::Allocate(n);
  uint64_t x = 0x9E3779B97F4A7C15ull;
  auto* p = l.all.mutable_data();
  size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const uint64_t v = x & 0x3FFF3FFF3FFF3FFFull;  // finite bf16 values
    std::memcpy(p + k, &v, 8);
  }
  return l;
}

Tensor View(const Bytes& all, size_t offset, Shape shape) {
  size_t n = 2;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return Tensor{DType::kBF16, std::move(shape), all.Slice(offset, n)};
}

ConvertOptions ScaledOptions(const ScaledLayer& l) {
  ConvertOptions o = Options(2);
  o.geometry.num_experts = l.e;
  o.geometry.hidden_size = l.h;
  o.geometry.moe_intermediate_size = l.i;
  return o;
}

// Args: {E, H, what: 0 memcpy, 1 to_hf, 2 from_hf (buffers warm, as for every
// layer after a checkpoint's first)}.
void BM_Scaling(benchmark::State& state) {
  const ScaledLayer l = MakeScaledLayer(state.range(0), state.range(1));
  const int what = static_cast<int>(state.range(2));
  const ConvertOptions o = ScaledOptions(l);
  const size_t gu = static_cast<size_t>(l.e * l.h * 2 * l.i) * 2, one = static_cast<size_t>(l.i * l.h) * 2;
  const std::string p = "model.layers.0.mlp.experts.";
  std::vector<NamedTensor> in;
  if (what == 1) {
    in.push_back({p + "gate_and_up_projs", View(l.all, 0, {l.e, l.h, 2 * l.i})});
    in.push_back({p + "down_projs", View(l.all, gu, {l.e, l.i, l.h})});
  } else if (what == 2) {
    for (int64_t e = 0; e < l.e; ++e) {
      const size_t off = static_cast<size_t>(e) * 3 * one;
      const std::string q = absl::StrCat(p, e, ".");
      in.push_back({q + "gate_proj.weight", View(l.all, off, {l.i, l.h})});
      in.push_back({q + "up_proj.weight", View(l.all, off + one, {l.i, l.h})});
      in.push_back({q + "down_proj.weight", View(l.all, off + 2 * one, {l.h, l.i})});
    }
  }
  Bytes dst = what == 0 ? Bytes::Allocate(l.bytes()) : Bytes();
  if (what == 0) std::memset(dst.mutable_data(), 0, l.bytes());
  size_t out = 0;
  auto sink = [&](NamedTensor n) {
    out += n.tensor.nbytes();
    return absl::OkStatus();
  };
  auto one_layer = [&]() -> absl::Status {
    if (what == 0) {
      std::memcpy(dst.mutable_data(), l.all.data(), l.bytes());
      benchmark::DoNotOptimize(dst.mutable_data());
      return absl::OkStatus();
    }
    if (what == 1) {
      auto conv = *ToHfConverter::Create(o);
      for (const auto& t : in) {
        absl::Status s = conv->Convert(t, sink);
        if (!s.ok()) return s;
      }
      return absl::OkStatus();
    }
    auto conv = *FromHfConverter::Create(o);
    for (const auto& t : in) {
      absl::Status s = conv->Add(t, sink);
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  };
  (void)one_layer();  // untimed: warms the buffers, as a checkpoint's first layer does
  for (auto _ : state) {
    absl::Status s = one_layer();
    if (!s.ok()) state.SkipWithError(std::string(s.message()).c_str());
  }
  benchmark::DoNotOptimize(out);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(l.bytes()));
  state.counters["layer_bytes"] = static_cast<double>(l.bytes());
  state.counters["I"] = static_cast<double>(l.i);
}

void ScalingArgs(benchmark::internal::Benchmark* b) {
  for (int64_t e : {8, 32, 128}) {
    for (int64_t h : {1024, 2048, 4096}) {
      for (int64_t what : {0, 1, 2}) b->Args({e, h, what});
    }
  }
}

// bench/run_all.sh runs these as their own step (--benchmark_filter=BM_Scaling).
BENCHMARK(BM_Scaling)->Apply(ScalingArgs)->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);

// Args: {threads, reference (1 = ATen transposes)}.
BENCHMARK(BM_Memcpy)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ToHf)->Args({2, 0})->Args({1, 0})->Args({2, 1})->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FromHf)->Args({2, 0})->Args({1, 0})->Args({2, 1})->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FromHfColdBuffers)->Args({2})->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace moe_adapter

BENCHMARK_MAIN();
