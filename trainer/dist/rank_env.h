// The environment a launcher (`train --nproc`, the worker agent) sets for each rank of a
// data-parallel run, defined once: the launcher exports it in the child, the trainer reads it.
#ifndef COPYFORGE_TRAINER_DIST_RANK_ENV_H_
#define COPYFORGE_TRAINER_DIST_RANK_ENV_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace copyforge {

struct RankEnv {
  int rank = 0;
  int world = 1;
  std::string store_host = "127.0.0.1";  // the c10d TCP store rank 0 opens
  int store_port = 29500;
  int local_rank = -1;  // the GPU on this machine; -1 leaves LOCAL_RANK as it is
};

// Sets COPYFORGE_RANK, COPYFORGE_WORLD, COPYFORGE_STORE_HOST, COPYFORGE_STORE_PORT and (when
// local_rank >= 0) LOCAL_RANK in this process; call it in the child between fork and exec.
void ExportRankEnv(const RankEnv& env);

// The rank environment of this process: nullopt when COPYFORGE_RANK is unset (a single-process
// run); an error naming the variable when a value is malformed or out of range.
absl::StatusOr<std::optional<RankEnv>> ReadRankEnv();

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_DIST_RANK_ENV_H_
