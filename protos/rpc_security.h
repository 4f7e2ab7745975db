// Transport security shared by every gRPC server and client: TLS from PEM files (mutual when a
// CA is given), the rule that a server reachable from other hosts must not run open, and the
// bounds every server applies (message size, concurrent streams, keepalive).
#ifndef COPYFORGE_PROTOS_RPC_SECURITY_H_
#define COPYFORGE_PROTOS_RPC_SECURITY_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace copyforge {

// PEM files of one process's identity. A server presents cert/key and, with a CA, requires and
// verifies client certificates signed by it (mutual TLS). A client verifies the server against
// the CA (the system roots without one) and presents cert/key when given.
struct TlsFiles {
  std::string cert;
  std::string key;
  std::string ca;
  // The name the server's certificate must carry when it differs from the dialled host.
  std::string server_name;
  bool enabled() const { return !cert.empty() || !key.empty() || !ca.empty(); }
};

// Server credentials: TLS when `tls.cert` and `tls.key` are set, plaintext when nothing is set.
// A key without a certificate (or the reverse), a CA without a server certificate, or a file
// that cannot be read is an error naming the flag and the path.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const TlsFiles& tls);

// Client credentials: TLS when any file is set, plaintext otherwise.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsFiles& tls);

// A channel to `target` with MakeChannelCredentials; `args` may carry reconnect settings.
absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenChannel(
    const std::string& target, const TlsFiles& tls,
    grpc::ChannelArguments args = grpc::ChannelArguments());

// Whether `host` (an address a server binds) is reachable only from this machine.
bool IsLoopbackHost(const std::string& host);

// Secure by default: a server bound to a non-loopback address needs TLS and an authenticated
// caller (mutual TLS, or bearer tokens) unless `insecure` says otherwise. On loopback it may run
// open; the returned line says so, for the start-up log (empty when nothing is open).
absl::StatusOr<std::string> CheckExposure(const std::string& server, const std::string& host,
                                          bool tls, bool authenticated, bool insecure);

// Bounds applied to every server; each is named in the error a caller gets past it.
struct RpcServerLimits {
  int max_receive_message_bytes = 4 << 20;
  int max_send_message_bytes = 16 << 20;
  int max_concurrent_streams = 256;  // per connection
  int keepalive_time_ms = 30000;     // pings an idle connection this often
  int keepalive_timeout_ms = 10000;  // and drops it when a ping is not answered in time
  int min_client_ping_interval_ms = 10000;
};
void ApplyServerLimits(const RpcServerLimits& limits, grpc::ServerBuilder* builder);

}  // namespace copyforge

#endif  // COPYFORGE_PROTOS_RPC_SECURITY_H_
