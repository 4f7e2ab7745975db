// `copyforge worker`: the training agent of the control plane (it runs trainers, so it lives
// beside the libtorch commands rather than in the torch-free control binary).
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/security_flags.h"
#include "worker/worker.h"

namespace copyforge {

void RegisterWorkerCommand(CLI::App& app, CommandFn* run) {
  auto f = std::make_shared<WorkerOptions>();
  CLI::App* cmd = app.add_subcommand("worker", "Run a training worker for a coordinator");
  cmd->add_option("--coordinator", f->coordinator, "Coordinator address HOST:PORT")->required();
  cmd->add_option("--workdir", f->workdir, "Directory for per-run configs and trainer logs")
      ->required();
  cmd->add_option("--id", f->worker_id, "Worker id (default: hostname-pid)");
  cmd->add_option("--host", f->host, "Address peers use to reach this worker")
      ->capture_default_str();
  cmd->add_option("--threads", f->threads, "Trainer threads (0: the CPUs available)")
      ->capture_default_str();
  cmd->add_option("--alive-file", f->alive_file,
                  "Rewrite this file every few seconds while running (a liveness probe reads its "
                  "age)");
  cmd->add_option("--token-file", f->token_file,
                  "File with the coordinator's worker token (re-read on change)");
  AddTlsFlags(cmd, &f->tls, /*server=*/false);
  cmd->callback([f, run] { *run = [f] { return ReportStatus("worker", RunWorker(*f)); }; });
}

}  // namespace copyforge
