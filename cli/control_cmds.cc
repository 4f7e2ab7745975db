// The control plane's torch-free commands: `coordinator` and the user clients `submit`,
// `status`, `watch`, `cancel` (the worker, which runs trainers, is cli/worker_cmd.cc).
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "cli/cli_util.h"
#include "cli/control_commands.h"
#include "cli/security_flags.h"
#include "control.grpc.pb.h"
#include "coordinator/coordinator.h"
#include "protos/bearer_token.h"
#include "protos/grpc_status.h"
#include "trainer/common/file_util.h"
#include "trainer/common/progress.h"
#include "trainer/common/status_macros.h"

namespace copyforge {
namespace {

// ---- coordinator ----
struct CoordinatorFlags {
  CoordinatorOptions options;
  std::vector<std::string> storage_roots;
  std::string port_file;
};

absl::Status RunCoordinator(const CoordinatorFlags& f) {
  sigset_t signals = BlockStopSignals();
  CoordinatorOptions options = f.options;
  for (const std::string& root : f.storage_roots) {
    options.roots.data.push_back(root);
    options.roots.runs.push_back(root);
  }
  auto coordinator = Coordinator::Start(options);
  if (!coordinator.ok()) return coordinator.status();
  std::fprintf(stderr, "coordinator: listening on %s:%d, state in %s\n", f.options.host.c_str(),
               (*coordinator)->port(), f.options.state_dir.c_str());
  if (!f.port_file.empty()) {
    CF_RETURN_IF_ERROR(WriteFileAtomic(f.port_file, std::to_string((*coordinator)->port()) + "\n"));
  }
  const int signal = WaitForSignal(signals);
  std::fprintf(stderr, "coordinator: %s, shutting down\n", strsignal(signal));
  (*coordinator)->Shutdown();
  return absl::OkStatus();
}

// ---- client ----
struct ClientFlags {
  std::string coordinator = "127.0.0.1:50051";
  std::string token_file;
  TlsFiles tls;
  std::string job;
  std::string spec_file;
  std::string idempotency_key;
  bool json = false;
};

class Client {
 public:
  static absl::StatusOr<Client> Create(const ClientFlags& f) {
    Client client;
    CF_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, OpenChannel(f.coordinator, f.tls));
    client.stub_ = v1::JobService::NewStub(channel);
    CF_ASSIGN_OR_RETURN(client.token_, OpenOptionalTokenFile(f.token_file));
    return client;
  }
  std::unique_ptr<grpc::ClientContext> Context(bool stream = false) {
    auto c = std::make_unique<grpc::ClientContext>();
    if (!stream) c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    AttachBearer(token_.get(), c.get());
    return c;
  }
  v1::JobService::Stub& stub() { return *stub_; }

 private:
  Client() = default;
  std::unique_ptr<v1::JobService::Stub> stub_;
  std::unique_ptr<TokenFile> token_;
};

std::string Describe(const v1::Job& j) {
  std::string text = absl::StrCat(j.id(), " ", j.name(), " ", v1::JobState_Name(j.state()), " gen ",
                                  j.generation(), " step ", j.step(), "/", j.total_steps());
  if (j.step() > 0) absl::StrAppend(&text, " loss ", absl::StrFormat("%.4f", j.loss()));
  if (j.tokens_per_s() > 0) {
    absl::StrAppend(&text, " ", absl::StrFormat("%.0f", j.tokens_per_s()), " tok/s ETA ",
                    FormatDuration(j.eta_s()));
  }
  if (!j.reason().empty()) absl::StrAppend(&text, " (", j.reason(), ")");
  return text;
}

absl::Status RunSubmit(const ClientFlags& f) {
  auto spec = ReadFile(f.spec_file);
  if (!spec.ok()) return spec.status();
  CF_ASSIGN_OR_RETURN(Client client, Client::Create(f));
  v1::SubmitJobRequest req;
  req.set_spec_yaml(*spec);
  // A default key makes a retried submit of the same file idempotent only within this call.
  req.set_idempotency_key(f.idempotency_key);
  v1::SubmitJobResponse resp;
  auto ctx = client.Context();
  CF_RETURN_IF_ERROR(
      FromGrpc(client.stub().SubmitJob(ctx.get(), req, &resp), "SubmitJob " + f.spec_file));
  std::printf("%s\n", resp.job_id().c_str());
  if (resp.existing()) std::fprintf(stderr, "submit: the idempotency key matched this job\n");
  return absl::OkStatus();
}

absl::Status RunStatus(const ClientFlags& f) {
  CF_ASSIGN_OR_RETURN(Client client, Client::Create(f));
  std::vector<v1::Job> jobs;
  if (!f.job.empty()) {
    v1::GetJobRequest req;
    req.set_job_id(f.job);
    v1::Job job;
    auto ctx = client.Context();
    CF_RETURN_IF_ERROR(FromGrpc(client.stub().GetJob(ctx.get(), req, &job), "GetJob"));
    jobs.push_back(job);
  } else {
    v1::ListJobsResponse resp;
    auto ctx = client.Context();
    CF_RETURN_IF_ERROR(
        FromGrpc(client.stub().ListJobs(ctx.get(), v1::ListJobsRequest(), &resp), "ListJobs"));
    jobs.assign(resp.jobs().begin(), resp.jobs().end());
  }
  if (f.json) {
    for (const v1::Job& j : jobs) {
      v1::Job shown = j;
      shown.clear_spec_yaml();
      std::string out;
      google::protobuf::util::JsonPrintOptions o;
      o.always_print_primitive_fields = true;
      (void)google::protobuf::util::MessageToJsonString(shown, &out, o);
      std::printf("%s\n", out.c_str());
    }
    return absl::OkStatus();
  }
  std::printf("%-24s %-16s %-10s %4s %-20s %11s %8s %9s  %s\n", "JOB", "NAME", "STATE", "GEN",
              "WORKERS", "STEP", "LOSS", "TOK/S", "LATEST CHECKPOINT");
  for (const v1::Job& j : jobs) {
    std::string workers;
    for (const std::string& w : j.workers())
      absl::StrAppend(&workers, workers.empty() ? "" : ",", w);
    std::printf("%-24s %-16s %-10s %4lld %-20s %5lld/%-5lld %8.4f %9.0f  %s\n", j.id().c_str(),
                j.name().c_str(), v1::JobState_Name(j.state()).c_str(),
                static_cast<long long>(j.generation()), workers.empty() ? "-" : workers.c_str(),
                static_cast<long long>(j.step()), static_cast<long long>(j.total_steps()), j.loss(),
                j.tokens_per_s(),
                j.latest_checkpoint().empty() ? "-" : j.latest_checkpoint().c_str());
    if (!j.reason().empty()) std::printf("  %s\n", j.reason().c_str());
  }
  return absl::OkStatus();
}

absl::Status RunWatch(const ClientFlags& f) {
  CF_ASSIGN_OR_RETURN(Client client, Client::Create(f));
  v1::WatchJobRequest req;
  req.set_job_id(f.job);
  auto ctx = client.Context(true);
  auto reader = client.stub().WatchJob(ctx.get(), req);
  v1::Job job;
  std::string last;
  while (reader->Read(&job)) {
    // The stream sends every change of the job record; print what a reader can see change.
    std::string line = Describe(job);
    if (line == last) continue;
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    last = std::move(line);
  }
  CF_RETURN_IF_ERROR(FromGrpc(reader->Finish(), "WatchJob"));
  if (job.state() != v1::SUCCEEDED) {
    return absl::AbortedError(absl::StrCat("job ", job.id(), " ended ",
                                           v1::JobState_Name(job.state()), ": ", job.reason()));
  }
  return absl::OkStatus();
}

absl::Status RunCancel(const ClientFlags& f) {
  CF_ASSIGN_OR_RETURN(Client client, Client::Create(f));
  v1::CancelJobRequest req;
  req.set_job_id(f.job);
  v1::Job job;
  auto ctx = client.Context();
  CF_RETURN_IF_ERROR(FromGrpc(client.stub().CancelJob(ctx.get(), req, &job), "CancelJob"));
  std::printf("%s\n", Describe(job).c_str());
  return absl::OkStatus();
}

void AddClientFlags(CLI::App* cmd, ClientFlags* f) {
  cmd->add_option("--coordinator", f->coordinator, "Coordinator address HOST:PORT")
      ->capture_default_str();
  cmd->add_option("--token-file", f->token_file,
                  "File with the coordinator's job token (or, for status/watch, its reader token)");
  AddTlsFlags(cmd, &f->tls, /*server=*/false);
}

}  // namespace

void RegisterControl(CLI::App& app, CommandFn* run) {
  {
    auto f = std::make_shared<CoordinatorFlags>();
    CLI::App* cmd = app.add_subcommand(
        "coordinator", "Run the coordinator: job queue, worker rendezvous, checkpoint registry");
    cmd->add_option("--port", f->options.port, "gRPC port (0: an ephemeral one)")
        ->capture_default_str();
    cmd->add_option("--host", f->options.host,
                    "Address to listen on (not loopback: needs TLS and tokens, or --insecure)")
        ->capture_default_str();
    cmd->add_option("--state-dir", f->options.state_dir, "Directory of the SQLite job store")
        ->required();
    cmd->add_option("--heartbeat-timeout", f->options.heartbeat_timeout_s,
                    "Seconds without a heartbeat before a worker is dead")
        ->capture_default_str();
    cmd->add_option("--heartbeat-interval-ms", f->options.heartbeat_interval_ms,
                    "Heartbeat period workers are told to use")
        ->capture_default_str();
    cmd->add_option("--job-token-file", f->options.auth.job_token_file,
                    "Bearer tokens (one per line, re-read on change) for submitting, cancelling "
                    "and reading jobs");
    cmd->add_option("--worker-token-file", f->options.auth.worker_token_file,
                    "Bearer tokens for workers (WorkerService)");
    cmd->add_option("--reader-token-file", f->options.auth.reader_token_file,
                    "Bearer tokens for read-only callers: CheckpointService (serving) and job "
                    "reads; the job token is accepted there too");
    AddTlsFlags(cmd, &f->options.tls, /*server=*/true);
    cmd->add_flag("--insecure", f->options.insecure,
                  "Allow a non-loopback --host without TLS and authentication");
    cmd->add_option("--storage-root", f->storage_roots,
                    "A directory jobs may read data from and write runs to (both roots)");
    cmd->add_option("--data-root", f->options.roots.data,
                    "A directory jobs may read data, model configs and starting checkpoints from");
    cmd->add_option("--runs-root", f->options.roots.runs,
                    "A directory jobs may write run directories into");
    cmd->add_option("--max-jobs", f->options.max_jobs, "Jobs the coordinator holds")
        ->capture_default_str();
    cmd->add_option("--max-spec-bytes", f->options.max_spec_bytes, "Largest job spec accepted")
        ->capture_default_str();
    cmd->add_option("--max-watch-streams", f->options.max_watch_streams,
                    "WatchJob + WatchCheckpoints streams open at once")
        ->capture_default_str();
    cmd->add_option("--port-file", f->port_file, "Write the bound port to this file");
    cmd->callback(
        [f, run] { *run = [f] { return ReportStatus("coordinator", RunCoordinator(*f)); }; });
  }
  {
    auto f = std::make_shared<ClientFlags>();
    CLI::App* cmd = app.add_subcommand("submit", "Submit a training job (prints its id)");
    AddClientFlags(cmd, f.get());
    cmd->add_option("spec", f->spec_file, "Job YAML (configs/jobs/*.yaml)")->required();
    cmd->add_option("--idempotency-key", f->idempotency_key,
                    "Resubmitting with the same key returns the same job");
    cmd->callback([f, run] { *run = [f] { return ReportStatus("submit", RunSubmit(*f)); }; });
  }
  {
    auto f = std::make_shared<ClientFlags>();
    CLI::App* cmd = app.add_subcommand("status", "Show jobs: state, generation, workers, progress");
    AddClientFlags(cmd, f.get());
    cmd->add_option("job", f->job, "One job id (default: all)");
    cmd->add_flag("--json", f->json, "One JSON object per job");
    cmd->callback([f, run] { *run = [f] { return ReportStatus("status", RunStatus(*f)); }; });
  }
  {
    auto f = std::make_shared<ClientFlags>();
    CLI::App* cmd =
        app.add_subcommand("watch", "Follow a job until it ends (exit 0 only if it SUCCEEDED)");
    AddClientFlags(cmd, f.get());
    cmd->add_option("job", f->job, "Job id")->required();
    cmd->callback([f, run] { *run = [f] { return ReportStatus("watch", RunWatch(*f)); }; });
  }
  {
    auto f = std::make_shared<ClientFlags>();
    CLI::App* cmd = app.add_subcommand("cancel", "Cancel a job");
    AddClientFlags(cmd, f.get());
    cmd->add_option("job", f->job, "Job id")->required();
    cmd->callback([f, run] { *run = [f] { return ReportStatus("cancel", RunCancel(*f)); }; });
  }
}

}  // namespace copyforge
