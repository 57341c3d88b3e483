// Fuzzes a stream's options (protocol/options_codec.cc): the input is a
// v1::StreamOptions in protobuf text format (readable seeds, and mutations
// stay well formed more often than in the binary encoding, whose length
// prefixes they break), turned into ConvertOptions and validated as the
// server does with the first message of every stream.
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <cstdint>
#include <string>

#include "absl/strings/match.h"
#include "moe_adapter/v1/adapter.pb.h"
#include "protocol/options_codec.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace moe_adapter;
  static constexpr uint64_t kDefaultChunk = 4u << 20;
  static constexpr uint64_t kMaxChunk = 64u << 20;
  v1::StreamOptions wire;
  google::protobuf::TextFormat::Parser parser;
  parser.AllowPartialMessage(true);
  struct Quiet : google::protobuf::io::ErrorCollector {
    void AddError(int, int, const std::string&) override {}
  } quiet;
  parser.RecordErrorsTo(&quiet);
  if (!parser.ParseFromString(std::string(reinterpret_cast<const char*>(data), size), &wire)) return 0;
  absl::StatusOr<wire::StreamConfig> cfg = wire::StreamConfigFromWire(wire, kDefaultChunk, kMaxChunk);
  if (!cfg.ok()) {
    FUZZ_CHECK(cfg.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(absl::StartsWith(cfg.status().message(), "options: "));
    fuzz::CheckStatusMessageFits(cfg.status());
    return 0;
  }
  FUZZ_CHECK(cfg->chunk_bytes > 0 && cfg->chunk_bytes <= kMaxChunk);
  FUZZ_CHECK(ValidateOptions(cfg->options).ok());
  const ConvertOptions& o = cfg->options;
  FUZZ_CHECK(o.ep_rank >= 0 && o.ep_rank < o.ep_size);
  return 0;
}
