#include "trainer/common/progress.h"

#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace copyforge {

Progress::Progress(std::string label, std::string unit, int64_t total, bool enabled, double scale)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      enabled_(enabled),
      scale_(scale),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

double Progress::ElapsedSeconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::Update(int64_t done, const std::string& extra) {
  done_ = done;
  auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(250)) return;
  last_draw_ = now;
  Draw(extra, false);
}

void Progress::Finish(const std::string& extra) { Draw(extra, true); }

void Progress::Draw(const std::string& extra, bool final_line) {
  if (!enabled_) return;
  const double secs = ElapsedSeconds();
  const double done = done_ / scale_, total = total_ / scale_;
  const double rate = secs > 0 ? done / secs : 0.0;
  // A whole count without decimals, a scaled one (MB, ...) with one.
  const auto num = [&](double v) {
    return scale_ == 1.0 ? absl::StrFormat("%.0f", v) : absl::StrFormat("%.1f", v);
  };
  std::string line = absl::StrCat(label_, ": ", num(done));
  if (total_ > 0) {
    line += absl::StrCat("/", num(total), " ", unit_,
                         absl::StrFormat(" (%.1f%%)", 100.0 * done_ / total_));
  } else {
    line += " " + unit_;
  }
  line += absl::StrFormat(" | %.1f %s/s", rate, unit_);
  if (final_line) {
    line += absl::StrFormat(" | %.1fs", secs);
  } else if (total_ > 0 && rate > 0) {
    line += " | ETA " + FormatDuration((total - done) / rate);
  }
  if (!extra.empty()) line += " | " + extra;
  // On a terminal the line redraws in place; in logs each update is its own line.
  const bool tty = ::isatty(STDERR_FILENO);
  std::fprintf(stderr, tty ? "\r\033[K%s%s" : "%s%s", line.c_str(),
               (final_line || !tty) ? "\n" : "");
  std::fflush(stderr);
}

std::string FormatDuration(double s) {
  if (!(s >= 0)) return "?";
  if (s < 120) return absl::StrFormat("%.0fs", s);
  if (s < 7200) return absl::StrFormat("%.1fm", s / 60);
  return absl::StrFormat("%.1fh", s / 3600);
}

}  // namespace copyforge
