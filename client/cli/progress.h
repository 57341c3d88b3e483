// A one-line progress bar on stderr (tensors, bytes, rate, ETA), drawn only
// on a terminal, at most ten times a second.
#ifndef MOE_ADAPTER_CLIENT_CLI_PROGRESS_H_
#define MOE_ADAPTER_CLIENT_CLI_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "moe_adapter/checkpoint_convert.h"

namespace moe_adapter::cli {

class ProgressBar {
 public:
  explicit ProgressBar(bool enabled);
  void Update(const Progress& p);
  void Done();

 private:
  void Draw(const Progress& p);
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

// HumanBytes(): "1.21 GB".
std::string HumanBytes(uint64_t bytes);

}  // namespace moe_adapter::cli

#endif  // MOE_ADAPTER_CLIENT_CLI_PROGRESS_H_
