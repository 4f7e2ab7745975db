// The thread count a component uses when asked for "0 = one per core": the CPUs this process may
// really use, which in a container is less than the node's cores.
#ifndef COPYFORGE_TRAINER_COMMON_THREADS_H_
#define COPYFORGE_TRAINER_COMMON_THREADS_H_

#include <optional>
#include <string>

namespace copyforge {

// The CPUs available to this process, at least 1: COPYFORGE_CPUS when set to a positive number
// (the deployment passes the container's CPU request there), else the smaller of the CPUs in the
// affinity mask and the cgroup CPU quota (cgroup v2 cpu.max or v1 cfs_quota_us / cfs_period_us,
// rounded up).
int AvailableCpus();

// `requested` when positive, else AvailableCpus().
int ResolveThreads(int requested);

// The quota in whole CPUs (rounded up) of a cgroup v2 `cpu.max` ("max 100000", "150000 100000")
// or of v1's quota and period files' contents; nullopt when unlimited or unreadable.
std::optional<int> CgroupV2CpuLimit(const std::string& cpu_max);
std::optional<int> CgroupV1CpuLimit(const std::string& quota_us, const std::string& period_us);
// The cgroup limit of this process under `root` (default /sys/fs/cgroup), v2 first.
std::optional<int> CgroupCpuLimit(const std::string& root = "/sys/fs/cgroup");

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_COMMON_THREADS_H_
