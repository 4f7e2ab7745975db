// Registration of the copyforge subcommands; each Register* adds one role to the app.
#ifndef COPYFORGE_CLI_COMMANDS_H_
#define COPYFORGE_CLI_COMMANDS_H_

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "cli/control_commands.h"
#include "protos/rpc_security.h"
#include "serving/request_prompt.h"
#include "trainer/model/sampler.h"

namespace copyforge {

// Adds `--device auto|cpu|cuda|cuda:N` (trainer/device/device.h) to `cmd`.
inline void AddDeviceOption(CLI::App* cmd, std::string* device) {
  cmd->add_option("--device", *device,
                  "Where the model runs: auto (a GPU when this build has CUDA and one is "
                  "visible, else the CPU), cpu, cuda or cuda:N")
      ->capture_default_str();
}

void RegisterTokenize(CLI::App& app, CommandFn* run);
void RegisterTrainTokenizer(CLI::App& app, CommandFn* run);
void RegisterInitModel(CLI::App& app, CommandFn* run);
void RegisterEval(CLI::App& app, CommandFn* run);
void RegisterGenerate(CLI::App& app, CommandFn* run);
void RegisterSampleData(CLI::App& app, CommandFn* run);
void RegisterPrepare(CLI::App& app, CommandFn* run);
// `argv` lets train re-launch itself as local ranks.
void RegisterTrain(CLI::App& app, CommandFn* run, char** argv);
void RegisterWorkerCommand(CLI::App& app, CommandFn* run);
void RegisterServe(CLI::App& app, CommandFn* run);
void RegisterEvalTasks(CLI::App& app, CommandFn* run);
void RegisterDetect(CLI::App& app, CommandFn* run);
void RegisterExport(CLI::App& app, CommandFn* run);

// `generate --server`: the request goes to a running `copyforge serve`.
struct RemoteGenerateArgs {
  std::string server, prompt;
  TlsFiles tls;            // TLS to the server
  std::string token_file;  // the server's bearer token
  int64_t max_new_tokens = 64;
  SamplingParams sampling;
  std::vector<std::string> stop;
  bool stream = false, no_stop = false;
  // A task input instead of --prompt: product_description, review or blog_post.
  std::string task;
  TaskInputFields fields;
  // Structured output: "product_listing" or @FILE with a JSON Schema; watermark: on, off or
  // "" (the server's choice).
  std::string response_format, watermark;
};
absl::Status RunRemoteGenerate(const RemoteGenerateArgs& args);

}  // namespace copyforge

#endif  // COPYFORGE_CLI_COMMANDS_H_
