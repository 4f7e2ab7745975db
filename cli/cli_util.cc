#include "cli/cli_util.h"

#include "trainer/common/openblas.h"
#include "trainer/common/threads.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace copyforge {

int ReportStatus(const std::string& command, const absl::Status& status) {
  if (status.ok()) return 0;
  std::fprintf(stderr, "copyforge %s: %s\n", command.c_str(),
               std::string(status.message()).c_str());
  return 1;
}

void MaybeReexecForBlas(char** argv) {
  // Loading libtorch takes most of a second, so only commands that spend their time in BLAS
  // pay for loading it twice.
  static const char* const kBlasCommands[] = {"eval",  "generate", "init-model",
                                              "train", "serve",    "worker"};
  bool heavy = false;
  for (const char* cmd : kBlasCommands)
    heavy |= argv[1] != nullptr && std::strcmp(argv[1], cmd) == 0;
  for (char** a = argv; *a != nullptr; ++a)
    heavy &= std::strcmp(*a, "--help") != 0 && std::strcmp(*a, "-h") != 0;
  if (heavy) ReexecWithOpenBlasCoreType(argv);
}

sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

int WaitForSignal(const sigset_t& signals) {
  int signal = 0;
  sigwait(&signals, &signal);
  return signal;
}

}  // namespace copyforge
