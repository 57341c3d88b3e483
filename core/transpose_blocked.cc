// The fast transpose: cuts a slab into blocks and runs the best kernel the CPU
// has (GetTransposeKernel(), transpose_kernels.cc) on them across the worker pool.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>

#include "core/cast.h"
#include "core/thread_pool.h"
#include "core/transpose.h"
#include "core/transpose_kernels.h"

namespace moe_adapter {
namespace {

using internal::TransposeBlock;
using internal::TransposeBlockFn;

// Below this many bytes moved, waking a worker costs more than it saves.
constexpr int64_t kInlineBytes = int64_t{256} << 10;
// Outputs this large will not be read back from cache before they are
// evicted, so streaming stores save the read-for-ownership of every line.
constexpr int64_t kStreamBytes = int64_t{1} << 20;
// Work items are bands of one tile height (which keeps streamed destination
// lines aligned) across up to kMaxBlockCols columns. The pool gives each
// thread a contiguous run of bands, so each walks its own region of both
// buffers: on the 2-core target, two threads interleaving small blocks ran
// ~20% slower (DRAM page and stream locality), while one-band items let a
// thread take over the rest of a preempted one's run.
constexpr int64_t kTileRows = 32;
// Wider rows are cut so a band stays within L2.
constexpr int64_t kMaxBlockCols = 4096;

std::atomic<int> g_threads{0};

// NaN bits of a cast are the project's, not the machine's: ATen's f32 -> bf16
// gives 0xFFFF from its AVX2/AVX-512 kernels and 0x7FC0 from the portable one,
// so the reference itself differs between CPUs. We always give c10's scalar
// result (0x7FC0 for bf16, sign|0x7E00 for f16), as the CUDA kernels do, so
// CPU, GPU and every machine agree bit for bit (spec/conversion.md §15.5 note
// in README: "NaN in a cast").
uint16_t ProjectBF16NaN() { return cast::kBF16NaNScalar; }

}  // namespace

void TransposeCastBlocked(const TransposeArgs& a) {
  if (a.rows <= 0 || a.cols <= 0) return;
  const TransposeBlockFn kernel =
      internal::GetTransposeKernel(internal::ActiveTransposeIsa(), a.src_dtype, a.dst_dtype);
  if (kernel == nullptr) return;  // not an expert dtype: callers validate dtypes first
  const int64_t src_size = static_cast<int64_t>(DTypeSize(a.src_dtype));
  const int64_t dst_size = static_cast<int64_t>(DTypeSize(a.dst_dtype));
  const int64_t elems = a.rows * a.cols;

  TransposeBlock whole;
  whole.src = a.src;
  whole.src_ld = a.src_ld;
  whole.dst = a.dst;
  whole.dst_ld = a.dst_ld;
  whole.rows = a.rows;
  whole.cols = a.cols;
  whole.bf16_nan = ProjectBF16NaN();
  whole.stream = elems * dst_size >= kStreamBytes && reinterpret_cast<uintptr_t>(a.dst) % 64 == 0 &&
                 (a.dst_ld * dst_size) % 64 == 0;

  const int threads = ConversionThreads();
  if (threads <= 1 || elems * (src_size + dst_size) < kInlineBytes) {
    kernel(whole);
    return;
  }
  const int64_t col_blocks = (a.cols + kMaxBlockCols - 1) / kMaxBlockCols;
  const int64_t block_cols = (a.cols + col_blocks - 1) / col_blocks;
  const int64_t bands = (a.rows + kTileRows - 1) / kTileRows;
  internal::WorkerPool::Get().ParallelFor(bands * col_blocks, threads, [&](int64_t i) {
    const int64_t r0 = (i / col_blocks) * kTileRows;
    const int64_t c0 = (i % col_blocks) * block_cols;
    TransposeBlock b = whole;
    b.src = static_cast<const char*>(a.src) + (r0 * a.src_ld + c0) * src_size;
    b.dst = static_cast<char*>(a.dst) + (c0 * a.dst_ld + r0) * dst_size;
    b.rows = std::min(kTileRows, a.rows - r0);
    b.cols = std::min(block_cols, a.cols - c0);
    kernel(b);
  });
}

void SetConversionThreads(int n) { g_threads.store(n > 0 ? n : 0); }

int ConversionThreads() {
  const int n = g_threads.load(std::memory_order_relaxed);
  if (n > 0) return n;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace moe_adapter
