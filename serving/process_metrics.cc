#include "serving/process_metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace copyforge {
namespace {

void Append(std::string* out, const char* name, const char* type, const char* help, double value) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n", name, " ",
                  absl::StrFormat("%.17g", value), "\n");
}

// Fields of /proc/self/stat after the command name (field 3 onwards), or empty.
std::vector<std::string> StatFields() {
  std::ifstream in("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = text.rfind(')');  // the command name may hold spaces and parentheses
  if (close == std::string::npos) return {};
  std::istringstream rest(text.substr(close + 2));
  std::vector<std::string> fields;
  for (std::string f; rest >> f;) fields.push_back(f);
  return fields;
}

// Seconds since the epoch at which the machine booted, from /proc/stat's btime.
double BootTime() {
  std::ifstream in("/proc/stat");
  for (std::string key; in >> key;) {
    if (key == "btime") {
      double t = 0;
      in >> t;
      return t;
    }
  }
  return -1;
}

}  // namespace

void AppendProcessMetrics(std::string* out) {
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  const std::vector<std::string> f = StatFields();
  // utime, stime, starttime, vsize and rss are fields 14, 15, 22, 23 and 24 (1-based).
  if (f.size() > 21 && ticks > 0) {
    Append(out, "process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds",
           (std::stod(f[11]) + std::stod(f[12])) / ticks);
    Append(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes",
           std::stod(f[20]));
    Append(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes",
           std::stod(f[21]) * page);
    const double boot = BootTime();
    if (boot >= 0) {
      Append(out, "process_start_time_seconds", "gauge",
             "Start time of the process since unix epoch in seconds",
             boot + std::stod(f[19]) / ticks);
    }
  }
  std::error_code ec;
  double fds = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++fds;
  }
  if (!ec) Append(out, "process_open_fds", "gauge", "Number of open file descriptors", fds);
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    Append(out, "process_max_fds", "gauge", "Maximum number of open file descriptors",
           static_cast<double>(limit.rlim_cur));
  }
}

}  // namespace copyforge
