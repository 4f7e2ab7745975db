#include "serving/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

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
      generated_({1, 8, 16, 32, 64, 128, 256, 512, 1024}) {}

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
                    "# HELP copyforge_request_count Finished or refused requests (per sequence) "
                    "by outcome\n# TYPE copyforge_request_count counter\n");
    for (const char* o : {"success", "cancelled", "deadline_exceeded", "error", "invalid_argument",
                          "resource_exhausted", "unavailable"}) {
      auto it = requests_.find(o);
      absl::StrAppend(&out, "copyforge_request_count{outcome=\"", o, "\"} ",
                      it == requests_.end() ? 0 : it->second, "\n");
    }
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
  return out;
}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& host, int port, std::function<std::string()> metrics,
    std::function<bool()> healthy) {
  std::unique_ptr<MetricsHttpServer> s(new MetricsHttpServer());
  s->metrics_ = std::move(metrics);
  s->healthy_ = std::move(healthy);
  s->fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  ::setsockopt(s->fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics host ", host, " is not an IPv4 address"));
  }
  socklen_t len = sizeof(addr);
  if (::bind(s->fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(s->fd_, 16) != 0 ||
      ::getsockname(s->fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for metrics on ", host, ":", port, ": ", std::strerror(errno)));
  }
  s->port_ = ntohs(addr.sin_port);
  MetricsHttpServer* raw = s.get();
  s->thread_ = std::thread([raw] { raw->Loop(); });
  return s;
}

MetricsHttpServer::~MetricsHttpServer() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) ::close(fd_);
}

void MetricsHttpServer::Loop() {
  while (!stop_) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    const int client = ::accept(fd_, nullptr, nullptr);
    if (client < 0) continue;
    timeval tv{2, 0};
    ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char buf[2048];
    const ssize_t n = ::recv(client, buf, sizeof(buf) - 1, 0);
    std::string request(buf, n > 0 ? static_cast<size_t>(n) : 0);
    std::string status = "404 Not Found", type = "text/plain", body = "not found\n";
    if (request.rfind("GET /metrics", 0) == 0) {
      status = "200 OK";
      type = "text/plain; version=0.0.4";
      body = metrics_();
    } else if (request.rfind("GET /healthz", 0) == 0) {
      const bool ok = healthy_();
      status = ok ? "200 OK" : "503 Service Unavailable";
      body = ok ? "ok\n" : "not serving\n";
    }
    const std::string response =
        absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", type,
                     "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n\r\n", body);
    size_t sent = 0;
    while (sent < response.size()) {
      const ssize_t w =
          ::send(client, response.data() + sent, response.size() - sent, MSG_NOSIGNAL);
      if (w <= 0) break;
      sent += static_cast<size_t>(w);
    }
    ::close(client);
  }
}

}  // namespace copyforge
