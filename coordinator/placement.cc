#include "coordinator/placement.h"

#include <algorithm>
#include <tuple>

namespace copyforge {
namespace {

// 0 when the worker's device suits the job's device setting, 1 otherwise.
int Mismatch(const std::string& job_device, const std::string& worker_device) {
  if (job_device == "auto") return 0;
  const bool job_gpu = job_device.rfind("cuda", 0) == 0;
  const bool worker_gpu = worker_device.rfind("cuda", 0) == 0;
  return job_gpu == worker_gpu ? 0 : 1;
}

}  // namespace

std::vector<std::string> PlaceJob(int min_workers, int max_workers, const std::string& device,
                                  std::vector<IdleWorker> idle) {
  if (min_workers < 1 || static_cast<int>(idle.size()) < min_workers) return {};
  std::sort(idle.begin(), idle.end(), [&](const IdleWorker& a, const IdleWorker& b) {
    return std::make_tuple(Mismatch(device, a.device), -a.cores, a.id) <
           std::make_tuple(Mismatch(device, b.device), -b.cores, b.id);
  });
  std::vector<std::string> ranked;
  for (const IdleWorker& w : idle) {
    if (static_cast<int>(ranked.size()) == max_workers) break;
    ranked.push_back(w.id);
  }
  return ranked;
}

}  // namespace copyforge
