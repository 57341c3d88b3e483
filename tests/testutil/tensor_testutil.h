// Test helpers: tensors as comparable values, file loading, conversion runs,
// and status matchers (Abseil 20220623 has none).
#ifndef MOE_ADAPTER_TESTS_TESTUTIL_TENSOR_TESTUTIL_H_
#define MOE_ADAPTER_TESTS_TESTUTIL_TENSOR_TESTUTIL_H_

#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "core/checkpoint_reader.h"
#include "core/safetensors_reader.h"
#include "core/transpose.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "moe_adapter/converter.h"
#include "moe_adapter/tensor.h"

namespace moe_adapter::testing {

// An ordered list of tensors; equality is by name, dtype, shape and bytes.
using TensorList = std::vector<NamedTensor>;

inline std::string DataDir() { return MOE_TEST_DATA_DIR; }

inline TensorList LoadFile(const std::string& path) {
  auto f = SafetensorsFile::Open(path);
  EXPECT_TRUE(f.ok()) << f.status();
  TensorList out;
  if (!f.ok()) return out;
  for (size_t i = 0; i < (*f)->num_tensors(); ++i) out.push_back((*f)->GetAt(i));
  return out;
}

// LoadCheckpoint(): every tensor of a file or checkpoint directory (through
// its index or every shard), in shard then file order.
inline TensorList LoadCheckpoint(const std::string& path) {
  auto ckpt = SafetensorsCheckpoint::Open(path);
  EXPECT_TRUE(ckpt.ok()) << ckpt.status();
  TensorList out;
  if (!ckpt.ok()) return out;
  for (size_t s = 0; s < ckpt->shards().size(); ++s) {
    auto f = ckpt->OpenShard(s);
    EXPECT_TRUE(f.ok()) << f.status();
    if (!f.ok()) continue;
    for (size_t i = 0; i < (*f)->num_tensors(); ++i) out.push_back((*f)->GetAt(i));
  }
  return out;
}

inline bool SameTensor(const Tensor& a, const Tensor& b) {
  return a.dtype == b.dtype && a.shape == b.shape && a.nbytes() == b.nbytes() &&
         (a.nbytes() == 0 || std::memcmp(a.data.data(), b.data.data(), a.nbytes()) == 0);
}

// Differences between two lists as a map (order ignored), for messages.
inline std::vector<std::string> DiffAsMaps(const TensorList& got, const TensorList& want) {
  std::map<std::string, const Tensor*> g, w;
  for (const auto& t : got) g[t.name] = &t.tensor;
  for (const auto& t : want) w[t.name] = &t.tensor;
  std::vector<std::string> d;
  if (g.size() != got.size()) d.push_back("duplicate keys in output");
  for (const auto& [k, t] : w) {
    auto it = g.find(k);
    if (it == g.end()) {
      d.push_back("missing " + k);
    } else if (!SameTensor(*it->second, *t)) {
      d.push_back("differs " + k + " got " + std::string(DTypeName(it->second->dtype)) + ShapeString(it->second->shape) +
                  " want " + std::string(DTypeName(t->dtype)) + ShapeString(t->shape));
    }
  }
  for (const auto& [k, t] : g) {
    if (!w.count(k)) d.push_back("unexpected " + k);
  }
  return d;
}

inline std::vector<std::string> Names(const TensorList& l) {
  std::vector<std::string> n;
  for (const auto& t : l) n.push_back(t.name);
  return n;
}

inline absl::StatusOr<TensorList> RunToHf(const ConvertOptions& o, const TensorList& in) {
  auto conv = ToHfConverter::Create(o);
  if (!conv.ok()) return conv.status();
  TensorList out;
  auto sink = [&](NamedTensor t) {
    out.push_back(std::move(t));
    return absl::OkStatus();
  };
  for (const auto& t : in) {
    absl::Status s = (*conv)->Convert(t, sink);
    if (!s.ok()) return s;
  }
  absl::Status s = (*conv)->Finish();
  if (!s.ok()) return s;
  return out;
}

inline absl::StatusOr<TensorList> RunFromHf(const ConvertOptions& o, const TensorList& in,
                                            size_t* peak_held = nullptr) {
  auto conv = FromHfConverter::Create(o);
  if (!conv.ok()) return conv.status();
  TensorList out;
  auto sink = [&](NamedTensor t) {
    out.push_back(std::move(t));
    return absl::OkStatus();
  };
  for (const auto& t : in) {
    absl::Status s = (*conv)->Add(t, sink);
    if (!s.ok()) return s;
    if (peak_held) *peak_held = std::max(*peak_held, (*conv)->HeldBytes());
  }
  absl::Status s = (*conv)->Finish(sink);
  if (!s.ok()) return s;
  return out;
}

inline ConvertOptions Geo(int64_t E, int64_t H, int64_t I) {
  ConvertOptions o;
  o.geometry.num_experts = E;
  o.geometry.hidden_size = H;
  o.geometry.moe_intermediate_size = I;
  return o;
}

// A tensor of recognisable random bits (every bit pattern of the dtype, NaNs
// included: conversions move bits, they never compute).
inline Tensor RandomTensor(DType dt, Shape shape, std::mt19937_64& rng) {
  Tensor t = Tensor::Allocate(dt, std::move(shape));
  uint8_t* p = t.mutable_data();
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<uint8_t>(rng());
  return t;
}

// Selects the ATen reference transposes (true) or the fast path (false).
inline void SetTransposeImplForTest(bool reference) {
  SetTransposeImpl(reference ? TransposeImpl::kAten : TransposeImpl::kBlocked);
}

MATCHER_P(StatusIs, code, "") {
  if (arg.code() == code) return true;
  *result_listener << "status is " << arg;
  return false;
}

MATCHER_P2(StatusIs, code, substr, "") {
  if (arg.code() == code && absl::StrContains(arg.message(), substr)) return true;
  *result_listener << "status is " << arg;
  return false;
}

}  // namespace moe_adapter::testing

#endif  // MOE_ADAPTER_TESTS_TESTUTIL_TENSOR_TESTUTIL_H_
