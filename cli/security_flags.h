// The TLS and bearer-token flags every gRPC server and client command shares.
#ifndef COPYFORGE_CLI_SECURITY_FLAGS_H_
#define COPYFORGE_CLI_SECURITY_FLAGS_H_

#include <CLI/CLI.hpp>

#include "protos/rpc_security.h"

namespace copyforge {

// --tls-cert, --tls-key, --tls-ca (and, for clients, --tls-server-name). `server` words the help
// for a server (client certificates verified against the CA) or a client.
void AddTlsFlags(CLI::App* cmd, TlsFiles* tls, bool server);

}  // namespace copyforge

#endif  // COPYFORGE_CLI_SECURITY_FLAGS_H_
