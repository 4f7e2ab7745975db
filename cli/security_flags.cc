#include "cli/security_flags.h"

namespace copyforge {

void AddTlsFlags(CLI::App* cmd, TlsFiles* tls, bool server) {
  cmd->add_option("--tls-cert", tls->cert,
                  server ? "PEM certificate chain this server presents (turns TLS on)"
                         : "PEM client certificate to present (mutual TLS)");
  cmd->add_option("--tls-key", tls->key, "PEM private key of --tls-cert");
  cmd->add_option("--tls-ca", tls->ca,
                  server ? "PEM CA bundle: require client certificates signed by it (mutual TLS)"
                         : "PEM CA bundle that signed the server's certificate (turns TLS on)");
  if (!server) {
    cmd->add_option("--tls-server-name", tls->server_name,
                    "Name the server's certificate must carry, when not the dialled host");
  }
}

}  // namespace copyforge
