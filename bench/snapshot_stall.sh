#!/usr/bin/env bash
# The longest write stall while a large state machine is snapshotted (issue: "Run for months").
#
#   bash bench/snapshot_stall.sh [--keys N] [--connections C]
#
# A 3-node cluster on 127.0.0.1 snapshots every 1,200,000 entries. It is loaded with N (default
# 1,000,000) distinct keys of 100 bytes, then writes go on in 5-second wrk windows until the
# leader has written its snapshot and one window more. Each window prints its throughput, p50,
# p99 and maximum latency and whether the leader wrote a snapshot during it: the windows before
# it are the baseline. Ends every process it started.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

keys=1000000
connections=8
while (($#)); do
  case $1 in
  --keys) keys=$2; shift 2 ;;
  --connections) connections=$2; shift 2 ;;
  *) echo "usage: bash bench/snapshot_stall.sh [--keys N] [--connections C]" >&2; exit 2 ;;
  esac
done
threshold=$((keys + 200000))

bash scripts/install-deps.sh >/dev/null
command -v wrk >/dev/null || {
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get install -y -qq --no-install-recommends wrk >/dev/null
}
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 --target infinitystore >/dev/null

work=$(mktemp -d /tmp/infinitystore-stall.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

bin=$root/build/app/infinitystore
cluster="n1=127.0.0.1:18200,n2=127.0.0.1:18210,n3=127.0.0.1:18220"
for i in 1 2 3; do
  port=$((18200 + (i - 1) * 10))
  "$bin" --node-id "n$i" --raft-addr "127.0.0.1:$port" --http-addr "127.0.0.1:$((port + 1))" \
    --data-dir "$work/n$i" --initial-cluster "$cluster" --snapshot-entries "$threshold" \
    --snapshot-bytes 0 >"$work/n$i.log" 2>&1 &
  pids+=($!)
done
leader=""
for _ in $(seq 1 100); do
  for i in 1 2 3; do
    port=$((18201 + (i - 1) * 10))
    curl -s --max-time 1 "127.0.0.1:$port/status" | grep -q '"role":"leader"' && leader=$i
  done
  [[ -n $leader ]] && break
  sleep 0.1
done
[[ -n $leader ]] || { echo "no leader elected" >&2; exit 1; }
url="http://127.0.0.1:$((18201 + (leader - 1) * 10))"
echo "machine: $(nproc) cores, $(uname -r); $keys keys of 100 bytes, snapshot at entry $threshold"

export BENCH_WRK_DIR=$root/bench/wrk BENCH_VALUE_BYTES=100 BENCH_THREADS=2
echo "loading $keys keys"
commit() { curl -s "$url/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["commit_index"])'; }
first=$(commit)
loaded=0
while ((loaded < keys)); do
  # Distinct keys: each window starts at the key after the last one committed (the commit index
  # counts the writes so far; a few keys may be written twice, none is skipped).
  line=$(BENCH_KEYS=$keys BENCH_KEY_OFFSET=$loaded wrk -t2 -c64 -d20s --timeout 10s \
    -s bench/wrk/set_keys.lua "$url" | grep '^RESULT')
  loaded=$(($(commit) - first))
  echo "  ${line#RESULT } ($loaded writes so far)"
done
echo "writes in 5 s windows, $connections connections:"
wrote_before=$(grep -c "snapshot: wrote" "$work/n$leader.log" || true)
after=0
for window in $(seq 1 40); do
  line=$(BENCH_KEYS=$keys BENCH_KEY_OFFSET=$((window * 7919)) wrk -t2 -c"$connections" -d5s --timeout 10s \
    -s bench/wrk/set_keys.lua "$url" | grep '^RESULT')
  wrote=$(grep -c "snapshot: wrote" "$work/n$leader.log" || true)
  mark=""
  if ((wrote > wrote_before)); then
    mark="  <- the leader wrote a snapshot: $(grep "snapshot: wrote" "$work/n$leader.log" | tail -n 1 | cut -c1-200)"
    wrote_before=$wrote
    after=1
  elif ((after)); then
    after=2
  fi
  echo "  window $window: ${line#RESULT }$mark"
  ((after == 2)) && break
done
for i in 1 2 3; do
  echo "n$i: RSS $(awk '/VmRSS/ {print $2}' "/proc/${pids[$((i - 1))]}/status") kB"
done
