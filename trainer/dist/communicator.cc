#include "trainer/dist/communicator.h"

#include "absl/strings/str_cat.h"

namespace copyforge {

absl::StatusOr<std::unique_ptr<Communicator>> CreateGlooCommunicator(
    const CommunicatorOptions& options);

absl::StatusOr<std::unique_ptr<Communicator>> CreateCommunicator(
    const CommunicatorOptions& options) {
  if (options.world < 1 || options.rank < 0 || options.rank >= options.world) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", options.rank, " is outside a world of ", options.world));
  }
  if (options.backend == "gloo") return CreateGlooCommunicator(options);
  if (options.backend == "nccl") {
    return absl::UnimplementedError(
        "backend \"nccl\" is not available in this build: the NCCL communicator needs a CUDA build "
        "of libtorch "
        "and a GPU; use \"gloo\"");
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown backend \"", options.backend, "\" (gloo or nccl)"));
}

}  // namespace copyforge
