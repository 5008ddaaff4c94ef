#!/usr/bin/env bash
# Makes throwaway certificates for the TLS variant of the compose cluster
# (infra/docker-compose.tls.yml): an authority, one certificate for every Silt process
# (names: metadata, silt-1, silt-2, localhost, 127.0.0.1; usable as server and client
# certificate) and a client certificate for "alice". For trials only: production
# certificates come from your own authority (docs/security.md).
#
#   infra/make-certs.sh [DIR]      # default: infra/tls
set -euo pipefail
dir="${1:-$(dirname "$0")/tls}"
mkdir -p "$dir"
cd "$dir"
ec() { echo -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes; }
# shellcheck disable=SC2046
openssl req -x509 $(ec) -keyout ca.key -out ca.pem -days 365 -subj "/CN=silt trial CA" 2>/dev/null
issue() {
  local name=$1 subject=$2 extensions=$3
  # shellcheck disable=SC2046
  openssl req $(ec) -keyout "$name.key" -out "$name.csr" -subj "$subject" 2>/dev/null
  printf '%b' "$extensions" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 \
    -out "$name.pem" -extfile "$name.ext" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}
issue node "/CN=silt" \
  "subjectAltName=DNS:metadata,DNS:silt-1,DNS:silt-2,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"
issue alice "/CN=alice" "extendedKeyUsage=clientAuth\n"
# The password Prometheus scrapes the secured cluster with (docker-compose.secure.yml).
[ -s prometheus.password ] || openssl rand -hex 24 > prometheus.password
# The containers run as an unprivileged user: let it read the keys (trial certificates).
chmod 644 ./*.pem ./*.key prometheus.password
echo "in $dir: ca.pem, node.pem/node.key, alice.pem/alice.key, prometheus.password"
