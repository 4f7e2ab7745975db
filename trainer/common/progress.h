// A throttled progress line on stderr: done/total, rate and ETA.
#ifndef COPYFORGE_TRAINER_COMMON_PROGRESS_H_
#define COPYFORGE_TRAINER_COMMON_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <string>

namespace copyforge {

// Not thread-safe: one owner updates it.
class Progress {
 public:
  // `unit` names what is counted ("tokens", "merges"); total 0 means unknown (no ETA). Counts
  // are shown divided by `scale` (1e6 with unit "MB" shows bytes as megabytes).
  Progress(std::string label, std::string unit, int64_t total, bool enabled = true,
           double scale = 1.0);
  // Records `done` units so far and redraws at most a few times a second.
  void Update(int64_t done, const std::string& extra = "");
  // Draws the final line and ends it with a newline.
  void Finish(const std::string& extra = "");
  double ElapsedSeconds() const;

 private:
  void Draw(const std::string& extra, bool final_line);
  std::string label_;
  std::string unit_;
  int64_t total_;
  int64_t done_ = 0;
  bool enabled_;
  double scale_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

// "42s", "3.5m", "2.1h".
std::string FormatDuration(double seconds);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_COMMON_PROGRESS_H_
