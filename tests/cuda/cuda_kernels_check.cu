// cuda_kernels_check: correctness tests and benchmarks of the CUDA expert
// transpose kernels and of CudaExpertConverter. Standalone (static cudart and
// libstdc++), so it runs on a GPU host that has none of the project's
// libraries. With no usable GPU it prints "no CUDA device: <reason>" and a
// SKIPPED line and exits 0.
//
//   cuda_kernels_check [--quick] [--small-only] [--smoke] [--no-bench] [--no-e2e-big] [--reps N] [--version]
//     --quick       big-shape checks for bf16 sources only
//     --small-only  small shapes only, no benchmarks (e.g. under compute-sanitizer)
//     --smoke       small-shape checks, then benchmarks on tiny shapes (tests this program; numbers meaningless)
//
// (a) correctness, byte-exact against a scalar CPU reference built from the
//     same conversion functions (elem_convert.cuh, themselves checked
//     exhaustively against torch's c10 conversions): odd and aligned shapes,
//     all 9 dtype pairs, both directions, every kernel variant, all 65536
//     16-bit patterns, special values and rounding ties, padded strides,
//     untouched guard bytes; the converter's contiguous/per-expert, pinned/
//     pageable and multi-chunk paths, and a round trip.
// (b) benchmarks: kernel bandwidth (bytes read + written / time, median of N
//     cudaEvent-timed runs) against cudaMemcpy device-to-device of the same
//     bytes in the same run; end-to-end host->device->host through the
//     converter against a pinned-copy pipeline of the same bytes and chunks.
// Exit status: 0 = all checks passed (or skipped: no GPU), 1 = a failure.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/cuda/cuda_convert.h"
#include "core/cuda/transpose_kernels.h"
#include "tests/cuda/test_util.h"

namespace mc = moe_adapter::cuda;
namespace mt = moe_adapter::cuda::testing;
using mc::DeviceTransposeArgs;
using mc::ElemType;
using mc::TransposeVariant;

namespace {

// ---------------------------------------------------------------------------
// Small utilities.

int g_threads = 1;
bool g_small_only = false;
int g_cases = 0;
int g_failed = 0;

void Fail(const std::string& msg) {
  ++g_failed;
  std::printf("  FAIL %s\n", msg.c_str());
  std::fflush(stdout);
}

#define CK(call)                                                                                   \
  do {                                                                                             \
    const cudaError_t e_ = (call);                                                                 \
    if (e_ != cudaSuccess) {                                                                       \
      std::printf("FATAL: %s:%d %s -> %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorName(e_), \
                  cudaGetErrorString(e_));                                                         \
      std::printf("RESULT: FAIL (CUDA error)\n");                                                  \
      std::exit(1);                                                                                \
    }                                                                                              \
  } while (0)

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

const ElemType kTypes[] = {ElemType::kF32, ElemType::kBF16, ElemType::kF16};

struct DevBuf {
  void* p = nullptr;
  size_t bytes = 0;
  void Ensure(size_t n) {
    if (bytes >= n) return;
    if (p != nullptr) CK(cudaFree(p));
    p = nullptr;
    CK(cudaMalloc(&p, n));
    bytes = n;
  }
  void Release() {
    if (p != nullptr) cudaFree(p);
    p = nullptr;
    bytes = 0;
  }
  ~DevBuf() { Release(); }
};

struct PinBuf {
  void* p = nullptr;
  size_t bytes = 0;
  void Ensure(size_t n) {
    if (bytes >= n) return;
    if (p != nullptr) CK(cudaFreeHost(p));
    p = nullptr;
    CK(cudaHostAlloc(&p, n, cudaHostAllocPortable));
    bytes = n;
  }
  void Release() {
    if (p != nullptr) cudaFreeHost(p);
    p = nullptr;
    bytes = 0;
  }
  ~PinBuf() { Release(); }
};

// ---------------------------------------------------------------------------
// Layer layouts.

enum class Dir { kToHf, kFromHf };
enum class Part { kGateUp, kDown };

const char* DirName(Dir d) { return d == Dir::kToHf ? "ToHf" : "FromHf"; }
const char* PartName(Part p) { return p == Part::kGateUp ? "gate_up" : "down"; }

// The transpose one part of a layer conversion is (contiguous buffers).
DeviceTransposeArgs LayerArgs(Dir d, Part p, int64_t E, int64_t H, int64_t I, ElemType st, ElemType dt) {
  DeviceTransposeArgs a;
  a.src_type = st;
  a.dst_type = dt;
  a.batch = E;
  if (d == Dir::kToHf) {
    a.rows = p == Part::kGateUp ? H : I;
    a.cols = p == Part::kGateUp ? 2 * I : H;
  } else {
    a.rows = p == Part::kGateUp ? 2 * I : H;
    a.cols = p == Part::kGateUp ? H : I;
  }
  a.src_ld = a.cols;
  a.dst_ld = a.rows;
  a.src_batch_stride = a.dst_batch_stride = a.rows * a.cols;
  return a;
}

int64_t Elems(const DeviceTransposeArgs& a) { return a.batch * a.rows * a.cols; }

// ---------------------------------------------------------------------------
// (a) Kernel correctness.

constexpr size_t kGuard = 4096;
constexpr unsigned char kPoison = 0xA5;

struct KernelCtx {
  DevBuf d_src[2], d_dst[2];
  PinBuf h_src[2], h_dst[2];
};

// Runs one layer conversion (both parts) of already-uploaded inputs with the
// given variant (kAuto = through LaunchToHf/LaunchFromHf) and checks it.
void CheckLayer(KernelCtx& c, Dir d, int64_t E, int64_t H, int64_t I, ElemType st, ElemType dt, TransposeVariant v,
                bool full_untouched_check) {
  DeviceTransposeArgs a[2] = {LayerArgs(d, Part::kGateUp, E, H, I, st, dt), LayerArgs(d, Part::kDown, E, H, I, st, dt)};
  size_t dst_bytes[2];
  for (int k = 0; k < 2; ++k) {
    dst_bytes[k] = static_cast<size_t>(Elems(a[k])) * mc::ElemSize(dt);
    c.d_dst[k].Ensure(dst_bytes[k] + kGuard);
    c.h_dst[k].Ensure(dst_bytes[k] + kGuard);
    CK(cudaMemset(c.d_dst[k].p, kPoison, dst_bytes[k] + kGuard));
    a[k].src = c.d_src[k].p;
    a[k].dst = c.d_dst[k].p;
  }
  std::string why;
  int rc = 0;
  if (v == TransposeVariant::kAuto) {
    rc = d == Dir::kToHf ? mc::LaunchToHf(a[0].src, a[1].src, E, H, I, st, dt, a[0].dst, a[1].dst, nullptr, &why)
                         : mc::LaunchFromHf(a[0].src, a[1].src, E, H, I, st, dt, a[0].dst, a[1].dst, nullptr, &why);
  } else {
    for (int k = 0; k < 2 && rc == 0; ++k) rc = mc::LaunchTransposeCast(a[k], nullptr, v, &why);
  }
  char label[200];
  std::snprintf(label, sizeof(label), "%s E=%lld H=%lld I=%lld %s->%s %s", DirName(d), (long long)E, (long long)H,
                (long long)I, mc::ElemName(st), mc::ElemName(dt), mc::TransposeVariantName(v));
  ++g_cases;
  if (rc != 0) {
    Fail(std::string(label) + ": launch: " + why);
    return;
  }
  CK(cudaDeviceSynchronize());
  bool ok = true;
  std::string detail;
  for (int k = 0; k < 2; ++k) {
    CK(cudaMemcpy(c.h_dst[k].p, c.d_dst[k].p, dst_bytes[k] + kGuard, cudaMemcpyDeviceToHost));
    DeviceTransposeArgs ha = a[k];
    std::vector<mt::Mismatch> first;
    const int64_t bad = mt::CheckTranspose(ha, c.h_src[k].p, c.h_dst[k].p, g_threads, &first);
    int64_t stray = 0;
    const unsigned char* g = static_cast<const unsigned char*>(c.h_dst[k].p) + dst_bytes[k];
    for (size_t i = 0; i < kGuard; ++i) stray += g[i] != kPoison;
    if (full_untouched_check) stray += mt::CheckUntouched(ha, c.h_dst[k].p, dst_bytes[k] + kGuard, kPoison);
    if (bad != 0 || stray != 0) {
      ok = false;
      char line[200];
      std::snprintf(line, sizeof(line), "\n    %s: %lld wrong elements, %lld stray bytes\n", PartName(k ? Part::kDown : Part::kGateUp),
                    (long long)bad, (long long)stray);
      detail += line + mt::DescribeMismatches(first, st, dt);
    }
  }
  if (!ok) Fail(std::string(label) + detail);
}

void UploadLayerInputs(KernelCtx& c, Dir d, int64_t E, int64_t H, int64_t I, ElemType st, uint64_t seed) {
  for (int k = 0; k < 2; ++k) {
    const DeviceTransposeArgs a = LayerArgs(d, k ? Part::kDown : Part::kGateUp, E, H, I, st, st);
    const size_t bytes = static_cast<size_t>(Elems(a)) * mc::ElemSize(st);
    c.h_src[k].Ensure(bytes + 16);
    c.d_src[k].Ensure(bytes + 16);
    mt::Fill(c.h_src[k].p, st, Elems(a), seed * 2 + static_cast<uint64_t>(k), g_threads);
    CK(cudaMemcpy(c.d_src[k].p, c.h_src[k].p, bytes, cudaMemcpyHostToDevice));
  }
}

// Raw transposes with padded strides and odd sizes, and the all-16-bit-values
// inputs (rows*cols = 65536 patterns, value = index).
void CheckRaw(KernelCtx& c, int64_t B, int64_t R, int64_t C, int64_t sp, int64_t dp, int64_t bp, bool all16) {
  for (ElemType st : kTypes) {
    if (all16 && st == ElemType::kF32) continue;
    DeviceTransposeArgs a;
    a.src_type = st;
    a.batch = B;
    a.rows = R;
    a.cols = C;
    a.src_ld = C + sp;
    a.src_batch_stride = R * a.src_ld + bp;
    const size_t src_elems = static_cast<size_t>((B - 1) * a.src_batch_stride + R * a.src_ld);
    const size_t src_bytes = src_elems * mc::ElemSize(st);
    c.h_src[0].Ensure(src_bytes);
    c.d_src[0].Ensure(src_bytes);
    if (all16) {
      for (size_t i = 0; i < src_elems; ++i) mt::StoreBits(c.h_src[0].p, st, static_cast<int64_t>(i), static_cast<uint32_t>(i & 0xFFFF));
    } else {
      mt::Fill(c.h_src[0].p, st, static_cast<int64_t>(src_elems), 77 + B * 1000 + R * 10 + C, g_threads);
    }
    CK(cudaMemcpy(c.d_src[0].p, c.h_src[0].p, src_bytes, cudaMemcpyHostToDevice));
    for (ElemType dt : kTypes) {
      a.dst_type = dt;
      a.dst_ld = R + dp;
      a.dst_batch_stride = C * a.dst_ld + bp;
      const size_t dst_elems = static_cast<size_t>((B - 1) * a.dst_batch_stride + C * a.dst_ld);
      const size_t dst_bytes = dst_elems * mc::ElemSize(dt) + kGuard;
      c.d_dst[0].Ensure(dst_bytes);
      c.h_dst[0].Ensure(dst_bytes);
      for (TransposeVariant v : {TransposeVariant::kAuto, TransposeVariant::kVectorWide, TransposeVariant::kVectorTall,
                                 TransposeVariant::kTiledScalar}) {
        a.src = c.d_src[0].p;
        a.dst = c.d_dst[0].p;
        const bool vec = v == TransposeVariant::kVectorWide || v == TransposeVariant::kVectorTall;
        if (vec && !mc::VectorPathOk(a)) continue;
        CK(cudaMemset(c.d_dst[0].p, kPoison, dst_bytes));
        std::string why;
        char label[200];
        std::snprintf(label, sizeof(label), "raw B=%lld R=%lld C=%lld pads(%lld,%lld,%lld)%s %s->%s %s", (long long)B,
                      (long long)R, (long long)C, (long long)sp, (long long)dp, (long long)bp, all16 ? " all-16-bit" : "",
                      mc::ElemName(st), mc::ElemName(dt), mc::TransposeVariantName(v));
        ++g_cases;
        const int rc = mc::LaunchTransposeCast(a, nullptr, v, &why);
        if (rc != 0) {
          Fail(std::string(label) + ": " + why);
          continue;
        }
        CK(cudaDeviceSynchronize());
        CK(cudaMemcpy(c.h_dst[0].p, c.d_dst[0].p, dst_bytes, cudaMemcpyDeviceToHost));
        std::vector<mt::Mismatch> first;
        const int64_t bad = mt::CheckTranspose(a, c.h_src[0].p, c.h_dst[0].p, g_threads, &first);
        const int64_t stray = mt::CheckUntouched(a, c.h_dst[0].p, dst_bytes, kPoison);
        if (bad != 0 || stray != 0) {
          Fail(std::string(label) + ": " + std::to_string(bad) + " wrong, " + std::to_string(stray) + " stray bytes\n" +
               mt::DescribeMismatches(first, st, dt));
        }
      }
    }
  }
}

void KernelCorrectness(bool quick) {
  std::printf("\n== (a) kernel correctness (byte-exact vs CPU reference) ==\n");
  const double t0 = Now();
  KernelCtx c;
  struct S {
    int64_t E, H, I;
  };
  const std::vector<S> small = {{3, 17, 5}, {8, 33, 100}, {4, 40, 24}, {2, 64, 8}, {1, 1, 1}, {5, 264, 72},
                                {3, 20, 6}};
  uint64_t seed = 1000;
  for (const S& s : small) {
    for (Dir d : {Dir::kToHf, Dir::kFromHf}) {
      for (ElemType st : kTypes) {
        UploadLayerInputs(c, d, s.E, s.H, s.I, st, seed++);
        for (ElemType dt : kTypes) {
          for (TransposeVariant v : {TransposeVariant::kAuto, TransposeVariant::kVectorWide,
                                     TransposeVariant::kVectorTall, TransposeVariant::kTiledScalar}) {
            const bool vec = v == TransposeVariant::kVectorWide || v == TransposeVariant::kVectorTall;
            DeviceTransposeArgs probe = LayerArgs(d, Part::kGateUp, s.E, s.H, s.I, st, dt);
            DeviceTransposeArgs probe2 = LayerArgs(d, Part::kDown, s.E, s.H, s.I, st, dt);
            probe.src = probe2.src = c.d_src[0].p;
            probe.dst = probe2.dst = c.d_src[0].p;  // any 256-byte aligned pointer
            if (vec && !(mc::VectorPathOk(probe) && mc::VectorPathOk(probe2))) continue;
            CheckLayer(c, d, s.E, s.H, s.I, st, dt, v, true);
          }
        }
      }
    }
  }
  std::printf("  small layer shapes: %d cases, %d failed (%.1f s)\n", g_cases, g_failed, Now() - t0);
  CheckRaw(c, 2, 33, 200, 3, 5, 7, false);
  CheckRaw(c, 3, 24, 40, 8, 8, 8, false);
  CheckRaw(c, 1, 256, 256, 0, 0, 0, true);
  CheckRaw(c, 2, 128, 512, 0, 0, 0, true);
  std::printf("  + raw strided / all-16-bit: %d cases, %d failed (%.1f s)\n", g_cases, g_failed, Now() - t0);
  // The Qwen3-30B-A3B layer, all 9 pairs both ways through the API (auto
  // variant), and every variant for bf16 -> bf16.
  if (g_small_only) return;
  const int64_t E = 128, H = 2048, I = 768;
  for (Dir d : {Dir::kToHf, Dir::kFromHf}) {
    for (ElemType st : kTypes) {
      if (quick && st != ElemType::kBF16) continue;
      UploadLayerInputs(c, d, E, H, I, st, seed++);
      for (ElemType dt : kTypes) {
        CheckLayer(c, d, E, H, I, st, dt, TransposeVariant::kAuto, false);
        if (st == ElemType::kBF16 && dt == ElemType::kBF16) {
          CheckLayer(c, d, E, H, I, st, dt, TransposeVariant::kVectorWide, false);
          CheckLayer(c, d, E, H, I, st, dt, TransposeVariant::kVectorTall, false);
          CheckLayer(c, d, E, H, I, st, dt, TransposeVariant::kTiledScalar, false);
        }
      }
    }
    std::printf("  + E=128 H=2048 I=768 %s: %d cases, %d failed (%.1f s)\n", DirName(d), g_cases, g_failed,
                Now() - t0);
  }
  for (int k = 0; k < 2; ++k) {
    c.d_src[k].Release();
    c.d_dst[k].Release();
    c.h_src[k].Release();
    c.h_dst[k].Release();
  }
}

// ---------------------------------------------------------------------------
// (a) Converter correctness.

struct HostMem {
  // Pageable (vector) or pinned (AllocPinned) host buffer.
  std::vector<unsigned char> pageable;
  void* pinned = nullptr;
  size_t bytes = 0;
  HostMem(size_t n, bool pin) : bytes(n) {
    if (pin) {
      const mc::CudaStatus st = mc::AllocPinned(n, &pinned);
      if (!st.ok()) {
        std::printf("FATAL: AllocPinned: %s\n", st.message.c_str());
        std::exit(1);
      }
    } else {
      pageable.resize(n == 0 ? 1 : n);
    }
  }
  ~HostMem() { mc::FreePinned(pinned); }
  void* p() { return pinned != nullptr ? pinned : pageable.data(); }
  HostMem(const HostMem&) = delete;
  HostMem& operator=(const HostMem&) = delete;
};

// Checks one part's output held in per-expert pieces: item e of the logical
// [E, C, R] destination is split into `np` row-ranges at ptrs[e*np + j].
int64_t CheckSplit(const DeviceTransposeArgs& a, const void* src, const std::vector<void*>& dst_ptrs, int np,
                   std::vector<mt::Mismatch>* first) {
  int64_t bad = 0;
  const int64_t cpp = a.cols / np;  // destination rows (src columns) per piece
  for (int64_t e = 0; e < a.batch; ++e) {
    for (int j = 0; j < np; ++j) {
      DeviceTransposeArgs s = a;
      s.batch = 1;
      s.cols = cpp;
      s.src = static_cast<const char*>(src) +
              static_cast<size_t>(e * a.src_batch_stride + j * cpp) * mc::ElemSize(a.src_type);
      s.dst_ld = a.rows;
      bad += mt::CheckTranspose(s, s.src, dst_ptrs[static_cast<size_t>(e * np + j)], 1, first);
    }
  }
  return bad;
}

// Checks a FromHf output from per-expert input pieces: piece j of expert e is
// [rows/np, cols] at ptrs[e*np+j]; output item e is [cols, rows].
int64_t CheckGather(const DeviceTransposeArgs& a, const std::vector<void*>& src_ptrs, int np, const void* dst,
                    std::vector<mt::Mismatch>* first) {
  int64_t bad = 0;
  const int64_t rpp = a.rows / np;
  for (int64_t e = 0; e < a.batch; ++e) {
    for (int j = 0; j < np; ++j) {
      DeviceTransposeArgs s = a;
      s.batch = 1;
      s.rows = rpp;
      s.src_ld = a.cols;
      s.dst_ld = a.rows;
      const void* sp = src_ptrs[static_cast<size_t>(e * np + j)];
      const void* dp = static_cast<const char*>(dst) +
                       static_cast<size_t>(e * a.dst_batch_stride + j * rpp) * mc::ElemSize(a.dst_type);
      bad += mt::CheckTranspose(s, sp, dp, 1, first);
    }
  }
  return bad;
}

void ConverterCase(int64_t E, int64_t H, int64_t I, ElemType st, ElemType dt, bool pin_in, bool pin_out,
                   bool experts, int64_t chunk_bytes, int buffers, uint64_t seed) {
  mc::CudaConverterOptions o;
  o.chunk_bytes = chunk_bytes;
  o.num_buffers = buffers;
  std::unique_ptr<mc::CudaExpertConverter> conv;
  mc::CudaStatus cs = mc::CudaExpertConverter::Create(o, &conv);
  char label[240];
  std::snprintf(label, sizeof(label), "converter E=%lld H=%lld I=%lld %s->%s in:%s out:%s %s chunk=%lld bufs=%d",
                (long long)E, (long long)H, (long long)I, mc::ElemName(st), mc::ElemName(dt),
                pin_in ? "pinned" : "pageable", pin_out ? "pinned" : "pageable", experts ? "per-expert" : "contiguous",
                (long long)chunk_bytes, buffers);
  ++g_cases;
  if (!cs.ok()) {
    Fail(std::string(label) + ": Create: " + cs.message);
    return;
  }
  const size_t ss = mc::ElemSize(st), ds = mc::ElemSize(dt);
  const int64_t n_gu = E * H * 2 * I, n_dn = E * I * H;
  std::string detail;
  int64_t bad = 0;
  // --- ToHf
  {
    HostMem G(static_cast<size_t>(n_gu) * ss, pin_in), D(static_cast<size_t>(n_dn) * ss, pin_in);
    mt::Fill(G.p(), st, n_gu, seed, g_threads);
    mt::Fill(D.p(), st, n_dn, seed + 1, g_threads);
    const DeviceTransposeArgs agu = LayerArgs(Dir::kToHf, Part::kGateUp, E, H, I, st, dt);
    const DeviceTransposeArgs adn = LayerArgs(Dir::kToHf, Part::kDown, E, H, I, st, dt);
    std::vector<mt::Mismatch> first;
    if (!experts) {
      HostMem OG(static_cast<size_t>(n_gu) * ds, pin_out), OD(static_cast<size_t>(n_dn) * ds, pin_out);
      std::memset(OG.p(), kPoison, OG.bytes);
      std::memset(OD.p(), kPoison, OD.bytes);
      cs = conv->ToHf(G.p(), D.p(), E, H, I, st, dt, OG.p(), OD.p());
      if (!cs.ok()) {
        Fail(std::string(label) + ": ToHf: " + cs.message);
        return;
      }
      bad += mt::CheckTranspose(agu, G.p(), OG.p(), g_threads, &first);
      bad += mt::CheckTranspose(adn, D.p(), OD.p(), g_threads, &first);
      // Round trip: FromHf of the output gives the input back (same dtype).
      if (st == dt) {
        HostMem RG(static_cast<size_t>(n_gu) * ss, pin_in), RD(static_cast<size_t>(n_dn) * ss, pin_in);
        cs = conv->FromHf(OG.p(), OD.p(), E, H, I, dt, st, RG.p(), RD.p());
        if (!cs.ok()) {
          Fail(std::string(label) + ": FromHf (round trip): " + cs.message);
          return;
        }
        if (std::memcmp(RG.p(), G.p(), G.bytes) != 0 || std::memcmp(RD.p(), D.p(), D.bytes) != 0) {
          detail += " round trip differs;";
          ++bad;
        }
      }
    } else {
      std::vector<std::unique_ptr<HostMem>> bufs;
      std::vector<void*> gate(static_cast<size_t>(E)), up(static_cast<size_t>(E)), down(static_cast<size_t>(E));
      std::vector<void*> gu_pieces, dn_pieces;
      for (int64_t e = 0; e < E; ++e) {
        for (int k = 0; k < 3; ++k) {
          bufs.emplace_back(new HostMem(static_cast<size_t>(I * H) * ds, pin_out));
          std::memset(bufs.back()->p(), kPoison, bufs.back()->bytes);
        }
        gate[e] = bufs[bufs.size() - 3]->p();
        up[e] = bufs[bufs.size() - 2]->p();
        down[e] = bufs[bufs.size() - 1]->p();
        gu_pieces.push_back(gate[e]);
        gu_pieces.push_back(up[e]);
        dn_pieces.push_back(down[e]);
      }
      cs = conv->ToHfExperts(G.p(), D.p(), E, H, I, st, dt, gate.data(), up.data(), down.data());
      if (!cs.ok()) {
        Fail(std::string(label) + ": ToHfExperts: " + cs.message);
        return;
      }
      bad += CheckSplit(agu, G.p(), gu_pieces, 2, &first);
      bad += CheckSplit(adn, D.p(), dn_pieces, 1, &first);
    }
    if (bad != 0) detail += " ToHf:\n" + mt::DescribeMismatches(first, st, dt);
  }
  // --- FromHf
  {
    const DeviceTransposeArgs agu = LayerArgs(Dir::kFromHf, Part::kGateUp, E, H, I, st, dt);
    const DeviceTransposeArgs adn = LayerArgs(Dir::kFromHf, Part::kDown, E, H, I, st, dt);
    HostMem OG(static_cast<size_t>(n_gu) * ds, pin_out), OD(static_cast<size_t>(n_dn) * ds, pin_out);
    std::memset(OG.p(), kPoison, OG.bytes);
    std::memset(OD.p(), kPoison, OD.bytes);
    std::vector<mt::Mismatch> first;
    int64_t bad2 = 0;
    if (!experts) {
      HostMem GU(static_cast<size_t>(n_gu) * ss, pin_in), DN(static_cast<size_t>(n_dn) * ss, pin_in);
      mt::Fill(GU.p(), st, n_gu, seed + 2, g_threads);
      mt::Fill(DN.p(), st, n_dn, seed + 3, g_threads);
      cs = conv->FromHf(GU.p(), DN.p(), E, H, I, st, dt, OG.p(), OD.p());
      if (!cs.ok()) {
        Fail(std::string(label) + ": FromHf: " + cs.message);
        return;
      }
      bad2 += mt::CheckTranspose(agu, GU.p(), OG.p(), g_threads, &first);
      bad2 += mt::CheckTranspose(adn, DN.p(), OD.p(), g_threads, &first);
    } else {
      std::vector<std::unique_ptr<HostMem>> bufs;
      std::vector<const void*> gate, up, down;
      std::vector<void*> gu_pieces, dn_pieces;
      uint64_t sd = seed + 10;
      for (int64_t e = 0; e < E; ++e) {
        for (int k = 0; k < 3; ++k) {
          bufs.emplace_back(new HostMem(static_cast<size_t>(I * H) * ss, pin_in));
          mt::Fill(bufs.back()->p(), st, I * H, sd++, 1);
        }
        gate.push_back(bufs[bufs.size() - 3]->p());
        up.push_back(bufs[bufs.size() - 2]->p());
        down.push_back(bufs[bufs.size() - 1]->p());
        gu_pieces.push_back(bufs[bufs.size() - 3]->p());
        gu_pieces.push_back(bufs[bufs.size() - 2]->p());
        dn_pieces.push_back(bufs[bufs.size() - 1]->p());
      }
      cs = conv->FromHfExperts(gate.data(), up.data(), down.data(), E, H, I, st, dt, OG.p(), OD.p());
      if (!cs.ok()) {
        Fail(std::string(label) + ": FromHfExperts: " + cs.message);
        return;
      }
      bad2 += CheckGather(agu, gu_pieces, 2, OG.p(), &first);
      bad2 += CheckGather(adn, dn_pieces, 1, OD.p(), &first);
    }
    if (bad2 != 0) detail += " FromHf:\n" + mt::DescribeMismatches(first, st, dt);
    bad += bad2;
  }
  if (bad != 0) Fail(std::string(label) + ": " + std::to_string(bad) + " wrong elements;" + detail);
}

void ConverterCorrectness(bool quick) {
  std::printf("\n== (a) converter correctness (host -> device -> host) ==\n");
  const double t0 = Now();
  const int c0 = g_cases, f0 = g_failed;
  uint64_t seed = 5000;
  // Small chunks force several chunks per tensor and a partial last chunk.
  for (ElemType st : kTypes) {
    for (ElemType dt : kTypes) {
      for (int mode = 0; mode < 4; ++mode) {
        const bool pin_in = mode & 1, pin_out = mode & 2;
        ConverterCase(3, 17, 5, st, dt, pin_in, pin_out, false, 17 * 10 * 4, 2, seed++);
        ConverterCase(10, 64, 40, st, dt, pin_in, pin_out, false, 3 * 64 * 80 * 2, 2, seed++);
        ConverterCase(10, 64, 40, st, dt, pin_in, pin_out, true, 3 * 64 * 80 * 2, 2, seed++);
      }
      ConverterCase(7, 33, 100, st, dt, false, false, true, 1, 3, seed++);
      ConverterCase(7, 40, 24, st, dt, true, false, true, 1 << 20, 1, seed++);
    }
  }
  // A real layer with the default options.
  if (!g_small_only) {
    ConverterCase(128, 2048, 768, ElemType::kBF16, ElemType::kBF16, false, false, false, 64 << 20, 2, seed++);
  }
  if (!quick && !g_small_only) {
    ConverterCase(128, 2048, 768, ElemType::kBF16, ElemType::kBF16, true, true, false, 64 << 20, 2, seed++);
    ConverterCase(128, 2048, 768, ElemType::kF32, ElemType::kBF16, true, false, true, 64 << 20, 2, seed++);
  }
  // Argument errors come back as statuses.
  {
    std::unique_ptr<mc::CudaExpertConverter> conv;
    mc::CudaStatus st = mc::CudaExpertConverter::Create({}, &conv);
    ++g_cases;
    if (!st.ok()) {
      Fail("Create(default): " + st.message);
    } else {
      char b[16];
      const mc::CudaStatus e1 = conv->ToHf(b, nullptr, -1, 1, 1, ElemType::kBF16, ElemType::kBF16, b, nullptr);
      const mc::CudaStatus e2 = conv->ToHf(b, nullptr, 1, 1, 1, ElemType::kBF16, ElemType::kBF16, nullptr, nullptr);
      const mc::CudaStatus e3 = conv->ToHf(b, nullptr, 1, 1, 1, static_cast<ElemType>(9), ElemType::kBF16, b, nullptr);
      const mc::CudaStatus e4 = conv->ToHf(nullptr, nullptr, 0, 0, 0, ElemType::kBF16, ElemType::kBF16, nullptr, nullptr);
      mc::CudaConverterOptions bad_opts;
      bad_opts.device = 999;
      std::unique_ptr<mc::CudaExpertConverter> conv2;
      const mc::CudaStatus e5 = mc::CudaExpertConverter::Create(bad_opts, &conv2);
      if (e1.code != mc::kCudaInvalidArgument || e2.code != mc::kCudaInvalidArgument ||
          e3.code != mc::kCudaInvalidArgument || !e4.ok() || e5.code != mc::kCudaNoDevice || conv2 != nullptr) {
        Fail("converter argument errors: " + e1.message + " | " + e2.message + " | " + e3.message + " | " +
             e4.message + " | " + e5.message);
      } else {
        std::printf("  error statuses ok, e.g. \"%s\", \"%s\"\n", e1.message.c_str(), e5.message.c_str());
      }
    }
  }
  std::printf("  converter: %d cases, %d failed (%.1f s)\n", g_cases - c0, g_failed - f0, Now() - t0);
}

// ---------------------------------------------------------------------------
// (b) Benchmarks.

struct Row {
  std::string shape, op, types, variant;
  double gbps = 0, base_gbps = 0, ratio = 0, target = 0;
  std::string note;
};
std::vector<Row> g_rows;
int g_reps = 30;

#if defined(__CUDACC__)
__global__ void FillKernel(uint16_t* p16, uint32_t* p32, int64_t n, uint64_t seed) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint64_t x = static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull ^ seed;
    x = (x ^ (x >> 31)) * 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    const uint32_t r = static_cast<uint32_t>(x);
    // Ordinary values (|x| in about [2^-8, 2^8]): what real weights look like.
    const uint32_t f = (r & 0x807FFFFFu) | ((119u + ((r >> 23) & 15u)) << 23);
    if (p32 != nullptr) {
      p32[i] = f;
    } else {
      p16[i] = static_cast<uint16_t>(f >> 16);
    }
  }
}

void DeviceFill(void* p, ElemType t, int64_t n, uint64_t seed) {
  if (t == ElemType::kF32) {
    FillKernel<<<2048, 256>>>(nullptr, static_cast<uint32_t*>(p), n, seed);
  } else {
    FillKernel<<<2048, 256>>>(static_cast<uint16_t*>(p), nullptr, n, seed);
  }
  CK(cudaGetLastError());
  CK(cudaDeviceSynchronize());
}
#else
// Host build against a mock runtime (a CPU-only test of this program's logic).
void DeviceFill(void* p, ElemType t, int64_t n, uint64_t seed) {
  std::vector<unsigned char> h(static_cast<size_t>(n) * mc::ElemSize(t));
  mt::Fill(h.data(), t, n, seed, g_threads);
  CK(cudaMemcpy(p, h.data(), h.size(), cudaMemcpyHostToDevice));
}
#endif

// Median milliseconds of fn() over reps, timed with events on the default stream.
double TimeMs(const std::function<void()>& fn, int reps) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  for (int i = 0; i < 3; ++i) fn();
  CK(cudaDeviceSynchronize());
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    CK(cudaEventRecord(a));
    fn();
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  CK(cudaGetLastError());
  CK(cudaEventDestroy(a));
  CK(cudaEventDestroy(b));
  return Median(t);
}

void KernelBench(const char* shape_name, int64_t E, int64_t H, int64_t I, bool with_casts) {
  std::printf("\n== (b) kernel bandwidth: %s E=%lld H=%lld I=%lld ==\n", shape_name, (long long)E, (long long)H,
              (long long)I);
  std::vector<std::pair<ElemType, ElemType>> pairs = {{ElemType::kBF16, ElemType::kBF16}};
  if (with_casts) {
    pairs.push_back({ElemType::kBF16, ElemType::kF32});
    pairs.push_back({ElemType::kF32, ElemType::kBF16});
    pairs.push_back({ElemType::kF16, ElemType::kBF16});
    pairs.push_back({ElemType::kF32, ElemType::kF16});
    pairs.push_back({ElemType::kF32, ElemType::kF32});
  }
  const int64_t n_gu = E * H * 2 * I, n_dn = E * I * H;
  DevBuf src_gu, src_dn, dst_gu, dst_dn, cp_a, cp_b;
  for (const auto& pr : pairs) {
    const ElemType st = pr.first, dt = pr.second;
    const size_t ss = mc::ElemSize(st), ds = mc::ElemSize(dt);
    src_gu.Ensure(static_cast<size_t>(n_gu) * ss);
    src_dn.Ensure(static_cast<size_t>(n_dn) * ss);
    dst_gu.Ensure(static_cast<size_t>(n_gu) * ds);
    dst_dn.Ensure(static_cast<size_t>(n_dn) * ds);
    DeviceFill(src_gu.p, st, n_gu, 11);
    DeviceFill(src_dn.p, st, n_dn, 12);
    const std::string types = std::string(mc::ElemName(st)) + ">" + mc::ElemName(dt);
    // D2D copy baseline for a given moved volume (read + write bytes).
    auto copy_gbps = [&](size_t rw_bytes, double* ms_out) {
      const size_t n = rw_bytes / 2;
      cp_a.Ensure(n);
      cp_b.Ensure(n);
      CK(cudaMemset(cp_a.p, 1, n));
      const double ms = TimeMs([&] { CK(cudaMemcpyAsync(cp_b.p, cp_a.p, n, cudaMemcpyDeviceToDevice, nullptr)); }, g_reps);
      if (ms_out != nullptr) *ms_out = ms;
      return 2.0 * n / (ms * 1e-3) / 1e9;
    };
    for (Dir d : {Dir::kToHf, Dir::kFromHf}) {
      DeviceTransposeArgs a[2] = {LayerArgs(d, Part::kGateUp, E, H, I, st, dt), LayerArgs(d, Part::kDown, E, H, I, st, dt)};
      a[0].src = src_gu.p;
      a[0].dst = dst_gu.p;
      a[1].src = src_dn.p;
      a[1].dst = dst_dn.p;
      const size_t rw[2] = {static_cast<size_t>(n_gu) * (ss + ds), static_cast<size_t>(n_dn) * (ss + ds)};
      struct Op {
        std::string name;
        std::vector<int> parts;
      };
      const std::vector<Op> ops = {{std::string(DirName(d)) + " gate_up", {0}},
                                   {std::string(DirName(d)) + " down", {1}},
                                   {std::string(DirName(d)) + " layer", {0, 1}}};
      for (const Op& op : ops) {
        size_t bytes = 0;
        for (int k : op.parts) bytes += rw[k];
        double copy_ms = 0;
        const double base = copy_gbps(bytes, &copy_ms);
        std::vector<TransposeVariant> vars = {TransposeVariant::kVectorWide, TransposeVariant::kVectorTall,
                                              TransposeVariant::kTiledScalar};
        if (st != ElemType::kBF16 || dt != ElemType::kBF16) vars = {TransposeVariant::kAuto};
        for (TransposeVariant v : vars) {
          std::string why;
          const double ms = TimeMs(
              [&] {
                for (int k : op.parts) {
                  const int rc = mc::LaunchTransposeCast(a[k], nullptr, v, &why);
                  if (rc != 0) {
                    std::printf("FATAL: launch: %s\nRESULT: FAIL\n", why.c_str());
                    std::exit(1);
                  }
                }
              },
              g_reps);
          Row r;
          r.shape = shape_name;
          r.op = op.name;
          r.types = types;
          r.variant = mc::TransposeVariantName(v == TransposeVariant::kAuto ? TransposeVariant::kVectorWide : v);
          r.gbps = bytes / (ms * 1e-3) / 1e9;
          r.base_gbps = base;
          r.ratio = r.gbps / base;
          r.target = v == TransposeVariant::kTiledScalar ? 0 : 0.8;
          char note[96];
          std::snprintf(note, sizeof(note), "%.3f ms vs copy %.3f ms", ms, copy_ms);
          r.note = note;
          std::printf("  %-16s %-10s %-12s %8.1f GB/s  D2D %8.1f GB/s  ratio %.3f  (%s)\n", r.op.c_str(),
                      types.c_str(), r.variant.c_str(), r.gbps, base, r.ratio, note);
          std::fflush(stdout);
          g_rows.push_back(r);
        }
      }
    }
  }
}

// Pinned copy pipeline with the converter's chunking (no kernel): chunk k's
// H2D and then D2H (of the same device buffer) on stream k % 2.
double PinnedPipelineSeconds(const std::vector<std::pair<size_t, size_t>>& chunks, const char* hin, char* hout,
                             void* const dbuf[2], cudaStream_t s[2]) {
  const double t0 = Now();
  size_t in_off = 0, out_off = 0;
  for (size_t k = 0; k < chunks.size(); ++k) {
    cudaStream_t st = s[k % 2];
    CK(cudaMemcpyAsync(dbuf[k % 2], hin + in_off, chunks[k].first, cudaMemcpyHostToDevice, st));
    CK(cudaMemcpyAsync(hout + out_off, dbuf[k % 2], chunks[k].second, cudaMemcpyDeviceToHost, st));
    in_off += chunks[k].first;
    out_off += chunks[k].second;
  }
  CK(cudaStreamSynchronize(s[0]));
  CK(cudaStreamSynchronize(s[1]));
  return Now() - t0;
}

void E2EBench(const char* shape_name, int64_t E, int64_t H, int64_t I, bool pageable_too) {
  std::printf("\n== (b) end-to-end host->device->host: %s E=%lld H=%lld I=%lld bf16 ==\n", shape_name, (long long)E,
              (long long)H, (long long)I);
  const ElemType t = ElemType::kBF16;
  const size_t b_gu = static_cast<size_t>(E * H * 2 * I) * 2, b_dn = static_cast<size_t>(E * I * H) * 2;
  const size_t total = b_gu + b_dn;
  mc::CudaConverterOptions o;  // defaults: 64 MiB chunks, 2 buffers
  std::unique_ptr<mc::CudaExpertConverter> conv;
  mc::CudaStatus cs = mc::CudaExpertConverter::Create(o, &conv);
  if (!cs.ok()) {
    Fail(std::string("E2E Create: ") + cs.message);
    return;
  }
  const double ta = Now();
  HostMem in(total, true), out(total, true);
  std::printf("  pinned host buffers: 2 x %.2f GB allocated in %.2f s\n", total / 1e9, Now() - ta);
  mt::Fill(in.p(), t, static_cast<int64_t>(total / 2), 99, g_threads);
  std::memset(out.p(), 0, total);
  char* gu_in = static_cast<char*>(in.p());
  char* dn_in = gu_in + b_gu;
  char* gu_out = static_cast<char*>(out.p());
  char* dn_out = gu_out + b_gu;
  const int runs = 5;
  auto time_conv_with = [&](mc::CudaExpertConverter* cv, bool to_hf, void* gi, void* di, void* go, void* dout) {
    std::vector<double> ts;
    for (int i = 0; i < runs + 1; ++i) {
      cs = to_hf ? cv->ToHf(gi, di, E, H, I, t, t, go, dout) : cv->FromHf(gi, di, E, H, I, t, t, go, dout);
      if (!cs.ok()) {
        Fail(std::string("E2E run: ") + cs.message);
        return 0.0;
      }
      if (i > 0) ts.push_back(cv->last_stats().seconds);  // first run: warm-up (buffer allocation)
    }
    return Median(ts);
  };
  auto time_conv = [&](bool to_hf, void* gi, void* di, void* go, void* dout) {
    return time_conv_with(conv.get(), to_hf, gi, di, go, dout);
  };
  // Baseline: the same chunk sizes as the converter (64 MiB of source per
  // chunk, whole experts), H2D + D2H only, same 2-stream overlap.
  std::vector<std::pair<size_t, size_t>> chunks;
  for (size_t item : {b_gu / static_cast<size_t>(E), b_dn / static_cast<size_t>(E)}) {
    const int64_t per = std::max<int64_t>(1, o.chunk_bytes / static_cast<int64_t>(item));
    for (int64_t e0 = 0; e0 < E; e0 += per) {
      const size_t n = static_cast<size_t>(std::min<int64_t>(per, E - e0)) * item;
      chunks.push_back({n, n});
    }
  }
  DevBuf d0, d1;
  size_t max_chunk = 0;
  for (auto& c : chunks) max_chunk = std::max(max_chunk, c.first);
  d0.Ensure(max_chunk);
  d1.Ensure(max_chunk);
  void* dbuf[2] = {d0.p, d1.p};
  cudaStream_t s[2];
  CK(cudaStreamCreateWithFlags(&s[0], cudaStreamNonBlocking));
  CK(cudaStreamCreateWithFlags(&s[1], cudaStreamNonBlocking));
  std::vector<double> tb;
  for (int i = 0; i < runs + 1; ++i) {
    const double sec = PinnedPipelineSeconds(chunks, gu_in, gu_out, dbuf, s);
    if (i > 0) tb.push_back(sec);
  }
  const double base_s = Median(tb);
  // Raw one-direction pinned copies, for context.
  DevBuf big;
  big.Ensure(total);
  auto one = [&](bool h2d) {
    std::vector<double> ts;
    for (int i = 0; i < 4; ++i) {
      const double t0 = Now();
      if (h2d) {
        CK(cudaMemcpyAsync(big.p, in.p(), total, cudaMemcpyHostToDevice, s[0]));
      } else {
        CK(cudaMemcpyAsync(out.p(), big.p, total, cudaMemcpyDeviceToHost, s[0]));
      }
      CK(cudaStreamSynchronize(s[0]));
      if (i > 0) ts.push_back(Now() - t0);
    }
    return total / Median(ts) / 1e9;
  };
  const double h2d = one(true), d2h = one(false);
  big.Release();
  d0.Release();
  d1.Release();
  std::printf("  pinned cudaMemcpyAsync alone: H2D %.1f GB/s, D2H %.1f GB/s (%.2f GB each)\n", h2d, d2h, total / 1e9);
  const double base_gbps = 2.0 * total / base_s / 1e9;
  std::printf("  pinned copy pipeline (H2D+D2H of %.2f GB each way, %zu chunks, 2 streams): %.1f ms = %.1f GB/s (in+out)\n",
              total / 1e9, chunks.size(), base_s * 1e3, base_gbps);
  auto add = [&](const std::string& op, double sec, const char* mem) {
    Row r;
    r.shape = shape_name;
    r.op = op;
    r.types = "bf16>bf16";
    r.variant = mem;
    r.gbps = 2.0 * total / sec / 1e9;
    r.base_gbps = base_gbps;
    r.ratio = base_s / sec;
    r.target = std::string(mem) == "pinned" ? 0.7 : 0;
    char note[120];
    std::snprintf(note, sizeof(note), "%.1f ms vs pinned pipeline %.1f ms; H2D %.1f D2H %.1f GB/s", sec * 1e3,
                  base_s * 1e3, h2d, d2h);
    r.note = note;
    std::printf("  %-12s host mem %-16s %8.1f GB/s (in+out)  ratio %.3f  (%s)\n", op.c_str(), mem, r.gbps, r.ratio,
                note);
    std::fflush(stdout);
    g_rows.push_back(r);
  };
  const double t_to = time_conv(true, gu_in, dn_in, gu_out, dn_out);
  if (t_to > 0) add("E2E ToHf", t_to, "pinned");
  const double t_from = time_conv(false, gu_in, dn_in, gu_out, dn_out);
  if (t_from > 0) add("E2E FromHf", t_from, "pinned");
  // Spot check of the pinned run's output (last run was FromHf of gu_in as HF layout).
  {
    DeviceTransposeArgs a = LayerArgs(Dir::kFromHf, Part::kDown, E, H, I, t, t);
    std::vector<mt::Mismatch> first;
    ++g_cases;
    const int64_t bad = mt::CheckTranspose(a, dn_in, dn_out, g_threads, &first);
    if (bad != 0) Fail("E2E output check: " + std::to_string(bad) + " wrong\n" + mt::DescribeMismatches(first, t, t));
  }
  if (pageable_too) {
    HostMem pin(total, false), pout(total, false);
    std::memcpy(pin.p(), in.p(), total);
    std::memset(pout.p(), 0, total);
    char* pgi = static_cast<char*>(pin.p());
    char* pgo = static_cast<char*>(pout.p());
    // Context: the driver's own pageable copies (one cudaMemcpy each way).
    {
      DevBuf dev;
      dev.Ensure(total);
      double t0 = Now();
      CK(cudaMemcpy(dev.p, pgi, total, cudaMemcpyHostToDevice));
      const double h2d_pg = total / (Now() - t0) / 1e9;
      t0 = Now();
      CK(cudaMemcpy(pgo, dev.p, total, cudaMemcpyDeviceToHost));
      const double d2h_pg = total / (Now() - t0) / 1e9;
      std::printf("  pageable cudaMemcpy alone: H2D %.1f GB/s, D2H %.1f GB/s\n", h2d_pg, d2h_pg);
    }
    // Staging configurations: default options, then more host threads and a
    // deeper pipeline.
    const int hw = mt::HostThreads();
    struct Cfg {
      int threads, buffers;
    };
    for (const Cfg& cfg : {Cfg{0, 2}, Cfg{hw, 2}, Cfg{hw, 3}}) {
      mc::CudaConverterOptions po;
      po.host_threads = cfg.threads;
      po.num_buffers = cfg.buffers;
      std::unique_ptr<mc::CudaExpertConverter> pconv;
      cs = mc::CudaExpertConverter::Create(po, &pconv);
      if (!cs.ok()) {
        Fail(std::string("E2E Create: ") + cs.message);
        break;
      }
      char mem[64];
      std::snprintf(mem, sizeof(mem), "pageable t%d b%d", pconv->options().host_threads, cfg.buffers);
      const double tp = time_conv_with(pconv.get(), true, pgi, pgi + b_gu, pgo, pgo + b_gu);
      if (tp > 0) add("E2E ToHf", tp, mem);
      const double tp2 = time_conv_with(pconv.get(), false, pgi, pgi + b_gu, pgo, pgo + b_gu);
      if (tp2 > 0) add("E2E FromHf", tp2, mem);
    }
  }
  CK(cudaStreamDestroy(s[0]));
  CK(cudaStreamDestroy(s[1]));
}

void PrintSummary(const mc::CudaDeviceInfo& info) {
  std::printf("\n== SUMMARY: %s (cc %d.%d, %d SMs, %.1f GiB) ==\n", info.name.c_str(), info.cc_major, info.cc_minor,
              info.multiprocessors, info.total_memory / 1073741824.0);
  std::printf("kernels: GB/s = (bytes read + bytes written) / median time; D2D = cudaMemcpy device-to-device moving the same bytes, same run\n");
  std::printf("e2e: GB/s = (host bytes in + host bytes out) / median wall time; ratio = pinned H2D+D2H pipeline time (same chunks, 2 streams, no kernel) / converter time\n");
  std::printf("| shape | op | dtypes | kernel / host mem | GB/s | baseline GB/s | ratio | target |\n");
  std::printf("|---|---|---|---|---:|---:|---:|---|\n");
  int below = 0;
  for (const Row& r : g_rows) {
    std::string tgt = "-";
    if (r.target > 0) {
      const bool ok = r.ratio >= r.target;
      if (!ok) ++below;
      char b[32];
      std::snprintf(b, sizeof(b), ">=%.1f %s", r.target, ok ? "met" : "MISSED");
      tgt = b;
    }
    std::printf("| %s | %s | %s | %s | %.1f | %.1f | %.3f | %s |\n", r.shape.c_str(), r.op.c_str(), r.types.c_str(),
                r.variant.c_str(), r.gbps, r.base_gbps, r.ratio, tgt.c_str());
  }
  std::printf("targets missed: %d\n", below);
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, bench = true, e2e_big = true, smoke = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--small-only") {
      g_small_only = true;
      bench = false;
    } else if (a == "--version") {
      std::printf("cuda_kernels_check (moe-adapter issue 7)\n");
      return 0;
    } else if (a == "--no-bench") {
      bench = false;
    } else if (a == "--smoke") {
      smoke = true;
      g_small_only = true;
    } else if (a == "--no-e2e-big") {
      e2e_big = false;
    } else if (a == "--reps" && i + 1 < argc) {
      g_reps = std::max(3, std::atoi(argv[++i]));
    } else {
      std::printf("usage: %s [--quick] [--small-only] [--smoke] [--no-bench] [--no-e2e-big] [--reps N] [--version]\n",
                  argv[0]);
      return 2;
    }
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  g_threads = mt::HostThreads();
  std::printf("cuda_kernels_check (moe-adapter issue 7)\n");
  std::string why;
  if (!mc::CudaAvailable(&why)) {
    std::printf("%s\n", why.c_str());
    std::printf("SKIPPED: cuda_kernels_check: no CUDA device, nothing was run\n");
    return 0;
  }
  mc::CudaDeviceInfo info;
  const mc::CudaStatus st = mc::GetCudaDeviceInfo(0, &info);
  if (!st.ok()) {
    std::printf("%s\nSKIPPED: cuda_kernels_check: device 0 unusable\n", st.message.c_str());
    return 0;
  }
  std::printf("device 0: %s, cc %d.%d, %d SMs, %.1f GiB, L2 %.0f MB, driver %d, runtime %d, host threads %d\n",
              info.name.c_str(), info.cc_major, info.cc_minor, info.multiprocessors,
              info.total_memory / 1073741824.0, info.l2_bytes / 1e6, info.driver_version, info.runtime_version,
              g_threads);
  const double t0 = Now();
  KernelCorrectness(quick);
  ConverterCorrectness(quick);
  std::printf("\ncorrectness: %d cases, %d failed (%.1f s)\n", g_cases, g_failed, Now() - t0);
  if (bench) {
    if (smoke) {  // tiny shapes: exercises the benchmark code only
      KernelBench("smoke", 4, 256, 64, true);
      E2EBench("smoke", 4, 256, 64, true);
    } else {
      KernelBench("Qwen3-30B-A3B", 128, 2048, 768, true);
      KernelBench("Qwen3-235B-A22B", 128, 4096, 1536, false);
      E2EBench("Qwen3-30B-A3B", 128, 2048, 768, true);
      if (e2e_big) E2EBench("Qwen3-235B-A22B", 128, 4096, 1536, false);
    }
    PrintSummary(info);
  }
  std::printf("total %.1f s\n", Now() - t0);
  std::printf("RESULT: %s (%d correctness cases, %d failed)\n", g_failed == 0 ? "PASS" : "FAIL", g_cases, g_failed);
  return g_failed == 0 ? 0 : 1;
}
