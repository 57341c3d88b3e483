// Host-only helpers shared by cuda_kernels_check and cuda_kernels_emu_test:
// deterministic input generation (special values, rounding ties, random bits),
// a scalar CPU reference of the batched transpose-cast, and a parallel loop.
// The reference uses the same conversion functions as the kernels
// (elem_convert.cuh), which are themselves checked exhaustively against c10.
#ifndef MOE_ADAPTER_TESTS_CUDA_TEST_UTIL_H_
#define MOE_ADAPTER_TESTS_CUDA_TEST_UTIL_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/cuda/elem_convert.cuh"
#include "core/cuda/transpose_kernels.h"

namespace moe_adapter {
namespace cuda {
namespace testing {

inline int HostThreads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(std::min(n, 32u));
}

// Runs fn(i) for i in [0, n) on up to `threads` threads (dynamic scheduling).
inline void ParallelFor(int64_t n, int threads, const std::function<void(int64_t)>& fn) {
  if (n <= 0) return;
  threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, n)));
  if (threads == 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<int64_t> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int64_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) fn(i);
    });
  }
  for (auto& th : pool) th.join();
}

inline uint64_t Mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Special bit patterns per type: NaNs (quiet, signalling, negative, payloads),
// infinities, zeros, subnormals, range edges, and rounding ties.
inline const std::vector<uint32_t>& Specials(ElemType t) {
  static const std::vector<uint32_t> f32 = {
      0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0xFF800001u, 0x7FA00000u, 0x7FC02000u, 0x7FFFFFFFu, 0xFFFFFFFFu,
      0x7FBFFFFFu, 0x7F800000u, 0xFF800000u, 0x00000000u, 0x80000000u, 0x00000001u, 0x807FFFFFu, 0x00800000u,
      0x7F7FFFFFu, 0xFF7FFFFFu, 0x7F7F8000u, 0x7F7F7FFFu, 0x477FE000u, 0x477FEFFFu, 0x477FF000u, 0xC77FF000u,
      0x477FF001u, 0x47800000u, 0x38800000u, 0x387FFFFFu, 0x387FF000u, 0x33000000u, 0x33000001u, 0xB3000001u,
      0x33C00000u, 0x34200000u, 0x3F808000u, 0x3F818000u, 0x3F801000u, 0x3F803000u, 0x3F800FFFu, 0x3F807FFFu,
      0xBF818000u, 0x3F800000u, 0x00400000u, 0x80000001u, 0x3EFFFFFFu, 0x7F7FFFFEu, 0x007FFFFFu, 0x38000000u};
  static const std::vector<uint32_t> bf16 = {0x7FC0, 0xFFC0, 0x7F81, 0xFF81, 0x7FA0, 0x7FFF, 0xFFFF, 0x7F80,
                                             0xFF80, 0x0000, 0x8000, 0x0001, 0x807F, 0x0080, 0x7F7F, 0xFF7F,
                                             0x477F, 0x4780, 0x3880, 0x387F, 0x3380, 0x3300, 0x3301, 0x33C0,
                                             0x3F80, 0x3F81, 0xBF81, 0x3B80, 0x3B81, 0x3B7F, 0x0040, 0x8001};
  static const std::vector<uint32_t> f16 = {0x7E00, 0xFE00, 0x7C01, 0xFC01, 0x7D00, 0x7DFF, 0x7FFF, 0xFFFF,
                                            0x7C00, 0xFC00, 0x0000, 0x8000, 0x0001, 0x83FF, 0x0400, 0x7BFF,
                                            0xFBFF, 0x3C00, 0x3C01, 0x3C04, 0x3C0C, 0x3C08, 0x3C02, 0xBC0C,
                                            0x0200, 0x8001, 0x03FF, 0x7BFE, 0x0003, 0x3BFF, 0x3C3C, 0x1C04};
  return t == ElemType::kF32 ? f32 : (t == ElemType::kBF16 ? bf16 : f16);
}

// Deterministic element bits for (seed, index): 1/8 special values, 1/8 raw
// random bits, 1/4 values exactly at a rounding tie of a narrower type (with
// both parities), the rest ordinary values around the f16 range.
inline uint32_t GenBits(ElemType t, uint64_t seed, uint64_t idx) {
  const uint64_t h = Mix64(seed * 0x100000001B3ull ^ idx);
  const uint32_t lo = static_cast<uint32_t>(h);
  const uint32_t hi = static_cast<uint32_t>(h >> 32);
  const uint32_t cat = hi & 7u;
  if (cat == 0) {
    const auto& sp = Specials(t);
    return sp[(hi >> 3) % sp.size()];
  }
  if (t == ElemType::kF32) {
    if (cat == 1) return lo;
    if (cat == 2) return (lo & 0xFFFF0000u) | 0x8000u;  // bf16 tie
    if (cat == 3) {                                      // f16 tie, inside the f16 range
      const uint32_t e = 103u + ((hi >> 3) % 40u);        // f16 subnormal .. large
      return (lo & 0x807FE000u) | (e << 23) | ((lo & 1u) ? 0x1000u : (0x1000u >> ((hi >> 9) % 11u)));
    }
    const uint32_t e = 100u + ((hi >> 3) % 48u);
    return (lo & 0x807FFFFFu) | (e << 23);
  }
  const uint16_t r = static_cast<uint16_t>(lo);
  if (cat == 1) return r;
  if (t == ElemType::kF16 && (cat == 2 || cat == 3)) {
    // f16 -> bf16 ties: the f16 mantissa's low 3 bits = 100b.
    return static_cast<uint16_t>((r & 0xFFF8u) | 0x4u);
  }
  if (t == ElemType::kBF16 && (cat == 2 || cat == 3)) {
    // bf16 -> f16 rounding: exponents in/near the f16 range (incl. subnormal).
    const uint32_t e = 100u + ((hi >> 3) % 48u);
    return static_cast<uint16_t>((r & 0x807Fu) | (e << 7));
  }
  return r;
}

inline uint32_t LoadBits(const void* base, ElemType t, int64_t idx) {
  if (t == ElemType::kF32) {
    uint32_t v;
    std::memcpy(&v, static_cast<const char*>(base) + idx * 4, 4);
    return v;
  }
  uint16_t v;
  std::memcpy(&v, static_cast<const char*>(base) + idx * 2, 2);
  return v;
}

inline void StoreBits(void* base, ElemType t, int64_t idx, uint32_t bits) {
  if (t == ElemType::kF32) {
    std::memcpy(static_cast<char*>(base) + idx * 4, &bits, 4);
  } else {
    const uint16_t v = static_cast<uint16_t>(bits);
    std::memcpy(static_cast<char*>(base) + idx * 2, &v, 2);
  }
}

// Fills n elements of type t with GenBits(t, seed, i), in parallel.
inline void Fill(void* buf, ElemType t, int64_t n, uint64_t seed, int threads) {
  const int64_t kChunk = 1 << 20;
  ParallelFor((n + kChunk - 1) / kChunk, threads, [&](int64_t k) {
    const int64_t end = std::min(n, (k + 1) * kChunk);
    for (int64_t i = k * kChunk; i < end; ++i) StoreBits(buf, t, i, GenBits(t, seed, static_cast<uint64_t>(i)));
  });
}

struct Mismatch {
  int64_t b, r, c;
  uint32_t src, want, got;
};

// Compares dst against cast(transpose(src)) element by element (bits).
// Returns the number of mismatches; keeps the first few in *first.
inline int64_t CheckTranspose(const DeviceTransposeArgs& a, const void* host_src, const void* host_dst, int threads,
                              std::vector<Mismatch>* first) {
  std::atomic<int64_t> bad{0};
  std::mutex mu;
  const int st = static_cast<int>(a.src_type);
  const int dt = static_cast<int>(a.dst_type);
  constexpr int64_t kBlk = 64;
  const int64_t rb = (a.rows + kBlk - 1) / kBlk;
  const int64_t cb = (a.cols + kBlk - 1) / kBlk;
  ParallelFor(a.batch * rb, threads, [&](int64_t job) {
    const int64_t b = job / rb;
    const int64_t r_lo = (job % rb) * kBlk;
    const int64_t r_hi = std::min(a.rows, r_lo + kBlk);
    int64_t local_bad = 0;
    for (int64_t cbi = 0; cbi < cb; ++cbi) {
      const int64_t c_lo = cbi * kBlk;
      const int64_t c_hi = std::min(a.cols, c_lo + kBlk);
      for (int64_t c = c_lo; c < c_hi; ++c) {
        for (int64_t r = r_lo; r < r_hi; ++r) {
          const uint32_t s = LoadBits(host_src, a.src_type, b * a.src_batch_stride + r * a.src_ld + c);
          const uint32_t want = cvt::ConvertBits(st, dt, s);
          const uint32_t got = LoadBits(host_dst, a.dst_type, b * a.dst_batch_stride + c * a.dst_ld + r);
          if (want != got) {
            if (++local_bad <= 8 && first != nullptr) {
              std::lock_guard<std::mutex> lock(mu);
              if (first->size() < 8) first->push_back({b, r, c, s, want, got});
            }
          }
        }
      }
    }
    bad += local_bad;
  });
  return bad.load();
}

// Counts bytes of the dst allocation [0, total_bytes) outside the logical
// [batch, cols, rows] region (padding between rows/batches and anything after)
// that differ from `poison`. For small test cases.
inline int64_t CheckUntouched(const DeviceTransposeArgs& a, const void* host_dst, size_t total_bytes,
                              unsigned char poison) {
  const size_t es = ElemSize(a.dst_type);
  const unsigned char* p = static_cast<const unsigned char*>(host_dst);
  int64_t bad = 0;
  for (size_t i = 0; i < total_bytes; ++i) {
    const int64_t e = static_cast<int64_t>(i / es);
    const int64_t bs = a.dst_batch_stride > 0 ? a.dst_batch_stride : a.cols * a.dst_ld;
    const int64_t b = e / bs;
    const int64_t rem = e % bs;
    const int64_t c = rem / a.dst_ld;
    const int64_t r = rem % a.dst_ld;
    const bool logical = b < a.batch && c < a.cols && r < a.rows;
    if (!logical && p[i] != poison) ++bad;
  }
  return bad;
}

inline std::string DescribeMismatches(const std::vector<Mismatch>& m, ElemType st, ElemType dt) {
  std::string out;
  char line[200];
  for (const auto& x : m) {
    std::snprintf(line, sizeof(line), "      at b=%lld r=%lld c=%lld: src %s 0x%0*x -> want %s 0x%0*x, got 0x%0*x\n",
                  static_cast<long long>(x.b), static_cast<long long>(x.r), static_cast<long long>(x.c), ElemName(st),
                  st == ElemType::kF32 ? 8 : 4, x.src, ElemName(dt), dt == ElemType::kF32 ? 8 : 4, x.want,
                  dt == ElemType::kF32 ? 8 : 4, x.got);
    out += line;
  }
  return out;
}

}  // namespace testing
}  // namespace cuda
}  // namespace moe_adapter

#endif  // MOE_ADAPTER_TESTS_CUDA_TEST_UTIL_H_
