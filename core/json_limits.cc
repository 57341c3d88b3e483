#include "core/json_limits.h"

#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "core/quote.h"

namespace moe_adapter {
namespace {

using json = nlohmann::json;

// "a" > "b" > "c": the object keys that lead to a value, for messages. Only
// the last few are shown (each quoted, so bounded), since a path can be
// kMaxJsonDepth keys of any length.
std::string KeyPath(const std::vector<const std::string*>& keys) {
  constexpr size_t kShown = 3;
  std::string out = keys.size() > kShown ? "\xE2\x80\xA6 > " : "";
  for (size_t i = keys.size() > kShown ? keys.size() - kShown : 0; i < keys.size(); ++i) {
    absl::StrAppend(&out, Quote(*keys[i]), i + 1 < keys.size() ? " > " : "");
  }
  return out;
}

// Guard: the nlohmann SAX handler. It checks depth and duplicate keys, turns
// parse errors into a status, and hands every event on to the caller's
// JsonEvents.
class Guard {
 public:
  Guard(absl::string_view source, JsonEvents* events) : source_(source), events_(events) {}

  bool null() { return Forward(events_->null()); }
  bool boolean(bool v) { return Forward(events_->boolean(v)); }
  bool number_integer(json::number_integer_t v) { return Forward(events_->number_integer(v)); }
  bool number_unsigned(json::number_unsigned_t v) { return Forward(events_->number_unsigned(v)); }
  bool number_float(json::number_float_t v, const std::string& literal) {
    return Forward(events_->number_float(v, literal));
  }
  bool string(std::string& v) { return Forward(events_->string(v)); }
  bool binary(json::binary_t&) { return true; }  // never sent for JSON text

  bool start_object(std::size_t) {
    if (!Open(/*object=*/true)) return false;
    return Forward(events_->start_object());
  }
  bool key(std::string& k) {
    Frame& f = frames_.back();
    const bool checked_by_events = frames_.size() == 1 && events_->ChecksRootKeys();
    if (!checked_by_events && !f.keys.insert(k).second) {
      std::vector<const std::string*> parents = Path();
      if (parents.empty()) return Stop(JsonDuplicateKeyError(source_, k));
      return Stop(absl::InvalidArgumentError(absl::StrCat(source_, ": key ", Quote(k),
                                                          " appears twice inside ",
                                                          KeyPath(parents),
                                                          " (expected each key once)")));
    }
    f.key = k;
    return Forward(events_->key(k));
  }
  bool end_object() {
    frames_.pop_back();
    return Forward(events_->end_object());
  }
  bool start_array(std::size_t) {
    if (!Open(/*object=*/false)) return false;
    return Forward(events_->start_array());
  }
  bool end_array() {
    frames_.pop_back();
    return Forward(events_->end_array());
  }

  bool parse_error(std::size_t, const std::string&, const json::exception& e) {
    // what() quotes the last token read, which may be megabytes long or not UTF-8.
    return Stop(absl::InvalidArgumentError(
        absl::StrCat(source_, ": not valid JSON: ", Printable(e.what(), 300))));
  }

  const absl::Status& status() const { return status_; }

 private:
  struct Frame {
    bool object;
    std::string key;  // the key last seen (objects)
    absl::flat_hash_set<std::string> keys;
  };

  bool Open(bool object) {
    if (frames_.size() >= static_cast<size_t>(kMaxJsonDepth)) {
      std::vector<const std::string*> parents = Path();
      return Stop(absl::InvalidArgumentError(absl::StrCat(
          source_, ": JSON nested deeper than ", kMaxJsonDepth, " levels",
          parents.empty() ? "" : absl::StrCat(" inside ", KeyPath(parents)),
          " (expected at most ", kMaxJsonDepth, " arrays/objects inside each other)")));
    }
    frames_.push_back(Frame{object, {}, {}});
    return true;
  }

  std::vector<const std::string*> Path() const {
    std::vector<const std::string*> keys;
    for (const Frame& f : frames_) {
      if (f.object && !f.key.empty()) keys.push_back(&f.key);
    }
    return keys;
  }

  bool Forward(bool go_on) {
    if (!go_on) status_ = events_->error();
    return go_on;
  }
  bool Stop(absl::Status s) {
    status_ = std::move(s);
    return false;
  }

  const absl::string_view source_;
  JsonEvents* const events_;
  std::vector<Frame> frames_;
  absl::Status status_;
};

}  // namespace

absl::Status JsonDuplicateKeyError(absl::string_view source, absl::string_view key) {
  return absl::InvalidArgumentError(absl::StrCat(
      source, ": key ", Quote(key), " appears twice in the JSON object (expected each key once)"));
}

absl::Status ParseJsonEvents(absl::string_view text, absl::string_view source, uint64_t max_bytes,
                             JsonEvents* events) {
  if (text.size() > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", text.size(),
                                                   " bytes, more than the limit of ", max_bytes,
                                                   " bytes for this JSON document"));
  }
  Guard guard(source, events);
  bool ok;
  try {
    ok = json::sax_parse(text.begin(), text.end(), &guard, json::input_format_t::json,
                         /*strict=*/true);
  } catch (const std::exception& e) {  // bad_alloc; the parser itself reports through the guard
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": could not parse JSON: ", Printable(e.what())));
  }
  if (!guard.status().ok()) return guard.status();
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not valid JSON"));
  }
  return absl::OkStatus();
}

json* JsonDomBuilder::Place(json value) {
  started_ = true;
  if (open_.empty()) {
    root_ = std::move(value);
    return &root_;
  }
  json& parent = *open_.back();
  if (parent.is_array()) {
    parent.get_ref<json::array_t&>().push_back(std::move(value));
    return &parent.get_ref<json::array_t&>().back();
  }
  *slot_ = std::move(value);
  return slot_;
}

bool JsonDomBuilder::start_object() {
  open_.push_back(Place(json::object()));
  return true;
}

bool JsonDomBuilder::key(std::string& key) {
  slot_ = &(*open_.back())[std::move(key)];
  return true;
}

bool JsonDomBuilder::start_array() {
  open_.push_back(Place(json::array()));
  return true;
}

absl::StatusOr<json> ParseJson(absl::string_view text, absl::string_view source,
                               uint64_t max_bytes) {
  JsonDomBuilder dom;
  absl::Status s = ParseJsonEvents(text, source, max_bytes, &dom);
  if (!s.ok()) return s;
  return std::move(dom.value());
}

const char* JsonTypeName(json::value_t type) {
  switch (type) {
    case json::value_t::null:
      return "null";
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    case json::value_t::string:
      return "a string";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a non-integer number";
    default:
      return "an unexpected JSON value";
  }
}

std::string DescribeJson(const json& value) {
  if (value.is_string()) return Quote(value.get_ref<const std::string&>());
  if (value.is_structured()) return JsonTypeName(value);
  return value.dump();  // a number, boolean or null: a few characters
}

}  // namespace moe_adapter
