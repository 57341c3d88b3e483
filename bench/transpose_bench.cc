// Expert-slab transposes on one Qwen3-30B-A3B MoE layer (E=128, H=2048,
// I=768): the fast path against memcpy of the same bytes and against ATen.
//
// bytes_per_second counts bytes read plus bytes written, so a copy, a
// transpose and a widening cast of the same layer compare on traffic; for a
// same-dtype transpose, ratio to memcpy = the figure to quote. Buffers are
// allocated and touched outside the timed loop. Threads: the fast path's
// argument is ConversionThreads(); ATen runs at::set_num_threads(2) (its default
// here is 1); memcpy runs on 1 or 2 threads.
//
//   build-tr/bench/transpose_bench --benchmark_min_time=0.5
//       --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "core/transpose.h"
#include "moe_adapter/dtype.h"

namespace moe_adapter {
namespace {

constexpr int64_t kE = 128, kH = 2048, kI = 768;
constexpr int kAtenThreads = 2;

// Wall time, and with --benchmark_repetitions a "min" row: on a shared machine
// the fastest repetition is the one least disturbed by other work.
void Common(benchmark::internal::Benchmark* b) {
  b->UseRealTime()
      ->Unit(benchmark::kMillisecond)
      ->ComputeStatistics("min", [](const std::vector<double>& v) {
        return *std::min_element(v.begin(), v.end());
      });
}

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using Mem = std::unique_ptr<uint8_t, FreeDeleter>;

// Page-aligned and touched, so page faults stay out of the timings. Huge pages
// only when MOE_BENCH_HUGEPAGES=1: the server's buffers do not ask for them.
Mem Alloc(size_t bytes) {
  bytes = (bytes + 4095) / 4096 * 4096;
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(4096, bytes));
  const char* huge = std::getenv("MOE_BENCH_HUGEPAGES");
  if (huge != nullptr && huge[0] == '1') madvise(p, bytes, MADV_HUGEPAGE);
  // Finite, varied bf16/f32 bits (no NaN): 0x3C.. / 0x3D.. patterns.
  for (size_t i = 0; i < bytes; ++i) p[i] = static_cast<uint8_t>(0x3C + (i * 7 >> 8) % 2);
  return Mem(p);
}

// One layer in both layouts: grouped G [E, H, 2I], D [E, I, H] and per-expert
// gate, up [E, I, H], down [E, H, I].
struct Layer {
  Layer(DType grouped, DType hf)
      : gdt(grouped),
        hdt(hf),
        g(Alloc(kE * kH * 2 * kI * DTypeSize(grouped))),
        d(Alloc(kE * kI * kH * DTypeSize(grouped))),
        gate(Alloc(kE * kI * kH * DTypeSize(hf))),
        up(Alloc(kE * kI * kH * DTypeSize(hf))),
        down(Alloc(kE * kH * kI * DTypeSize(hf))) {}

  int64_t GroupedBytes() const { return 3 * kE * kH * kI * static_cast<int64_t>(DTypeSize(gdt)); }
  int64_t HfBytes() const { return 3 * kE * kH * kI * static_cast<int64_t>(DTypeSize(hdt)); }

  // The calls of a to_hf conversion; from_hf swaps each call's two sides.
  std::vector<TransposeArgs> ToHf() const {
    const int64_t gs = DTypeSize(gdt), hs = DTypeSize(hdt);
    std::vector<TransposeArgs> calls;
    for (int64_t e = 0; e < kE; ++e) {
      uint8_t* ge = g.get() + e * kH * 2 * kI * gs;
      for (int half = 0; half < 2; ++half) {
        uint8_t* out = (half == 0 ? gate : up).get() + e * kI * kH * hs;
        calls.push_back({ge + half * kI * gs, gdt, 2 * kI, out, hdt, kH, kH, kI});
      }
      calls.push_back(
          {d.get() + e * kI * kH * gs, gdt, kH, down.get() + e * kH * kI * hs, hdt, kI, kI, kH});
    }
    return calls;
  }
  std::vector<TransposeArgs> FromHf() const {
    std::vector<TransposeArgs> calls = ToHf();
    for (TransposeArgs& a : calls) {
      a = {a.dst,       a.dst_dtype, a.dst_ld, const_cast<void*>(a.src),
           a.src_dtype, a.src_ld,    a.cols,   a.rows};
    }
    return calls;
  }

  DType gdt, hdt;
  Mem g, d, gate, up, down;
};

void BM_Memcpy(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const size_t bytes = 3 * kE * kH * kI * 2;  // the bf16 layer
  Mem src = Alloc(bytes), dst = Alloc(bytes);
  for (auto _ : state) {
    std::vector<std::thread> pool;
    const size_t part = bytes / threads;
    for (int t = 1; t < threads; ++t) {
      pool.emplace_back([&, t] { std::memcpy(dst.get() + t * part, src.get() + t * part, part); });
    }
    std::memcpy(dst.get(), src.get(), part);
    for (auto& th : pool) th.join();
    benchmark::DoNotOptimize(dst.get());
  }
  state.SetBytesProcessed(state.iterations() * 2 * static_cast<int64_t>(bytes));
}
BENCHMARK(BM_Memcpy)->Arg(1)->Arg(2)->Apply(Common);

// torch's own copy_ of the layer (same bytes), what the field notes call memcpy.
void BM_AtenCopy(benchmark::State& state) {
  at::set_num_threads(kAtenThreads);
  const int64_t n = 3 * kE * kH * kI;
  Mem src = Alloc(n * 2), dst = Alloc(n * 2);
  at::Tensor s = at::from_blob(src.get(), {n}, at::kBFloat16);
  at::Tensor d = at::from_blob(dst.get(), {n}, at::kBFloat16);
  for (auto _ : state) d.copy_(s);
  state.SetBytesProcessed(state.iterations() * 4 * n);
}
BENCHMARK(BM_AtenCopy)->Apply(Common);

// What torch offers: a strided copy of the whole [E, H, 2I] gate_up tensor.
void BM_AtenTransposeCopy(benchmark::State& state) {
  at::set_num_threads(kAtenThreads);
  const int64_t n = kE * kH * 2 * kI;
  Mem src = Alloc(n * 2), dst = Alloc(n * 2);
  at::Tensor s = at::from_blob(src.get(), {kE, kH, 2 * kI}, at::kBFloat16);
  at::Tensor d = at::from_blob(dst.get(), {kE, 2 * kI, kH}, at::kBFloat16);
  for (auto _ : state) d.copy_(s.transpose(1, 2));
  state.SetBytesProcessed(state.iterations() * 4 * n);
}
BENCHMARK(BM_AtenTransposeCopy)->Apply(Common);

constexpr DType kDTypeArg[] = {DType::kF32, DType::kBF16, DType::kF16};

// Args: grouped dtype, HF dtype (indices into kDTypeArg), to_hf (1) or from_hf
// (0), threads (0 = the reference, TransposeCastAten).
void BM_Layer(benchmark::State& state) {
  const DType gdt = kDTypeArg[state.range(0)], hdt = kDTypeArg[state.range(1)];
  const bool to_hf = state.range(2) != 0;
  const int threads = static_cast<int>(state.range(3));
  Layer layer(gdt, hdt);
  const std::vector<TransposeArgs> calls = to_hf ? layer.ToHf() : layer.FromHf();
  at::set_num_threads(kAtenThreads);
  SetConversionThreads(threads);
  state.SetLabel(std::string(to_hf ? "to_hf " : "from_hf ") +
                 std::string(DTypeName(to_hf ? gdt : hdt)) + "->" +
                 std::string(DTypeName(to_hf ? hdt : gdt)) +
                 (threads == 0 ? " TransposeCastAten" : " blocked"));
  for (auto _ : state) {
    for (const TransposeArgs& a : calls) {
      if (threads == 0) {
        TransposeCastAten(a);
      } else {
        TransposeCastBlocked(a);
      }
    }
  }
  state.SetBytesProcessed(state.iterations() * (layer.GroupedBytes() + layer.HfBytes()));
  SetConversionThreads(0);
}
// bf16 both ways, the reference, and the two casts a conversion may apply.
BENCHMARK(BM_Layer)
    ->ArgNames({"g", "hf", "to_hf", "threads"})
    ->Args({1, 1, 1, 0})
    ->Args({1, 1, 1, 1})
    ->Args({1, 1, 1, 2})
    ->Args({1, 1, 0, 1})
    ->Args({1, 1, 0, 2})
    ->Args({1, 0, 1, 2})  // to_hf bf16 -> f32
    ->Args({0, 1, 1, 2})  // to_hf f32 -> bf16
    ->Args({0, 1, 0, 2})  // from_hf bf16 -> f32
    ->Args({1, 0, 0, 2})  // from_hf f32 -> bf16
    ->Apply(Common);

}  // namespace
}  // namespace moe_adapter

BENCHMARK_MAIN();
