#!/usr/bin/env bash
# Creates a throwaway cluster CA and one certificate per node id (subject CN = the id, the
# identity the Raft port checks) in DIR, for the Raft port's mutual TLS. Files that exist are
# kept, so a second run adds certificates for new ids under the same CA.
#   scripts/make-raft-certs.sh DIR ID...
# For a local cluster or tests only: the CA key lies next to the certificates. In production
# keep the CA key offline and sign each node's CSR with it.
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 DIR ID..." >&2
  exit 2
fi
command -v openssl > /dev/null || { echo "$0: needs the openssl command (apt-get install openssl)" >&2; exit 1; }
dir=$1
shift
mkdir -p "$dir"
umask 077
if [[ ! -f $dir/ca.pem || ! -f $dir/ca.key ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/ca.key" \
    -out "$dir/ca.pem" -days 825 -subj "/CN=InfinityStore throwaway cluster CA" 2> /dev/null
fi
for id in "$@"; do
  [[ -f $dir/$id.pem && -f $dir/$id.key ]] && continue
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/$id.key" \
    -out "$dir/$id.csr" -subj "/CN=$id" 2> /dev/null
  openssl x509 -req -in "$dir/$id.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -out "$dir/$id.pem" -days 825 \
    -extfile <(printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:%s\n' "$id") \
    2> /dev/null
  rm -f "$dir/$id.csr"
done
