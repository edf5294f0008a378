#!/usr/bin/env bash
# Installs every Debian 12 package that building, testing and running InfinityStore needs, and
# the extra packages named as arguments (benchmarks: wrk, etcd-server, linux-perf, ...).
# Idempotent: skips apt entirely when everything is already present.
set -euo pipefail

packages=(
  build-essential cmake g++ pkg-config
  libcaf-dev
  libboost1.81-dev libboost-json1.81-dev libboost-program-options1.81-dev libboost-test1.81-dev
  libssl-dev # HTTPS: infinityctl's https:// endpoints and the node's client port
  curl procps clang-format
  python3 openssl # e2e tests (ctl, http limits, raft tls): JSON checks, TLS, certificates, attack
                  # clients; scripts/make-raft-certs.sh
  iproute2 nftables # network namespaces and silent drops for the partition tests
  prometheus # promtool checks /metrics; the e2e test scrapes a cluster with a real Prometheus
  chromium # the dashboard test loads /ui in a headless browser
  strace # crash-point tests: strace -e inject kills a node at its N-th system call
  "$@"
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
