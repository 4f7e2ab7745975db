// The OpenAI-compatible HTTP front end of `copyforge serve` (cpp-httplib, TLS as the gRPC port):
// POST /v1/completions (unary, or server-sent events ending in [DONE]), GET /v1/models and
// GET /health, on the same engine, limits, tokens and metrics as gRPC (serving/frontend.h).
// Errors use OpenAI's shape with the matching status: 400 naming the field, 401, 404 for another
// model, 429 when the queue is full, 503 while loading or draining.
#ifndef COPYFORGE_SERVING_OPENAI_HTTP_H_
#define COPYFORGE_SERVING_OPENAI_HTTP_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "protos/rpc_security.h"
#include "serving/frontend.h"
#include "serving/http_listener.h"

namespace copyforge {

class OpenAiHttpServer {
 public:
  // `front` must outlive the server. `model` is the id clients name (GET /v1/models).
  static absl::StatusOr<std::unique_ptr<OpenAiHttpServer>> Start(const std::string& host, int port,
                                                                 const TlsFiles& tls,
                                                                 Frontend* front,
                                                                 const std::string& model,
                                                                 int threads);
  ~OpenAiHttpServer();
  int port() const { return listener_->port(); }

 private:
  OpenAiHttpServer() = default;
  std::unique_ptr<HttpListener> listener_;
};

}  // namespace copyforge

#endif  // COPYFORGE_SERVING_OPENAI_HTTP_H_
