#!/usr/bin/env bash
# Installs dependencies, builds InfinityStore and runs the 3-node cluster described in config/
# in the foreground. Ctrl-C stops all three nodes cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build build -j2 --target infinitystore infinityctl

# Throwaway CA and node certificates for the Raft port's mutual TLS (config/node*.conf use them);
# kept once created. Delete config/certs to start over with a new CA.
bash scripts/make-raft-certs.sh config/certs node1 node2 node3

pids=()
stop() {
  echo "stopping the cluster..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  exit "${1:-0}"
}
trap stop INT TERM

for n in 1 2 3; do
  ./build/app/infinitystore --config "config/node$n.conf" &
  pids+=($!)
done

# The banner only once every node serves: a user who copies the first curl line at once must
# not get "connection refused". Bounded, and a node that exits stops the cluster.
http_addrs=()
for n in 1 2 3; do
  http_addrs+=("$(sed -n 's/^http-addr *= *//p' "config/node$n.conf")")
done
deadline=$((SECONDS + 30))
for i in 0 1 2; do
  until curl -sf --max-time 1 "http://${http_addrs[$i]}/health" >/dev/null; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "node$((i + 1)) exited (see its log above); stopping the others" >&2
      stop 1
    fi
    if ((SECONDS >= deadline)); then
      echo "node$((i + 1)) does not answer http://${http_addrs[$i]}/health after 30 s; stopping" >&2
      stop 1
    fi
    sleep 0.2
  done
done

cat <<'TOUR'

InfinityStore: 3 nodes running (HTTP on 127.0.0.1:8001, :8011, :8021). Try:
  curl -s -XPOST localhost:8001/set -d '{"key":"hello","value":"world","action":"set"}'
  curl -s 'localhost:8011/get?key=hello'                      # linearizable read via a follower
  curl -s 'localhost:8021/get?key=hello&consistency=stale'    # local copy, may lag
  curl -s -XPOST localhost:8011/set -d '{"key":"hello","action":"delete"}'
  curl -s localhost:8001/status
  curl -s localhost:8001/ready; curl -s localhost:8001/metrics | head   # probes and metrics
  open http://localhost:8001/ui                               # the live dashboard
Or with the command-line client (INFINITYCTL_ENDPOINTS=127.0.0.1:8001,127.0.0.1:8011,...):
  ./build/app/infinityctl put hello world; ./build/app/infinityctl get hello
  ./build/app/infinityctl --endpoints 127.0.0.1:8001,127.0.0.1:8011,127.0.0.1:8021 status
Press Ctrl-C to stop all three nodes.
TOUR
wait
