#!/usr/bin/env bash
# Where a node's CPU goes per request: a 3-node cluster on 127.0.0.1 under wrk, `perf record`
# (software cpu-clock, call graphs) on one node while one scenario runs, then the samples sorted
# into cost centres by their call stacks.
#
#   bash bench/profile.sh [--scenario write|linearizable|follower-read|stale] [--seconds S]
#                         [--connections N] [--port-base P] [--node leader|follower]
#
# write: POST /set to the leader (profiled: the leader); linearizable: GET /get at the leader;
# follower-read: GET /get through a follower (profiled: the follower); stale: GET
# /get?consistency=stale on a follower. Prints requests/s, then one line per cost centre with its
# share of the profiled node's samples and its CPU microseconds per request (samples / rate /
# requests: CPU time of that node only, not of wrk or the other nodes). --node overrides which
# node is profiled (e.g. a follower's share of the writes). Needs root or
# perf_event_paranoid <= 1; installs linux-perf and wrk if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

scenario=write
seconds=8
connections=64
port_base=18500
profiled=""
while (($#)); do
  case $1 in
  --scenario) scenario=$2; shift 2 ;;
  --seconds) seconds=$2; shift 2 ;;
  --connections) connections=$2; shift 2 ;;
  --port-base) port_base=$2; shift 2 ;;
  --node) profiled=$2; shift 2 ;;
  *) echo "usage: bash bench/profile.sh [--scenario write|linearizable|follower-read|stale] [--seconds S] [--connections N] [--port-base P] [--node leader|follower]" >&2; exit 2 ;;
  esac
done
case $scenario in write | linearizable | follower-read | stale) ;; *)
  echo "unknown scenario '$scenario'" >&2; exit 2 ;;
esac

bash scripts/install-deps.sh wrk linux-perf >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 --target infinitystore >/dev/null

work=$(mktemp -d /tmp/infinitystore-profile.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

bin=$root/build/app/infinitystore
cluster=""
for i in 1 2 3; do cluster+="${cluster:+,}n$i=127.0.0.1:$((port_base + (i - 1) * 10))"; done
for i in 1 2 3; do
  port=$((port_base + (i - 1) * 10))
  "$bin" --node-id "n$i" --raft-addr "127.0.0.1:$port" --http-addr "127.0.0.1:$((port + 1))" \
    --data-dir "$work/n$i" --initial-cluster "$cluster" --log-level warn >"$work/n$i.log" 2>&1 &
  pids+=($!)
done
leader=""
for _ in $(seq 1 100); do
  for i in 1 2 3; do
    curl -s "127.0.0.1:$((port_base + 1 + (i - 1) * 10))/status" | grep -q '"role":"leader"' &&
      leader=$i
  done
  [[ -n $leader ]] && break
  sleep 0.1
done
[[ -n $leader ]] || { echo "no leader elected" >&2; exit 1; }
follower=1
[[ $leader == 1 ]] && follower=2
leader_url="http://127.0.0.1:$((port_base + 1 + (leader - 1) * 10))"
follower_url="http://127.0.0.1:$((port_base + 1 + (follower - 1) * 10))"

export BENCH_WRK_DIR=$root/bench/wrk
# 10,000 keys of 100 bytes for the reads (and the writes overwrite them).
BENCH_KEYS=10000 BENCH_VALUE_BYTES=100 BENCH_THREADS=1 \
  wrk -t1 -c16 -d3s -s bench/wrk/set_keys.lua "$leader_url" >/dev/null
env_args=(BENCH_KEYS=10000 BENCH_VALUE_BYTES=100 BENCH_THREADS=1)
case $scenario in
write) script=set_keys.lua; url=$leader_url; node=$leader ;;
linearizable) script=get.lua; url=$leader_url; node=$leader ;;
follower-read) script=get.lua; url=$follower_url; node=$follower ;;
stale) script=get.lua; url=$follower_url; node=$follower; env_args+=(BENCH_CONSISTENCY=stale) ;;
esac
[[ $profiled == leader ]] && node=$leader
[[ $profiled == follower ]] && node=$follower
pid=${pids[$((node - 1))]}
env "${env_args[@]}" wrk -t1 -c"$connections" -d"$((seconds + 3))s" -s "bench/wrk/$script" "$url" \
  >"$work/wrk.out" &
wrk_pid=$!
sleep 2
rate=499
perf record -F "$rate" -g -o "$work/perf.data" -p "$pid" -- sleep "$seconds" >/dev/null 2>&1
wait "$wrk_pid"
rps=$(sed -n 's/^RESULT rps=\([0-9]*\).*/\1/p' "$work/wrk.out")
echo "scenario $scenario: $rps requests/s over $connections connections (profiled node n$node, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
perf script -i "$work/perf.data" -F comm,ip,sym,dso 2>/dev/null | awk -v rps="$rps" -v rate="$rate" -v secs="$seconds" '
  function classify(   i, f, kernel_leaf) {
    kernel_leaf = (frames[1] ~ /kernel/)
    stack = ""
    for (i = 1; i <= n; i++) stack = stack " " frames[i]
    if (stack ~ /fdatasync|fsync|jbd2|ext4_sync|file_write_and_wait/) return "disk: write and fdatasync (storage thread)"
    if (kernel_leaf && stack ~ /futex/) return "kernel: thread sleep/wake (futex: actor mailboxes, condition variables)"
    if (kernel_leaf && stack ~ /epoll_wait|do_epoll/) return "kernel: epoll wait/wake"
    if (kernel_leaf && stack ~ /tcp_|sock_|sendmsg|recvmsg|sendto|recvfrom|unix_stream|ksys_write|ksys_read|do_writev|do_readv|__x64_sys_write|__x64_sys_read/) return "kernel: sockets (send/receive)"
    if (kernel_leaf) return "kernel: other (interrupts, scheduler, timers)"
    f = frames[1]
    if (f ~ /malloc|free|_int_|cfree|unlink_chunk|tcache|operator new|operator delete/) return "malloc/free"
    if (f ~ /boost::json|libboost_json/) return "JSON (Boost.JSON)"
    if (f ~ /infinity::http::|http_api/) return "HTTP API: request parsing, response bodies"
    if (f ~ /beast|asio/) return "HTTP I/O (Beast, Asio)"
    if (f ~ /raft_transport|libssl|libcrypto/) return "Raft transport (framing, TLS)"
    if (f ~ /libcaf_io/) return "CAF middleman (BASP)"
    if (f ~ /serializ|deserializ|inspect/) return "CAF serialization"
    if (f ~ /libcaf_core|caf::/) return "CAF runtime (mailboxes, scheduler, messages)"
    if (f ~ /raft_core|raft_log|progress|persist_pipeline|node_actor|carry_out/) return "Raft core and node shell"
    if (f ~ /kv_state_machine|command|local_read_view|kv_/) return "KV state machine"
    if (f ~ /crc32c|file_storage|storage/) return "storage (encode, CRC)"
    if (f ~ /http_session/) return "HTTP session actor"
    if (f ~ /libc\.so|libstdc\+\+|memmove|memcpy|memcmp|strlen|pthread/) return "libc/libstdc++ (copies, locks)"
    return "other"
  }
  function flush() { if (n > 0) { c = classify(); count[c]++; total++ } n = 0 }
  /^[^ \t]/ { flush(); next }
  /^[ \t]+[0-9a-f]+ / { n++; frames[n] = $0; next }
  /^$/ { flush() }
  END {
    flush()
    for (c in count) printf "%6.1f%%  %7.1f us/request  %s\n", 100 * count[c] / total, (rps > 0 ? count[c] / rate / secs / rps * 1e6 : 0), c | "sort -rn"
  }'
