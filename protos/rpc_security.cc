#include "protos/rpc_security.h"

#include <arpa/inet.h>

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace copyforge {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in || text.str().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": cannot read the file"));
  }
  if (!absl::StrContains(text.str(), "-----BEGIN ")) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": not a PEM file"));
  }
  return text.str();
}

absl::Status CheckPair(const TlsFiles& tls) {
  if (tls.cert.empty() != tls.key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  return absl::OkStatus();
}

// The PEM texts of --tls-key and --tls-cert.
absl::Status ReadKeyPair(const TlsFiles& tls, std::string* key, std::string* cert) {
  auto k = ReadPem(tls.key, "--tls-key");
  if (!k.ok()) return k.status();
  auto c = ReadPem(tls.cert, "--tls-cert");
  if (!c.ok()) return c.status();
  *key = *std::move(k);
  *cert = *std::move(c);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& tls) {
  if (!tls.enabled()) return grpc::InsecureServerCredentials();
  if (absl::Status st = CheckPair(tls); !st.ok()) return st;
  if (tls.cert.empty()) {
    return absl::InvalidArgumentError("--tls-ca on a server needs --tls-cert and --tls-key");
  }
  grpc::SslServerCredentialsOptions options(
      tls.ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                     : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  if (absl::Status st = ReadKeyPair(tls, &pair.private_key, &pair.cert_chain); !st.ok()) return st;
  options.pem_key_cert_pairs.push_back(std::move(pair));
  if (!tls.ca.empty()) {
    auto ca = ReadPem(tls.ca, "--tls-ca");
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *std::move(ca);
  }
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsFiles& tls) {
  if (!tls.enabled()) return grpc::InsecureChannelCredentials();
  if (absl::Status st = CheckPair(tls); !st.ok()) return st;
  grpc::SslCredentialsOptions options;
  if (!tls.ca.empty()) {
    auto ca = ReadPem(tls.ca, "--tls-ca");
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *std::move(ca);
  }
  if (!tls.cert.empty()) {
    if (absl::Status st = ReadKeyPair(tls, &options.pem_private_key, &options.pem_cert_chain);
        !st.ok()) {
      return st;
    }
  }
  return grpc::SslCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenChannel(const std::string& target,
                                                           const TlsFiles& tls,
                                                           grpc::ChannelArguments args) {
  auto credentials = MakeChannelCredentials(tls);
  if (!credentials.ok()) return credentials.status();
  if (!tls.server_name.empty()) args.SetSslTargetNameOverride(tls.server_name);
  return grpc::CreateCustomChannel(target, *credentials, args);
}

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  return false;
}

absl::StatusOr<std::string> CheckExposure(const std::string& server, const std::string& host,
                                          bool tls, bool authenticated, bool insecure) {
  if (tls && authenticated) return std::string();
  const std::string missing = !tls && !authenticated ? "no TLS and no authentication"
                              : !tls                 ? "no TLS (tokens would cross in plaintext)"
                                                     : "TLS but no authentication";
  if (IsLoopbackHost(host)) {
    return absl::StrCat(server, ": listening on loopback ", host, " with ", missing,
                        "; only local processes can reach it");
  }
  if (!insecure) {
    return absl::FailedPreconditionError(absl::StrCat(
        server, ": refusing to listen on ", host, " with ", missing,
        ": give --tls-cert/--tls-key and --tls-ca (mutual TLS) or token files, bind a loopback "
        "--host, or pass --insecure to run open on purpose"));
  }
  return absl::StrCat(server, ": WARNING: listening on ", host, " with ", missing, " (--insecure)");
}

void ApplyServerLimits(const RpcServerLimits& limits, grpc::ServerBuilder* builder) {
  builder->SetMaxReceiveMessageSize(limits.max_receive_message_bytes);
  builder->SetMaxSendMessageSize(limits.max_send_message_bytes);
  builder->AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams);
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, limits.keepalive_time_ms);
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, limits.keepalive_timeout_ms);
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                              limits.min_client_ping_interval_ms);
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
}

}  // namespace copyforge
