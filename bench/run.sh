#!/usr/bin/env bash
# Throughput, latency, memory and disk of a local InfinityStore cluster under wrk, and with
# --etcd of an etcd cluster (Debian's etcd-server 3.4, through its JSON gateway) with the same
# load on the same machine: issue 13's comparison table.
#
#   bash bench/run.sh [--etcd] [--rounds N] [--duration S] [--nodes 3|5] [--keys N]
#                     [--value-bytes N] [--connections LIST] [--mix] [--nginx] [--raft-tls]
#                     [--port-base P]
#
# Each round starts fresh clusters (fresh data directories under one mktemp directory), first
# InfinityStore, then etcd, then nginx: the systems alternate round by round, so a slow phase of
# the shared machine hits both instead of one. Per system and round:
#   1. start the cluster on 127.0.0.1 and wait until every member is up and a leader is known
#      (etcd: every member healthy);
#   2. preload --keys keys (k0 ...) of --value-bytes bytes with wrk, until every key has been
#      written (wrk has no request count: the Lua script stops itself), then check it;
#   3. read each node's resident memory (VmRSS, and its peak VmHWM) and `du -sb` of its data
#      directory;
#   4. run the scenarios with wrk, one thread (-t1), each for --duration seconds: writes with one
#      connection, then for each connection count of --connections (default 64) writes,
#      linearizable reads at the leader and through a follower, stale reads on a follower (etcd:
#      serializable), and with --mix a 90/10 read/write mix at the leader. Writes overwrite keys
#      of the preloaded space with values of the same size, reads hit it (a miss is an error);
#   5. read the peak RSS again and stop the cluster.
# At the end: a markdown table of the medians across rounds and the ratio ours/etcd.
#
# Every write is synced to disk before it is acknowledged, by both systems (their defaults).
# --raft-tls runs our nodes with mutual TLS on the Raft port (a throwaway CA made by
# scripts/make-raft-certs.sh). --nginx adds a static file served by nginx (one process) with
# about the size of our read answers: the reference for stale reads. Ports: ours from
# --port-base (default 18000; node i at P+10(i-1) for Raft and +1 for HTTP), etcd from P+100
# (client, peer +1), nginx at P+200; pick another base when someone else runs this bench.
# The load generator shares the machine with the nodes, so the figures are a floor for what the
# nodes can do; see bench/README.md for recorded results and their caveats.
set -euo pipefail
export LC_ALL=C # decimal points in printf, sort -g and awk whatever the caller's locale
cd "$(dirname "$0")/.."
root=$PWD

usage() {
  sed -n '6,8p' "$0" | sed 's/^# //' >&2
}
die() {
  echo "run.sh: $*" >&2
  show_logs
  exit 1
}

rounds=3
duration=10
with_etcd=0
raft_tls=0
nodes=3
keys=100000
value_bytes=100
connections_list=64
with_mix=0
with_nginx=0
port_base=18000
while (($#)); do
  case $1 in
  --etcd) with_etcd=1; shift; continue ;;
  --raft-tls) raft_tls=1; shift; continue ;;
  --mix) with_mix=1; shift; continue ;;
  --nginx) with_nginx=1; shift; continue ;;
  -h | --help) usage; exit 0 ;;
  --rounds | --duration | --nodes | --keys | --value-bytes | --connections | --port-base)
    (($# >= 2)) || { echo "run.sh: $1 needs a value" >&2; usage; exit 2; } ;;
  *) echo "run.sh: unknown argument '$1'" >&2; usage; exit 2 ;;
  esac
  case $1 in
  --rounds) rounds=$2 ;;
  --duration) duration=$2 ;;
  --nodes) nodes=$2 ;;
  --keys) keys=$2 ;;
  --value-bytes) value_bytes=$2 ;;
  --connections) connections_list=$2 ;;
  --port-base) port_base=$2 ;;
  esac
  shift 2
done
positive() {
  if ! [[ $2 =~ ^[0-9]+$ ]] || (($2 == 0)); then
    echo "run.sh: $1 wants a positive integer, not '$2'" >&2
    exit 2
  fi
}
positive --rounds "$rounds"
positive --duration "$duration"
positive --keys "$keys"
positive --value-bytes "$value_bytes"
positive --port-base "$port_base"
[[ $nodes == 3 || $nodes == 5 ]] || { echo "run.sh: --nodes is 3 or 5, not '$nodes'" >&2; exit 2; }
[[ $connections_list =~ ^[0-9]+(,[0-9]+)*$ ]] ||
  { echo "run.sh: --connections wants a list like 1,16,64, not '$connections_list'" >&2; exit 2; }
IFS=, read -r -a connection_counts <<<"$connections_list"
for c in "${connection_counts[@]}"; do positive --connections "$c"; done
((port_base >= 1024 && port_base + 250 <= 65535)) ||
  { echo "run.sh: --port-base must leave room for 250 ports between 1024 and 65535" >&2; exit 2; }

# -- Tools ---------------------------------------------------------------------------------------
need=(wrk)
((with_etcd)) && need+=(etcd-server etcd-client)
# nginx or nginx-light, whichever is there; nginx-light is the smaller install.
((with_nginx)) && ! command -v nginx >/dev/null && need+=(nginx-light)
bash scripts/install-deps.sh "${need[@]}" >/dev/null
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 --target infinitystore >/dev/null
bin=$root/build/app/infinitystore
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

# -- Processes and files -------------------------------------------------------------------------
work=$(mktemp -d /tmp/infinitystore-bench.XXXXXX)
results_file=$work/results.tsv # one line per wrk run: round system row label rps p50 p99 errors
memory_file=$work/memory.tsv   # one line per node and round after the load: round system node rss_kb hwm_kb du_bytes
peaks_file=$work/peak.tsv      # one line per node and round at its end: round system node hwm_kb
: >"$results_file"
: >"$memory_file"
: >"$peaks_file"
pids=()     # every process this script started and has not stopped yet
logs_dir="" # the current cluster's logs, shown when something fails
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
show_logs() {
  [[ -n $logs_dir && -d $logs_dir ]] || return 0
  local f
  for f in "$logs_dir"/*.log; do
    [[ -s $f ]] || continue
    echo "--- last lines of $f" >&2
    tail -n 15 "$f" >&2
  done
}
stop_processes() { # pid ...: SIGTERM, then wait for each to exit
  local pid keep=() p
  for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
  for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    [[ " $* " == *" $p "* ]] || keep+=("$p")
  done
  pids=("${keep[@]}")
}
# A port already bound means another bench (or anything else) would answer our load instead of
# the cluster we started: refuse rather than measure the wrong thing.
check_ports_free() { # port ...
  local port
  for port in "$@"; do
    if ss -Hltn "sport = :$port" | grep -q .; then
      die "port $port is in use on this machine (another bench?); choose another --port-base"
    fi
  done
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
alive() { kill -0 "$1" 2>/dev/null; }

# -- wrk -----------------------------------------------------------------------------------------
export BENCH_WRK_DIR=$root/bench/wrk
# Every scenario: one wrk thread, so the load generator takes at most one of the shared cores.
run_wrk() { # connections seconds script url [VAR=value ...]; prints wrk's summary
  local conns=$1 seconds=$2 script=$3 url=$4
  shift 4
  env "$@" wrk -t1 -c"$conns" -d"${seconds}s" --timeout 10s -s "bench/wrk/$script" "$url" 2>&1 |
    summary_of
}
# wrk's output -> "rps=.. p50_ms=.. p99_ms=.. errors=.. max_ms=.." from the RESULT line, then
# "errors: 503=.. miss=.." from the ERRORS line when there were any; nothing if wrk failed.
summary_of() {
  awk '/^RESULT / {sub(/^RESULT /, ""); r = $0} /^ERRORS / {sub(/^ERRORS /, ""); e = "  errors: " $0}
    END {if (r != "") print r e}'
}
field() { # name "rps=1 p50_ms=2 ...": the value of name, or empty
  local kv
  for kv in $2; do [[ ${kv%%=*} == "$1" ]] && { echo "${kv#*=}"; return; }; done
  echo ""
}
# One measured scenario: prints the per-round line and appends it to the results.
scenario() { # system row label connections script url [VAR=value ...]
  local system=$1 row=$2 label=$3 conns=$4 script=$5 url=$6 out rps p50 p99 errs
  shift 6
  out=$(run_wrk "$conns" "$duration" "$script" "$url" BENCH_KEYS="$keys" \
    BENCH_VALUE_BYTES="$value_bytes" BENCH_THREADS=1 "$@")
  rps=$(field rps "$out") p50=$(field p50_ms "$out") p99=$(field p99_ms "$out")
  errs=$(field errors "$out")
  if [[ -z $rps ]]; then # wrk failed (no summary): count it as a failed run, not as 0 errors
    rps=0 p50=0 p99=0 errs=1 out="wrk failed"
  fi
  printf '  %-52s %s\n' "$label, $conns conn" "$out"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$system" "$row@$conns" "$label" "$rps" \
    "$p50" "$p99" "$errs" >>"$results_file"
}
# The preload: --keys keys in order, 64 connections, until the script has seen keys + 64 answers
# of 200 (every key's request was sent before the last 64, and at most 64 are in flight), within
# a generous bound. The script creates a file when it is done; wrk would sleep out its -d anyway,
# so it gets SIGINT then and prints its summary. Any error and it runs again: a failed write may
# have lost a key.
preload() { # system script leader_fn
  local system=$1 script=$2 leader_fn=$3 url out attempt started wrk_pid done_file=$work/preload.done
  for attempt in 1 2; do
    url=$($leader_fn) # again for the second attempt: the leader may have changed
    started=$(date +%s%N)
    rm -f "$done_file"
    env BENCH_KEYS="$keys" BENCH_VALUE_BYTES="$value_bytes" BENCH_THREADS=1 \
      BENCH_STOP_AFTER=$((keys + 64)) BENCH_DONE_FILE="$done_file" \
      wrk -t1 -c64 -d$((keys / 200 + 60))s --timeout 10s -s "bench/wrk/$script" "$url" \
      >"$work/preload.out" 2>&1 &
    wrk_pid=$!
    pids+=("$wrk_pid")
    while alive "$wrk_pid"; do
      [[ -e $done_file ]] && { kill -INT "$wrk_pid" 2>/dev/null || true; }
      sleep 0.1
    done
    stop_processes "$wrk_pid"
    out=$(summary_of <"$work/preload.out")
    echo "  preload of $keys keys through $url: $((($(date +%s%N) - started) / 1000000)) ms, $out"
    [[ -e $done_file && -n $out && $(field errors "$out") == 0 ]] && return 0
    echo "  preload attempt $attempt saw errors or did not finish; writing every key again" >&2
  done
  die "$system: the preload failed twice"
}
# After the preload: resident memory and data directory size of each node.
measure_load() { # system node_name pid data_dir (repeated per node)
  local system=$1 name pid dir rss hwm size
  shift
  while (($#)); do
    name=$1 pid=$2 dir=$3
    shift 3
    alive "$pid" || die "$system: $name exited"
    rss=$(rss_kb "$pid") hwm=$(hwm_kb "$pid") size=$(du -sb "$dir" | cut -f1)
    printf '  %s: RSS %s MiB (peak %s MiB), data directory %s MiB\n' "$name" "$(mib "$rss")" \
      "$(mib "$hwm")" "$(mib "$size" 1024)"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$system" "$name" "$rss" "$hwm" "$size" >>"$memory_file"
  done
}
# At the end of a round: the peak RSS over the whole round (load and scenarios).
measure_end() { # system node_name pid (repeated per node)
  local system=$1 name pid hwm line=""
  shift
  while (($#)); do
    name=$1 pid=$2
    shift 2
    alive "$pid" || die "$system: $name exited during the round"
    hwm=$(hwm_kb "$pid")
    line+=" $name $(mib "$hwm")"
    printf '%s\t%s\t%s\t%s\n' "$round" "$system" "$name" "$hwm" >>"$peaks_file"
  done
  echo "  peak RSS over the round (MiB):$line"
}
mib() { awk -v v="$1" -v per_kb="${2:-1}" 'BEGIN {printf "%.1f", v / per_kb / 1024}'; } # kB (or units) -> MiB

# The scenarios, the same for every system: script names for writes, reads and the mix, and
# the leader and follower URLs found again before each run (a leader may change under load).
run_scenarios() { # system write_script read_script mix_script leader_fn follower_fn
  local system=$1 write=$2 read=$3 mix=$4 leader_fn=$5 follower_fn=$6 c
  scenario "$system" write "writes, leader" 1 "$write" "$($leader_fn)" \
    BENCH_KEY_OFFSET=$((RANDOM % keys))
  for c in "${connection_counts[@]}"; do
    ((c == 1)) || scenario "$system" write "writes, leader" "$c" "$write" "$($leader_fn)" \
      BENCH_KEY_OFFSET=$((RANDOM % keys))
    scenario "$system" lread-leader "linearizable reads, leader" "$c" "$read" "$($leader_fn)"
    scenario "$system" lread-follower "linearizable reads, through a follower" "$c" "$read" \
      "$($follower_fn)"
    scenario "$system" stale "$( [[ $system == etcd ]] && echo serializable || echo stale) reads, follower" \
      "$c" "$read" "$($follower_fn)" BENCH_CONSISTENCY=stale
    ((with_mix)) && scenario "$system" mix "90/10 read/write mix, leader" "$c" "$mix" "$($leader_fn)"
  done
  return 0
}

# -- InfinityStore -------------------------------------------------------------------------------
ours_raft_port() { echo $((port_base + ($1 - 1) * 10)); }
ours_http_port() { echo $((port_base + ($1 - 1) * 10 + 1)); }
declare -A ours_pid
ours_status() { curl -s --max-time 1 "http://127.0.0.1:$(ours_http_port "$1")/status" || true; }
ours_node_with_role() { # role: the URL of the first node that says it has it
  local i
  for i in $(seq 1 "$nodes"); do
    if ours_status "$i" | grep -Eq "\"role\"[[:space:]]*:[[:space:]]*\"$1\""; then
      echo "http://127.0.0.1:$(ours_http_port "$i")"
      return 0
    fi
  done
  return 1
}
ours_leader() { ours_node_with_role leader || die "InfinityStore: no leader"; }
ours_follower() { ours_node_with_role follower || die "InfinityStore: no follower"; }
ours_start() { # directory
  local dir=$1 i cluster="" ports=() tls
  mkdir -p "$dir"
  logs_dir=$dir
  for i in $(seq 1 "$nodes"); do
    cluster+="${cluster:+,}n$i=127.0.0.1:$(ours_raft_port "$i")"
    ports+=("$(ours_raft_port "$i")" "$(ours_http_port "$i")")
  done
  check_ports_free "${ports[@]}"
  for i in $(seq 1 "$nodes"); do
    tls=()
    ((raft_tls)) && tls=(--raft-tls-cert "$work/certs/n$i.pem" --raft-tls-key "$work/certs/n$i.key"
      --raft-tls-ca "$work/certs/ca.pem")
    "$bin" --node-id "n$i" --raft-addr "127.0.0.1:$(ours_raft_port "$i")" \
      --http-addr "127.0.0.1:$(ours_http_port "$i")" --data-dir "$dir/n$i" \
      --initial-cluster "$cluster" --log-level warn "${tls[@]}" >"$dir/n$i.log" 2>&1 &
    ours_pid[$i]=$!
    pids+=($!)
  done
  # Up: a leader, and every node ready (it knows the leader and is not behind).
  local up=0 _
  for _ in $(seq 1 200); do
    up=0
    for i in $(seq 1 "$nodes"); do
      alive "${ours_pid[$i]}" || die "InfinityStore: n$i exited at start"
      [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
        "http://127.0.0.1:$(ours_http_port "$i")/ready" || true) == 200 ]] && up=$((up + 1))
    done
    ((up == nodes)) && ours_node_with_role leader >/dev/null && return 0
    sleep 0.1
  done
  die "InfinityStore: $up of $nodes nodes ready after 20 s"
}
# Every node has applied the preload: it serves the last and the first key from its own copy.
ours_check_load() {
  local i key code _ missing
  for _ in $(seq 1 300); do
    missing=0
    for i in $(seq 1 "$nodes"); do
      for key in k0 "k$((keys - 1))"; do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
          "http://127.0.0.1:$(ours_http_port "$i")/get?key=$key&consistency=stale" || true)
        [[ $code == 200 ]] || missing=1
      done
    done
    ((missing)) || return 0
    sleep 0.1
  done
  die "InfinityStore: the preloaded keys did not reach every node within 30 s"
}
ours_round() { # directory
  local dir=$1 i args=()
  echo "== round $round: InfinityStore, $nodes nodes, Raft port: $( ((raft_tls)) && echo "mutual TLS" || echo "plain TCP")"
  ours_start "$dir"
  preload ours set_keys.lua ours_leader
  ours_check_load
  sleep 1 # let the followers' last batches and any snapshot settle before reading memory
  for i in $(seq 1 "$nodes"); do args+=("n$i" "${ours_pid[$i]}" "$dir/n$i"); done
  measure_load ours "${args[@]}"
  # The size of one read's answer, for nginx's file of the same size.
  ours_answer_bytes=$(curl -s -o /dev/null -w '%{size_header} %{size_download}' \
    "$(ours_follower)/get?key=k1&consistency=stale" | awk '{print $1 + $2}')
  echo "  leader $(ours_leader), reading through follower $(ours_follower)"
  run_scenarios ours set_keys.lua get.lua mix.lua ours_leader ours_follower
  args=()
  for i in $(seq 1 "$nodes"); do args+=("n$i" "${ours_pid[$i]}"); done
  measure_end ours "${args[@]}"
  stop_processes "${ours_pid[@]}"
  logs_dir=""
}

# -- etcd ----------------------------------------------------------------------------------------
etcd_client_port() { echo $((port_base + 100 + ($1 - 1) * 10)); }
etcd_peer_port() { echo $((port_base + 100 + ($1 - 1) * 10 + 1)); }
declare -A etcd_pid
etcd_endpoints() {
  local i eps=""
  for i in $(seq 1 "$nodes"); do eps+="${eps:+,}127.0.0.1:$(etcd_client_port "$i")"; done
  echo "$eps"
}
etcd_api() { # port path json
  curl -s --max-time 2 -X POST -H 'Content-Type: application/json' --data "$3" \
    "http://127.0.0.1:$1$2" || true
}
json_string() { # name json: the first "name":"value" (etcd's gateway writes 64-bit ints as strings)
  grep -o "\"$1\"[[:space:]]*:[[:space:]]*\"[^\"]*\"" <<<"$2" | head -1 | sed 's/.*"\([^"]*\)"$/\1/'
}
# A member is the leader when its status says the leader is itself.
etcd_member_is_leader() { # port
  local status
  status=$(etcd_api "$1" /v3/maintenance/status '{}')
  [[ -n $(json_string leader "$status") && $(json_string leader "$status") == $(json_string member_id "$status") ]]
}
etcd_role_url() { # leader|follower
  local i
  for i in $(seq 1 "$nodes"); do
    if etcd_member_is_leader "$(etcd_client_port "$i")"; then
      [[ $1 == leader ]] || continue
    else
      [[ $1 == follower ]] || continue
    fi
    echo "http://127.0.0.1:$(etcd_client_port "$i")"
    return 0
  done
  return 1
}
etcd_leader() { etcd_role_url leader || die "etcd: no leader"; }
etcd_follower() { etcd_role_url follower || die "etcd: no follower"; }
etcd_start() { # directory
  local dir=$1 i members="" ports=()
  mkdir -p "$dir"
  logs_dir=$dir
  for i in $(seq 1 "$nodes"); do
    members+="${members:+,}e$i=http://127.0.0.1:$(etcd_peer_port "$i")"
    ports+=("$(etcd_client_port "$i")" "$(etcd_peer_port "$i")")
  done
  check_ports_free "${ports[@]}"
  for i in $(seq 1 "$nodes"); do
    # Defaults otherwise, fsync included; a token per run and round so that members of another
    # run can never join this cluster.
    etcd --name "e$i" --data-dir "$dir/e$i" \
      --listen-peer-urls "http://127.0.0.1:$(etcd_peer_port "$i")" \
      --initial-advertise-peer-urls "http://127.0.0.1:$(etcd_peer_port "$i")" \
      --listen-client-urls "http://127.0.0.1:$(etcd_client_port "$i")" \
      --advertise-client-urls "http://127.0.0.1:$(etcd_client_port "$i")" \
      --initial-cluster "$members" --initial-cluster-state new \
      --initial-cluster-token "bench-$$-$round" --logger zap --log-outputs stderr \
      --log-level warn >"$dir/e$i.log" 2>&1 &
    etcd_pid[$i]=$!
    pids+=($!)
  done
  # Up: all members listed and every one healthy (etcdctl's health check is a linearizable get
  # through each member), and a leader.
  local healthy=0 listed=0 _
  for _ in $(seq 1 100); do
    for i in $(seq 1 "$nodes"); do alive "${etcd_pid[$i]}" || die "etcd: e$i exited at start"; done
    healthy=$(ETCDCTL_API=3 etcdctl --endpoints "$(etcd_endpoints)" --command-timeout 2s \
      endpoint health 2>&1 | grep -c "is healthy" || true)
    listed=$(ETCDCTL_API=3 etcdctl --endpoints "$(etcd_endpoints)" member list 2>/dev/null |
      grep -c ", started, " || true)
    ((healthy == nodes && listed == nodes)) && etcd_role_url leader >/dev/null && return 0
    sleep 0.2
  done
  die "etcd: $healthy of $nodes members healthy, $listed listed as started, after 20 s"
}
# Every member holds exactly the preloaded keys (a serializable count on each: its own copy).
etcd_check_load() {
  local i count _ short
  local range
  range=$(printf '{"key":"%s","range_end":"%s","count_only":true,"serializable":true}' \
    "$(printf k | base64)" "$(printf l | base64)")
  for _ in $(seq 1 150); do
    short=0
    for i in $(seq 1 "$nodes"); do
      count=$(json_string count "$(etcd_api "$(etcd_client_port "$i")" /v3/kv/range "$range")")
      [[ ${count:-0} == "$keys" ]] || short=1
    done
    ((short)) || return 0
    sleep 0.2
  done
  die "etcd: a member holds ${count:-0} keys instead of $keys after 30 s"
}
etcd_round() { # directory
  local dir=$1 i args=()
  echo "== round $round: etcd $(etcd --version | awk '/etcd Version/ {print $3}'), $nodes members, JSON gateway"
  etcd_start "$dir"
  preload etcd etcd_put_keys.lua etcd_leader
  etcd_check_load
  sleep 1
  for i in $(seq 1 "$nodes"); do args+=("e$i" "${etcd_pid[$i]}" "$dir/e$i"); done
  measure_load etcd "${args[@]}"
  echo "  leader $(etcd_leader), reading through follower $(etcd_follower)"
  run_scenarios etcd etcd_put_keys.lua etcd_range.lua etcd_mix.lua etcd_leader etcd_follower
  args=()
  for i in $(seq 1 "$nodes"); do args+=("e$i" "${etcd_pid[$i]}"); done
  measure_end etcd "${args[@]}"
  stop_processes "${etcd_pid[@]}"
  logs_dir=""
}

# -- nginx (the reference for stale reads) -------------------------------------------------------
# One process (master_process off), so it is compared with one node; a file sized so that the
# whole answer (headers and body) is about as long as our answer to a read.
nginx_round() { # directory
  local dir=$1 port=$((port_base + 200)) pid header body c
  mkdir -p "$dir/www"
  logs_dir=$dir
  check_ports_free "$port"
  cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  # Fewer headers (no ETag, version, Accept-Ranges), so that the answer can be as short as ours.
  etag off;
  server_tokens off;
  max_ranges 0;
  client_body_temp_path $dir/body;
  server {
    listen 127.0.0.1:$port;
    root $dir/www;
  }
}
EOF
  printf x >"$dir/www/value"
  "$nginx_bin" -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" >"$dir/nginx.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 50); do
    header=$(curl -s -o /dev/null -w '%{size_header}' --max-time 1 "http://127.0.0.1:$port/value" || true)
    [[ ${header:-0} -gt 0 ]] && break
    alive "$pid" || die "nginx exited at start"
    sleep 0.1
  done
  ((${header:-0} > 0)) || die "nginx does not answer on :$port"
  body=$((${ours_answer_bytes:-0} - header))
  ((body > 0)) || body=1
  head -c "$body" /dev/zero | tr '\0' v >"$dir/www/value"
  nginx_answer_bytes=$((header + body))
  echo "== round $round: nginx $("$nginx_bin" -v 2>&1 | sed 's/.*nginx\///'), one process, static file, $nginx_answer_bytes-byte answers"
  for c in "${connection_counts[@]}"; do
    scenario nginx static "static file" "$c" static.lua "http://127.0.0.1:$port"
  done
  stop_processes "$pid"
  logs_dir=""
}

# -- The table -----------------------------------------------------------------------------------
# median: numbers, one a line, on stdin -> their median (the mean of the middle two for an
# even count), or "-" for none. minmax: "min-max".
median() { sort -g | awk '{v[NR] = $1} END {if (!NR) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
minmax() { sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {print NR ? lo "-" hi : "-"}'; }
column_of() { # file system key_column key value_column: the values of one system and key
  awk -F'\t' -v s="$2" -v k="$4" -v c="$5" -v kc="$3" '$2 == s && $kc == k {print $c}' "$1"
}
cell_value() { column_of "$results_file" "$1" 3 "$2" "$3" | median; } # system row column
errors_of() { column_of "$results_file" "$1" 3 "$2" 8 | awk '{n += $1} END {print n + 0}'; }
thousands() { awk -v n="$1" 'BEGIN {n = sprintf("%.0f", n); s = ""; while (length(n) > 3) {s = "," substr(n, length(n) - 2) s; n = substr(n, 1, length(n) - 3)} print n s}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b}'; }
perf_cell() { # system row
  local rps p50 p99 errs
  rps=$(cell_value "$1" "$2" 5)
  [[ $rps == - ]] && { echo "-"; return; }
  p50=$(cell_value "$1" "$2" 6) p99=$(cell_value "$1" "$2" 7) errs=$(errors_of "$1" "$2")
  printf '%s req/s, p50 %.2f / p99 %.2f ms' "$(thousands "$rps")" "$p50" "$p99"
  ((errs == 0)) || printf ' (**%s errors**)' "$errs"
}
perf_row() { # label row latency(p50|p99)
  local line
  line="| $1 | $(perf_cell ours "$2") |"
  if ((with_etcd)); then
    local col=6 name=p50
    [[ $3 == p99 ]] && col=7 name=p99
    line+=" $(perf_cell etcd "$2") | req/s $(ratio "$(cell_value ours "$2" 5)" "$(cell_value etcd "$2" 5)"), $name $(ratio "$(cell_value ours "$2" $col)" "$(cell_value etcd "$2" $col)") |"
  fi
  echo "$line"
}
# Memory rows: "median MiB (min-max)" over nodes and rounds per system, and the ratio of medians.
memory_row() { # label file column [bytes]: the column holds kB, or bytes when told
  local line per_kb=1
  [[ ${4:-} == bytes ]] && per_kb=1024
  line="| $1 | $(memory_cell "$2" ours "$3" $per_kb) |"
  if ((with_etcd)); then
    line+=" $(memory_cell "$2" etcd "$3" $per_kb) | $(ratio "$(column_of "$2" ours 2 ours "$3" | median)" "$(column_of "$2" etcd 2 etcd "$3" | median)") |"
  fi
  echo "$line"
}
memory_cell() { # file system column units_per_kb
  local med range
  med=$(column_of "$1" "$2" 2 "$2" "$3" | median)
  [[ $med == - ]] && { echo "-"; return; }
  range=$(column_of "$1" "$2" 2 "$2" "$3" | minmax)
  printf '%s MiB (%s-%s)' "$(mib "$med" "$4")" "$(mib "${range%-*}" "$4")" "$(mib "${range#*-}" "$4")"
}
print_table() {
  local c total_errors
  echo
  echo "## Medians over $rounds round(s); $nodes-node clusters on 127.0.0.1, wrk -t1, ${duration} s per scenario,"
  echo "## $keys keys of $value_bytes bytes preloaded, fsync on$( ((with_etcd)) && echo "; ratio = ours / etcd")"
  echo
  if ((with_etcd)); then
    echo "| workload | ours | etcd $(etcd --version | awk '/etcd Version/ {print $3}') (JSON gateway) | ratio |"
    echo "|---|---|---|---|"
  else
    echo "| workload | ours |"
    echo "|---|---|"
  fi
  perf_row "writes, 1 connection" "write@1" p50
  for c in "${connection_counts[@]}"; do
    ((c == 1)) || perf_row "writes, $c conn." "write@$c" p99
    perf_row "linearizable reads at the leader, $c conn." "lread-leader@$c" p99
    perf_row "linearizable reads through a follower, $c conn." "lread-follower@$c" p99
    perf_row "stale reads on a follower, $c conn.$( ((with_etcd)) && echo " (etcd: serializable)")" "stale@$c" p99
    ((with_mix)) && perf_row "90/10 linearizable reads/writes at the leader, $c conn." "mix@$c" p99
  done
  memory_row "RSS per node after loading $keys keys (median, min-max over nodes and rounds)" "$memory_file" 4
  memory_row "peak RSS per node up to the end of the load" "$memory_file" 5
  memory_row "peak RSS per node over the whole round" "$peaks_file" 4
  memory_row "data directory per node after the load (du -sb)" "$memory_file" 6 bytes
  if ((with_etcd)); then
    echo
    echo "etcd's data directory holds its write-ahead log in files of 64,000,000 bytes written out in"
    echo "advance, and one spare such file: 122 MiB of it before the first key."
  fi
  if ((with_nginx)); then
    echo
    for c in "${connection_counts[@]}"; do
      echo "Reference: nginx $("$nginx_bin" -v 2>&1 | sed 's/.*nginx\///'), one process, a static file:" \
        "${nginx_answer_bytes:-?}-byte answers (ours to a read: ${ours_answer_bytes:-?} bytes), $c conn.:" \
        "$(perf_cell nginx "static@$c"); stale reads on our follower / nginx:" \
        "$(ratio "$(cell_value ours "stale@$c" 5)" "$(cell_value nginx "static@$c" 5)")"
    done
  fi
  total_errors=$(awk -F'\t' '{n += $8} END {print n + 0}' "$results_file")
  echo
  echo "Errors (non-200 answers, missing keys, socket errors) over all $(wc -l <"$results_file") wrk runs: $total_errors"
}

# -- Main ----------------------------------------------------------------------------------------
((raft_tls)) && bash scripts/make-raft-certs.sh "$work/certs" $(seq -f 'n%g' 1 "$nodes") >/dev/null
echo "machine: $(nproc) cores, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg);" \
  "commit $(git rev-parse --short HEAD 2>/dev/null || echo ?)$(git diff --quiet HEAD 2>/dev/null || echo +changes)"
echo "$rounds round(s) of $duration s per scenario; $nodes nodes; $keys keys of $value_bytes bytes;" \
  "connections 1 and $connections_list; ports from $port_base"
for round in $(seq 1 "$rounds"); do
  ours_round "$work/r$round/ours"
  ((with_etcd)) && etcd_round "$work/r$round/etcd"
  ((with_nginx)) && nginx_round "$work/r$round/nginx"
  rm -rf "$work/r$round" # the data directories of etcd alone are hundreds of MB per round
done
print_table
