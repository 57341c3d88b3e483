#include "client/cli/progress.h"

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace moe_adapter::cli {

ProgressBar::ProgressBar(bool enabled) : enabled_(enabled), start_(std::chrono::steady_clock::now()) {}

void ProgressBar::Update(const Progress& p) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_ < std::chrono::milliseconds(100) && p.tensors_done != p.tensors_total) return;
  last_ = now;
  Draw(p);
}

void ProgressBar::Draw(const Progress& p) {
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double frac = p.bytes_total ? static_cast<double>(p.bytes_done) / p.bytes_total : 1.0;
  const int width = 30;
  const int filled = static_cast<int>(frac * width);
  std::string bar(filled, '#');
  bar.resize(width, '.');
  const double rate = secs > 0 ? p.bytes_done / secs : 0;
  const double eta = rate > 0 ? (p.bytes_total - p.bytes_done) / rate : 0;
  std::fprintf(stderr, "\r[%s] %lld/%lld tensors  %s/%s  %s/s  ETA %.0fs   ", bar.c_str(),
               static_cast<long long>(p.tensors_done), static_cast<long long>(p.tensors_total),
               HumanBytes(p.bytes_done).c_str(), HumanBytes(p.bytes_total).c_str(),
               HumanBytes(static_cast<uint64_t>(rate)).c_str(), eta);
  drawn_ = true;
}

void ProgressBar::Done() {
  if (enabled_ && drawn_) std::fprintf(stderr, "\n");
}

std::string HumanBytes(uint64_t b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  return u == 0 ? absl::StrFormat("%d B", b) : absl::StrFormat("%.2f %s", v, units[u]);
}

}  // namespace moe_adapter::cli
