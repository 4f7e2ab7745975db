// `copyforge health`: a grpc.health.v1 check over TLS (and mutual TLS), for exec probes. The
// kubelet's own gRPC probe speaks plaintext only, so a TLS server is probed from inside its pod
// with this command instead (with the pod's client certificate).
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "cli/cli_util.h"
#include "cli/control_commands.h"
#include "cli/security_flags.h"
#include "health.grpc.pb.h"
#include "protos/grpc_status.h"
#include "protos/rpc_security.h"
#include "trainer/common/status_macros.h"

namespace copyforge {
namespace {

struct HealthFlags {
  std::string address = "127.0.0.1:50051";
  std::string service;
  TlsFiles tls;
  double timeout_s = 3;
  bool alive = false;
};

absl::Status RunHealth(const HealthFlags& f) {
  CF_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, OpenChannel(f.address, f.tls));
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(static_cast<int64_t>(f.timeout_s * 1000)));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(f.service);
  grpc::health::v1::HealthCheckResponse resp;
  const grpc::Status st = stub->Check(&context, req, &resp);
  if (!st.ok()) return FromGrpc(st, absl::StrCat("health check of ", f.address));
  const std::string status =
      grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status());
  std::printf("%s %s\n", f.address.c_str(), status.c_str());
  if (f.alive || resp.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
    return absl::OkStatus();
  }
  return absl::UnavailableError(absl::StrCat(f.address, " is ", status));
}

}  // namespace

void RegisterHealth(CLI::App& app, CommandFn* run) {
  auto f = std::make_shared<HealthFlags>();
  CLI::App* cmd = app.add_subcommand(
      "health",
      "Check a coordinator's or server's grpc.health.v1 status (exit 0 when SERVING): the "
      "Kubernetes exec probe for TLS servers");
  cmd->add_option("--address", f->address, "HOST:PORT to check")->capture_default_str();
  cmd->add_option("--service", f->service, "Service name (empty: the whole server)");
  cmd->add_option("--timeout", f->timeout_s, "Seconds to wait for the answer")
      ->capture_default_str();
  cmd->add_flag("--alive", f->alive,
                "Succeed on any answer, SERVING or not (a liveness probe: the process responds)");
  AddTlsFlags(cmd, &f->tls, /*server=*/false);
  cmd->callback([f, run] { *run = [f] { return ReportStatus("health", RunHealth(*f)); }; });
}

}  // namespace copyforge
