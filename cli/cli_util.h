// Helpers shared by the subcommands: error reporting and thread set-up.
#ifndef COPYFORGE_CLI_CLI_UTIL_H_
#define COPYFORGE_CLI_CLI_UTIL_H_

#include <signal.h>

#include <string>

#include "absl/status/status.h"

namespace copyforge {

// Prints "copyforge <command>: <message>" on stderr and returns exit code 1 (0 when ok).
int ReportStatus(const std::string& command, const absl::Status& status);

// For the commands that spend their time in matrix products (eval, generate, init-model, train,
// ...), makes OpenBLAS use the right kernels (see trainer/common/openblas.h).
void MaybeReexecForBlas(char** argv);

// Blocks SIGTERM and SIGINT in this thread and the threads it starts afterwards (call it first),
// so that WaitForSignal can take them synchronously.
sigset_t BlockStopSignals();
// Waits for one of `signals` and returns its number.
int WaitForSignal(const sigset_t& signals);

}  // namespace copyforge

#endif  // COPYFORGE_CLI_CLI_UTIL_H_
