// File: core/json_limits.h
//
// Every JSON document that comes from outside (config.json and
// StreamOptions.config_json, adapter_config.json, model.safetensors.index.json,
// safetensors headers) is parsed through here, under three bounds:
//   - size: a document longer than its limit is refused before parsing;
//   - depth: at most kMaxJsonDepth nested arrays/objects, enforced while
//     parsing (the SAX parser stops at the first bracket too many), because
//     nlohmann's dump(), copy and comparison recurse once per level and a
//     100,000-deep array from a client would overflow the stack;
//   - duplicate keys are refused at any depth (nlohmann silently keeps one,
//     and which one is the writer's accident).
// Parsing is a SAX stream (nlohmann::json::sax_parse is iterative), so a
// caller can build its own compact structures (the safetensors header, the
// index's weight map) with memory proportional to the text instead of a DOM
// costing ~50x; ParseJson() builds a DOM for the small documents.
//
// Example:
//   ASSIGN_OR_RETURN(nlohmann::json cfg, ParseJson(text, "config.json", kMaxConfigJsonBytes));
//
// No message built here echoes untrusted text except through Quote()/Printable().
// Thread-safety: functions are reentrant; a JsonEvents object serves one parse.
#ifndef MOE_ADAPTER_CORE_JSON_LIMITS_H_
#define MOE_ADAPTER_CORE_JSON_LIMITS_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moe_adapter {

// Arrays/objects nested inside each other, the root counting as 1. Real
// configs and headers need 3 or 4; 64 leaves room for any real document while
// keeping every recursive walk of a parsed value a few KB of stack.
inline constexpr int kMaxJsonDepth = 64;

// config.json / adapter_config.json: a few KB in practice (the CLI reads them
// with the same cap).
inline constexpr uint64_t kMaxConfigJsonBytes = uint64_t{16} << 20;

// JsonEvents: what a parse reports, in document order (the nlohmann SAX event
// names). Depth, duplicates and syntax are checked before an event arrives.
// An event returns false to stop the parse, after Fail() has said why.
class JsonEvents {
 public:
  virtual ~JsonEvents() = default;
  virtual bool null() = 0;
  virtual bool boolean(bool value) = 0;
  virtual bool number_integer(int64_t value) = 0;  // negative integers
  virtual bool number_unsigned(uint64_t value) = 0;
  // `literal` is the number as written (unbounded: Printable() it for messages).
  virtual bool number_float(double value, const std::string& literal) = 0;
  virtual bool string(std::string& value) = 0;
  virtual bool start_object() = 0;
  virtual bool key(std::string& key) = 0;
  virtual bool end_object() = 0;
  virtual bool start_array() = 0;
  virtual bool end_array() = 0;

  // ChecksRootKeys(): true when these events refuse a key given twice in the
  // root object themselves (with JsonDuplicateKeyError()), so the parse need
  // not keep a second copy of every key of a header with 10^5 tensors.
  virtual bool ChecksRootKeys() const { return false; }

  // error(): why the events stopped the parse (OK while none did).
  const absl::Status& error() const { return error_; }

 protected:
  bool Fail(absl::Status status) {
    error_ = std::move(status);
    return false;
  }

 private:
  absl::Status error_;
};

// ParseJsonEvents(): streams `text` into `events`. kInvalidArgument, with a
// message starting with `source` (a file name or field), when the text is
// over `max_bytes`, not valid JSON, nested deeper than kMaxJsonDepth or has
// a key twice in one object; otherwise the events' own error, or OK.
absl::Status ParseJsonEvents(absl::string_view text, absl::string_view source, uint64_t max_bytes,
                             JsonEvents* events);

// JsonDuplicateKeyError(): the message for `key` given twice in the root
// object of the document named `source`.
absl::Status JsonDuplicateKeyError(absl::string_view source, absl::string_view key);

// JsonDomBuilder: JsonEvents that build a nlohmann::json value (the depth
// bound makes every later recursive walk of it safe). done() once a whole
// value has arrived.
class JsonDomBuilder final : public JsonEvents {
 public:
  bool null() override { return Add(nullptr); }
  bool boolean(bool value) override { return Add(value); }
  bool number_integer(int64_t value) override { return Add(value); }
  bool number_unsigned(uint64_t value) override { return Add(value); }
  bool number_float(double value, const std::string&) override { return Add(value); }
  bool string(std::string& value) override { return Add(std::move(value)); }
  bool start_object() override;
  bool key(std::string& key) override;
  bool end_object() override { return End(); }
  bool start_array() override;
  bool end_array() override { return End(); }

  bool done() const { return started_ && open_.empty(); }
  nlohmann::json& value() { return root_; }

 private:
  bool Add(nlohmann::json value) {
    Place(std::move(value));
    return true;
  }
  nlohmann::json* Place(nlohmann::json value);
  bool End() {
    open_.pop_back();
    return true;
  }

  nlohmann::json root_;
  bool started_ = false;
  std::vector<nlohmann::json*> open_;  // arrays/objects being filled
  nlohmann::json* slot_ = nullptr;     // where an object's next value goes
};

// ParseJson(): the DOM of `text`, under the bounds of ParseJsonEvents().
absl::StatusOr<nlohmann::json> ParseJson(absl::string_view text, absl::string_view source,
                                         uint64_t max_bytes);

// JsonTypeName(): "an object", "an array", "a string", "an integer", ... for
// messages that say what was found instead of echoing it.
const char* JsonTypeName(nlohmann::json::value_t type);
inline const char* JsonTypeName(const nlohmann::json& value) { return JsonTypeName(value.type()); }

// DescribeJson(): a found value for a message, bounded: numbers, booleans and
// null as written, strings through Quote(), arrays/objects by their type only.
std::string DescribeJson(const nlohmann::json& value);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_JSON_LIMITS_H_
