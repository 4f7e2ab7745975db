// Prometheus metrics of the serving tier and the small HTTP endpoint that exposes them
// (/metrics in the Prometheus text format, /healthz). Names follow TGI/vLLM's style with a
// copyforge_ prefix.
#ifndef COPYFORGE_SERVING_METRICS_H_
#define COPYFORGE_SERVING_METRICS_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "protos/rpc_security.h"
#include "serving/http_listener.h"

namespace copyforge {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds)
      : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {}
  void Observe(double v);
  // Appends the _bucket/_sum/_count lines of `name`.
  void Render(const std::string& name, const std::string& help, std::string* out) const;

 private:
  mutable std::mutex mu_;
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Gauges read at scrape time.
struct ServingGauges {
  int queue_size = 0, batch_size = 0, free_slots = 0, slots = 0;
  double kv_cache_usage = 0;  // reserved KV tokens / budget
  int64_t model_step = 0;
  int64_t engine_steps = 0;
  int models_loaded = 1;
  int64_t prefix_cache_tokens = 0, prefix_cache_hit_tokens = 0;
  bool serving = true;
};

class ServingMetrics {
 public:
  ServingMetrics();
  // One finished sequence (outcome: success, cancelled, deadline_exceeded, error).
  void Finished(const std::string& outcome, int64_t prompt_tokens, int64_t generated_tokens,
                double time_to_first_token_s, double total_s);
  // A request refused before it ran (invalid_argument, resource_exhausted, unavailable).
  void Rejected(const std::string& outcome);
  // The output PII filter replaced `replaced` strings in a chunk; `withheld`: scrubbing failed.
  void OutputPii(int replaced, bool withheld);
  // A finished sequence's longest verbatim copy from the training split; `cut` by the guard.
  void Copied(int64_t longest_tokens, bool cut);
  // Sequences admitted with a schema constraint and with the watermark.
  void OutputControl(int sequences, bool structured, bool watermarked);
  // A generation call arrived at a front end ("grpc" or "http").
  void FrontEnd(const std::string& name);
  std::string Render(const ServingGauges& gauges) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> requests_;
  std::map<std::string, uint64_t> front_ends_;  // generation calls per front end
  uint64_t pii_replaced_ = 0, pii_withheld_ = 0;
  uint64_t copy_cut_ = 0;
  uint64_t structured_ = 0, watermarked_ = 0;
  uint64_t prompt_tokens_ = 0, generated_tokens_ = 0;
  Histogram ttft_, tpot_, latency_, generated_, copied_;
};

// GET /metrics and /healthz on a port of its own, served by cpp-httplib with a pool of worker
// threads and read/write timeouts, so slow or idle clients cannot starve the liveness probe.
class MetricsHttpServer {
 public:
  // port 0: an ephemeral one (see port()).
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& host, int port, std::function<std::string()> metrics,
      std::function<bool()> healthy, const TlsFiles& tls = {});
  ~MetricsHttpServer();
  int port() const { return listener_->port(); }

 private:
  MetricsHttpServer() = default;
  std::unique_ptr<HttpListener> listener_;
};

}  // namespace copyforge

#endif  // COPYFORGE_SERVING_METRICS_H_
