#include "cli/cli_util.h"

#include <torch/torch.h>

#include <cstdio>
#include <thread>

namespace copyforge {

int ReportStatus(const std::string& command, const absl::Status& status) {
  if (status.ok()) return 0;
  std::fprintf(stderr, "copyforge %s: %s\n", command.c_str(),
               std::string(status.message()).c_str());
  return 1;
}

void SetTorchThreads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(threads);
}

}  // namespace copyforge
