// A cpp-httplib server (HTTPS with the server's TLS files; with a CA, only clients it signed are
// answered) that listens on its own thread: shared by the metrics endpoint and the
// OpenAI-compatible API. Routes are added to server() before Listen.
#ifndef COPYFORGE_SERVING_HTTP_LISTENER_H_
#define COPYFORGE_SERVING_HTTP_LISTENER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "protos/rpc_security.h"

namespace httplib {
class Server;
}

namespace copyforge {

class HttpListener {
 public:
  // `what` names the endpoint in errors ("metrics", "http").
  static absl::StatusOr<std::unique_ptr<HttpListener>> Create(const TlsFiles& tls,
                                                              const std::string& what);
  ~HttpListener();  // stops the loop and joins its thread
  httplib::Server& server() { return *server_; }
  // Binds host:port (0: an ephemeral port) and runs the accept loop on its own thread.
  absl::Status Listen(const std::string& host, int port);
  int port() const { return port_; }

 private:
  HttpListener() = default;
  std::string what_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;  // runs server_'s accept loop
  int port_ = 0;
};

}  // namespace copyforge

#endif  // COPYFORGE_SERVING_HTTP_LISTENER_H_
