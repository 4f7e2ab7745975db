#include "trainer/common/threads.h"

#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace copyforge {
namespace {

std::optional<std::string> Slurp(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::optional<int> QuotaCpus(long long quota, long long period) {
  if (quota <= 0 || period <= 0) return std::nullopt;
  return static_cast<int>(std::max(1LL, (quota + period - 1) / period));
}

}  // namespace

std::optional<int> CgroupV2CpuLimit(const std::string& cpu_max) {
  std::istringstream in(cpu_max);
  std::string quota;
  long long period = 0;
  if (!(in >> quota >> period) || quota == "max") return std::nullopt;
  char* end = nullptr;
  const long long q = std::strtoll(quota.c_str(), &end, 10);
  if (end == quota.c_str() || *end != '\0') return std::nullopt;
  return QuotaCpus(q, period);
}

std::optional<int> CgroupV1CpuLimit(const std::string& quota_us, const std::string& period_us) {
  long long quota = 0, period = 0;
  if (!(std::istringstream(quota_us) >> quota) || !(std::istringstream(period_us) >> period)) {
    return std::nullopt;
  }
  return QuotaCpus(quota, period);  // quota -1: unlimited
}

std::optional<int> CgroupCpuLimit(const std::string& root) {
  if (auto v2 = Slurp(root + "/cpu.max")) return CgroupV2CpuLimit(*v2);
  for (const char* dir : {"/cpu", "/cpu,cpuacct", "/cpuacct,cpu"}) {
    auto quota = Slurp(root + dir + "/cpu.cfs_quota_us");
    auto period = Slurp(root + dir + "/cpu.cfs_period_us");
    if (quota && period) return CgroupV1CpuLimit(*quota, *period);
  }
  return std::nullopt;
}

int AvailableCpus() {
  if (const char* env = std::getenv("COPYFORGE_CPUS"); env != nullptr) {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && n > 0) return static_cast<int>(n);
  }
  int cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cpus = std::max(1, CPU_COUNT(&set));
  if (auto limit = CgroupCpuLimit()) cpus = std::min(cpus, *limit);
  return cpus;
}

int ResolveThreads(int requested) { return requested > 0 ? requested : AvailableCpus(); }

}  // namespace copyforge
