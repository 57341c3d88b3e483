// Large buffers are reused by exact size (a checkpoint's layers share shapes),
// within the cache's byte cap; smaller ones are not cached.
#include "core/buffer_cache.h"
#include "tests/testutil/tensor_testutil.h"

namespace moe_adapter::testing {
namespace {

TEST(BufferCache, SameSizeReusesTheBlockOthersDoNot) {
  const size_t big = buffer_cache::kMinBytes + 4096;
  const uint8_t* first = nullptr;
  {
    Bytes a = Bytes::Allocate(big);
    first = a.data();
    std::memset(a.mutable_data(), 7, 4096);
  }
  EXPECT_GE(buffer_cache::CachedBytes(), big);
  Bytes again = Bytes::Allocate(big);
  EXPECT_EQ(again.data(), first) << "the freed block of the same size comes back";
  Bytes other = Bytes::Allocate(big + 8192);
  EXPECT_NE(other.data(), first);
  {
    Bytes small = Bytes::Allocate(buffer_cache::kMinBytes - 1);  // below kMinBytes: never cached
  }
  EXPECT_LT(buffer_cache::CachedBytes(), big + buffer_cache::kMinBytes - 1);
}

TEST(BufferCache, ANewShapeEvictsTheOldestBlocks) {
  const size_t a = buffer_cache::kMinBytes, b = buffer_cache::kMinBytes + 4096;
  buffer_cache::Clear();
  buffer_cache::SetCap(3 * a);
  { Bytes x = Bytes::Allocate(a); }
  { Bytes y = Bytes::Allocate(b); }
  EXPECT_EQ(buffer_cache::CachedBytes(), a + b);
  const size_t c = 2 * a;  // a third shape: evicting a alone is not enough room
  {
    Bytes z = Bytes::Allocate(c);
    EXPECT_EQ(buffer_cache::CachedBytes(), 0u) << "room for the fresh block was made when it was allocated";
  }
  EXPECT_EQ(buffer_cache::CachedBytes(), c) << "the two older blocks made room for the newest";
  { Bytes u = Bytes::Allocate(a); }
  EXPECT_EQ(buffer_cache::CachedBytes(), c + a) << "fits beside it: nothing evicted";
  Bytes again = Bytes::Allocate(c);
  EXPECT_EQ(buffer_cache::CachedBytes(), a) << "taken back out by size";
  again = Bytes();
  buffer_cache::SetCap(0);
  EXPECT_EQ(buffer_cache::CachedBytes(), 0u);
  { Bytes w = Bytes::Allocate(a); }
  EXPECT_EQ(buffer_cache::CachedBytes(), 0u) << "cap 0: nothing kept";
  buffer_cache::UseAutomaticCap();
}

TEST(BufferCache, AutomaticCapKeepsTwiceTheLargestBlock) {
  buffer_cache::Clear();
  buffer_cache::UseAutomaticCap();
  EXPECT_GE(buffer_cache::CapBytes(), buffer_cache::kDefaultCapBytes);
  // A Qwen3-235B gate_up group is 3.2 GB; 1.25 GiB (never touched, so
  // nothing is faulted in) stands for it here.
  const size_t group = size_t{5} << 28;
  { Bytes g = Bytes::Allocate(group); }
  EXPECT_EQ(buffer_cache::CapBytes(), 2 * group);
  EXPECT_EQ(buffer_cache::CachedBytes(), group);
  buffer_cache::Clear();
}

TEST(BufferCache, IdleBlocksAreReleased) {
  buffer_cache::Clear();
  buffer_cache::SetCap(size_t{1} << 30);
  { Bytes x = Bytes::Allocate(buffer_cache::kMinBytes); }
  EXPECT_EQ(buffer_cache::ReleaseIdle(std::chrono::hours(1)), 0u) << "given back just now";
  EXPECT_EQ(buffer_cache::CachedBytes(), buffer_cache::kMinBytes);
  EXPECT_EQ(buffer_cache::ReleaseIdle(std::chrono::seconds(0)), buffer_cache::kMinBytes);
  EXPECT_EQ(buffer_cache::CachedBytes(), 0u);
  buffer_cache::UseAutomaticCap();
}

TEST(BufferCache, SessionsReuseGroupBuffersAcrossLayers) {
  // Two identical layers through one from_hf session: the second grouped
  // gate_up tensor lands in the first one's memory once that was dropped.
  const int64_t E = 8, H = 1024, I = 1024;  // gate_up = 64 MiB in f32
  auto filled = [](Shape shape) {
    Tensor t = Tensor::Allocate(DType::kF32, std::move(shape));
    std::memset(t.mutable_data(), 1, t.nbytes());
    return t;
  };
  ConvertOptions o = Geo(E, H, I);
  auto conv = *FromHfConverter::Create(o);
  std::vector<const uint8_t*> gate_up_data;
  auto sink = [&](NamedTensor t) {
    if (absl::EndsWith(t.name, "gate_and_up_projs")) gate_up_data.push_back(t.tensor.data.data());
    return absl::OkStatus();  // dropped at once, as a writer would
  };
  for (int layer = 0; layer < 2; ++layer) {
    for (int64_t e = 0; e < E; ++e) {
      const std::string p = absl::StrCat("model.layers.", layer, ".mlp.experts.", e, ".");
      ASSERT_TRUE(conv->Add({p + "gate_proj.weight", filled({I, H})}, sink).ok());
      ASSERT_TRUE(conv->Add({p + "up_proj.weight", filled({I, H})}, sink).ok());
      ASSERT_TRUE(conv->Add({p + "down_proj.weight", filled({H, I})}, sink).ok());
    }
  }
  ASSERT_EQ(gate_up_data.size(), 2u);
  EXPECT_EQ(gate_up_data[0], gate_up_data[1]);
}

}  // namespace
}  // namespace moe_adapter::testing
