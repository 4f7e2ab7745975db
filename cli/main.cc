// copyforge: one binary whose subcommands are the system's roles.
#include <CLI/CLI.hpp>

#include "cli/cli_util.h"
#include "cli/commands.h"

int main(int argc, char** argv) {
  copyforge::MaybeReexecForBlas(argv);
  CLI::App app{"copyforge: train and serve GPT-2 models for e-commerce copy", "copyforge"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "copyforge 0.1.0");
  copyforge::CommandFn run;
  copyforge::RegisterTokenize(app, &run);
  copyforge::RegisterTrainTokenizer(app, &run);
  copyforge::RegisterInitModel(app, &run);
  copyforge::RegisterEval(app, &run);
  copyforge::RegisterGenerate(app, &run);
  copyforge::RegisterSampleData(app, &run);
  copyforge::RegisterPrepare(app, &run);
  copyforge::RegisterTrain(app, &run, argv);
  copyforge::RegisterControl(app, &run);
  copyforge::RegisterHealth(app, &run);
  copyforge::RegisterWorkerCommand(app, &run);
  copyforge::RegisterServe(app, &run);
  copyforge::RegisterEvalTasks(app, &run);
  copyforge::RegisterDetect(app, &run);
  copyforge::RegisterExport(app, &run);
  CLI11_PARSE(app, argc, argv);
  return run();
}
