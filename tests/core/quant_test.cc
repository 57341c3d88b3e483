// The FP8 block dequantiser and the MXFP4 decoder against the reference's own
// outputs (tests/data/golden-families: DeepSeek-V3 FP8 and GPT-OSS MXFP4
// cases), byte for byte, plus their shape checks and the edge codes.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include "core/quant/fp8_block.h"
#include "core/quant/fp8_pairing.h"
#include "core/quant/mxfp4.h"
#include "tests/testutil/tensor_testutil.h"

namespace moe_adapter::testing {
namespace {

std::map<std::string, Tensor> ByName(const TensorList& list) {
  std::map<std::string, Tensor> m;
  for (const NamedTensor& t : list) m[t.name] = t.tensor;
  return m;
}

std::string FamilyCase(const std::string& family, const std::string& file) {
  return DataDir() + "/golden-families/" + family + "/" + file;
}

float F32(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

TEST(Fp8Block, E4m3CodesDecodeExactly) {
  EXPECT_EQ(F32(E4m3ToF32Bits(0x38)), 1.0f);
  EXPECT_EQ(F32(E4m3ToF32Bits(0x7E)), 448.0f);             // largest finite
  EXPECT_EQ(F32(E4m3ToF32Bits(0x08)), std::ldexp(1.0f, -6));  // smallest normal
  EXPECT_EQ(F32(E4m3ToF32Bits(0x01)), std::ldexp(1.0f, -9));  // smallest subnormal
  EXPECT_EQ(F32(E4m3ToF32Bits(0x07)), 7 * std::ldexp(1.0f, -9));
  EXPECT_EQ(E4m3ToF32Bits(0x80), 0x80000000u);  // -0
  EXPECT_EQ(F32(E4m3ToF32Bits(0xB8)), -1.0f);
  EXPECT_TRUE(std::isnan(F32(E4m3ToF32Bits(0x7F))));
  EXPECT_TRUE(std::isnan(F32(E4m3ToF32Bits(0xFF))));
}

// The vectorised row path decodes every code as E4m3ToF32Bits does, NaNs'
// payloads included, and the scale multiply is one fp32 product.
TEST(Fp8Block, RowPathAgreesWithTheCodeTableOnAllCodes) {
  std::vector<uint8_t> w(256);
  for (int c = 0; c < 256; ++c) w[c] = static_cast<uint8_t>(c);
  for (float s : {1.0f, 0.0078125f, 3.3f}) {
    const float scale[2] = {s, s};
    std::vector<uint32_t> out(256);
    DequantizeFp8Rows(Fp8BlockView{w.data(), scale, 1, 256}, 0, 1, DType::kF32, out.data());
    for (int c = 0; c < 256; ++c) {
      const float want = F32(E4m3ToF32Bits(static_cast<uint8_t>(c))) * s;
      uint32_t want_bits;
      std::memcpy(&want_bits, &want, 4);
      ASSERT_EQ(out[c], want_bits) << "code " << c << " scale " << s;
    }
  }
}

// Every weight with a scale in the case: non-expert ones compared with the
// output of the same name, expert ones with their slice of the grouped output
// (gate columns [0, I), up [I, 2I), down whole; each the transpose).
void CheckFp8Case(const std::string& name) {
  SCOPED_TRACE(name);
  const auto in = ByName(LoadFile(FamilyCase("deepseek_v3", name + ".in.safetensors")));
  const auto out = ByName(LoadFile(FamilyCase("deepseek_v3", name + ".out.safetensors")));
  int plain = 0, experts = 0;
  for (const auto& [key, w] : in) {
    auto s = in.find(key + "_scale_inv");
    if (s == in.end()) continue;
    ASSERT_TRUE(CheckFp8BlockScale({key, w.dtype, w.shape}, {s->first, s->second.dtype, s->second.shape}).ok());
    const int64_t rows = w.shape[0], cols = w.shape[1];
    auto same = out.find(key);
    const size_t at = key.find(".mlp.experts.");
    const bool expert = same == out.end();
    ASSERT_TRUE(!expert || at != std::string::npos) << key;
    const std::string base = key.substr(0, at) + ".mlp.experts.";
    const std::string rest = expert ? key.substr(at + 13) : "";
    const bool down = rest.find("down_proj") != std::string::npos;
    const bool up = rest.find("up_proj") != std::string::npos;
    const Tensor* grouped = expert ? &out.at(base + (down ? "down_projs" : "gate_and_up_projs")) : nullptr;
    const DType dtype = expert ? grouped->dtype : same->second.dtype;
    Tensor got = Tensor::Allocate(dtype, w.shape);
    // Two calls over a split row range: rows are independent.
    const Fp8BlockView view = Fp8BlockView::Of(w, s->second);
    DequantizeFp8Rows(view, 0, rows / 3, dtype, got.mutable_data());
    DequantizeFp8Rows(view, rows / 3, rows, dtype, got.mutable_data());
    if (same != out.end()) {
      EXPECT_TRUE(SameTensor(got, same->second)) << key;
      ++plain;
      continue;
    }
    // ...layers.L.mlp.experts.E.{gate,up,down}_proj.weight
    const int64_t e = std::stoll(rest.substr(0, rest.find('.')));
    const int64_t width = grouped->shape[2];  // 2I or H
    const int64_t col0 = up ? rows : 0;
    const size_t item = DTypeSize(dtype);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        const uint8_t* want = grouped->data.data() + ((e * cols + c) * width + col0 + r) * item;
        ASSERT_EQ(std::memcmp(got.data.data() + (r * cols + c) * item, want, item), 0) << key << " " << r << "," << c;
      }
    }
    ++experts;
  }
  EXPECT_GT(plain, 5);
  EXPECT_GT(experts, 5);
}

TEST(Fp8Block, GoldenWholeBlocksBf16) { CheckFp8Case("fp8_from_hf_block128_bf16"); }
TEST(Fp8Block, GoldenPartialEdgeBlocksBf16) { CheckFp8Case("fp8_from_hf_nonmultiple_bf16"); }
TEST(Fp8Block, GoldenPartialEdgeBlocksFloat32) { CheckFp8Case("fp8_from_hf_nonmultiple_float32"); }

TEST(Fp8Block, ScaleGridTooSmallNamesBothShapes) {
  const auto in = ByName(LoadFile(FamilyCase("deepseek_v3", "err_fp8_scale_inv_too_small.in.safetensors")));
  int refused = 0;
  for (const auto& [key, w] : in) {
    auto s = in.find(key + "_scale_inv");
    if (s == in.end()) continue;
    absl::Status st = CheckFp8BlockScale({key, w.dtype, w.shape}, {s->first, s->second.dtype, s->second.shape});
    if (st.ok()) continue;
    ++refused;
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr(ShapeString(w.shape)));
    EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr(ShapeString(s->second.shape)));
    EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr(ShapeString(Fp8ScaleGrid(w.shape[0], w.shape[1]))));
  }
  EXPECT_EQ(refused, 1);
}

TEST(Fp8Block, EveryOtherMismatchIsRefused) {
  const TensorInfo w{"m.w.weight", DType::kF8E4M3, {200, 72}};
  EXPECT_TRUE(CheckFp8BlockScale(w, {"s", DType::kF32, {2, 1}}).ok());
  EXPECT_FALSE(CheckFp8BlockScale(w, {"s", DType::kF32, {3, 1}}).ok());  // too large: never used silently
  EXPECT_FALSE(CheckFp8BlockScale(w, {"s", DType::kF32, {2, 2}}).ok());
  EXPECT_FALSE(CheckFp8BlockScale(w, {"s", DType::kBF16, {2, 1}}).ok());
  EXPECT_FALSE(CheckFp8BlockScale({"m.w.weight", DType::kF8E4M3, {4, 4, 4}}, {"s", DType::kF32, {1, 1}}).ok());
  absl::Status bf16 = CheckFp8BlockScale({"m.w.weight", DType::kBF16, {200, 72}}, {"s", DType::kF32, {2, 1}});
  EXPECT_THAT(std::string(bf16.message()), ::testing::HasSubstr("BF16"));
}

// The pairing stage in file order, reversed and shuffled: the same tensors
// leave (scales consumed, weights dequantised in place of their FP8 input),
// equal to the reference's where the reference keeps the name, holding
// nothing at the end.
TEST(Fp8Pairing, AnyArrivalOrderGivesTheReferenceTensors) {
  const std::string name = "fp8_from_hf_nonmultiple_bf16";
  const TensorList in = LoadFile(FamilyCase("deepseek_v3", name + ".in.safetensors"));
  const auto out = ByName(LoadFile(FamilyCase("deepseek_v3", name + ".out.safetensors")));
  std::vector<size_t> order(in.size());
  for (size_t i = 0; i < in.size(); ++i) order[i] = i;
  for (int pass = 0; pass < 3; ++pass) {
    if (pass == 1) std::reverse(order.begin(), order.end());
    if (pass == 2) std::shuffle(order.begin(), order.end(), std::mt19937(5));
    Fp8Dequantizer deq(DType::kBF16);
    std::map<std::string, Tensor> got;
    for (size_t i : order) {
      auto ready = deq.Add(in[i]);
      ASSERT_TRUE(ready.ok()) << ready.status();
      for (NamedTensor& t : *ready) got[t.name] = t.tensor;
    }
    ASSERT_TRUE(deq.Finish().ok()) << deq.Finish();
    EXPECT_EQ(deq.waiting(), 0u);
    int scales = 0, compared = 0;
    for (const NamedTensor& t : in) {
      if (IsFp8Scale(t.name)) {
        ++scales;
        EXPECT_EQ(got.count(t.name), 0u) << t.name;
        continue;
      }
      ASSERT_EQ(got.count(t.name), 1u) << t.name;
      if (t.tensor.dtype == DType::kF8E4M3) EXPECT_EQ(got[t.name].dtype, DType::kBF16) << t.name;
      if (out.count(t.name)) {
        EXPECT_TRUE(SameTensor(got[t.name], out.at(t.name))) << t.name;
        ++compared;
      }
    }
    EXPECT_EQ(got.size(), in.size() - scales);
    EXPECT_GT(scales, 10);
    EXPECT_GT(compared, 10);
  }
}

TEST(Fp8Pairing, ContractErrorsNameTheKeys) {
  const TensorList in = LoadFile(FamilyCase("deepseek_v3", "quirk_from_hf_scale_inv_applies_to_any_dtype.in.safetensors"));
  Fp8Dequantizer deq(DType::kBF16);
  absl::Status first;
  for (const NamedTensor& t : in) {
    auto r = deq.Add(t);
    if (!r.ok()) {
      first = r.status();
      break;
    }
  }
  ASSERT_FALSE(first.ok()) << "a scale beside a non-FP8 weight must be refused";
  EXPECT_THAT(std::string(first.message()), ::testing::HasSubstr("not F8_E4M3"));

  auto fp8 = [](const std::string& name, Shape shape) {
    return NamedTensor{name, Tensor::Allocate(DType::kF8E4M3, shape)};
  };
  auto scale = [](const std::string& name, Shape shape) {
    Tensor t = Tensor::Allocate(DType::kF32, shape);
    std::memset(t.mutable_data(), 0, t.nbytes());
    return NamedTensor{name, t};
  };
  {
    Fp8Dequantizer d(DType::kBF16);
    ASSERT_TRUE(d.Add(fp8("a.weight", {4, 4})).ok());
    EXPECT_GT(d.HeldBytes(), 0u);
    absl::Status st = d.Finish();
    EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr("\"a.weight\" has no block scale"));
  }
  {
    Fp8Dequantizer d(DType::kBF16);
    ASSERT_TRUE(d.Add(scale("a.weight_scale_inv", {1, 1})).ok());
    EXPECT_THAT(std::string(d.Finish().message()), ::testing::HasSubstr("has no weight \"a.weight\""));
  }
  {
    Fp8Dequantizer d(DType::kBF16);
    ASSERT_TRUE(d.Add(scale("a.weight_scale_inv", {2, 1})).ok());
    auto r = d.Add(fp8("a.weight", {4, 4}));
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("[1, 1]"));
  }
  {
    Fp8Dequantizer d(DType::kBF16);
    ASSERT_TRUE(d.Add(scale("a.weight_scale_inv", {1, 1})).ok());
    EXPECT_FALSE(d.Add(scale("a.weight_scale_inv", {1, 1})).ok());
  }
  {
    Fp8Dequantizer d(DType::kBF16);
    ASSERT_TRUE(d.Add(NamedTensor{"b.weight", Tensor::Allocate(DType::kBF16, {2, 2})}).ok());
    auto r = d.Add(scale("b.weight_scale_inv", {1, 1}));
    ASSERT_FALSE(r.ok());
    EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("BF16"));
  }
}

// The decoded [E, 32G, R] of one blocks/scales pair against the reference's
// grouped tensor, in BF16; F32 must hold the same values exactly.
void CheckMxfp4Case(const std::string& name) {
  SCOPED_TRACE(name);
  const auto in = ByName(LoadFile(FamilyCase("gpt_oss", name + ".in.safetensors")));
  const auto out = ByName(LoadFile(FamilyCase("gpt_oss", name + ".out.safetensors")));
  int compared = 0;
  for (const auto& [key, blocks] : in) {
    if (key.size() < 7 || key.compare(key.size() - 7, 7, "_blocks") != 0) continue;
    const std::string stem = key.substr(0, key.size() - 7);
    const Tensor& scales = in.at(stem + "_scales");
    absl::StatusOr<Shape> shape = Mxfp4OutputShape({key, blocks.dtype, blocks.shape}, {stem + "_scales", scales.dtype, scales.shape});
    ASSERT_TRUE(shape.ok()) << shape.status();
    const bool gate_up = stem.find("gate_up_proj") != std::string::npos;
    const std::string native = stem.substr(0, stem.rfind('.') + 1) + (gate_up ? "gate_and_up_projs" : "down_projs");
    const Tensor& want = out.at(native);
    ASSERT_EQ(*shape, want.shape);
    const Mxfp4View view = Mxfp4View::Of(blocks, scales);
    Tensor bf16 = Tensor::Allocate(DType::kBF16, *shape);
    DecodeMxfp4Experts(view, 0, 1, DType::kBF16, bf16.mutable_data());
    DecodeMxfp4Experts(view, 1, (*shape)[0], DType::kBF16, bf16.mutable_data());
    EXPECT_TRUE(SameTensor(bf16, want)) << native;
    Tensor f32 = Tensor::Allocate(DType::kF32, *shape);
    DecodeMxfp4Experts(view, 0, (*shape)[0], DType::kF32, f32.mutable_data());
    for (int64_t i = 0; i < f32.numel(); ++i) {
      uint16_t b;
      uint32_t f;
      std::memcpy(&b, bf16.data.data() + 2 * i, 2);
      std::memcpy(&f, f32.data.data() + 4 * i, 4);
      ASSERT_EQ(f, static_cast<uint32_t>(b) << 16) << native << " element " << i;
    }
    ++compared;
  }
  EXPECT_GE(compared, 2);
}

TEST(Mxfp4, GoldenBf16) { CheckMxfp4Case("mxfp4_from_hf_bf16"); }
TEST(Mxfp4, GoldenSecondGeometry) { CheckMxfp4Case("quirk_mxfp4_from_hf_float32_still_bf16"); }

TEST(Mxfp4, ScaleShapeMismatchNamesBoth) {
  const auto in = ByName(LoadFile(FamilyCase("gpt_oss", "err_mxfp4_scale_shape_mismatch.in.safetensors")));
  int refused = 0;
  for (const auto& [key, blocks] : in) {
    if (key.size() < 7 || key.compare(key.size() - 7, 7, "_blocks") != 0) continue;
    const std::string sk = key.substr(0, key.size() - 7) + "_scales";
    const Tensor& scales = in.at(sk);
    auto shape = Mxfp4OutputShape({key, blocks.dtype, blocks.shape}, {sk, scales.dtype, scales.shape});
    if (shape.ok()) continue;
    ++refused;
    EXPECT_EQ(shape.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(shape.status().message()), ::testing::HasSubstr(ShapeString(scales.shape)));
  }
  EXPECT_EQ(refused, 1);
  EXPECT_FALSE(Mxfp4OutputShape({"b", DType::kU8, {1, 2, 3, 8}}, {"s", DType::kU8, {1, 2, 3}}).ok());
  EXPECT_FALSE(Mxfp4OutputShape({"b", DType::kI8, {1, 2, 3, 16}}, {"s", DType::kU8, {1, 2, 3}}).ok());
}

// Shapes spanning several row tiles with a partial last one, against the
// formula written out element by element.
TEST(Mxfp4, TiledDecodeMatchesTheFormulaOnRandomCodes) {
  const int64_t E = 2, R = 150, G = 3;
  std::mt19937 rng(11);
  std::vector<uint8_t> blocks(E * R * G * 16), scales(E * R * G);
  for (auto& b : blocks) b = static_cast<uint8_t>(rng());
  for (auto& s : scales) s = static_cast<uint8_t>(100 + rng() % 50);
  std::vector<float> out(E * 32 * G * R);
  DecodeMxfp4Experts(Mxfp4View{blocks.data(), scales.data(), E, R, G}, 0, E, DType::kF32, out.data());
  const float fp4[16] = {0, .5, 1, 1.5, 2, 3, 4, 6, -0.0f, -.5, -1, -1.5, -2, -3, -4, -6};
  for (int64_t e = 0; e < E; ++e) {
    for (int64_t r = 0; r < R; ++r) {
      for (int64_t g = 0; g < G; ++g) {
        const float f = std::ldexp(1.0f, scales[(e * R + r) * G + g] - 127);
        for (int64_t b = 0; b < 16; ++b) {
          const uint8_t byte = blocks[((e * R + r) * G + g) * 16 + b];
          const int64_t k = 32 * g + 2 * b;
          ASSERT_EQ(out[(e * 32 * G + k) * R + r], fp4[byte & 0xF] * f) << e << "," << r << "," << k;
          ASSERT_EQ(out[(e * 32 * G + k + 1) * R + r], fp4[byte >> 4] * f) << e << "," << r << "," << k + 1;
        }
      }
    }
  }
}

TEST(Mxfp4, ExtremeScalesFollowLdexpInFloat) {
  // One expert, one row, one group: bytes 0x10 (lo 0, hi 0.5), 0xF7 (lo 6, hi -6), rest 0.
  std::vector<uint8_t> blk(16, 0);
  blk[0] = 0x10;
  blk[1] = 0xF7;
  for (uint8_t s : {uint8_t{0}, uint8_t{127}, uint8_t{254}, uint8_t{255}}) {
    const Mxfp4View v{blk.data(), &s, 1, 1, 1};
    float out[32];
    DecodeMxfp4Experts(v, 0, 1, DType::kF32, out);
    const float f = std::ldexp(1.0f, s - 127);  // 2^128 is +Inf in fp32
    if (std::isinf(f)) {
      EXPECT_TRUE(std::isnan(out[0]));  // 0 * Inf, as torch's ldexp computes it
    } else {
      EXPECT_EQ(out[0], 0.0f);
    }
    EXPECT_EQ(out[1], 0.5f * f);
    EXPECT_EQ(out[2], 6.0f * f);
    EXPECT_EQ(out[3], -6.0f * f);
  }
}

}  // namespace
}  // namespace moe_adapter::testing
