#include "serving/http_listener.h"

#include <httplib.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace copyforge {

absl::StatusOr<std::unique_ptr<HttpListener>> HttpListener::Create(const TlsFiles& tls,
                                                                   const std::string& what) {
  std::unique_ptr<HttpListener> l(new HttpListener());
  l->what_ = what;
  if (tls.cert.empty()) {
    l->server_ = std::make_unique<httplib::Server>();
    return l;
  }
  auto https = std::make_unique<httplib::SSLServer>(tls.cert.c_str(), tls.key.c_str(),
                                                    tls.ca.empty() ? nullptr : tls.ca.c_str());
  if (!https->is_valid()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": cannot use --tls-cert ", tls.cert, " / --tls-key ", tls.key,
                     tls.ca.empty() ? "" : absl::StrCat(" / --tls-ca ", tls.ca)));
  }
  l->server_ = std::move(https);
  return l;
}

absl::Status HttpListener::Listen(const std::string& host, int port) {
  httplib::Server& http = *server_;
  const int bound =
      port == 0 ? http.bind_to_any_port(host) : (http.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen for ", what_, " on ", host, ":", port,
                                               ": ", std::strerror(errno)));
  }
  port_ = bound;
  thread_ = std::thread([&http] { http.listen_after_bind(); });
  // Until the loop runs, stop() would not reach it (and the destructor would wait forever).
  for (int i = 0; i < 2000 && !http.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return absl::OkStatus();
}

HttpListener::~HttpListener() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace copyforge
