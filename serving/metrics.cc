#include "serving/metrics.h"

#include <httplib.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "serving/http_listener.h"
#include "serving/process_metrics.h"

namespace copyforge {

void Histogram::Observe(double v) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += v;
  ++count_;
}

void Histogram::Render(const std::string& name, const std::string& help, std::string* out) const {
  std::lock_guard<std::mutex> lock(mu_);
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " histogram\n");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    absl::StrAppend(out, name, "_bucket{le=\"", absl::StrFormat("%g", bounds_[i]), "\"} ",
                    cumulative, "\n");
  }
  absl::StrAppend(out, name, "_bucket{le=\"+Inf\"} ", count_, "\n", name, "_sum ",
                  absl::StrFormat("%.6f", sum_), "\n", name, "_count ", count_, "\n");
}

ServingMetrics::ServingMetrics()
    : ttft_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}),
      tpot_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}),
      latency_({0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}),
      generated_({1, 8, 16, 32, 64, 128, 256, 512, 1024}),
      copied_({8, 12, 16, 24, 32, 48, 64, 128}) {}

void ServingMetrics::Copied(int64_t longest_tokens, bool cut) {
  copied_.Observe(static_cast<double>(longest_tokens));
  if (!cut) return;
  std::lock_guard<std::mutex> lock(mu_);
  ++copy_cut_;
}

void ServingMetrics::Finished(const std::string& outcome, int64_t prompt_tokens,
                              int64_t generated_tokens, double time_to_first_token_s,
                              double total_s) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++requests_[outcome];
    prompt_tokens_ += static_cast<uint64_t>(prompt_tokens);
    generated_tokens_ += static_cast<uint64_t>(generated_tokens);
  }
  latency_.Observe(total_s);
  generated_.Observe(static_cast<double>(generated_tokens));
  if (generated_tokens > 0) ttft_.Observe(time_to_first_token_s);
  if (generated_tokens > 1) {
    tpot_.Observe((total_s - time_to_first_token_s) / static_cast<double>(generated_tokens - 1));
  }
}

void ServingMetrics::OutputPii(int replaced, bool withheld) {
  if (replaced == 0 && !withheld) return;
  std::lock_guard<std::mutex> lock(mu_);
  pii_replaced_ += static_cast<uint64_t>(std::max(0, replaced));
  pii_withheld_ += withheld ? 1 : 0;
}

void ServingMetrics::OutputControl(int sequences, bool structured, bool watermarked) {
  std::lock_guard<std::mutex> lock(mu_);
  if (structured) structured_ += static_cast<uint64_t>(sequences);
  if (watermarked) watermarked_ += static_cast<uint64_t>(sequences);
}

void ServingMetrics::FrontEnd(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  ++front_ends_[name];
}

void ServingMetrics::Rejected(const std::string& outcome) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[outcome];
}

std::string ServingMetrics::Render(const ServingGauges& g) const {
  std::string out;
  auto gauge = [&](const char* name, const char* help, double v) {
    absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " gauge\n", name, " ",
                    absl::StrFormat("%g", v), "\n");
  };
  {
    std::lock_guard<std::mutex> lock(mu_);
    absl::StrAppend(&out,
                    "# HELP copyforge_requests_total Finished or refused requests (per sequence) "
                    "by outcome\n# TYPE copyforge_requests_total counter\n");
    for (const char* o : {"success", "cancelled", "deadline_exceeded", "error", "invalid_argument",
                          "resource_exhausted", "unavailable", "unauthenticated"}) {
      auto it = requests_.find(o);
      absl::StrAppend(&out, "copyforge_requests_total{outcome=\"", o, "\"} ",
                      it == requests_.end() ? 0 : it->second, "\n");
    }
    absl::StrAppend(
        &out,
        "# HELP copyforge_frontend_requests_total TextGeneration and /v1 calls by front end\n"
        "# TYPE copyforge_frontend_requests_total counter\n");
    for (const char* f : {"grpc", "http"}) {
      auto it = front_ends_.find(f);
      absl::StrAppend(&out, "copyforge_frontend_requests_total{front_end=\"", f, "\"} ",
                      it == front_ends_.end() ? 0 : it->second, "\n");
    }
    absl::StrAppend(&out,
                    "# HELP copyforge_output_pii_replacements_total PII the output filter "
                    "replaced in generated text\n# TYPE copyforge_output_pii_replacements_total "
                    "counter\ncopyforge_output_pii_replacements_total ",
                    pii_replaced_,
                    "\n# HELP copyforge_output_pii_withheld_total Chunks withheld because "
                    "scrubbing failed\n# TYPE copyforge_output_pii_withheld_total counter\n"
                    "copyforge_output_pii_withheld_total ",
                    pii_withheld_,
                    "\n# HELP copyforge_structured_sequences_total Sequences decoded under a "
                    "response_format schema\n# TYPE copyforge_structured_sequences_total counter\n"
                    "copyforge_structured_sequences_total ",
                    structured_,
                    "\n# HELP copyforge_watermarked_sequences_total Sequences generated with the "
                    "watermark\n# TYPE copyforge_watermarked_sequences_total counter\n"
                    "copyforge_watermarked_sequences_total ",
                    watermarked_, "\n");
    absl::StrAppend(&out,
                    "# HELP copyforge_request_prompt_tokens_total Prompt tokens of finished "
                    "requests\n# TYPE copyforge_request_prompt_tokens_total counter\n"
                    "copyforge_request_prompt_tokens_total ",
                    prompt_tokens_,
                    "\n# HELP copyforge_request_generated_tokens_total Generated tokens\n"
                    "# TYPE copyforge_request_generated_tokens_total counter\n"
                    "copyforge_request_generated_tokens_total ",
                    generated_tokens_, "\n");
  }
  gauge("copyforge_queue_size", "Requests waiting for a batch slot", g.queue_size);
  gauge("copyforge_batch_current_size", "Sequences in the running batch", g.batch_size);
  gauge("copyforge_batch_max_size", "KV cache slots", g.slots);
  gauge("copyforge_kv_cache_usage_ratio", "Reserved share of the KV token budget",
        g.kv_cache_usage);
  gauge("copyforge_model_step", "Training step of the served checkpoint",
        static_cast<double>(g.model_step));
  gauge("copyforge_models_loaded", "Models in memory (2 while a swap drains)", g.models_loaded);
  gauge("copyforge_serving", "1 when admitting requests, 0 while loading or draining",
        g.serving ? 1 : 0);
  gauge("copyforge_prefix_cache_tokens", "Prompt-prefix tokens whose keys and values are cached",
        static_cast<double>(g.prefix_cache_tokens));
  absl::StrAppend(
      &out,
      "# HELP copyforge_prefix_cache_hit_tokens_total Prompt tokens taken from the "
      "prefix cache instead of prefilled\n# TYPE copyforge_prefix_cache_hit_tokens_total "
      "counter\ncopyforge_prefix_cache_hit_tokens_total ",
      g.prefix_cache_hit_tokens, "\n");
  absl::StrAppend(&out,
                  "# HELP copyforge_engine_steps_total Decode steps run\n"
                  "# TYPE copyforge_engine_steps_total counter\ncopyforge_engine_steps_total ",
                  g.engine_steps, "\n");
  ttft_.Render("copyforge_request_time_to_first_token_seconds",
               "From arrival to the first generated token", &out);
  tpot_.Render("copyforge_request_time_per_output_token_seconds",
               "Mean time per generated token after the first", &out);
  latency_.Render("copyforge_request_duration_seconds", "From arrival to the last token", &out);
  generated_.Render("copyforge_request_generated_tokens", "Generated tokens per request", &out);
  copied_.Render("copyforge_response_copied_tokens",
                 "Longest run of a response copied verbatim from the training split", &out);
  {
    std::lock_guard<std::mutex> lock(mu_);
    absl::StrAppend(
        &out,
        "# HELP copyforge_copy_limit_cuts_total Sequences cut by --max-copy-tokens\n"
        "# TYPE copyforge_copy_limit_cuts_total counter\ncopyforge_copy_limit_cuts_total ",
        copy_cut_, "\n");
  }
  AppendProcessMetrics(&out);
  return out;
}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& host, int port, std::function<std::string()> metrics,
    std::function<bool()> healthy, const TlsFiles& tls) {
  std::unique_ptr<MetricsHttpServer> s(new MetricsHttpServer());
  auto listener = HttpListener::Create(tls, "metrics");
  if (!listener.ok()) return listener.status();
  s->listener_ = *std::move(listener);
  httplib::Server& http = s->listener_->server();
  // Eight workers, and a client that sends nothing gives its worker back after a second: the
  // probe is answered while scrapers and idle connections come and go.
  http.new_task_queue = [] { return new httplib::ThreadPool(8); };
  http.set_read_timeout(1, 0);
  http.set_write_timeout(5, 0);
  http.set_keep_alive_timeout(2);
  http.set_payload_max_length(1 << 16);
  http.Get("/metrics", [metrics](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics(), "text/plain; version=0.0.4");
  });
  http.Get("/healthz", [healthy](const httplib::Request&, httplib::Response& res) {
    const bool ok = healthy();
    res.status = ok ? 200 : 503;
    res.set_content(ok ? "ok\n" : "not serving\n", "text/plain");
  });
  if (absl::Status st = s->listener_->Listen(host, port); !st.ok()) return st;
  return s;
}

MetricsHttpServer::~MetricsHttpServer() = default;

}  // namespace copyforge
