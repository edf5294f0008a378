#!/usr/bin/env bash
# Throughput and latency of a local 3-node InfinityStore cluster under wrk, and optionally of a
# 3-node etcd cluster (Debian's etcd-server) on the same machine with the same load.
#
#   bash bench/run.sh [--duration SECONDS] [--connections N] [--raft-tls] [--etcd]
#
# --raft-tls runs the nodes with mutual TLS on the Raft port (a throwaway CA made by
# scripts/make-raft-certs.sh); without it the Raft port is plain TCP on 127.0.0.1.
#
# Everything runs on 127.0.0.1: three nodes with fresh data directories under /tmp, then wrk
# (2 threads) against them. Scenarios: writes to the leader, writes through a follower
# (forwarded), linearizable reads from the leader and through a follower, stale reads from a
# follower. Each prints requests/s, p50 and p99 latency and the count of unexpected answers.
# The load generator shares the machine with the nodes, so the figures are a floor for what the
# nodes can do; see bench/README.md for recorded results and their caveats.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

duration=10
connections=32
with_etcd=0
raft_tls=0
while (($#)); do
  case $1 in
  --duration) duration=$2; shift 2 ;;
  --connections) connections=$2; shift 2 ;;
  --etcd) with_etcd=1; shift ;;
  --raft-tls) raft_tls=1; shift ;;
  *) echo "usage: bash bench/run.sh [--duration S] [--connections N] [--raft-tls] [--etcd]" >&2; exit 2 ;;
  esac
done

bash scripts/install-deps.sh
need=(wrk)
((with_etcd)) && need+=(etcd-server etcd-client)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 --target infinitystore >/dev/null

work=$(mktemp -d /tmp/infinitystore-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

export BENCH_WRK_DIR=$root/bench/wrk
run_wrk() { # name script url [VAR=value ...]
  local name=$1 script=$2 url=$3
  shift 3
  local line
  line=$(env "$@" wrk -t2 -c"$connections" -d"${duration}s" --timeout 10s -s "$script" "$url" |
    grep '^RESULT' || true)
  printf '%-44s %s\n' "$name" "${line#RESULT }"
}

# -- InfinityStore ------------------------------------------------------------------------------
bin=$root/build/app/infinitystore
cluster="n1=127.0.0.1:18000,n2=127.0.0.1:18010,n3=127.0.0.1:18020"
((raft_tls)) && bash scripts/make-raft-certs.sh "$work/certs" n1 n2 n3
for i in 1 2 3; do
  port=$((18000 + (i - 1) * 10))
  tls=()
  ((raft_tls)) && tls=(--raft-tls-cert "$work/certs/n$i.pem" --raft-tls-key "$work/certs/n$i.key"
    --raft-tls-ca "$work/certs/ca.pem")
  "$bin" --node-id "n$i" --raft-addr "127.0.0.1:$port" --http-addr "127.0.0.1:$((port + 1))" \
    --data-dir "$work/n$i" --initial-cluster "$cluster" --log-level warn "${tls[@]}" \
    >"$work/n$i.log" 2>&1 &
  pids+=($!)
done
leader=""
for _ in $(seq 1 100); do
  for i in 1 2 3; do
    port=$((18001 + (i - 1) * 10))
    if curl -s "127.0.0.1:$port/status" | grep -q '"role":"leader"'; then leader=$port; fi
  done
  [[ -n $leader ]] && break
  sleep 0.1
done
[[ -n $leader ]] || { echo "no leader elected" >&2; exit 1; }
follower=18001
[[ $leader == 18001 ]] && follower=18011
for k in $(seq 0 999); do
  printf '{"key":"r%d","value":"value-%010d","action":"set"}' "$k" "$k" |
    curl -s -o /dev/null -X POST --data-binary @- "127.0.0.1:$leader/set"
done

echo "machine: $(nproc) cores, $(uname -r); $duration s per scenario, $connections connections"
echo "== InfinityStore, 3 nodes (leader :$leader, follower :$follower), Raft port: $( ((raft_tls)) && echo "mutual TLS" || echo "plain TCP")"
run_wrk "write, to the leader" bench/wrk/set.lua "http://127.0.0.1:$leader"
run_wrk "write, through a follower" bench/wrk/set.lua "http://127.0.0.1:$follower"
run_wrk "linearizable read, leader" bench/wrk/get.lua "http://127.0.0.1:$leader"
run_wrk "linearizable read, through a follower" bench/wrk/get.lua "http://127.0.0.1:$follower"
run_wrk "stale read, follower" bench/wrk/get.lua "http://127.0.0.1:$follower" \
  BENCH_CONSISTENCY=stale
for i in 1 2 3; do
  echo "node n$i: max RSS $(grep VmHWM "/proc/${pids[$((i - 1))]}/status" | awk '{print $2, $3}')"
done
for pid in "${pids[@]}"; do kill "$pid"; done
for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
pids=()

# -- etcd (optional) -----------------------------------------------------------------------------
((with_etcd)) || exit 0
members="e1=http://127.0.0.1:12380,e2=http://127.0.0.1:12390,e3=http://127.0.0.1:12400"
for i in 1 2 3; do
  peer=$((12380 + (i - 1) * 10))
  client=$((12379 + (i - 1) * 10))
  etcd --name "e$i" --data-dir "$work/e$i" --listen-peer-urls "http://127.0.0.1:$peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
    --initial-cluster "$members" --initial-cluster-state new --log-level warn \
    >"$work/e$i.log" 2>&1 &
  pids+=($!)
done
endpoints="127.0.0.1:12379,127.0.0.1:12389,127.0.0.1:12399"
for _ in $(seq 1 100); do
  ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint status >/dev/null 2>&1 && break
  sleep 0.2
done
eleader=""
while read -r line; do
  [[ $line == *", true, "* ]] && eleader=$(echo "$line" | cut -d, -f1 | sed 's/.*://')
done < <(ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint status 2>/dev/null)
[[ -n $eleader ]] || { echo "etcd elected no leader" >&2; exit 1; }
efollower=12379
[[ $eleader == 12379 ]] && efollower=12389
for k in $(seq 0 999); do
  ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$eleader" put "r$k" "$(printf 'value-%010d' "$k")" \
    >/dev/null
done
echo "== etcd $(etcd --version | head -1 | awk '{print $3}'), 3 members (leader :$eleader, follower :$efollower)"
run_wrk "write, to the leader" bench/wrk/etcd_put.lua "http://127.0.0.1:$eleader"
run_wrk "write, through a follower" bench/wrk/etcd_put.lua "http://127.0.0.1:$efollower"
run_wrk "linearizable read, leader" bench/wrk/etcd_range.lua "http://127.0.0.1:$eleader"
run_wrk "linearizable read, through a follower" bench/wrk/etcd_range.lua \
  "http://127.0.0.1:$efollower"
run_wrk "serializable read, follower" bench/wrk/etcd_range.lua "http://127.0.0.1:$efollower" \
  BENCH_CONSISTENCY=stale
for i in 1 2 3; do
  echo "member e$i: max RSS $(grep VmHWM "/proc/${pids[$((i - 1))]}/status" | awk '{print $2, $3}')"
done
