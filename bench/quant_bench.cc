// The FP8 block dequantiser and the MXFP4 decoder in memory, against memcpy
// of the bytes they write, on one thread (the per-tensor work unit; callers
// split rows / experts across threads). Shapes: one DeepSeek-V3 expert
// projection (I=2048 x H=7168) and one GPT-OSS-120b expert group
// (2I=5760 rows x H=2880).
#include <cstring>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "core/quant/fp8_block.h"
#include "core/quant/mxfp4.h"

namespace moe_adapter {
namespace {

constexpr int64_t kRows = 2048, kCols = 7168;

std::vector<uint8_t> RandomBytes(size_t n, uint8_t avoid = 0x7F) {
  std::mt19937 rng(7);
  std::vector<uint8_t> v(n);
  for (auto& b : v) {
    b = static_cast<uint8_t>(rng());
    if ((b & 0x7F) == avoid) b ^= 1;  // no NaN codes in a real checkpoint
  }
  return v;
}

void BM_MemcpyOutputBytes(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0));
  std::vector<uint8_t> src(bytes, 1), dst(bytes);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), bytes);
    benchmark::DoNotOptimize(dst.data());
  }
  state.SetBytesProcessed(state.iterations() * bytes);
}
BENCHMARK(BM_MemcpyOutputBytes)->Arg(kRows * kCols * 2)->Arg(kRows * kCols * 4);

void BM_Fp8BlockDequant(benchmark::State& state) {
  const DType dtype = state.range(0) == 4 ? DType::kF32 : DType::kBF16;
  const std::vector<uint8_t> w = RandomBytes(kRows * kCols);
  std::vector<float> scale((kRows / 128) * (kCols / 128), 0.00390625f);
  std::vector<uint8_t> out(kRows * kCols * state.range(0));
  for (auto _ : state) {
    DequantizeFp8Rows(Fp8BlockView{w.data(), scale.data(), kRows, kCols}, 0, kRows, dtype, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * out.size());  // bytes written, as memcpy's
}
BENCHMARK(BM_Fp8BlockDequant)->Arg(2)->Arg(4);

void BM_Mxfp4Decode(benchmark::State& state) {
  const int64_t E = 1, R = 5760, G = 2880 / 32;
  const std::vector<uint8_t> blocks = RandomBytes(E * R * G * 16, 0xFF);
  std::vector<uint8_t> scales(E * R * G, 120);
  std::vector<uint8_t> out(E * R * G * 32 * 2);
  for (auto _ : state) {
    DecodeMxfp4Experts(Mxfp4View{blocks.data(), scales.data(), E, R, G}, 0, E, DType::kBF16, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * out.size());
}
BENCHMARK(BM_Mxfp4Decode);

}  // namespace
}  // namespace moe_adapter

BENCHMARK_MAIN();
