// copyforge-control: the coordinator and the job clients without libtorch, a small process for
// the control plane's host or container. The same commands are also `copyforge <command>`.
#include <CLI/CLI.hpp>

#include "cli/control_commands.h"

int main(int argc, char** argv) {
  CLI::App app{"copyforge-control: the coordinator and the job clients (no libtorch)",
               "copyforge-control"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "copyforge 0.1.0");
  copyforge::CommandFn run;
  copyforge::RegisterControl(app, &run);
  copyforge::RegisterHealth(app, &run);
  CLI11_PARSE(app, argc, argv);
  return run();
}
