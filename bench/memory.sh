#!/usr/bin/env bash
# Resident memory per node after loading K distinct keys (issue 13: "RSS per node at 100,000 keys
# of 100 bytes").
#
#   bash bench/memory.sh [--keys K] [--value-bytes B] [--base-port P] [--heaptrack DIR]
#                        [--malloc-stats] [--no-build] [-- node options]
#
# Starts a 3-node cluster on 127.0.0.1 (ports P.., default 38000; fresh data directories under
# /tmp, default snapshot settings), reads each node's RSS when idle, writes K distinct keys of B
# bytes (default 100,000 x 100) with wrk and bench/wrk/set_keys.lua (each window starts at the key
# after the writes committed so far), waits for the followers, then prints per node: VmRSS, VmHWM,
# RssAnon, and the number of keys in its newest snapshot (a check that the load wrote every key).
# INFINITY_BIN=path runs another build of the node (an A/B against a base commit).
# LOG_LEVEL=info shows, among others, how long each release of free heap memory took.
# NODE_ENV="VAR=value ..." is put in the nodes' environment (e.g. MALLOC_ARENA_MAX=2).
# --heaptrack DIR runs node n1 under heaptrack and leaves its profile in DIR.
# --malloc-stats attaches gdb to each node at the end: glibc's bytes in use and held (all arenas),
# then the RSS after malloc_trim(0) (what the allocator held but did not use).
# Ends every process it started.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

keys=100000
value_bytes=100
base=38000
heaptrack_dir=""
malloc_stats=0
build=1
extra=()
while (($#)); do
  case $1 in
  --keys) keys=$2; shift 2 ;;
  --value-bytes) value_bytes=$2; shift 2 ;;
  --base-port) base=$2; shift 2 ;;
  --heaptrack) heaptrack_dir=$2; shift 2 ;;
  --malloc-stats) malloc_stats=1; shift ;;
  --no-build) build=0; shift ;;
  --) shift; extra=("$@"); break ;;
  *) echo "usage: bash bench/memory.sh [--keys K] [--value-bytes B] [--base-port P] [--heaptrack DIR] [--no-build] [-- node options]" >&2; exit 2 ;;
  esac
done

if ((build)); then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j2 --target infinitystore >/dev/null
fi

work=$(mktemp -d /tmp/infinitystore-memory.XXXXXX)
declare -A pid
cleanup() {
  for i in "${!pid[@]}"; do kill -INT "$(node_pid "$i")" 2>/dev/null || true; done
  for _ in $(seq 1 100); do
    alive=0
    for p in "${pid[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for p in "${pid[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${pid[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

bin=${INFINITY_BIN:-$root/build/app/infinitystore}
cluster="n1=127.0.0.1:$base,n2=127.0.0.1:$((base + 10)),n3=127.0.0.1:$((base + 20))"
start() {
  local i=$1 port=$((base + ($1 - 1) * 10)) wrap=()
  if [[ -n $heaptrack_dir && $i == 1 ]]; then
    mkdir -p "$heaptrack_dir"
    wrap=(heaptrack -o "$heaptrack_dir/n1")
  fi
  # shellcheck disable=SC2086
  env ${NODE_ENV:-} "${wrap[@]}" "$bin" --node-id "n$i" --raft-addr "127.0.0.1:$port" \
    --http-addr "127.0.0.1:$((port + 1))" --data-dir "$work/n$i" --initial-cluster "$cluster" \
    --log-level "${LOG_LEVEL:-warn}" "${extra[@]}" >>"$work/n$i.log" 2>&1 &
  pid[$i]=$!
}
# The node's own process (under heaptrack, the child of the wrapper).
node_pid() {
  local p=${pid[$1]} child
  if [[ -n $heaptrack_dir && $1 == 1 ]]; then
    child=$(pgrep -P "$p" -f "$bin" | head -1 || true)
    [[ -n $child ]] && p=$child
  fi
  echo "$p"
}
status_field() { curl -s --max-time 2 "127.0.0.1:$1/status" | python3 -c "import json,sys; print(json.load(sys.stdin)[\"$2\"])"; }
leader_port() {
  local i port
  for i in 1 2 3; do
    port=$((base + 1 + (i - 1) * 10))
    if curl -s --max-time 1 "127.0.0.1:$port/status" | grep -q '"role":"leader"'; then
      echo "$port"
      return 0
    fi
  done
  return 1
}
# Keys in the newest snapshot of a node: walks the IKV1 body of snap-*.snap.
snapshot_keys() {
  python3 - "$work/n$1/snapshots" <<'EOF'
import glob, struct, sys
files = sorted(glob.glob(sys.argv[1] + "/snap-*.snap"))
if not files:
    print("no snapshot"); sys.exit()
data = open(files[-1], "rb").read()
at = 4 + 4 + 8 + 8
(mlen,) = struct.unpack_from("<I", data, at); at += 4 + mlen + 8
(blen,) = struct.unpack_from("<Q", data, at); at += 8
body = memoryview(data)[at:at + blen]; at = 4
def varint():
    global at
    v, shift = 0, 0
    while True:
        b = body[at]; at += 1
        v |= (b & 0x7F) << shift; shift += 7
        if b < 0x80: return v
def skip():
    global at
    n = varint(); at += n
index = varint(); varint(); varint(); skip(); varint()
ids = varint()
for _ in range(ids * 3): varint()
total = 0
for _ in range(256):
    n = varint(); total += n
    for _ in range(n):
        skip(); skip()
print(f"{total} keys in the snapshot at index {index} ({ids} command ids)")
EOF
}
rss() {
  local p
  p=$(node_pid "$1")
  awk '/VmRSS|VmHWM|RssAnon/ {printf "%s %.1f MB  ", $1, $2 / 1024}' "/proc/$p/status"
}

for i in 1 2 3; do start "$i"; done
leader=""
for _ in $(seq 1 200); do leader=$(leader_port) && break; sleep 0.1; done
[[ -n $leader ]] || { echo "no leader elected" >&2; exit 1; }
sleep 2
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $keys keys of $value_bytes bytes${NODE_ENV:+; env $NODE_ENV}"
for i in 1 2 3; do echo "n$i idle: $(rss "$i")"; done

export BENCH_WRK_DIR=$root/bench/wrk BENCH_VALUE_BYTES=$value_bytes BENCH_THREADS=2
first=$(status_field "$leader" commit_index)
loaded=0
while ((loaded < keys)); do
  left=$((keys - loaded))
  seconds=$((left / 6000 + 1)); ((seconds > 10)) && seconds=10
  line=$(BENCH_KEYS=$keys BENCH_KEY_OFFSET=$loaded wrk -t2 -c32 -d"${seconds}s" --timeout 10s \
    -s bench/wrk/set_keys.lua "http://127.0.0.1:$leader" | grep '^RESULT' || true)
  loaded=$(($(status_field "$leader" commit_index) - first))
  echo "  wrk: ${line#RESULT } ($loaded writes so far)"
done
target=$(status_field "$leader" commit_index)
for i in 1 2 3; do
  port=$((base + 1 + (i - 1) * 10))
  for _ in $(seq 1 100); do
    (($(status_field "$port" applied_index) >= target)) && break
    sleep 0.1
  done
done
sleep 3 # snapshots in flight
for i in 1 2 3; do
  port=$((base + 1 + (i - 1) * 10))
  echo "n$i ($(curl -s --max-time 2 "127.0.0.1:$port/status" | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["role"], "applied", s["applied_index"], "log from", s["log_first_index"], "leader changes", s["leader_changes"])')): $(rss "$i")"
  echo "    $(snapshot_keys "$i")"
  grep -h "released free heap" "$work/n$i.log" | tail -2 | sed 's/^/    log: /' || true
  if ((malloc_stats)); then
    p=$(node_pid "$i")
    gdb -p "$p" -batch -ex 'call (void)malloc_stats()' >/dev/null 2>&1 || true
    echo "    malloc: $(grep -A2 'Total (incl' "$work/n$i.log" | tail -2 | awk '{printf "%s %s %.1f MB  ", $1, $2, $NF / 1048576}')"
    gdb -p "$p" -batch -ex 'call (int)malloc_trim(0)' >/dev/null 2>&1 || true
    echo "    after malloc_trim(0): $(rss "$i")"
  fi
done
if [[ -n ${MEMORY_HOLD:-} ]]; then
  echo "holding for $MEMORY_HOLD s (pids: $(for i in 1 2 3; do node_pid "$i"; done | xargs))"
  sleep "$MEMORY_HOLD"
fi
