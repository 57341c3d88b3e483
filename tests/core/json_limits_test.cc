// Untrusted JSON at every parser entry point: nesting refused past 64 levels
// while parsing (a 100,000-deep array used to overflow the stack in dump()),
// size caps, and messages that stay short, name the file and field, quote
// untrusted text truncated with "…", and are valid UTF-8.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "checkpoint/adapter_config.h"
#include "core/checkpoint_reader.h"
#include "core/json_limits.h"
#include "core/peft_version.h"
#include "core/quote.h"
#include "core/safetensors_reader.h"
#include "moe_adapter/convert_options.h"
#include "tests/testutil/tensor_testutil.h"

namespace moe_adapter {
namespace {

namespace fs = std::filesystem;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr size_t kDeep = 100'000;
const std::string kEllipsis = "\xE2\x80\xA6";

// `n` arrays inside each other.
std::string Nested(size_t n) { return std::string(n, '[') + std::string(n, ']'); }

bool IsValidUtf8(absl::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char b = static_cast<unsigned char>(s[i]);
    size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size() || (n == 2 && b < 0xC2) || (n == 4 && b > 0xF4)) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    const unsigned char c = n > 1 ? static_cast<unsigned char>(s[i + 1]) : 0;
    if ((b == 0xE0 && c < 0xA0) || (b == 0xED && c > 0x9F) || (b == 0xF0 && c < 0x90) ||
        (b == 0xF4 && c > 0x8F)) {
      return false;
    }
    i += n;
  }
  return true;
}

// A refusal as every untrusted-JSON error must be: kInvalidArgument, under
// 1 KiB, valid UTF-8, containing each of `parts`.
void ExpectRefused(const absl::Status& s, const std::vector<std::string>& parts) {
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  const std::string m(s.message());
  EXPECT_LT(m.size(), 1024u) << m.substr(0, 2000);
  EXPECT_TRUE(IsValidUtf8(m)) << m.substr(0, 2000);
  for (const std::string& p : parts) EXPECT_THAT(m, HasSubstr(p));
}

const std::vector<std::string> kTooDeep = {"nested deeper than 64 levels"};

std::string Config(const std::string& experts, const std::string& extra = "") {
  return absl::StrCat(R"({"num_experts":)", experts,
                      R"(,"hidden_size":8,"moe_intermediate_size":4)", extra, "}");
}

// ---------------------------------------------------------------------------
// config.json / StreamOptions.config_json

TEST(HfConfigJson, DeepNumExpertsIsRefusedWhileParsing) {
  ExpectRefused(ParseHfConfig(Config(Nested(kDeep))).status(),
                {"config.json", "\"num_experts\"", "nested deeper than 64 levels"});
}

TEST(HfConfigJson, DeepMlpOnlyLayersIsRefused) {
  ExpectRefused(ParseHfConfig(Config("4", R"(,"mlp_only_layers":)" + Nested(kDeep))).status(),
                {"config.json", "\"mlp_only_layers\"", "nested deeper than 64"});
  // One level inside the list: the old code dumped the element into the message.
  ExpectRefused(ParseHfConfig(Config("4", R"(,"mlp_only_layers":[)" + Nested(kDeep) + "]")).status(),
                {"\"mlp_only_layers\"", "nested deeper than 64"});
}

TEST(HfConfigJson, DeepInsideTextConfigIsRefused) {
  ExpectRefused(ParseHfConfig(R"({"text_config":)" + Config(Nested(kDeep)) + "}").status(),
                {"config.json", "\"text_config\" > \"num_experts\"", "nested deeper than 64"});
}

TEST(HfConfigJson, Depth64IsParsedAnd65IsRefused) {
  // The root object is level 1: 63 arrays inside it make 64.
  absl::Status at64 = ParseHfConfig(Config(Nested(63))).status();
  ExpectRefused(at64, {"\"num_experts\" must be a non-negative integer, got an array"});
  EXPECT_THAT(std::string(at64.message()), Not(HasSubstr("deeper")));
  ExpectRefused(ParseHfConfig(Config(Nested(64))).status(), kTooDeep);
}

TEST(HfConfigJson, WrongValuesAreDescribedNotDumped) {
  ExpectRefused(ParseHfConfig(Config("[1,2,3]")).status(), {"got an array"});
  ExpectRefused(ParseHfConfig(Config("\"" + std::string(1 << 20, 'x') + "\"")).status(),
                {"got \"xxx", kEllipsis + "\""});
  ExpectRefused(ParseHfConfig(Config("4", R"(,"mlp_only_layers":[{"a":1}])")).status(),
                {"must hold integers, got an object"});
  ExpectRefused(ParseHfConfig(Config("-3")).status(), {"got -3"});
}

TEST(HfConfigJson, OverSizeLimitIsRefusedBeforeParsing) {
  const std::string big = Config("4", ",\"pad\":\"" + std::string(kMaxConfigJsonBytes, ' ') + "\"");
  ExpectRefused(ParseHfConfig(big).status(), {"config.json", "more than the limit of 16777216"});
}

TEST(HfConfigJson, SyntaxErrorQuotesAShortPrintablePrefix) {
  // nlohmann's message quotes the last token read: here 1 MB of an invalid literal.
  ExpectRefused(ParseHfConfig("{\"a\":" + std::string(1 << 20, 't') + "\x01\xff}").status(),
                {"config.json: not valid JSON", "line 1, column"});
}

TEST(HfConfigJson, DuplicateKeyIsRefused) {
  ExpectRefused(ParseHfConfig(R"({"num_experts":4,"num_experts":8,"hidden_size":8,"moe_intermediate_size":4})")
                    .status(),
                {"config.json", "\"num_experts\" appears twice"});
}

// ---------------------------------------------------------------------------
// adapter_config.json: options check, peft version, the config written out

TEST(AdapterConfigJson, DeepValueIsRefusedEverywhereItIsRead) {
  const std::string deep = R"({"peft_version":)" + Nested(kDeep) + "}";
  ConvertOptions o;
  o.geometry.num_experts = 4;
  o.geometry.hidden_size = 8;
  o.geometry.moe_intermediate_size = 4;
  o.adapter_config_json = deep;
  ExpectRefused(ValidateOptions(o), {"adapter_config.json", "\"peft_version\"", "nested deeper than 64"});
  std::string source;
  ExpectRefused(LayoutFromAdapterConfig(deep, &source).status(),
                {"adapter_config.json", "nested deeper than 64"});
  ExpectRefused(AdapterConfigForHf(R"({"target_parameters":[)" + Nested(kDeep) + "]}",
                                   LoraLayout::kPerExpert, 8, 16.0)
                    .status(),
                {"adapter_config.json", "\"target_parameters\"", "nested deeper than 64"});
}

TEST(AdapterConfigJson, Depth64IsAcceptedAnd65Refused) {
  const auto config = [](size_t n) { return R"({"extra":)" + Nested(n) + "}"; };
  std::string source;
  EXPECT_TRUE(LayoutFromAdapterConfig(config(63), &source).ok());
  ExpectRefused(LayoutFromAdapterConfig(config(64), &source).status(), kTooDeep);
  absl::StatusOr<std::string> written = AdapterConfigForHf(config(63), LoraLayout::kPeftV019, 8, 16.0);
  ASSERT_TRUE(written.ok()) << written.status();
  ExpectRefused(AdapterConfigForHf(config(64), LoraLayout::kPeftV019, 8, 16.0).status(), kTooDeep);
}

TEST(AdapterConfigJson, PeftVersionMessagesAreBounded) {
  std::string source;
  ExpectRefused(LayoutFromAdapterConfig(R"({"peft_version":")" + std::string(1 << 20, 'v') + "\"}", &source)
                    .status(),
                {"peft_version \"vvv", kEllipsis + "\" is not a version"});
  ExpectRefused(LayoutFromAdapterConfig(R"({"peft_version":[1,2]})", &source).status(),
                {"must be a string, got an array"});
  absl::StatusOr<std::optional<LoraLayout>> long_ok =
      LayoutFromAdapterConfig(R"({"peft_version":"0.19.1)" + std::string(1 << 20, 'x') + "\"}", &source);
  ASSERT_TRUE(long_ok.ok()) << long_ok.status();
  EXPECT_LT(source.size(), 300u);
}

// ---------------------------------------------------------------------------
// Files: index.json and safetensors headers

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::path(::testing::TempDir()) / "json_limits.XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string Le64(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out;
}

// A safetensors file whose one tensor "a" (F32 [1]) has `extra` appended to
// its entry, and `metadata` as its metadata object when not empty.
std::string Safetensors(const std::string& extra, const std::string& metadata = "",
                        const std::string& name = "a", const std::string& shape = "[1]") {
  const std::string header = absl::StrCat(
      "{", metadata.empty() ? "" : absl::StrCat(R"("__metadata__":)", metadata, ","), "\"", name,
      R"(":{"dtype":"F32","shape":)", shape, R"(,"data_offsets":[0,4])", extra, "}}");
  return Le64(header.size()) + header + std::string(4, '\0');
}

absl::Status OpenSafetensors(const TempDir& dir, const std::string& bytes) {
  WriteFile(dir / "x.safetensors", bytes);
  return SafetensorsFile::Open(dir / "x.safetensors").status();
}

TEST(SafetensorsHeaderJson, DeepValuesAreRefusedWhileParsing) {
  TempDir dir;
  ExpectRefused(OpenSafetensors(dir, Safetensors(R"(,"extra":)" + Nested(kDeep))),
                {dir / "x.safetensors", "header", "\"a\" > \"extra\"", "nested deeper than 64"});
  // A metadata value must be a string: refused at its first bracket.
  ExpectRefused(OpenSafetensors(dir, Safetensors("", R"({"k":)" + Nested(kDeep) + "}")),
                {"\"__metadata__\" entry \"k\" must be a string, found an array"});
}

TEST(SafetensorsHeaderJson, Depth64IsAcceptedAnd65Refused) {
  TempDir dir;
  // Root (1) > entry (2) > "extra": 62 arrays make 64.
  EXPECT_TRUE(OpenSafetensors(dir, Safetensors(R"(,"extra":)" + Nested(62))).ok());
  ExpectRefused(OpenSafetensors(dir, Safetensors(R"(,"extra":)" + Nested(63))), kTooDeep);
}

TEST(SafetensorsHeaderJson, HugeNamesAndDtypesAreQuotedTruncated) {
  TempDir dir;
  const std::string name(1 << 20, 'n');
  const std::string header = absl::StrCat(R"({")", name, R"(":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})");
  ExpectRefused(OpenSafetensors(dir, Le64(header.size()) + header + std::string(4, '\0')),
                {"tensor \"nnn", kEllipsis + "\"", "needs 8 bytes"});
  const std::string dtype = absl::StrCat(R"({"a":{"dtype":")", std::string(1 << 20, 'D'),
                                         R"(","shape":[1],"data_offsets":[0,4]}})");
  ExpectRefused(OpenSafetensors(dir, Le64(dtype.size()) + dtype + std::string(4, '\0')),
                {"unknown dtype \"DDD", kEllipsis + "\""});
  ExpectRefused(OpenSafetensors(dir, Safetensors("", R"({")" + std::string(1 << 20, 'k') + R"(":1})")),
                {"\"__metadata__\" entry \"kkk", kEllipsis + "\" must be a string"});
  // A number literal of 1 MB digits where an offset belongs.
  const std::string offs = absl::StrCat(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,1.)",
                                        std::string(1 << 20, '0'), "5]}})");
  ExpectRefused(OpenSafetensors(dir, Le64(offs.size()) + offs + std::string(4, '\0')),
                {"\"data_offsets\"[1] must be a non-negative integer, found 1.000", kEllipsis});
}

TEST(SafetensorsHeaderJson, ControlCharactersInNamesAreEscaped) {
  TempDir dir;
  // JSON escapes make a name with a newline, a NUL and a C1 control.
  ExpectRefused(OpenSafetensors(dir, Safetensors("", "", "a\\nb\\u0000c\\u0085d\\\"e", "[2]")),
                {"tensor \"a\\nb\\x00c\\u0085d\\\"e\"", "8 bytes"});
}

TEST(IndexJson, DeepValuesAreRefusedWhileParsing) {
  TempDir dir;
  WriteFile(dir / "model-1.safetensors", Safetensors(""));
  WriteFile(dir / "model.safetensors.index.json",
            R"({"metadata":{"total_size":4,"x":)" + Nested(kDeep) + R"(},"weight_map":{"a":"model-1.safetensors"}})");
  ExpectRefused(SafetensorsCheckpoint::Open(dir.path()).status(),
                {"model.safetensors.index.json", "\"metadata\" > \"x\"", "nested deeper than 64"});
  WriteFile(dir / "model.safetensors.index.json",
            R"({"other":{"a":)" + Nested(kDeep) + R"(},"weight_map":{"a":"model-1.safetensors"}})");
  ExpectRefused(SafetensorsCheckpoint::Open(dir.path()).status(),
                {"model.safetensors.index.json", "\"other\" > \"a\"", "nested deeper than 64"});
  // A weight_map value must be a string: refused at its first bracket.
  WriteFile(dir / "model.safetensors.index.json", R"({"weight_map":{"a":)" + Nested(kDeep) + "}}");
  ExpectRefused(SafetensorsCheckpoint::Open(dir.path()).status(),
                {"model.safetensors.index.json", "entry \"a\" must be a file name string, found an array"});
}

TEST(IndexJson, Depth64IsAcceptedAnd65Refused) {
  TempDir dir;
  WriteFile(dir / "model-1.safetensors", Safetensors(""));
  const auto index = [](size_t n) {
    return R"({"metadata":{"x":)" + Nested(n) + R"(},"weight_map":{"a":"model-1.safetensors"}})";
  };
  WriteFile(dir / "model.safetensors.index.json", index(62));
  absl::StatusOr<SafetensorsCheckpoint> ok = SafetensorsCheckpoint::Open(dir.path());
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->index_metadata().at("x"), Nested(62));
  WriteFile(dir / "model.safetensors.index.json", index(63));
  ExpectRefused(SafetensorsCheckpoint::Open(dir.path()).status(), kTooDeep);
}

TEST(IndexJson, HugeKeysAndFileNamesAreQuotedTruncated) {
  TempDir dir;
  WriteFile(dir / "model-1.safetensors", Safetensors(""));
  WriteFile(dir / "model.safetensors.index.json",
            R"({"weight_map":{")" + std::string(1 << 20, 'k') + R"(":"../)" + std::string(1 << 20, 'f') +
                "\"}}");
  ExpectRefused(SafetensorsCheckpoint::Open(dir.path()).status(),
                {"key \"kkk", "file \"../fff", kEllipsis + "\"", "not a plain file name"});
  WriteFile(dir / "model.safetensors.index.json",
            R"({"weight_map":{")" + std::string(1 << 20, 'k') + R"(":5}})");
  ExpectRefused(SafetensorsCheckpoint::Open(dir.path()).status(),
                {"entry \"kkk", kEllipsis + "\" must be a file name string, found an integer"});
}

// ---------------------------------------------------------------------------
// Conversion messages quote the keys they name through the same Quote()

TEST(QuotedKeys, ConversionMessagesQuoteLongKeysTruncated) {
  std::mt19937_64 rng(7);
  const NamedTensor t{std::string(1 << 20, 'k') + "\n", testing::RandomTensor(DType::kF32, {1}, rng)};
  const testing::TensorList twice = {t, t};
  ExpectRefused(testing::RunToHf(testing::Geo(4, 8, 6), twice).status(),
                {"input key \"kkk", kEllipsis + "\" appears twice"});
  ExpectRefused(testing::RunFromHf(testing::Geo(4, 8, 6), twice).status(),
                {"input key \"kkk", kEllipsis + "\" appears twice"});
}

// ---------------------------------------------------------------------------
// The module itself

TEST(ParseJson, RefusesDeepArraysAndObjectsOfAnySize) {
  for (size_t depth : {size_t{65}, size_t{200'000}, size_t{1'000'000}}) {
    ExpectRefused(ParseJson(Nested(depth), "doc", uint64_t{1} << 30).status(), {"doc: ", "deeper than 64"});
    std::string objects;
    for (size_t i = 0; i < depth; ++i) objects += "{\"k\":";
    objects += "1" + std::string(depth, '}');
    ExpectRefused(ParseJson(objects, "doc", uint64_t{1} << 30).status(), {"\"k\" > \"k\" > \"k\""});
  }
  absl::StatusOr<nlohmann::json> at64 = ParseJson(Nested(64), "doc", 1 << 20);
  ASSERT_TRUE(at64.ok()) << at64.status();
  EXPECT_EQ(at64->dump(), Nested(64));
}

TEST(ParseJson, BuildsTheSameValueAsNlohmann) {
  const std::string text =
      R"({"a":[1,-2,3.5,"s\u00e9",true,false,null,{"b":{}}],"c":[],"d":{"e":[[]]},"f":18446744073709551615})";
  absl::StatusOr<nlohmann::json> got = ParseJson(text, "doc", 1 << 20);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, nlohmann::json::parse(text));
  ExpectRefused(ParseJson(R"({"a":{"b":1,"b":2}})", "doc", 1 << 20).status(),
                {"doc: key \"b\" appears twice inside \"a\""});
  ExpectRefused(ParseJson("{} ", "doc", 2).status(), {"3 bytes, more than the limit of 2"});
}

TEST(Quote, CutsAt200BytesOnACharacterBoundaryWithAnEllipsis) {
  EXPECT_EQ(Quote("short"), "\"short\"");
  EXPECT_EQ(Quote(std::string(200, 'x')), "\"" + std::string(200, 'x') + "\"");
  EXPECT_EQ(Quote(std::string(201, 'x')), "\"" + std::string(200, 'x') + kEllipsis + "\"");
  std::string e_acute;
  for (int i = 0; i < 500'000; ++i) e_acute += "\xC3\xA9";  // 1 MB of "é"
  const std::string q = Quote(e_acute);
  EXPECT_TRUE(IsValidUtf8(q));
  EXPECT_THAT(q, EndsWith(kEllipsis + "\""));
  EXPECT_EQ(q.size(), 1 + 200 + kEllipsis.size() + 1);
  // 199 ASCII + a 2-byte character: the character does not fit and is dropped whole.
  EXPECT_EQ(Quote(std::string(199, 'x') + "\xC3\xA9"), "\"" + std::string(199, 'x') + kEllipsis + "\"");
}

TEST(Quote, EscapesControlsAndInvalidUtf8SoMessagesStayValidUtf8) {
  EXPECT_EQ(Quote("a\nb\t\x01\x7f"), "\"a\\nb\\t\\x01\\x7F\"");
  EXPECT_EQ(Quote("q\"b\\"), "\"q\\\"b\\\\\"");
  EXPECT_EQ(Quote("\xff\xfe" "ok"), "\"\\xFF\\xFEok\"");
  EXPECT_EQ(Quote("\xC2\x85"), "\"\\u0085\"");                      // C1 control
  EXPECT_EQ(Quote("\xE2\x82"), "\"\\xE2\\x82\"");                    // truncated sequence
  EXPECT_EQ(Quote("\xED\xA0\x80"), "\"\\xED\\xA0\\x80\"");           // surrogate
  EXPECT_EQ(Quote("\xC0\xAF"), "\"\\xC0\\xAF\"");                    // overlong '/'
  EXPECT_EQ(Quote("\xF0\x9F\x98\x80 \xE2\x80\xA6"), "\"\xF0\x9F\x98\x80 \xE2\x80\xA6\"");  // kept
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (int i = 0; i < 64; ++i) all += "\xE0\x80\xF5\xF4\x90";
  EXPECT_TRUE(IsValidUtf8(Quote(all)));
  EXPECT_TRUE(IsValidUtf8(Printable(all, 100000)));
  EXPECT_FALSE(IsValidUtf8(all));
}

}  // namespace
}  // namespace moe_adapter
