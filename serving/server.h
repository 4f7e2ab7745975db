// `copyforge serve`: the TextGeneration gRPC service over the Engine, with the standard
// grpc.health.v1 service (NOT_SERVING while the first checkpoint is awaited and loaded, SERVING
// once the model is loaded, NOT_SERVING while draining) and
// server reflection for grpcurl.
#ifndef COPYFORGE_SERVING_SERVER_H_
#define COPYFORGE_SERVING_SERVER_H_

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "protos/rpc_security.h"
#include "serving/engine.h"
#include "serving/request_limits.h"
#include "serving/watermark.h"

namespace copyforge {

struct ServerOptions {
  std::string host = "127.0.0.1";  // a non-loopback address needs TLS and auth (or --insecure)
  int port = 0;                    // 0: an ephemeral port
  std::string checkpoint;  // the model to serve (default: the newest of the followed source)
  // Hot reload: follow a run directory (newest complete checkpoint under DIR/checkpoints) or a
  // coordinator's WatchCheckpoints for one job; new checkpoints load in the background and swap in.
  std::string follow_run;
  std::string coordinator;
  std::string job;
  double poll_s = 1.0;  // how often a followed run directory is checked
  // With a followed source: how long to wait for its first checkpoint (and, for a coordinator,
  // for it to answer) before giving up; 0 fails at once. `stop_waiting` (optional) ends the
  // wait early, as CANCELLED (a shutdown signal arrived).
  double wait_checkpoint_s = 0;
  std::function<bool()> stop_waiting;
  // Called once the gRPC (and metrics) ports listen, before the first checkpoint is awaited and
  // loaded (health NOT_SERVING until then): the bound ports; an error stops the start.
  std::function<absl::Status(int port, int metrics_port, int http_port)> on_listening;
  std::string templates;  // task-input templates (default: the built-in ecommerce.yaml)
  EngineOptions engine;
  RequestLimits limits;       // per-request bounds (serving/request_limits.h)
  double drain_grace_s = 30;  // on SIGTERM, how long in-flight requests may take to finish
  // Prometheus /metrics and /healthz over HTTP: -1 off, 0 an ephemeral port.
  int metrics_port = -1;
  std::string metrics_host = "127.0.0.1";
  // The OpenAI-compatible HTTP API (serving/openai_http.h): -1 off, 0 an ephemeral port; the
  // same TLS files, tokens and exposure rule as the gRPC port. `model_name` is the id it serves.
  int http_port = -1;
  std::string http_host = "127.0.0.1";
  std::string model_name = "copyforge";
  // Generated text passes the corpus pipeline's PII scrubber before it is returned (stream-safe).
  bool pii_filter = true;
  // The regurgitation guard (serving/frontend.h): prepare's ngrams.bin of the training split, and
  // the longest verbatim run a response may carry (0: report only).
  std::string copy_index;
  int64_t max_copy_tokens = 0;
  // The green-list watermark (serving/watermark.h): its key from a secret file (none: a random
  // key for this process only, said on start-up), gamma, delta, detection threshold, and the
  // tasks watermarked unless a request says otherwise.
  std::string watermark_key_file;
  WatermarkConfig watermark;
  std::vector<std::string> watermark_tasks = {"review"};
  // Trust: TLS for gRPC and the metrics endpoint (with a CA, client certificates are required),
  // the bearer tokens TextGeneration callers must send (health and reflection stay open for
  // probes), and TLS + the reader token for following a coordinator.
  TlsFiles tls;
  std::string token_file;
  std::string coordinator_token_file;
  bool insecure = false;  // allow a non-loopback host without TLS and authentication
  RpcServerLimits rpc_limits;
};

class GenerationServer {
 public:
  static absl::StatusOr<std::unique_ptr<GenerationServer>> Start(const ServerOptions& options);
  ~GenerationServer();
  int port() const;
  int metrics_port() const;  // 0 when off
  int http_port() const;     // 0 when off
  // Stops admitting (health NOT_SERVING, new requests UNAVAILABLE), lets in-flight requests
  // finish for up to the grace period, then stops.
  void Drain();
  // Loads, verifies and swaps in `checkpoint`; a corrupt or mismatched one is refused (logged,
  // the old model keeps serving) and the error returned.
  absl::Status Reload(const std::string& checkpoint);

  class Impl;

 private:
  explicit GenerationServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace copyforge

#endif  // COPYFORGE_SERVING_SERVER_H_
