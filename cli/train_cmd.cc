// copyforge train: train a GPT-2 model on prepared shards, in this process or as N local
// data-parallel ranks (--nproc), the same code path the cluster workers use.
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <thread>

#include "absl/strings/str_cat.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "trainer/common/file_util.h"
#include "trainer/common/net_util.h"
#include "trainer/common/threads.h"
#include "trainer/device/device.h"
#include "trainer/dist/communicator.h"
#include "trainer/dist/rank_env.h"
#include "trainer/train/run_status.h"
#include "trainer/train/trainer.h"

namespace copyforge {
namespace {

std::atomic<bool> g_stop{false};
void OnStopSignal(int) { g_stop = true; }

struct TrainFlags {
  std::string status_file;
  std::string config;
  std::vector<std::string> sets;
  std::vector<std::string> set_strings;
  std::string resume;
  int nproc = 1;
  char** argv = nullptr;
};

// Starts `n` copies of this command as ranks 0..n-1 and waits for them; when one fails, the
// others are stopped and the error names the rank.
absl::Status LaunchRanks(int n, char** argv) {
  const int port = FreeTcpPort();
  std::vector<pid_t> pids;
  for (int rank = 0; rank < n; ++rank) {
    pid_t pid = ::fork();
    if (pid == 0) {
      // A rank must not outlive its launcher (killed shell, Ctrl-C, failed CI job).
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      RankEnv env;
      env.rank = rank;
      env.world = n;
      env.store_port = port;
      env.local_rank = rank;  // which GPU, for nccl
      ExportRankEnv(env);
      ::execv("/proc/self/exe", argv);
      std::_Exit(127);
    }
    if (pid < 0) return absl::InternalError("fork failed");
    pids.push_back(pid);
  }
  absl::Status status;
  for (size_t left = pids.size(); left > 0; --left) {
    int wstatus = 0;
    const pid_t pid = ::waitpid(-1, &wstatus, 0);
    const int rank = static_cast<int>(std::find(pids.begin(), pids.end(), pid) - pids.begin());
    const bool ok = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
    if (!ok && status.ok()) {
      status = absl::AbortedError(absl::StrCat(
          "rank ", rank, WIFEXITED(wstatus) ? " exited with code " : " was killed by signal ",
          WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : WTERMSIG(wstatus),
          "; stopping the other ranks"));
      for (pid_t other : pids) {
        if (other != pid) ::kill(other, SIGTERM);
      }
    }
  }
  return status;
}

absl::Status RunTrain(const TrainFlags& flags, int64_t* step) {
  auto config = TrainConfig::FromYamlFile(flags.config);
  if (!config.ok()) return config.status();
  for (const std::string& s : flags.sets) {
    if (absl::Status st = config->Set(s); !st.ok()) return st;
  }
  for (const std::string& s : flags.set_strings) {
    if (absl::Status st = config->SetString(s); !st.ok()) return st;
  }
  if (!flags.resume.empty()) config->resume = flags.resume;
  if (absl::Status st = config->Validate(); !st.ok()) return st;
  // A device this machine or build cannot offer is one clear error before any rank starts; each
  // rank then takes its own GPU (LOCAL_RANK).
  auto device = ResolveDevice(config->device, "device");
  if (!device.ok()) return device.status();
  config->device = device->str();
  config->backend = ResolveBackend(config->backend, *device);
  auto rank_env = ReadRankEnv();
  if (!rank_env.ok()) return rank_env.status();
  if (rank_env->has_value() || flags.nproc > 1) {
    if (absl::Status st = CheckBackendFitsDevice(config->backend, *device); !st.ok()) return st;
  }
  if (!rank_env->has_value() && flags.nproc > 1) return LaunchRanks(flags.nproc, flags.argv);
  // A rank or a single process: SIGTERM / SIGINT end the run between steps (the step in flight
  // finishes or is abandoned; checkpoints are written atomically either way).
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  std::unique_ptr<Communicator> comm;
  if (rank_env->has_value()) {
    const RankEnv& env = **rank_env;
    CommunicatorOptions o;
    o.backend = config->backend;
    if (device->is_cuda()) o.device_index = device->index();
    o.rank = env.rank;
    o.world = env.world;
    o.store_host = env.store_host;
    o.store_port = env.store_port;
    o.timeout = std::chrono::milliseconds(static_cast<int64_t>(config->comm_timeout_s * 1000));
    // The ranks of one machine share its cores.
    if (config->threads == 0) {
      config->threads = std::max(1, ResolveThreads(0) / std::max(1, o.world));
    }
    auto created = CreateCommunicator(o);
    if (!created.ok()) return created.status();
    comm = *std::move(created);
  }
  auto trainer = Trainer::Create(*config, comm.get());
  if (!trainer.ok()) return trainer.status();
  (*trainer)->SetStopFlag(&g_stop);
  const absl::Status st = (*trainer)->Run();
  *step = (*trainer)->step();
  return st;
}

// Runs, then writes how it ended to --status-file for the launcher (the worker agent).
int TrainMain(const TrainFlags& flags) {
  int64_t step = -1;
  const absl::Status st = RunTrain(flags, &step);
  if (!flags.status_file.empty()) {
    const absl::Status written =
        WriteFileAtomic(flags.status_file, RunStatus::FromStatus(st, step).ToJson());
    if (!written.ok()) ReportStatus("train", written);
  }
  return ReportStatus("train", st);
}

}  // namespace

void RegisterTrain(CLI::App& app, CommandFn* run, char** argv) {
  auto f = std::make_shared<TrainFlags>();
  f->argv = argv;
  CLI::App* cmd =
      app.add_subcommand("train", "Pretrain or fine-tune a GPT-2 model on prepared token shards");
  cmd->add_option("--config", f->config, "Train config YAML (configs/train/*.yaml)")->required();
  cmd->add_option("--set", f->sets,
                  "Override a config key, e.g. --set optimizer.lr=3e-4 (repeatable)");
  cmd->add_option("--set-string", f->set_strings,
                  "Override a config key with the value taken verbatim, not as YAML, e.g. "
                  "--set-string 'out=runs/run #2' (repeatable; applied after --set)");
  cmd->add_option("--resume", f->resume,
                  "Checkpoint directory to continue from, or 'latest' in the run directory");
  cmd->add_option("--nproc", f->nproc,
                  "Local data-parallel ranks (one GPU each with device cuda and NCCL all-reduce; "
                  "on the CPU Gloo, each rank with cores/N threads)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cmd->add_option("--status-file", f->status_file,
                  "Write how the run ended (JSON: ok, code, message, permanent, step) here");
  cmd->callback([run, f] { *run = [f] { return TrainMain(*f); }; });
}

}  // namespace copyforge
