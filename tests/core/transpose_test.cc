// TransposeCastBlocked() must reproduce TransposeCastAten() byte for byte:
// every dtype pair, every kernel level this CPU has, odd shapes and strides,
// and the values where casts disagree most easily (NaN payloads, Inf,
// denormals, ties, overflow to Inf). The reference carries the project's one
// deviation from raw ATen (f32 -> bf16 NaN is always 0x7FC0), pinned below.
#include "core/transpose.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/cast.h"
#include "core/thread_pool.h"
#include "core/transpose_kernels.h"

namespace moe_adapter {
namespace {

using internal::TransposeIsa;

constexpr DType kDTypes[] = {DType::kF32, DType::kBF16, DType::kF16};

// Special values, as bit patterns of each dtype.
const std::vector<uint32_t> kF32Specials = {
    0x00000000, 0x80000000, 0x7F800000, 0xFF800000,              // zeros, infinities
    0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001,              // quiet / signalling NaN
    0x7FA5A5A5, 0xFFFFFFFF, 0x7FFFFFFF, 0x7F812345, 0xFFBFFFFF,  // payloads
    0x00000001, 0x80000001, 0x007FFFFF, 0x00400000,              // f32 denormals
    0x7F7FFFFF, 0xFF7FFFFF, 0x7F7F8000, 0x7F7F7FFF,              // max, round to Inf in bf16
    0x3F808000, 0x3F818000, 0x3F808001, 0x3F807FFF,              // bf16 ties and near-ties
    0x477FE000, 0x477FEFFF, 0x477FF000, 0x477FF001, 0xC77FF000,  // f16 max / overflow
    0x38800000, 0x387FFFFF, 0x33800000, 0x33000000, 0x33000001, 0x32FFFFFF,  // f16 subnormals
    0x3F801000, 0x3F803000, 0x3F800FFF, 0x3F801001,                          // f16 ties
};
const std::vector<uint16_t> kBF16Specials = {0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0xFFC0,
                                             0x7F81, 0xFF81, 0x7FFF, 0xFFFF, 0x0001, 0x8001,
                                             0x007F, 0x7F7F, 0xFF7F, 0x477F, 0x4780, 0x3380};
const std::vector<uint16_t> kF16Specials = {0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0xFE00,
                                            0x7C01, 0xFC01, 0x7D55, 0x7FFF, 0xFFFF, 0x0001,
                                            0x8001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF, 0x3C01};

// A byte buffer with a chosen misalignment from 64, filled with a sentinel so
// writes outside the transposed elements show up in the comparison.
class Buffer {
 public:
  Buffer(size_t bytes, size_t misalign)
      : storage_(new uint8_t[bytes + 128]),
        data_(storage_.get() + (64 - reinterpret_cast<uintptr_t>(storage_.get()) % 64) % 64 +
              misalign),
        bytes_(bytes) {
    std::memset(data_, 0xA5, bytes_);
  }
  uint8_t* data() { return data_; }
  size_t size() const { return bytes_; }

 private:
  std::unique_ptr<uint8_t[]> storage_;
  uint8_t* data_;
  size_t bytes_;
};

// Random values of `dtype`: mostly ordinary numbers, some raw bit patterns
// (NaNs and denormals among them) and the specials at random places.
void Fill(DType dtype, uint8_t* p, int64_t n, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> kind(0, 15);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t i = 0; i < n; ++i) {
    const int k = kind(rng);
    const uint64_t r = rng();
    const float f = normal(rng) * (k < 4 ? 1.0f : k < 6 ? 1e4f : k < 8 ? 1e-6f : 0.02f);
    uint32_t fbits;
    std::memcpy(&fbits, &f, 4);
    if (dtype == DType::kF32) {
      uint32_t v = fbits;
      if (k == 14) v = static_cast<uint32_t>(r);
      if (k == 15) v = kF32Specials[r % kF32Specials.size()];
      std::memcpy(p + 4 * i, &v, 4);
    } else {
      const auto& specials = dtype == DType::kBF16 ? kBF16Specials : kF16Specials;
      uint16_t v = dtype == DType::kBF16 ? cast::F32ToBF16(fbits, 0x7FC0) : cast::F32ToF16(fbits);
      if (k == 14) v = static_cast<uint16_t>(r);
      if (k == 15) v = specials[r % specials.size()];
      std::memcpy(p + 2 * i, &v, 2);
    }
  }
}

std::vector<TransposeIsa> Isas() {
  std::vector<TransposeIsa> isas = {TransposeIsa::kScalar};
  if (internal::DetectTransposeIsa() >= TransposeIsa::kAvx2) isas.push_back(TransposeIsa::kAvx2);
  if (internal::DetectTransposeIsa() >= TransposeIsa::kAvx512) {
    isas.push_back(TransposeIsa::kAvx512);
  }
  return isas;
}

const char* IsaName(TransposeIsa isa) {
  switch (isa) {
    case TransposeIsa::kAvx512:
      return "avx512";
    case TransposeIsa::kAvx2:
      return "avx2";
    default:
      return "scalar";
  }
}

std::string Describe(const TransposeArgs& a) {
  return std::string(DTypeName(a.src_dtype)) + "->" + std::string(DTypeName(a.dst_dtype)) + " " +
         std::to_string(a.rows) + "x" + std::to_string(a.cols) + " src_ld " +
         std::to_string(a.src_ld) + " dst_ld " + std::to_string(a.dst_ld);
}

// The first differing destination element, with its source bits, or "".
std::string FirstMismatch(const TransposeArgs& a, const uint8_t* got, const uint8_t* want,
                          size_t bytes) {
  const size_t ds = DTypeSize(a.dst_dtype), ss = DTypeSize(a.src_dtype);
  for (size_t i = 0; i < bytes; ++i) {
    if (got[i] == want[i]) continue;
    const size_t e = i / ds;
    const int64_t c = static_cast<int64_t>(e) / a.dst_ld, r = static_cast<int64_t>(e) % a.dst_ld;
    uint32_t g = 0, w = 0, s = 0;
    std::memcpy(&g, got + e * ds, ds);
    std::memcpy(&w, want + e * ds, ds);
    char buf[160];
    if (r < a.rows && c < a.cols) {
      std::memcpy(&s, static_cast<const uint8_t*>(a.src) + (r * a.src_ld + c) * ss, ss);
      std::snprintf(buf, sizeof(buf), "element (r=%ld, c=%ld): src %#x -> blocked %#x, aten %#x",
                    static_cast<long>(r), static_cast<long>(c), s, g, w);
    } else {
      std::snprintf(buf, sizeof(buf), "padding element %zu written: %#x vs %#x", e, g, w);
    }
    return buf;
  }
  return "";
}

struct Case {
  int64_t rows, cols, src_pad, dst_pad;
  size_t misalign;  // of both buffers, in bytes
};

// Runs one case for every ISA level against one reference result.
void CheckCase(DType src_dtype, DType dst_dtype, const Case& c, std::mt19937_64& rng,
               const uint8_t* src_override = nullptr) {
  const int64_t ss = static_cast<int64_t>(DTypeSize(src_dtype));
  const int64_t ds = static_cast<int64_t>(DTypeSize(dst_dtype));
  const int64_t src_ld = c.cols + c.src_pad, dst_ld = c.rows + c.dst_pad;
  // Allocate at least one element so pointers are valid even for empty slabs.
  Buffer src(static_cast<size_t>(std::max<int64_t>(1, c.rows * src_ld) * ss), c.misalign);
  if (src_override != nullptr) {
    std::memcpy(src.data(), src_override, src.size());
  } else {
    Fill(src_dtype, src.data(), static_cast<int64_t>(src.size()) / ss, rng);
  }
  const size_t dst_bytes = static_cast<size_t>(std::max<int64_t>(1, c.cols * dst_ld) * ds);
  Buffer want(dst_bytes, c.misalign);
  TransposeArgs a;
  a.src = src.data();
  a.src_dtype = src_dtype;
  a.src_ld = src_ld;
  a.dst = want.data();
  a.dst_dtype = dst_dtype;
  a.dst_ld = dst_ld;
  a.rows = c.rows;
  a.cols = c.cols;
  TransposeCastAten(a);
  for (TransposeIsa isa : Isas()) {
    internal::SetTransposeIsaForTesting(isa);
    Buffer got(dst_bytes, c.misalign);
    a.dst = got.data();
    TransposeCastBlocked(a);
    ASSERT_EQ(std::memcmp(got.data(), want.data(), dst_bytes), 0)
        << IsaName(isa) << " " << Describe(a) << " misalign " << c.misalign << ": "
        << FirstMismatch(a, got.data(), want.data(), dst_bytes);
  }
  internal::ResetTransposeIsaForTesting();
}

TEST(TransposeTest, MatchesAtenOnOddShapesAndStrides) {
  std::mt19937_64 rng(1234);
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {0, 0},   {0, 7},   {7, 0},   {1, 1},    {1, 257},   {257, 1},
      {2, 3},   {15, 17}, {16, 16}, {17, 131}, {131, 17},  {31, 33},
      {32, 32}, {33, 65}, {64, 64}, {96, 160}, {100, 300}, {300, 700}};
  for (DType s : kDTypes) {
    for (DType d : kDTypes) {
      for (const auto& [rows, cols] : shapes) {
        for (const auto& [src_pad, dst_pad] :
             std::vector<std::pair<int64_t, int64_t>>{{0, 0}, {3, 5}, {32, 1}}) {
          CheckCase(s, d, {rows, cols, src_pad, dst_pad, (rows + cols) % 3 == 0 ? 2u : 0u}, rng);
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

// Every 16-bit pattern as one 256 x 256 slab, through each pair it can start.
TEST(TransposeTest, EverySixteenBitPattern) {
  std::mt19937_64 rng(7);
  std::vector<uint16_t> all(65536);
  for (int i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  std::shuffle(all.begin(), all.end(), rng);
  for (DType s : {DType::kBF16, DType::kF16}) {
    for (DType d : kDTypes) {
      CheckCase(s, d, {256, 256, 0, 0, 0}, rng, reinterpret_cast<const uint8_t*>(all.data()));
      if (HasFatalFailure()) return;
    }
  }
}

// Qwen3-30B-A3B-sized slabs: the threaded, streaming path (aligned, ld a
// multiple of a line) and the same slab misaligned with odd strides.
TEST(TransposeTest, MatchesAtenOnLargeSlabs) {
  std::mt19937_64 rng(99);
  for (DType s : kDTypes) {
    for (DType d : kDTypes) {
      CheckCase(s, d, {2048, 768, 768, 0, 0}, rng);  // gate half of G[e] -> [I, H]
      if (HasFatalFailure()) return;
      CheckCase(s, d, {768, 2048, 0, 768, 0}, rng);  // gate [I, H] -> G[e][:, 0:I]
      if (HasFatalFailure()) return;
      CheckCase(s, d, {1031, 1543, 7, 9, 2}, rng);
      if (HasFatalFailure()) return;
      CheckCase(s, d, {70, 9001, 3, 64, 0}, rng);  // rows wide enough to be cut
      if (HasFatalFailure()) return;
    }
  }
}

TEST(TransposeTest, ThreadCountSetting) {
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  SetConversionThreads(0);
  EXPECT_EQ(ConversionThreads(), hw);
  SetConversionThreads(3);
  EXPECT_EQ(ConversionThreads(), 3);
  SetConversionThreads(-2);
  EXPECT_EQ(ConversionThreads(), hw);

  std::mt19937_64 rng(5);
  for (int threads : {1, 2, 3, 7}) {
    SetConversionThreads(threads);
    CheckCase(DType::kBF16, DType::kBF16, {1024, 1536, 0, 0, 0}, rng);
    CheckCase(DType::kF32, DType::kBF16, {777, 1029, 3, 1, 0}, rng);
    if (HasFatalFailure()) break;
  }
  EXPECT_GE(internal::WorkerPool::Get().NumWorkers(), 6);
  SetConversionThreads(0);
}

TEST(TransposeTest, ConcurrentCallersGetCorrectResults) {
  constexpr int kThreads = 4;
  constexpr int kIters = 12;
  struct Job {
    TransposeArgs args;
    std::unique_ptr<Buffer> src, want, got;
  };
  std::mt19937_64 rng(42);
  std::vector<Job> jobs(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    Job& j = jobs[t];
    const DType s = kDTypes[t % 3], d = kDTypes[(t + 1) % 3];
    const int64_t rows = 1024 + 64 * t, cols = 768 + 32 * t;
    j.src = std::make_unique<Buffer>(rows * cols * DTypeSize(s), 0);
    j.want = std::make_unique<Buffer>(rows * cols * DTypeSize(d), 0);
    j.got = std::make_unique<Buffer>(rows * cols * DTypeSize(d), 0);
    Fill(s, j.src->data(), rows * cols, rng);
    j.args = {j.src->data(), s, cols, j.want->data(), d, rows, rows, cols};
    TransposeCastAten(j.args);
    j.args.dst = j.got->data();
  }
  std::vector<int> failures(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Job& j = jobs[t];
      for (int it = 0; it < kIters; ++it) {
        std::memset(j.got->data(), 0, j.got->size());
        TransposeCastBlocked(j.args);
        if (std::memcmp(j.got->data(), j.want->data(), j.got->size()) != 0) ++failures[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
}

// The NaN patterns of the reference, pinned so that a libtorch upgrade that
// changes them is noticed here and not as a silent checkpoint difference.
TEST(TransposeTest, NaNPatternsOfTheReference) {
  auto one = [](DType s, DType d, uint32_t in) {
    uint32_t out = 0;
    TransposeArgs a{&in, s, 1, &out, d, 1, 1, 1};
    TransposeCastAten(a);
    return out;
  };
  // Raw ATen gives 0xFFFF from its AVX2/AVX-512 kernels and 0x7FC0 from its
  // portable one; the project (and so the reference) always writes 0x7FC0.
  EXPECT_EQ(one(DType::kF32, DType::kBF16, 0x7FC00000), 0x7FC0u);
  EXPECT_EQ(one(DType::kF32, DType::kBF16, 0xFF800001), 0x7FC0u);
  // The fast path's side of that rule, on every kernel level.
  for (TransposeIsa isa : Isas()) {
    internal::SetTransposeIsaForTesting(isa);
    const uint32_t nans[4] = {0x7FC00000, 0xFF800001, 0x7FA5A5A5, 0xFFFFFFFF};
    uint16_t out[4] = {};
    TransposeCastBlocked({nans, DType::kF32, 4, out, DType::kBF16, 1, 1, 4});
    for (uint16_t o : out) EXPECT_EQ(o, cast::kBF16NaNScalar) << IsaName(isa);
  }
  internal::ResetTransposeIsaForTesting();
  EXPECT_EQ(one(DType::kF32, DType::kF16, 0xFF800001), 0xFE00u);
  EXPECT_EQ(one(DType::kF32, DType::kF16, 0x7FA5A5A5), 0x7E00u);
  EXPECT_EQ(one(DType::kBF16, DType::kF16, 0xFF81), 0xFE00u);
  EXPECT_EQ(one(DType::kF16, DType::kBF16, 0xFC01), 0x7FC0u);
  EXPECT_EQ(one(DType::kF16, DType::kF32, 0x7C01), 0x7FC02000u);
  EXPECT_EQ(one(DType::kBF16, DType::kF32, 0xFF81), 0xFF810000u);
}

}  // namespace
}  // namespace moe_adapter
