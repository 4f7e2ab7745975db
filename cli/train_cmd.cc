// copyforge train: train a GPT-2 model on prepared shards in this process.
#include "absl/strings/str_cat.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "trainer/train/trainer.h"

namespace copyforge {
namespace {

struct TrainFlags {
  std::string config;
  std::vector<std::string> sets;
  std::string resume;
};

absl::Status RunTrain(const TrainFlags& flags) {
  auto config = TrainConfig::FromYamlFile(flags.config);
  if (!config.ok()) return config.status();
  for (const std::string& s : flags.sets) {
    if (absl::Status st = config->Set(s); !st.ok()) return st;
  }
  if (!flags.resume.empty()) config->resume = flags.resume;
  auto trainer = Trainer::Create(*config);
  if (!trainer.ok()) return trainer.status();
  return (*trainer)->Run();
}

}  // namespace

void RegisterTrain(CLI::App& app, CommandFn* run) {
  auto f = std::make_shared<TrainFlags>();
  CLI::App* cmd =
      app.add_subcommand("train", "Pretrain or fine-tune a GPT-2 model on prepared token shards");
  cmd->add_option("--config", f->config, "Train config YAML (configs/train/*.yaml)")->required();
  cmd->add_option("--set", f->sets,
                  "Override a config key, e.g. --set optimizer.lr=3e-4 (repeatable)");
  cmd->add_option("--resume", f->resume,
                  "Checkpoint directory to continue from, or 'latest' in the run directory");
  cmd->callback([run, f] { *run = [f] { return ReportStatus("train", RunTrain(*f)); }; });
}

}  // namespace copyforge
