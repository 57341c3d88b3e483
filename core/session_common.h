// Pieces both conversion directions share: the exclude filter, the output-key
// registry that refuses duplicates, and message helpers.
#ifndef MOE_ADAPTER_CORE_SESSION_COMMON_H_
#define MOE_ADAPTER_CORE_SESSION_COMMON_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "moe_adapter/converter.h"

namespace re2 {
class RE2;
}

namespace moe_adapter {

// ExcludeFilter: Python re.match semantics (anchored at the start only) on
// output keys, with RE2 so untrusted patterns run in linear time.
class ExcludeFilter {
 public:
  explicit ExcludeFilter(const std::string& regex);  // regex compiled by ValidateOptions
  ~ExcludeFilter();
  bool Excludes(absl::string_view key) const;

 private:
  std::unique_ptr<re2::RE2> re_;
};

// kKeyOverheadBytes: what keeping one key costs beyond its bytes in a set or
// map (the string's heap block rounding, the table slot or tree node, a table
// at most half full after it grows). Sessions count kept keys with it, so a
// server can hold a stream's bookkeeping to its memory budget.
inline constexpr size_t kKeyOverheadBytes = 96;
inline size_t KeyFootprint(size_t key_bytes) { return key_bytes + kKeyOverheadBytes; }

// OutputRegistry: every key a session emits, so two inputs can never write the
// same output key (the reference would silently keep the later one).
class OutputRegistry {
 public:
  absl::Status Claim(const std::string& key);
  // ClaimPassThrough(): the output key of a kPassThrough plan (its input's
  // name), for sessions' ClaimPassThrough(); any other plan is an internal error.
  absl::Status ClaimPassThrough(const TensorPlan& plan);
  // bytes(): what the keys cost (KeyFootprint() each).
  size_t bytes() const { return bytes_; }

 private:
  absl::flat_hash_set<std::string> keys_;
  size_t bytes_ = 0;
};

// EmitUnconverted(): what every session's Add()/ConvertWhole() does first:
// the data must match the plan's header; a kDrop plan is done; a kPassThrough
// plan is claimed in `registry` and emitted as it is. True when the plan was
// handled here, false when the caller converts it (kSlabs, kWhole).
absl::StatusOr<bool> EmitUnconverted(const TensorPlan& plan, const Tensor& in, OutputRegistry& registry,
                                     const TensorSink& sink);

// InputRegistry: every input key a session has planned; a second tensor
// under the same key is an error (a file cannot hold one, a stream can).
class InputRegistry {
 public:
  absl::Status Claim(const std::string& key);
  // bytes(): what the keys cost (KeyFootprint() each).
  size_t bytes() const { return bytes_; }

 private:
  absl::flat_hash_set<std::string> keys_;
  size_t bytes_ = 0;
};

// EmptyRangeWarning(): the note for an EP rank that owns no experts, or "".
std::string EmptyRangeWarning(const ConvertOptions& o, int64_t range_size);

// CheckMoeLayer(): kInvalidArgument when a config's layer plan says `layer`
// has no routed experts but `key` holds expert tensors.
absl::Status CheckMoeLayer(const Geometry& g, absl::string_view key, int64_t layer);

// IdsText(): "[0, 1, 2]" or "[0..127]" for long runs, for messages.
std::string IdsText(const std::vector<int64_t>& ids);

// IdsList: IdsText() of ids added one by one, keeping only what the text
// shows (the first 16, the last, the count), so that listing the missing ids
// of 2^24 experts costs no memory.
class IdsList {
 public:
  void Add(int64_t id);
  bool empty() const { return count_ == 0; }
  int64_t front() const { return head_.front(); }
  std::string Text() const;

 private:
  std::vector<int64_t> head_;  // the first 16
  int64_t last_ = 0;
  int64_t count_ = 0;
  bool run_ = true;  // consecutive so far
};

// DTypeMismatch(): "key K: expected dtype X, got Y" style message helper.
std::string ShapeMismatch(absl::string_view key, absl::string_view what, const Shape& expected,
                          const Shape& actual);

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_CORE_SESSION_COMMON_H_
