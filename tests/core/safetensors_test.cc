// Tests of the safetensors reader, the checkpoint (directory/index) reader and
// the writers. Malformed files are built byte by byte here, one per defect.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <malloc.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/checkpoint_reader.h"
#include "core/safetensors_format.h"
#include "core/safetensors_reader.h"
#include "core/safetensors_writer.h"

namespace moe_adapter {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const std::string kFixtures = std::string(MOE_TEST_DATA_DIR) + "/tiny-qwen3-moe";

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::path(::testing::TempDir()) / "st_test.XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }
  std::vector<std::string> List() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path_)) out.push_back(e.path().filename());
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  std::string path_;
};

std::string Le64(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out;
}

std::string StBytes(const std::string& header, const std::string& data = "") {
  return Le64(header.size()) + header + data;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

NamedTensor Filled(const std::string& name, DType dtype, Shape shape, int seed = 0) {
  Tensor t = Tensor::Allocate(dtype, std::move(shape));
  for (size_t i = 0; i < t.nbytes(); ++i) t.mutable_data()[i] = static_cast<uint8_t>(i * 31 + seed);
  return NamedTensor{name, std::move(t)};
}

std::string BytesOf(const Tensor& t) {
  return std::string(reinterpret_cast<const char*>(t.data.data()), t.nbytes());
}

void ExpectSameTensor(const NamedTensor& got, const NamedTensor& want) {
  EXPECT_EQ(got.name, want.name);
  EXPECT_EQ(got.tensor.dtype, want.tensor.dtype) << want.name;
  EXPECT_EQ(got.tensor.shape, want.tensor.shape) << want.name;
  EXPECT_EQ(BytesOf(got.tensor), BytesOf(want.tensor)) << want.name;
}

std::vector<NamedTensor> AllDTypeTensors() {
  std::vector<NamedTensor> out;
  for (int i = 0; i <= static_cast<int>(DType::kC64); ++i) {
    const DType dt = static_cast<DType>(i);
    out.push_back(Filled(absl::StrCat("t.", DTypeName(dt)), dt, {2, 3}, i));
  }
  out.push_back(Filled("zero_size", DType::kF32, {0, 4}));
  out.push_back(Filled("scalar", DType::kF64, {}, 7));
  out.push_back(Filled("zero_size_3d", DType::kBF16, {3, 0, 2}));
  out.push_back(Filled("after_zero", DType::kI64, {5}, 3));
  return out;
}

// ---------------------------------------------------------------------------
// Round trips

TEST(SafetensorsRoundTrip, AllDTypesZeroSizeAndScalar) {
  TempDir dir;
  const std::string path = dir / "all.safetensors";
  const std::vector<NamedTensor> tensors = AllDTypeTensors();
  ASSERT_TRUE(WriteSafetensors(path, tensors, {{"format", "pt"}}).ok());

  absl::StatusOr<std::shared_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ((*file)->num_tensors(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    // Written order is offset order, so GetAt(i) is the i-th tensor written.
    ExpectSameTensor((*file)->GetAt(i), tensors[i]);
    absl::StatusOr<NamedTensor> by_name = (*file)->Get(tensors[i].name);
    ASSERT_TRUE(by_name.ok());
    ExpectSameTensor(*by_name, tensors[i]);
  }
  EXPECT_EQ((*file)->metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  EXPECT_EQ((*file)->GetAt(17).tensor.nbytes(), 0u);  // zero_size
  EXPECT_EQ((*file)->GetAt(18).tensor.shape, Shape{});
  EXPECT_EQ((*file)->GetAt(18).tensor.nbytes(), 8u);  // scalar F64
}

TEST(SafetensorsRoundTrip, HeaderIsCompactMetadataFirstAndPaddedTo8) {
  TempDir dir;
  const std::string path = dir / "a.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, {Filled("w", DType::kBF16, {2, 2})}, {{"format", "pt"}}).ok());
  const std::string bytes = ReadFile(path);
  absl::StatusOr<std::shared_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ((8 + (*file)->header_size()) % 8, 0u);
  const std::string header = bytes.substr(8, (*file)->header_size());
  EXPECT_EQ(
      header.rfind(
          R"({"__metadata__":{"format":"pt"},"w":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}})",
          0),
      0u);
  EXPECT_EQ(header.find_first_not_of(' ', header.find_last_of('}') + 1), std::string::npos);
  EXPECT_EQ((*file)->data_offset(0), 8 + (*file)->header_size());
}

TEST(SafetensorsRoundTrip, NoMetadataWritesNoMetadataKey) {
  TempDir dir;
  const std::string path = dir / "a.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, {Filled("w", DType::kF32, {1})}).ok());
  EXPECT_EQ(ReadFile(path).find("__metadata__"), std::string::npos);
  absl::StatusOr<std::shared_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok());
  EXPECT_THAT((*file)->metadata(), IsEmpty());
}

TEST(SafetensorsRoundTrip, EmptyFileHasNoTensors) {
  TempDir dir;
  const std::string path = dir / "empty.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, {}).ok());
  absl::StatusOr<std::shared_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->num_tensors(), 0u);
}

TEST(SafetensorsRoundTrip, StreamingWriterMatchesOneShotWriter) {
  TempDir dir;
  std::vector<NamedTensor> tensors = AllDTypeTensors();
  // Bigger than the 8 MiB copy chunk, so the copy loops more than once.
  tensors.push_back(Filled("big", DType::kU8, {9 << 20}, 5));
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"k", "v"}};
  ASSERT_TRUE(WriteSafetensors(dir / "one.safetensors", tensors, meta).ok());
  absl::StatusOr<std::unique_ptr<StreamingSafetensorsWriter>> w =
      StreamingSafetensorsWriter::Create(dir / "stream.safetensors", meta);
  ASSERT_TRUE(w.ok()) << w.status();
  for (const NamedTensor& t : tensors) ASSERT_TRUE((*w)->Add(t).ok());
  EXPECT_EQ((*w)->num_tensors(), tensors.size());
  ASSERT_TRUE((*w)->Finish().ok());
  EXPECT_EQ(ReadFile(dir / "stream.safetensors"), ReadFile(dir / "one.safetensors"));
  EXPECT_THAT(dir.List(), ElementsAre("one.safetensors", "stream.safetensors"));
}

// In-place mode: data written once behind a reserved, space-padded header.
TEST(SafetensorsRoundTrip, InPlaceWriterReadsBackTheSameTensors) {
  TempDir dir;
  std::vector<NamedTensor> tensors = AllDTypeTensors();
  tensors.push_back(Filled("big", DType::kU8, {9 << 20}, 5));
  const std::map<std::string, std::string> meta = {{"format", "pt"}};
  for (uint64_t reserve : {uint64_t{1} << 16, uint64_t{8}}) {  // fits; overflows -> one copy
    const std::string path = dir / ("inplace" + std::to_string(reserve) + ".safetensors");
    SafetensorsWriteOptions opts;
    opts.reserve_header_bytes = reserve;
    auto w = StreamingSafetensorsWriter::Create(path, meta, opts);
    ASSERT_TRUE(w.ok()) << w.status();
    for (const NamedTensor& t : tensors) ASSERT_TRUE((*w)->Add(t).ok());
    ASSERT_TRUE((*w)->Finish().ok());
    auto f = SafetensorsFile::Open(path);
    ASSERT_TRUE(f.ok()) << f.status();
    ASSERT_EQ((*f)->num_tensors(), tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
      NamedTensor got = (*f)->GetAt(i);
      EXPECT_EQ(got.name, tensors[i].name);
      EXPECT_EQ(got.tensor.shape, tensors[i].tensor.shape);
      EXPECT_EQ(0, std::memcmp(got.tensor.data.data(), tensors[i].tensor.data.data(), got.tensor.nbytes()));
    }
    EXPECT_EQ((*f)->metadata().at("format"), "pt");
    if (reserve > 8) EXPECT_EQ((*f)->header_size(), reserve) << "header fills the reservation exactly";
  }
  EXPECT_THAT(dir.List(), ElementsAre("inplace65536.safetensors", "inplace8.safetensors"));
}

TEST(SafetensorsRoundTrip, InPlaceWriterAbortRemovesThePartialFile) {
  TempDir dir;
  SafetensorsWriteOptions opts;
  opts.reserve_header_bytes = 4096;
  {
    auto w = StreamingSafetensorsWriter::Create(dir / "x.safetensors", {}, opts);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Add(Filled("a", DType::kU8, {100}, 1)).ok());
  }  // destroyed without Finish()
  EXPECT_TRUE(dir.List().empty());
}

// ---------------------------------------------------------------------------
// Order = order of data offsets, not of JSON keys

TEST(SafetensorsOrder, TensorsFollowDataOffsetsNotJsonKeys) {
  TempDir dir;
  const std::string path = dir / "order.safetensors";
  const std::string header = R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[16,32]},)"
                             R"("z":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                             R"("m":{"dtype":"F32","shape":[0],"data_offsets":[16,16]},)"
                             R"("b":{"dtype":"BF16","shape":[2,0],"data_offsets":[16,16]},)"
                             R"("__metadata__":{"x":"y"}})";
  WriteFile(path, StBytes(header, std::string(32, '\x01')));
  absl::StatusOr<std::shared_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  std::vector<std::string> names;
  for (const TensorInfo& t : (*file)->tensors()) names.push_back(t.name);
  // Zero-size tensors at the same offset come by name, before the tensor there.
  EXPECT_THAT(names, ElementsAre("z", "b", "m", "a"));
  const uint64_t data_start = 8 + header.size();
  EXPECT_EQ((*file)->data_offset(0), data_start);
  EXPECT_EQ((*file)->data_offset(3), data_start + 16);
  EXPECT_EQ((*file)->metadata().at("x"), "y");
}

TEST(SafetensorsOrder, WriterKeepsGivenOrder) {
  TempDir dir;
  const std::string path = dir / "w.safetensors";
  std::vector<NamedTensor> tensors = {Filled("zz", DType::kF32, {2}),
                                      Filled("aa", DType::kF32, {3}),
                                      Filled("mm", DType::kF16, {1})};
  ASSERT_TRUE(WriteSafetensors(path, tensors).ok());
  absl::StatusOr<std::shared_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ((*file)->tensors()[0].name, "zz");
  EXPECT_EQ((*file)->tensors()[1].name, "aa");
  EXPECT_EQ((*file)->tensors()[2].name, "mm");
}

// ---------------------------------------------------------------------------
// Zero copy

TEST(SafetensorsZeroCopy, TensorsPointIntoTheMappingAndKeepItAlive) {
  TempDir dir;
  const std::string path = dir / "z.safetensors";
  const std::vector<NamedTensor> tensors = {Filled("a", DType::kF32, {3}),
                                            Filled("b", DType::kBF16, {4, 4}, 9)};
  ASSERT_TRUE(WriteSafetensors(path, tensors).ok());
  absl::StatusOr<std::shared_ptr<SafetensorsFile>> opened = SafetensorsFile::Open(path);
  ASSERT_TRUE(opened.ok());
  std::shared_ptr<SafetensorsFile> file = *opened;
  std::weak_ptr<SafetensorsFile> weak = file;
  absl::StatusOr<NamedTensor> b = file->Get("b");
  ASSERT_TRUE(b.ok());
  const uint8_t* base = file->mapped_data();
  EXPECT_GE(b->tensor.data.data(), base);
  EXPECT_LE(b->tensor.data.data() + b->tensor.nbytes(), base + file->file_size());
  EXPECT_EQ(b->tensor.data.data(), base + file->data_offset(1));

  file.reset();
  opened = absl::UnknownError("dropped");
  EXPECT_FALSE(weak.expired());  // the tensor keeps the mapping
  ExpectSameTensor(*b, tensors[1]);
  b = absl::UnknownError("dropped");
  EXPECT_TRUE(weak.expired());
}

TEST(SafetensorsZeroCopy, GetUnknownNameIsNotFound) {
  TempDir dir;
  ASSERT_TRUE(WriteSafetensors(dir / "a.safetensors", {Filled("a", DType::kF32, {1})}).ok());
  absl::StatusOr<std::shared_ptr<SafetensorsFile>> file =
      SafetensorsFile::Open(dir / "a.safetensors");
  ASSERT_TRUE(file.ok());
  absl::StatusOr<NamedTensor> t = (*file)->Get("nope");
  EXPECT_EQ(t.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(t.status().message(), HasSubstr("\"nope\""));
}

// ---------------------------------------------------------------------------
// Open errors that are not about the header

TEST(SafetensorsOpen, MissingFileIsNotFound) {
  TempDir dir;
  absl::StatusOr<std::shared_ptr<SafetensorsFile>> file =
      SafetensorsFile::Open(dir / "nope.safetensors");
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(file.status().message(), HasSubstr("nope.safetensors"));
}

TEST(SafetensorsOpen, DirectoryIsInvalidArgument) {
  TempDir dir;
  absl::StatusOr<std::shared_ptr<SafetensorsFile>> file = SafetensorsFile::Open(dir.path());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(file.status().message(), HasSubstr("directory"));
}

TEST(SafetensorsOpen, HeaderPaddedWithSpacesIsAccepted) {
  TempDir dir;
  const std::string path = dir / "p.safetensors";
  WriteFile(path, StBytes(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})"
                          "      ",
                          "xy"));
  absl::StatusOr<std::shared_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(BytesOf((*file)->GetAt(0).tensor), "xy");
}

// ---------------------------------------------------------------------------
// Header memory: a header is streamed into TensorInfo/offsets, never held as a
// DOM (which cost ~50x the header: 1.2 GB of RSS for a 24 MB header).

// A field of /proc/self/status ("VmHWM", "VmRSS") in bytes; 0 when unreadable.
uint64_t ProcStatusBytes(const std::string& field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoull(line.substr(field.size() + 1)) * 1024;
  }
  return 0;
}

TEST(SafetensorsHeaderMemory, ParsingGrowsRssInProportionToTheHeader) {
  // 50,000 small tensors: a 5.5 MB header, as a checkpoint of many experts has.
  constexpr uint64_t kTensors = 50'000;
  std::string header = "{";
  for (uint64_t i = 0; i < kTensors; ++i) {
    absl::StrAppend(&header, i == 0 ? "" : ",", "\"model.layers.", i / 3000, ".mlp.experts.",
                    i % 3000, ".gate_proj.weight\":{\"dtype\":\"F32\",\"shape\":[1],",
                    "\"data_offsets\":[", 4 * i, ",", 4 * i + 4, "]}");
  }
  header += "}";
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer's redzones and quarantine are not the parser's memory (the Release run checks it)";
#endif
  // Freed heap of earlier tests would hide growth; the peak starts from now.
  ::malloc_trim(0);
  std::ofstream("/proc/self/clear_refs") << "5";
  const uint64_t before = ProcStatusBytes("VmHWM");
  if (before == 0 || before > ProcStatusBytes("VmRSS") + (8 << 20)) {
    GTEST_SKIP() << "this kernel cannot reset the peak RSS (/proc/self/clear_refs)";
  }
  {
    absl::StatusOr<SafetensorsHeader> parsed = ParseSafetensorsHeader(header, 4 * kTensors, "big");
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    ASSERT_EQ(parsed->tensors.size(), kTensors);
    EXPECT_EQ(parsed->tensors[kTensors - 1].name, "model.layers.16.mlp.experts.1999.gate_proj.weight");
  }
  const uint64_t growth = ProcStatusBytes("VmHWM") - before;
  RecordProperty("header_bytes", std::to_string(header.size()));
  RecordProperty("rss_growth_bytes", std::to_string(growth));
  EXPECT_LT(growth, 5 * header.size()) << "peak RSS grew " << growth << " bytes for a "
                                       << header.size() << "-byte header";
}

// ---------------------------------------------------------------------------
// One test per header defect

struct Defect {
  std::string name;
  std::string bytes;
  std::vector<std::string> expect;  // substrings of the message
};

std::string F32Entry(const std::string& name, const std::string& shape, uint64_t b, uint64_t e) {
  return absl::StrCat("\"", name, "\":{\"dtype\":\"F32\",\"shape\":", shape, ",\"data_offsets\":[",
                      b, ",", e, "]}");
}

std::vector<Defect> Defects() {
  const std::string d16(16, '\0');
  const std::string a16 = F32Entry("a", "[4]", 0, 16);
  return {
      {"EmptyFile", "", {"0 bytes", "too short"}},
      {"SevenByteFile", "\x01\x02\x03\x04\x05\x06\x07", {"7 bytes", "too short"}},
      {"HeaderLengthZero", Le64(0) + "{}", {"header length is 0"}},
      {"HeaderLengthOverLimit", Le64(100'000'001) + "{}", {"100000001", "limit of 100000000"}},
      {"HeaderLength2Pow63", Le64(uint64_t{1} << 63) + "{}", {"9223372036854775808", "limit"}},
      {"HeaderLengthMaxU64", Le64(~uint64_t{0}) + "{}", {"18446744073709551615", "limit"}},
      {"HeaderLengthBeyondFile", Le64(1'000'000) + "{}", {"1000000", "past the end of the file"}},
      {"HeaderNotJson", StBytes("{not json"), {"not valid JSON"}},
      {"HeaderNotUtf8", StBytes("{\"a\xff\":{}}"), {"not valid JSON"}},
      {"HeaderTrailingGarbage", StBytes("{}x"), {"not valid JSON"}},
      {"HeaderWithByteOrderMark", StBytes("\xEF\xBB\xBF{}"), {"must start with '{'"}},
      {"HeaderWithLeadingSpace", StBytes(" {}"), {"must start with '{'"}},
      {"HeaderJsonArray", StBytes("[1,2,3]"), {"must be a JSON object", "found an array"}},
      {"HeaderJsonString", StBytes("\"x\""), {"must be a JSON object", "found a string"}},
      {"EntryNotObject", StBytes("{\"a\":5}"), {"tensor \"a\"", "must be an object", "an integer"}},
      {"MissingDtype",
       StBytes(R"({"a":{"shape":[4],"data_offsets":[0,16]}})", d16),
       {"tensor \"a\"", "missing \"dtype\""}},
      {"DtypeNotString",
       StBytes(R"({"a":{"dtype":4,"shape":[4],"data_offsets":[0,16]}})", d16),
       {"tensor \"a\"", "\"dtype\" must be a string"}},
      {"UnknownDtype",
       StBytes(R"({"a":{"dtype":"Q7","shape":[4],"data_offsets":[0,16]}})", d16),
       {"tensor \"a\"", "unknown dtype \"Q7\""}},
      {"MissingShape",
       StBytes(R"({"a":{"dtype":"F32","data_offsets":[0,16]}})", d16),
       {"tensor \"a\"", "missing \"shape\""}},
      {"ShapeNotArray",
       StBytes("{" + F32Entry("a", "4", 0, 16) + "}", d16),
       {"tensor \"a\"", "\"shape\" must be an array", "found an integer"}},
      {"ShapeElementNotInteger",
       StBytes("{" + F32Entry("a", "[4.5]", 0, 16) + "}", d16),
       {"tensor \"a\"", "dimension 0 must be an integer", "non-integer number"}},
      {"ShapeElementString",
       StBytes("{" + F32Entry("a", "[\"4\"]", 0, 16) + "}", d16),
       {"tensor \"a\"", "dimension 0 must be an integer", "a string"}},
      {"NegativeDim",
       StBytes("{" + F32Entry("a", "[-4]", 0, 16) + "}", d16),
       {"tensor \"a\"", "negative dimension -4"}},
      {"DimAboveInt64",
       StBytes("{" + F32Entry("a", "[9223372036854775808]", 0, 16) + "}", d16),
       {"tensor \"a\"", "more than int64 can hold"}},
      {"ShapeElementCountOverflow",
       StBytes("{" + F32Entry("a", "[1099511627776,1099511627776,1099511627776]", 0, 16) + "}",
               d16),
       {"tensor \"a\"", "more elements than int64 can count"}},
      {"ShapeByteCountOverflow",
       StBytes("{" + F32Entry("a", "[4611686018427387904]", 0, 16) + "}", d16),
       {"tensor \"a\"", "overflows int64 bytes"}},
      {"MissingDataOffsets",
       StBytes(R"({"a":{"dtype":"F32","shape":[4]}})", d16),
       {"tensor \"a\"", "missing \"data_offsets\""}},
      {"DataOffsetsNotArray",
       StBytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":16}})", d16),
       {"tensor \"a\"", "array of 2 non-negative integers", "found an integer"}},
      {"DataOffsetsThreeElements",
       StBytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,8,16]}})", d16),
       {"tensor \"a\"", "array of 2", "found an array of 3"}},
      {"DataOffsetsNegative",
       StBytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[-16,0]}})", d16),
       {"tensor \"a\"", "\"data_offsets\"[0] must be a non-negative integer", "-16"}},
      {"DataOffsetsFloat",
       StBytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16.0]}})", d16),
       {"tensor \"a\"", "\"data_offsets\"[1] must be a non-negative integer", "16.0"}},
      {"DataOffsetsString",
       StBytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":["0",16]}})", d16),
       {"tensor \"a\"", "\"data_offsets\"[0]", "a string"}},
      {"DataOffsetsReversed",
       StBytes("{" + F32Entry("a", "[4]", 16, 0) + "}", d16),
       {"tensor \"a\"", "[16, 0] are reversed"}},
      {"SpanNotShapeTimesItemsize",
       StBytes("{" + F32Entry("a", "[5]", 0, 16) + "}", d16),
       {"tensor \"a\"", "span 16 bytes", "F32 [5] needs 20 bytes"}},
      {"OffsetsBeyondDataSection",
       StBytes("{" + F32Entry("a", "[1028]", 0, 4112) + "}", d16),
       {"tensor \"a\"", "[0, 4112] run past the end of the data section (16 bytes"}},
      {"TruncatedData",
       StBytes("{" + a16 + "," + F32Entry("b", "[4]", 16, 32) + "}", std::string(28, '\0')),
       {"tensor \"b\"", "past the end of the data section (28 bytes"}},
      {"OverlappingOffsets",
       StBytes("{" + a16 + "," + F32Entry("b", "[4]", 8, 24) + "}", std::string(24, '\0')),
       {"tensor \"b\"", "overlap tensor \"a\"", "ends at 16"}},
      {"ZeroSizeInsideAnother",
       StBytes("{" + a16 + "," + F32Entry("z", "[0]", 8, 8) + "}", d16),
       {"tensor \"z\"", "overlap tensor \"a\""}},
      {"GapBetweenTensors",
       StBytes("{" + a16 + "," + F32Entry("b", "[4]", 20, 36) + "}", std::string(36, '\0')),
       {"gap", "[16, 20)", "before tensor \"b\""}},
      {"GapAtStart",
       StBytes("{" + F32Entry("a", "[4]", 8, 24) + "}", std::string(24, '\0')),
       {"gap", "[0, 8)", "before tensor \"a\""}},
      {"TrailingBytesAfterLastTensor",
       StBytes("{" + a16 + "}", std::string(24, '\0')),
       {"8 trailing bytes", "end at data offset 16", "24 bytes"}},
      {"DataWithoutTensors", StBytes("{}", std::string(8, '\0')), {"8 trailing bytes"}},
      {"DuplicateTensorKey", StBytes("{" + a16 + "," + a16 + "}", d16), {"\"a\" appears twice"}},
      {"DuplicateFieldInEntry",
       StBytes(R"({"a":{"dtype":"F32","dtype":"F16","shape":[4],"data_offsets":[0,16]}})", d16),
       {"\"dtype\" appears twice inside \"a\""}},
      {"DuplicateMetadataKey",
       StBytes(R"({"__metadata__":{"k":"1","k":"2"}})"),
       {"\"k\" appears twice inside \"__metadata__\""}},
      {"MetadataNotObject",
       StBytes(R"({"__metadata__":"pt"})"),
       {"\"__metadata__\" must be an object", "found a string"}},
      {"MetadataValueNotString",
       StBytes(R"({"__metadata__":{"format":1}})"),
       {"\"__metadata__\" entry \"format\" must be a string", "found an integer"}},
  };
}

void PrintTo(const Defect& d, std::ostream* os) { *os << d.name; }

class SafetensorsDefectTest : public ::testing::TestWithParam<Defect> {};

TEST_P(SafetensorsDefectTest, IsRejectedWithAClearMessage) {
  TempDir dir;
  const std::string path = dir / "bad.safetensors";
  WriteFile(path, GetParam().bytes);
  absl::StatusOr<std::shared_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument) << file.status();
  const std::string message(file.status().message());
  EXPECT_THAT(message, HasSubstr(path));
  for (const std::string& s : GetParam().expect) {
    EXPECT_THAT(message, HasSubstr(s));
  }
}

INSTANTIATE_TEST_SUITE_P(AllDefects, SafetensorsDefectTest, ::testing::ValuesIn(Defects()),
                         [](const ::testing::TestParamInfo<Defect>& info) {
                           return info.param.name;
                         });

// ---------------------------------------------------------------------------
// Checkpoints: the real fixtures

std::set<std::string> KeysOf(const SafetensorsCheckpoint& c) {
  std::set<std::string> keys;
  for (const auto& shard : c.shards()) {
    for (const TensorInfo& t : shard.tensors) keys.insert(t.name);
  }
  return keys;
}

TEST(SafetensorsCheckpointFixture, ShardedBf16ReadsThroughItsIndex) {
  absl::StatusOr<SafetensorsCheckpoint> sharded =
      SafetensorsCheckpoint::Open(kFixtures + "/hf-bf16-sharded");
  ASSERT_TRUE(sharded.ok()) << sharded.status();
  EXPECT_THAT(sharded->index_path(), EndsWith("/model.safetensors.index.json"));
  ASSERT_EQ(sharded->shards().size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_THAT(sharded->shard_paths()[i],
                EndsWith(absl::StrFormat("model-%05d-of-00006.safetensors", i + 1)));
  }
  absl::StatusOr<size_t> shard = sharded->ShardOf("model.layers.0.mlp.experts.0.up_proj.weight");
  ASSERT_TRUE(shard.ok());
  EXPECT_EQ(*shard, 2u);
  EXPECT_EQ(sharded->index_metadata().at("total_size"), "90656");

  absl::StatusOr<SafetensorsCheckpoint> fp32 = SafetensorsCheckpoint::Open(kFixtures + "/hf-fp32");
  ASSERT_TRUE(fp32.ok()) << fp32.status();
  ASSERT_EQ(fp32->shards().size(), 1u);
  EXPECT_TRUE(fp32->index_path().empty());
  EXPECT_EQ(KeysOf(*sharded), KeysOf(*fp32));
  EXPECT_EQ(sharded->num_tensors(), fp32->num_tensors());

  // Same shapes, bf16 instead of f32; and the data adds up to total_size.
  std::map<std::string, Shape> fp32_shapes;
  for (const TensorInfo& t : fp32->shards()[0].tensors) {
    EXPECT_EQ(t.dtype, DType::kF32);
    fp32_shapes[t.name] = t.shape;
  }
  uint64_t total = 0;
  for (size_t s = 0; s < sharded->shards().size(); ++s) {
    absl::StatusOr<std::shared_ptr<SafetensorsFile>> f = sharded->OpenShard(s);
    ASSERT_TRUE(f.ok()) << f.status();
    for (size_t i = 0; i < (*f)->num_tensors(); ++i) {
      NamedTensor t = (*f)->GetAt(i);
      EXPECT_EQ(t.tensor.dtype, DType::kBF16) << t.name;
      EXPECT_EQ(t.tensor.shape, fp32_shapes[t.name]) << t.name;
      total += t.tensor.nbytes();
    }
  }
  EXPECT_EQ(total, 90656u);
}

TEST(SafetensorsCheckpointFixture, SingleFileAndAdapterDirectory) {
  absl::StatusOr<SafetensorsCheckpoint> file =
      SafetensorsCheckpoint::Open(kFixtures + "/hf-fp32/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ(file->shards().size(), 1u);
  EXPECT_EQ(file->shard_paths()[0], kFixtures + "/hf-fp32/model.safetensors");

  absl::StatusOr<SafetensorsCheckpoint> adapter =
      SafetensorsCheckpoint::Open(kFixtures + "/peft-lora");
  ASSERT_TRUE(adapter.ok()) << adapter.status();
  ASSERT_EQ(adapter->shards().size(), 1u);
  EXPECT_THAT(adapter->shard_paths()[0], EndsWith("/adapter_model.safetensors"));
  EXPECT_GT(adapter->num_tensors(), 0u);
}

// ---------------------------------------------------------------------------
// Checkpoints: hand-made directories

class CheckpointDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(WriteSafetensors(dir_ / "s1.safetensors",
                                 {Filled("a", DType::kF32, {2}), Filled("b", DType::kF32, {3})})
                    .ok());
    ASSERT_TRUE(WriteSafetensors(dir_ / "s2.safetensors", {Filled("c", DType::kF16, {4})}).ok());
  }
  void WriteIndex(const nlohmann::json& weight_map) {
    nlohmann::json index = {{"metadata", {{"total_size", 28}}}, {"weight_map", weight_map}};
    WriteFile(dir_ / "model.safetensors.index.json", index.dump(2));
  }
  absl::Status OpenStatus() { return SafetensorsCheckpoint::Open(dir_.path()).status(); }

  TempDir dir_;
};

TEST_F(CheckpointDirTest, ValidIndex) {
  WriteIndex({{"a", "s1.safetensors"}, {"b", "s1.safetensors"}, {"c", "s2.safetensors"}});
  absl::StatusOr<SafetensorsCheckpoint> c = SafetensorsCheckpoint::Open(dir_.path());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->shard_paths(), ElementsAre(dir_ / "s1.safetensors", dir_ / "s2.safetensors"));
  EXPECT_EQ(*c->ShardOf("c"), 1u);
  EXPECT_EQ(c->ShardOf("zz").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c->index_metadata().at("total_size"), "28");
}

TEST_F(CheckpointDirTest, IndexNamingMissingFile) {
  WriteIndex({{"a", "s1.safetensors"},
              {"b", "s1.safetensors"},
              {"c", "s2.safetensors"},
              {"d", "s3.safetensors"}});
  absl::Status s = OpenStatus();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("\"s3.safetensors\""));
  EXPECT_THAT(s.message(), HasSubstr("missing"));
}

TEST_F(CheckpointDirTest, IndexKeyAbsentFromItsShard) {
  WriteIndex({{"a", "s1.safetensors"},
              {"b", "s1.safetensors"},
              {"c", "s2.safetensors"},
              {"ghost", "s2.safetensors"}});
  absl::Status s = OpenStatus();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("\"ghost\" to \"s2.safetensors\", which has no such tensor"));
}

TEST_F(CheckpointDirTest, ShardTensorNotListedInIndex) {
  WriteIndex({{"a", "s1.safetensors"}, {"c", "s2.safetensors"}});
  absl::Status s = OpenStatus();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("tensor \"b\""));
  EXPECT_THAT(s.message(), HasSubstr("not listed in the index"));
}

TEST_F(CheckpointDirTest, IndexMapsKeyToTheWrongShard) {
  WriteIndex({{"a", "s1.safetensors"}, {"b", "s2.safetensors"}, {"c", "s2.safetensors"}});
  absl::Status s = OpenStatus();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("\"b\" to \"s2.safetensors\", but it is in"));
}

TEST_F(CheckpointDirTest, IndexPathWithDotDot) {
  WriteIndex({{"a", "../s1.safetensors"}});
  absl::Status s = OpenStatus();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("\"../s1.safetensors\""));
  EXPECT_THAT(s.message(), HasSubstr("not a plain file name"));
}

TEST_F(CheckpointDirTest, IndexPathWithSlash) {
  WriteIndex({{"a", "sub/s1.safetensors"}});
  EXPECT_THAT(OpenStatus().message(), HasSubstr("not a plain file name"));
}

TEST_F(CheckpointDirTest, IndexWithDuplicateKey) {
  WriteFile(dir_ / "model.safetensors.index.json",
            R"({"weight_map": {"a": "s1.safetensors", "a": "s2.safetensors"}})");
  absl::Status s = OpenStatus();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("\"a\" appears twice"));
}

TEST_F(CheckpointDirTest, IndexWithoutWeightMap) {
  WriteFile(dir_ / "model.safetensors.index.json", R"({"metadata": {}})");
  EXPECT_THAT(OpenStatus().message(), HasSubstr("\"weight_map\" must be an object"));
}

TEST_F(CheckpointDirTest, KeyInTwoShards) {
  ASSERT_TRUE(WriteSafetensors(dir_ / "s3.safetensors", {Filled("a", DType::kF32, {2})}).ok());
  WriteIndex({{"a", "s1.safetensors"}, {"b", "s1.safetensors"}, {"c", "s3.safetensors"}});
  absl::Status s = OpenStatus();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("tensor \"a\" is in two shards"));
}

TEST_F(CheckpointDirTest, NoIndexReadsEveryFileSortedAndSkipsDotfiles) {
  WriteFile(dir_ / "._s0.safetensors", "junk");
  WriteFile(dir_ / "notes.txt", "x");
  absl::StatusOr<SafetensorsCheckpoint> c = SafetensorsCheckpoint::Open(dir_.path());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->shard_paths(), ElementsAre(dir_ / "s1.safetensors", dir_ / "s2.safetensors"));
  EXPECT_EQ(c->num_tensors(), 3u);
}

TEST_F(CheckpointDirTest, NoIndexDuplicateKeyAcrossFiles) {
  ASSERT_TRUE(WriteSafetensors(dir_ / "s3.safetensors", {Filled("c", DType::kF32, {2})}).ok());
  absl::Status s = OpenStatus();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("tensor \"c\" is in two shards"));
}

TEST_F(CheckpointDirTest, BadShardIsReportedWithItsPath) {
  WriteFile(dir_ / "s2.safetensors", "short");
  absl::Status s = OpenStatus();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr(dir_ / "s2.safetensors"));
}

TEST(SafetensorsCheckpointOpen, EmptyAndMissingDirectory) {
  TempDir dir;
  EXPECT_EQ(SafetensorsCheckpoint::Open(dir.path()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(SafetensorsCheckpoint::Open(dir / "nope").status().code(), absl::StatusCode::kNotFound);
}

// ---------------------------------------------------------------------------
// Sharded writer

std::vector<NamedTensor> FiveTensors() {
  std::vector<NamedTensor> out;
  for (int i = 0; i < 5; ++i) out.push_back(Filled(absl::StrCat("w", 4 - i), DType::kF32, {16}, i));
  return out;  // 64 bytes each
}

TEST(ShardedWriter, SplitsByMaxSizeAndReadsBackIdentical) {
  TempDir dir;
  ShardedWriterOptions options;
  options.max_shard_bytes = 150;  // two 64-byte tensors per shard
  options.metadata = {{"format", "pt"}};
  absl::StatusOr<std::unique_ptr<ShardedSafetensorsWriter>> w =
      ShardedSafetensorsWriter::Create(dir.path(), options);
  ASSERT_TRUE(w.ok()) << w.status();
  const std::vector<NamedTensor> tensors = FiveTensors();
  for (const NamedTensor& t : tensors) ASSERT_TRUE((*w)->Add(t).ok());
  absl::StatusOr<std::vector<std::string>> files = (*w)->Finish();
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_THAT(*files, ElementsAre(dir / "model-00001-of-00003.safetensors",
                                  dir / "model-00002-of-00003.safetensors",
                                  dir / "model-00003-of-00003.safetensors",
                                  dir / "model.safetensors.index.json"));
  EXPECT_THAT(dir.List(),
              ElementsAre("model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                          "model-00003-of-00003.safetensors", "model.safetensors.index.json"));

  const std::string index_text = ReadFile(dir / "model.safetensors.index.json");
  EXPECT_EQ(
      index_text.rfind(
          "{\n  \"metadata\": {\n    \"total_parameters\": 80,\n    \"total_size\": 320\n  },\n",
          0),
      0u);
  EXPECT_EQ(index_text.back(), '\n');
  nlohmann::json index = nlohmann::json::parse(index_text);
  EXPECT_EQ(index["weight_map"]["w4"], "model-00001-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["w2"], "model-00002-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["w0"], "model-00003-of-00003.safetensors");

  absl::StatusOr<SafetensorsCheckpoint> c = SafetensorsCheckpoint::Open(dir.path());
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->shards().size(), 3u);
  size_t k = 0;
  for (size_t s = 0; s < c->shards().size(); ++s) {
    absl::StatusOr<std::shared_ptr<SafetensorsFile>> f = c->OpenShard(s);
    ASSERT_TRUE(f.ok());
    EXPECT_EQ((*f)->metadata().at("format"), "pt");
    for (size_t i = 0; i < (*f)->num_tensors(); ++i) ExpectSameTensor((*f)->GetAt(i), tensors[k++]);
  }
  EXPECT_EQ(k, tensors.size());
}

TEST(ShardedWriter, OversizedTensorGetsItsOwnShard) {
  TempDir dir;
  ShardedWriterOptions options;
  options.max_shard_bytes = 100;
  absl::StatusOr<std::unique_ptr<ShardedSafetensorsWriter>> w =
      ShardedSafetensorsWriter::Create(dir.path(), options);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Add(Filled("a", DType::kF32, {16})).ok());
  ASSERT_TRUE((*w)->Add(Filled("big", DType::kF32, {50})).ok());
  ASSERT_TRUE((*w)->Add(Filled("c", DType::kF32, {16})).ok());
  absl::StatusOr<std::vector<std::string>> files = (*w)->Finish();
  ASSERT_TRUE(files.ok());
  EXPECT_EQ(files->size(), 4u);
  absl::StatusOr<SafetensorsCheckpoint> c = SafetensorsCheckpoint::Open(dir.path());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c->ShardOf("big"), 1u);
  EXPECT_EQ(c->shards()[1].tensors.size(), 1u);
}

TEST(ShardedWriter, OneShardIsPlainModelSafetensorsWithoutIndex) {
  TempDir dir;
  absl::StatusOr<std::unique_ptr<ShardedSafetensorsWriter>> w =
      ShardedSafetensorsWriter::Create(dir.path());
  ASSERT_TRUE(w.ok());
  for (const NamedTensor& t : FiveTensors()) ASSERT_TRUE((*w)->Add(t).ok());
  ASSERT_TRUE((*w)->Finish().ok());
  EXPECT_THAT(dir.List(), ElementsAre("model.safetensors"));
  absl::StatusOr<std::shared_ptr<SafetensorsFile>> f =
      SafetensorsFile::Open(dir / "model.safetensors");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ((*f)->num_tensors(), 5u);
}

TEST(ShardedWriter, AdapterBaseNameAndNoTensors) {
  TempDir dir;
  ShardedWriterOptions options;
  options.base_name = "adapter_model";
  options.max_shard_bytes = 0;
  absl::StatusOr<std::unique_ptr<ShardedSafetensorsWriter>> w =
      ShardedSafetensorsWriter::Create(dir.path(), options);
  ASSERT_TRUE(w.ok());
  absl::StatusOr<std::vector<std::string>> files = (*w)->Finish();
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_THAT(dir.List(), ElementsAre("adapter_model.safetensors"));
  absl::StatusOr<std::shared_ptr<SafetensorsFile>> f =
      SafetensorsFile::Open(dir / "adapter_model.safetensors");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->num_tensors(), 0u);
}

TEST(ShardedWriter, DuplicateAcrossShardsIsRejected) {
  TempDir dir;
  ShardedWriterOptions options;
  options.max_shard_bytes = 64;
  absl::StatusOr<std::unique_ptr<ShardedSafetensorsWriter>> w =
      ShardedSafetensorsWriter::Create(dir.path(), options);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Add(Filled("a", DType::kF32, {16})).ok());
  ASSERT_TRUE((*w)->Add(Filled("b", DType::kF32, {16})).ok());
  absl::Status s = (*w)->Add(Filled("a", DType::kF32, {16}));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("\"a\" added twice"));
}

TEST(ShardedWriter, AbortAndDestructionLeaveNoFiles) {
  TempDir dir;
  ShardedWriterOptions options;
  options.max_shard_bytes = 64;
  {
    absl::StatusOr<std::unique_ptr<ShardedSafetensorsWriter>> w =
        ShardedSafetensorsWriter::Create(dir.path(), options);
    ASSERT_TRUE(w.ok());
    for (const NamedTensor& t : FiveTensors()) ASSERT_TRUE((*w)->Add(t).ok());
    EXPECT_FALSE(dir.List().empty());  // finished shards wait under temp names
    (*w)->Abort();
    EXPECT_THAT(dir.List(), IsEmpty());
    EXPECT_EQ((*w)->Add(Filled("x", DType::kF32, {1})).code(),
              absl::StatusCode::kFailedPrecondition);
  }
  {
    absl::StatusOr<std::unique_ptr<ShardedSafetensorsWriter>> w =
        ShardedSafetensorsWriter::Create(dir.path(), options);
    ASSERT_TRUE(w.ok());
    for (const NamedTensor& t : FiveTensors()) ASSERT_TRUE((*w)->Add(t).ok());
  }
  EXPECT_THAT(dir.List(), IsEmpty());
}

TEST(ShardedWriter, BadBaseNameAndMissingDirectory) {
  TempDir dir;
  ShardedWriterOptions options;
  options.base_name = "../x";
  EXPECT_EQ(ShardedSafetensorsWriter::Create(dir.path(), options).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ShardedSafetensorsWriter::Create(dir / "nope").status().code(),
            absl::StatusCode::kNotFound);
}

// ---------------------------------------------------------------------------
// Streaming writer

TEST(StreamingWriter, AbortLeavesNoFiles) {
  TempDir dir;
  absl::StatusOr<std::unique_ptr<StreamingSafetensorsWriter>> w =
      StreamingSafetensorsWriter::Create(dir / "out.safetensors");
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE((*w)->Add(Filled("a", DType::kF32, {1000})).ok());
  ASSERT_TRUE((*w)->Add(Filled("b", DType::kBF16, {10, 10})).ok());
  EXPECT_EQ((*w)->data_bytes(), 4200u);
  (*w)->Abort();
  EXPECT_THAT(dir.List(), IsEmpty());
  EXPECT_EQ((*w)->Finish().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(dir.List(), IsEmpty());
}

TEST(StreamingWriter, DestroyedUnfinishedLeavesNoFiles) {
  TempDir dir;
  {
    absl::StatusOr<std::unique_ptr<StreamingSafetensorsWriter>> w =
        StreamingSafetensorsWriter::Create(dir / "out.safetensors");
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Add(Filled("a", DType::kF32, {1000})).ok());
    EXPECT_THAT(dir.List(), IsEmpty());  // the spool is anonymous
  }
  EXPECT_THAT(dir.List(), IsEmpty());
}

TEST(StreamingWriter, RejectsDuplicateReservedAndMismatchedTensorsButStaysUsable) {
  TempDir dir;
  absl::StatusOr<std::unique_ptr<StreamingSafetensorsWriter>> w =
      StreamingSafetensorsWriter::Create(dir / "out.safetensors");
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Add(Filled("a", DType::kF32, {2})).ok());
  absl::Status dup = (*w)->Add(Filled("a", DType::kF32, {2}));
  EXPECT_EQ(dup.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(dup.message(), HasSubstr("\"a\" added twice"));
  EXPECT_THAT((*w)->Add(Filled("__metadata__", DType::kF32, {2})).message(), HasSubstr("reserved"));
  NamedTensor bad = Filled("bad", DType::kF32, {2});
  bad.tensor.shape = {3};
  EXPECT_THAT((*w)->Add(bad).message(), HasSubstr("F32 [3] needs 12 bytes, got 8"));
  EXPECT_THAT((*w)->Add(Filled("bad\xff", DType::kF32, {1})).message(), HasSubstr("UTF-8"));
  ASSERT_TRUE((*w)->Finish().ok());
  absl::StatusOr<std::shared_ptr<SafetensorsFile>> f =
      SafetensorsFile::Open(dir / "out.safetensors");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->num_tensors(), 1u);
  EXPECT_EQ((*w)->Add(Filled("c", DType::kF32, {1})).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(StreamingWriter, CreateInMissingDirectoryNamesThePath) {
  TempDir dir;
  absl::StatusOr<std::unique_ptr<StreamingSafetensorsWriter>> w =
      StreamingSafetensorsWriter::Create(dir / "nope/out.safetensors");
  EXPECT_EQ(w.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(w.status().message(), HasSubstr(dir / "nope/out.safetensors"));
}

// ---------------------------------------------------------------------------
// One-shot writer errors

TEST(WriteSafetensors, DuplicateNameWritesNothing) {
  TempDir dir;
  absl::Status s = WriteSafetensors(dir / "d.safetensors",
                                    {Filled("a", DType::kF32, {1}), Filled("a", DType::kF32, {1})});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("\"a\" given twice"));
  EXPECT_THAT(dir.List(), IsEmpty());
}

TEST(WriteSafetensors, UnwritablePathNamesThePathAndErrno) {
  TempDir dir;
  absl::Status s = WriteSafetensors(dir / "nope/x.safetensors", {Filled("a", DType::kF32, {1})});
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr(dir / "nope/x.safetensors"));
  EXPECT_THAT(s.message(), HasSubstr("No such file or directory"));
}

TEST(WriteSafetensors, BadMetadataIsRejected) {
  TempDir dir;
  absl::Status s = WriteSafetensors(dir / "m.safetensors", {}, {{"k", std::string("\xff\xfe", 2)}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("UTF-8"));
  EXPECT_THAT(dir.List(), IsEmpty());
}

}  // namespace
}  // namespace moe_adapter
