// The conversion sessions on a real GPU (--device cuda) against the CPU, byte
// for byte: random geometries with odd sizes, every dtype pair, both
// directions, whole tensors and the server's slab-by-slab path. Skipped where
// no GPU is usable. Links no libtorch, so the binary runs on a bare GPU host.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "moe_adapter/converter.h"
#include "moe_adapter/device.h"

namespace moe_adapter {
namespace {

using List = std::vector<NamedTensor>;

Tensor Random(DType dt, Shape shape, std::mt19937_64& rng) {
  Tensor t = Tensor::Allocate(dt, std::move(shape));
  for (size_t i = 0; i < t.nbytes(); ++i) t.mutable_data()[i] = static_cast<uint8_t>(rng());
  return t;
}

absl::StatusOr<List> ToHf(const ConvertOptions& o, const Device& d, const List& in, bool slabs) {
  auto conv = ToHfConverter::Create(o, d);
  if (!conv.ok()) return conv.status();
  List out;
  TensorSink sink = [&](NamedTensor t) {
    out.push_back(std::move(t));
    return absl::OkStatus();
  };
  for (const auto& t : in) {
    auto plan = (*conv)->Plan(t.info());
    if (!plan.ok()) return plan.status();
    absl::Status s;
    if (slabs && plan->kind == TensorPlan::Kind::kSlabs) {
      for (int64_t i = 0; i < plan->num_slabs && s.ok(); ++i) {
        s = (*conv)->ConvertSlab(*plan, i, t.tensor.data.data() + i * plan->slab_bytes, sink);
      }
    } else {
      s = (*conv)->ConvertWhole(*plan, t.tensor, sink);
    }
    if (!s.ok()) return s;
  }
  return out;
}

absl::StatusOr<List> FromHf(const ConvertOptions& o, const Device& d, const List& in) {
  auto conv = FromHfConverter::Create(o, d);
  if (!conv.ok()) return conv.status();
  List out;
  TensorSink sink = [&](NamedTensor t) {
    out.push_back(std::move(t));
    return absl::OkStatus();
  };
  for (const auto& t : in) {
    absl::Status s = (*conv)->Add(t, sink);
    if (!s.ok()) return s;
  }
  absl::Status s = (*conv)->Finish(sink);
  if (!s.ok()) return s;
  return out;
}

std::string Diff(const List& a, const List& b) {
  if (a.size() != b.size()) return absl::StrCat("sizes ", a.size(), " vs ", b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name) return "name " + a[i].name + " vs " + b[i].name;
    if (a[i].tensor.dtype != b[i].tensor.dtype || a[i].tensor.shape != b[i].tensor.shape) return "type " + a[i].name;
    if (std::memcmp(a[i].tensor.data.data(), b[i].tensor.data.data(), a[i].tensor.nbytes()) != 0) {
      return "bytes " + a[i].name;
    }
  }
  return "";
}

class CudaSessions : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = OpenDevice("cuda");
    if (!d.ok()) GTEST_SKIP() << "no usable GPU: " << d.status().message();
    gpu_ = *d;
  }
  Device gpu_;
};

TEST_F(CudaSessions, MatchTheCpuOnRandomShapesAndDtypes) {
  std::mt19937_64 rng(11);
  const DType dts[] = {DType::kF32, DType::kBF16, DType::kF16};
  const int64_t shapes[][3] = {{3, 17, 5}, {8, 33, 100}, {1, 1, 1}, {5, 64, 48}, {16, 256, 96}};
  int cases = 0;
  for (const auto& g : shapes) {
    for (DType src : dts) {
      for (DType dst : dts) {
        ConvertOptions o;
        o.geometry.num_experts = g[0];
        o.geometry.hidden_size = g[1];
        o.geometry.moe_intermediate_size = g[2];
        o.dtype = dst;
        List native = {{"model.layers.0.mlp.experts.gate_and_up_projs", Random(src, {g[0], g[1], 2 * g[2]}, rng)},
                       {"model.layers.0.mlp.experts.down_projs", Random(src, {g[0], g[2], g[1]}, rng)}};
        auto cpu = ToHf(o, Device{}, native, false);
        ASSERT_TRUE(cpu.ok()) << cpu.status();
        for (bool slabs : {false, true}) {
          auto dev = ToHf(o, gpu_, native, slabs);
          ASSERT_TRUE(dev.ok()) << dev.status();
          EXPECT_EQ(Diff(*dev, *cpu), "") << "to_hf E,H,I=" << g[0] << "," << g[1] << "," << g[2] << " "
                                          << DTypeName(src) << "->" << DTypeName(dst) << " slabs=" << slabs;
        }
        // from_hf of the CPU's HF tensors (now in dst) back, cast to src.
        ConvertOptions back = o;
        back.dtype = src;
        auto cpu_back = FromHf(back, Device{}, *cpu);
        auto dev_back = FromHf(back, gpu_, *cpu);
        ASSERT_TRUE(cpu_back.ok() && dev_back.ok());
        EXPECT_EQ(Diff(*dev_back, *cpu_back), "") << "from_hf " << DTypeName(dst) << "->" << DTypeName(src);
        ++cases;
      }
    }
  }
  std::printf("cuda sessions: %d geometry x dtype cases byte-identical to the CPU on %s\n", cases, gpu_.name.c_str());
}

TEST_F(CudaSessions, LayerThroughputVersusCpu) {
  // One Qwen3-30B-A3B layer (E=128, H=2048, I=768, bf16) through the session
  // API, host memory in and out, GPU vs the CPU fast path in the same run.
  std::mt19937_64 rng(3);
  ConvertOptions o;
  o.geometry.num_experts = 128;
  o.geometry.hidden_size = 2048;
  o.geometry.moe_intermediate_size = 768;
  List native = {{"model.layers.0.mlp.experts.gate_and_up_projs", Random(DType::kBF16, {128, 2048, 1536}, rng)},
                 {"model.layers.0.mlp.experts.down_projs", Random(DType::kBF16, {128, 768, 2048}, rng)}};
  const double bytes = 128.0 * 2048 * 768 * 3 * 2;
  auto time = [&](const Device& d, List* out) {
    double best = 1e9;
    for (int i = 0; i < 3; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      auto r = ToHf(o, d, native, false);
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      EXPECT_TRUE(r.ok());
      if (r.ok()) *out = std::move(*r);
    }
    return best;
  };
  List cpu, gpu;
  const double tc = time(Device{}, &cpu), tg = time(gpu_, &gpu);
  EXPECT_EQ(Diff(gpu, cpu), "");
  std::printf("to_hf layer (1.21 GB, pageable host memory): cpu %.2f GB/s, %s %.2f GB/s (%.2fx)\n", bytes / tc / 1e9,
              gpu_.name.c_str(), bytes / tg / 1e9, tc / tg);
}

}  // namespace
}  // namespace moe_adapter
