// Placement policy: which idle workers a job gets and in which rank order. A pure function of
// the job's bounds and the idle workers, so it is tested without a cluster.
#ifndef COPYFORGE_COORDINATOR_PLACEMENT_H_
#define COPYFORGE_COORDINATOR_PLACEMENT_H_

#include <string>
#include <vector>

namespace copyforge {

struct IdleWorker {
  std::string id;
  std::string device;  // "cpu" or "cuda:N"
  int cores = 0;
};

// Ranked worker ids for a generation of `min_workers`..`max_workers` ranks, or empty when fewer
// than `min_workers` are idle. Workers on the job's device kind come first (a "cuda" job prefers
// GPU workers, a "cpu" job CPU ones; "auto" has no preference), then those with more cores; ties
// by id, so that the same inputs always give the same ranks.
std::vector<std::string> PlaceJob(int min_workers, int max_workers, const std::string& device,
                                  std::vector<IdleWorker> idle);

}  // namespace copyforge

#endif  // COPYFORGE_COORDINATOR_PLACEMENT_H_
