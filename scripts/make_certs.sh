#!/usr/bin/env bash
# Makes a private CA and certificates signed by it, for trying copyforge with TLS on one machine
# or in a test cluster (use your organisation's CA, or cert-manager, in production):
#   DIR/ca.pem, ca.key            the CA (ca.pem is what --tls-ca takes)
#   DIR/server.pem, server.key    for servers: 127.0.0.1, localhost and every extra SAN given
#   DIR/client.pem, client.key    for clients (mutual TLS)
# usage: make_certs.sh DIR [DAYS] [SAN ...]   (a SAN as DNS:name or IP:address)
set -euo pipefail
dir=${1:?usage: make_certs.sh DIR [DAYS] [SAN ...]}
days=${2:-30}
shift $(( $# >= 2 ? 2 : 1 ))
sans="IP:127.0.0.1,DNS:localhost"
for s in "$@"; do sans="$sans,$s"; done
mkdir -p "$dir"
cd "$dir"
umask 077  # private keys readable by their owner only
openssl req -x509 -newkey rsa:2048 -nodes -days "$days" -keyout ca.key -out ca.pem \
  -subj "/CN=copyforge-ca" -addext "basicConstraints=critical,CA:TRUE" 2>/dev/null
leaf() {  # name san usage
  openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=copyforge-$1" \
    2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=%s\n' "$2" "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days "$days" \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
leaf server "$sans" serverAuth,clientAuth
leaf client "DNS:copyforge-client" clientAuth
chmod 644 ca.pem server.pem client.pem
echo "make_certs: CA and server/client certificates in $dir (valid $days days; server SANs $sans)"
