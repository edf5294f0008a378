#!/usr/bin/env bash
# Bounded memory and restart time under a long write load (issue: "Run for months").
#
#   bash bench/long_run.sh [--writes N] [--keys K] [--value-bytes B] [--connections C]
#
# Starts a 3-node cluster on 127.0.0.1 (fresh data directories under /tmp, default snapshot
# settings), writes N times (default 1,000,000) over K keys (default 10,000) of B bytes (default
# 100) with wrk, then reports per node: resident memory (now and peak), the data directory's
# size and the live data's size. Then kill -9 of all three, restart, and the time until a
# linearizable read is served. Ends every process it started.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

writes=1000000
keys=10000
value_bytes=100
connections=64
extra=()
while (($#)); do
  case $1 in
  --writes) writes=$2; shift 2 ;;
  --keys) keys=$2; shift 2 ;;
  --value-bytes) value_bytes=$2; shift 2 ;;
  --connections) connections=$2; shift 2 ;;
  --) shift; extra=("$@"); break ;;
  *) echo "usage: bash bench/long_run.sh [--writes N] [--keys K] [--value-bytes B] [--connections C] [-- node options]" >&2; exit 2 ;;
  esac
done

bash scripts/install-deps.sh >/dev/null
command -v wrk >/dev/null || {
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get install -y -qq --no-install-recommends wrk >/dev/null
}
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 --target infinitystore >/dev/null

work=$(mktemp -d /tmp/infinitystore-longrun.XXXXXX)
declare -A pid
cleanup() {
  for p in "${pid[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${pid[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

bin=$root/build/app/infinitystore
cluster="n1=127.0.0.1:18100,n2=127.0.0.1:18110,n3=127.0.0.1:18120"
start() {
  local i=$1 port=$((18100 + ($1 - 1) * 10))
  "$bin" --node-id "n$i" --raft-addr "127.0.0.1:$port" --http-addr "127.0.0.1:$((port + 1))" \
    --data-dir "$work/n$i" --initial-cluster "$cluster" --log-level warn "${extra[@]}" \
    >>"$work/n$i.log" 2>&1 &
  pid[$i]=$!
}
leader_port() {
  local i port
  for i in 1 2 3; do
    port=$((18101 + (i - 1) * 10))
    if curl -s --max-time 1 "127.0.0.1:$port/status" | grep -q '"role":"leader"'; then
      echo "$port"
      return 0
    fi
  done
  return 1
}
commit_of() { curl -s --max-time 2 "127.0.0.1:$1/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["commit_index"])'; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

for i in 1 2 3; do start "$i"; done
leader=""
for _ in $(seq 1 100); do leader=$(leader_port) && break; sleep 0.1; done
[[ -n $leader ]] || { echo "no leader elected" >&2; exit 1; }

echo "machine: $(nproc) cores, $(uname -r); $writes writes over $keys keys of $value_bytes bytes, $connections connections"
export BENCH_WRK_DIR=$root/bench/wrk BENCH_KEYS=$keys BENCH_VALUE_BYTES=$value_bytes BENCH_THREADS=2
start_commit=$(commit_of "$leader")
started=$(now_ms)
while :; do
  done_writes=$(($(commit_of "$leader") - start_commit))
  ((done_writes >= writes)) && break
  left=$((writes - done_writes))
  seconds=$((left / 4000 + 1)); ((seconds > 30)) && seconds=30
  wrk -t2 -c"$connections" -d"${seconds}s" --timeout 10s -s bench/wrk/set_keys.lua \
    "http://127.0.0.1:$leader" | grep '^RESULT' | sed 's/^RESULT /  wrk: /'
done
elapsed=$(($(now_ms) - started))
echo "wrote $done_writes entries in $((elapsed / 1000)) s"
sleep 2 # let followers apply and snapshot
live=$((keys * (value_bytes + ${#keys} + 1)))
echo "live data: about $((live / 1024)) KiB ($keys keys)"
for i in 1 2 3; do
  status=/proc/${pid[$i]}/status
  echo "n$i: RSS $(awk '/VmRSS/ {print $2}' "$status") kB (peak $(awk '/VmHWM/ {print $2}' "$status") kB)," \
    "data directory $(du -sk "$work/n$i" | cut -f1) kB ($(du -sk "$work/n$i/snapshots" | cut -f1) kB of snapshots)"
done

echo "kill -9 of all three, restart"
for i in 1 2 3; do kill -9 "${pid[$i]}"; wait "${pid[$i]}" 2>/dev/null || true; done
restarted=$(now_ms)
for i in 1 2 3; do start "$i"; done
served=""
while [[ -z $served ]]; do
  for i in 1 2 3; do
    port=$((18101 + (i - 1) * 10))
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "127.0.0.1:$port/get?key=k1" || true)
    [[ $code == 200 ]] && served=$port
  done
  (($(now_ms) - restarted > 60000)) && { echo "no read served within 60 s" >&2; exit 1; }
  [[ -z $served ]] && sleep 0.02
done
echo "restart to a served linearizable read: $(($(now_ms) - restarted)) ms"
sleep 1
for i in 1 2 3; do
  echo "n$i after restart: RSS $(awk '/VmRSS/ {print $2}' "/proc/${pid[$i]}/status") kB"
done
