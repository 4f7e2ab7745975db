// The torch-free control-plane commands, shared by `copyforge` and the small `copyforge-control`
// binary (which links no libtorch: the coordinator's image or host need not carry it).
#ifndef COPYFORGE_CLI_CONTROL_COMMANDS_H_
#define COPYFORGE_CLI_CONTROL_COMMANDS_H_

#include <CLI/CLI.hpp>

#include <functional>

namespace copyforge {

// A subcommand's body: returns the process exit code.
using CommandFn = std::function<int()>;

// coordinator, submit, status, watch, cancel.
void RegisterControl(CLI::App& app, CommandFn* run);
// health: a grpc.health.v1 check (TLS-capable), for exec probes.
void RegisterHealth(CLI::App& app, CommandFn* run);

}  // namespace copyforge

#endif  // COPYFORGE_CLI_CONTROL_COMMANDS_H_
