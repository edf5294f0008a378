#!/usr/bin/env bash
# End-to-end test of the operations endpoints on a 3-node cluster of real processes:
#   1. /health and /ready on a node alone (no leader: /ready 503 with a reason; /health 200);
#   2. once the cluster has a leader, /ready 200 everywhere; probes need no token;
#   3. /metrics of every node passes `promtool check metrics`; counters move with writes;
#   4. a real Prometheus scrapes the three nodes and a counter comes back through its query API;
#   5. kill -9 of the leader: the others are ready again under a new leader and count the change;
#   6. --log-format json: every line every node logged is one JSON object with time, level,
#      node and event.
#
# Usage: metrics_test.sh path/to/infinitystore
# Only 127.0.0.1, ports checked free before use; every wait is a polling loop with a deadline;
# only processes started here are killed, by PID. Needs promtool and prometheus (Debian package
# `prometheus`); without them it prints "SKIPPED: <why>" and exits 0 (ctest shows it skipped).
set -u

BIN=${1:?usage: metrics_test.sh path/to/infinitystore}
[ -x "$BIN" ] || { echo "not executable: $BIN" >&2; exit 2; }
# skip WHY: tells ctest this test did not run, and why (ctest prints $INFINITY_SKIP_REASON_FILE).
skip() {
  echo "SKIPPED: $*"
  if [ -n "${INFINITY_SKIP_REASON_FILE:-}" ]; then
    mkdir -p "$(dirname "$INFINITY_SKIP_REASON_FILE")" && echo "$*" >"$INFINITY_SKIP_REASON_FILE"
  fi
  exit 0
}
for tool in promtool prometheus curl python3; do
  command -v "$tool" >/dev/null || skip "$tool is not installed (bash scripts/install-deps.sh installs it)"
done
TMP=$(mktemp -d /tmp/infinitystore-metrics.XXXXXX)
cp "$BIN" "$TMP/infinitystore" || { echo "cannot copy $BIN" >&2; rm -rf "$TMP"; exit 2; }
BIN="$TMP/infinitystore"
PIDS=()
PASSES=0
FAILURES=0
declare -A RP HP PID LOGF DIR

now_ms() { echo $(($(date +%s%N) / 1000000)); }
START_MS=$(now_ms)

cleanup() {
  for pid in "${PIDS[@]}"; do
    kill -9 "$pid" 2>/dev/null
  done
  wait 2>/dev/null
  [ -n "${KEEP_TMP:-}" ] && { echo "kept $TMP" >&2; return; }
  rm -rf "$TMP"
}
trap cleanup EXIT

pass() {
  PASSES=$((PASSES + 1))
  echo "ok: $*"
}
fail() {
  FAILURES=$((FAILURES + 1))
  echo "FAIL: $*"
}
finish() {
  echo "total time $((($(now_ms) - START_MS) / 1000))s"
  if [ "$FAILURES" != 0 ]; then
    for name in n1 n2 n3; do
      echo "---- last 20 lines of $name's log ----"
      tail -n 20 "${LOGF[$name]}" 2>/dev/null
    done
    [ -s "$TMP/prometheus.log" ] && { echo "---- prometheus log ----"; tail -n 20 "$TMP/prometheus.log"; }
  fi
  echo "$PASSES passed, $FAILURES failed"
  [ "$FAILURES" = 0 ] && exit 0
  exit 1
}
abort() {
  fail "$*"
  echo "aborting"
  finish
}

# -- ports ---------------------------------------------------------------------------------------

# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

pick_ports() {
  local attempt base p ok i name
  for attempt in $(seq 1 50); do
    # Below the ephemeral range (32768+): 3 nodes x 2 ports, then Prometheus.
    base=$((20000 + (RANDOM % 600) * 20))
    ok=1
    for p in $(seq "$base" $((base + 6))); do
      port_free "$p" || { ok=0; break; }
    done
    if [ "$ok" = 1 ]; then
      i=0
      for name in n1 n2 n3; do
        RP[$name]=$((base + i))
        HP[$name]=$((base + i + 1))
        DIR[$name]="$TMP/data-$name"
        LOGF[$name]="$TMP/$name.log"
        i=$((i + 2))
      done
      PROM_PORT=$((base + 6))
      return 0
    fi
  done
  return 1
}
pick_ports || { echo "no free port range found" >&2; exit 1; }
CLUSTER="n1=127.0.0.1:${RP[n1]},n2=127.0.0.1:${RP[n2]},n3=127.0.0.1:${RP[n3]}"

# -- helpers -------------------------------------------------------------------------------------

# req NODE METHOD PATH [curl args...]: sets STATUS and BODY (STATUS 000: no answer).
req() {
  local node=$1 method=$2 path=$3 out
  shift 3
  out=$(curl -s -X "$method" --max-time 5 -w '\n%{http_code}' "$@" "http://127.0.0.1:${HP[$node]}$path")
  STATUS=${out##*$'\n'}
  BODY=${out%$'\n'*}
}

jstr() { sed -n "s/.*\"$2\":\"\\([^\"]*\\)\".*/\\1/p" <<<"$1"; }

# wait_for SECONDS NODE PATH STATUS: polls until PATH answers STATUS.
wait_for() {
  local deadline=$(($(now_ms) + $1 * 1000))
  while :; do
    req "$2" GET "$3"
    [ "$STATUS" = "$4" ] && return 0
    [ "$(now_ms)" -ge "$deadline" ] && return 1
    sleep 0.1
  done
}

start() {
  local name=$1
  shift
  "$BIN" --node-id "$name" --raft-addr "127.0.0.1:${RP[$name]}" --http-addr "127.0.0.1:${HP[$name]}" \
    --data-dir "${DIR[$name]}" --initial-cluster "$CLUSTER" --log-format json "$@" \
    >>"${LOGF[$name]}" 2>&1 &
  PID[$name]=$!
  PIDS+=("$!")
  wait_for 20 "$name" /health 200 || { fail "start $name: /health did not answer 200 within 20 s"; return 1; }
}

# metric NODE SERIES: the value of one sample (exact series text, labels included) in /metrics.
metric() {
  req "$1" GET /metrics
  awk -v s="$2" 'substr($0, 1, length(s) + 1) == s " " { print $2 }' <<<"$BODY"
}

# -- 1. a node alone: alive, not ready ------------------------------------------------------------

mkdir -p "$TMP/tokens"
printf 'admin-token-0123456789abcdef\n' >"$TMP/tokens/admin" && chmod 600 "$TMP/tokens/admin"
printf 'client-token-0123456789abcdef\n' >"$TMP/tokens/client" && chmod 600 "$TMP/tokens/client"
start n1 --ready-max-lag 100 || abort "cannot start n1"
req n1 GET /health
[ "$STATUS" = 200 ] && [[ "$BODY" == *'"status":"ok"'* ]] && pass "lone node: /health 200 ($BODY)" ||
  fail "lone node: /health $STATUS $BODY"
req n1 GET /ready
if [ "$STATUS" = 503 ] && [[ "$BODY" == *'"ready":false'* ]] && [[ "$BODY" == *'no leader is known'* ]]; then
  pass "lone node of a 3-node cluster: /ready 503 with the reason ($BODY)"
else
  fail "lone node: /ready $STATUS $BODY"
fi
req n1 POST /health
[ "$STATUS" = 405 ] && pass "POST /health: 405" || fail "POST /health: $STATUS $BODY"

# -- 2. the cluster: ready everywhere; probes are public -----------------------------------------

# n3 requires tokens for everything but the probes.
start n2 || abort "cannot start n2"
start n3 --admin-token-file "$TMP/tokens/admin" --client-token-file "$TMP/tokens/client" ||
  abort "cannot start n3"
for name in n1 n2 n3; do
  if wait_for 20 "$name" /ready 200; then
    pass "$name: /ready 200 once a leader is known ($BODY)"
  else
    fail "$name: /ready still $STATUS after 20 s: $BODY"
  fi
done
req n3 GET /metrics
[ "$STATUS" = 401 ] && pass "n3 with tokens: /metrics needs the token (401)" || fail "n3 /metrics without token: $STATUS"
req n3 GET /ready
[ "$STATUS" = 200 ] && pass "n3 with tokens: /ready is public (200)" || fail "n3 /ready without token: $STATUS"

LEADER=$(jstr "$BODY" leader)
[ -n "$LEADER" ] || abort "no leader named by n3's /ready: $BODY"
echo "leader: $LEADER"

# -- 3. promtool on every node; counters follow writes --------------------------------------------

WRITES=20
for i in $(seq 1 $WRITES); do
  req n1 POST /set -d "{\"key\":\"k$i\",\"value\":\"v$i\",\"action\":\"set\"}"
  [ "$STATUS" = 200 ] || fail "write k$i through n1: $STATUS $BODY"
done
for name in n1 n2 n3; do
  auth=()
  [ "$name" = n3 ] && auth=(-H "Authorization: Bearer client-token-0123456789abcdef")
  req "$name" GET /metrics "${auth[@]}"
  printf '%s\n' "$BODY" >"$TMP/$name.metrics"
  if [ "$STATUS" = 200 ] && out=$(promtool check metrics <"$TMP/$name.metrics" 2>&1); then
    pass "$name: /metrics passes promtool check metrics ($(grep -vc '^#' "$TMP/$name.metrics") samples)"
  else
    fail "$name: promtool check metrics: status $STATUS: $out"
  fi
done
got=$(metric n1 'infinity_http_requests_total{route="/set",code="200"}')
[ "$got" = "$WRITES" ] && pass "n1 counted $WRITES POST /set 200" || fail "n1 /set 200 counter: '$got'"
committed=$(metric n1 infinity_raft_proposals_committed_total)
[ "$committed" = "$WRITES" ] && pass "n1 counted $WRITES committed proposals" ||
  fail "n1 proposals committed: '$committed'"
for series in infinity_raft_term infinity_raft_commit_index process_resident_memory_bytes process_open_fds \
  infinity_http_open_connections 'infinity_storage_fsync_duration_seconds_count' \
  'infinity_http_request_duration_seconds_count{route="/set"}'; do
  v=$(metric n1 "$series")
  [ -n "$v" ] && pass "n1 exports $series = $v" || fail "n1 lacks $series"
done
peers=$(grep -c '^infinity_raft_peer_lag_entries{' "$TMP/$LEADER.metrics")
[ "$peers" = 2 ] && pass "leader $LEADER exports lag for its 2 followers" || fail "leader's per-peer lag series: $peers"
# Linearizable reads on the leader go through ReadIndex rounds; writes through appends.
lauth=()
[ "$LEADER" = n3 ] && lauth=(-H "Authorization: Bearer client-token-0123456789abcdef")
for i in $(seq 1 10); do
  req "$LEADER" GET "/get?key=k$i" "${lauth[@]}"
  [ "$STATUS" = 200 ] || fail "linearizable read of k$i on $LEADER: $STATUS $BODY"
done
req "$LEADER" GET /metrics "${lauth[@]}"
reads=$(awk '$1 == "infinity_raft_read_index_reads_total" { print $2 }' <<<"$BODY")
rounds=$(awk '$1 == "infinity_raft_read_index_rounds_total" { print $2 }' <<<"$BODY")
appends=$(awk '$1 == "infinity_raft_appends_sent_total" { print $2 }' <<<"$BODY")
entries=$(awk '$1 == "infinity_raft_append_entries_sent_total" { print $2 }' <<<"$BODY")
if [ "${reads:-0}" -ge 10 ] && [ "${rounds:-0}" -ge 1 ] && [ "${rounds:-0}" -le "${reads:-0}" ]; then
  pass "leader counted $reads ReadIndex reads in $rounds rounds"
else
  fail "leader ReadIndex counters: reads '$reads', rounds '$rounds'"
fi
# Each of the 20 writes (and the no-op) reached both followers, in batches of one or more.
if [ "${entries:-0}" -ge 42 ] && [ "${appends:-0}" -ge 1 ] && [ "${appends:-0}" -le "${entries:-0}" ]; then
  pass "leader sent $entries entries in $appends appends"
else
  fail "leader append counters: appends '$appends', entries '$entries'"
fi
before=$(metric n1 'infinity_http_requests_total{route="/set",code="200"}')
sleep 0.2
after=$(metric n1 'infinity_http_requests_total{route="/set",code="200"}')
[ "$before" = "$after" ] && pass "counters hold still without requests" || fail "counter moved: $before -> $after"

# -- 4. a real Prometheus scrapes the cluster ------------------------------------------------------

cat >"$TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: infinitystore
    static_configs:
      - targets: ['127.0.0.1:${HP[n1]}', '127.0.0.1:${HP[n2]}']
  - job_name: infinitystore-token
    authorization:
      credentials: client-token-0123456789abcdef
    static_configs:
      - targets: ['127.0.0.1:${HP[n3]}']
EOF
promtool check config "$TMP/prometheus.yml" >/dev/null 2>&1 || abort "promtool rejects the generated config"
prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/prometheus-data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$TMP/prometheus.log" 2>&1 &
PROM_PID=$!
PIDS+=("$PROM_PID")

# query EXPR: the first result's value (empty if none).
query() {
  curl -s --max-time 5 --get "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" |
    python3 -c 'import json,sys
try:
    r = json.load(sys.stdin)["data"]["result"]
    print(r[0]["value"][1] if r else "")
except Exception:
    print("")'
}

deadline=$(($(now_ms) + 40000))
ups=""
while [ "$(now_ms)" -lt "$deadline" ]; do
  ups=$(query 'sum(up{job=~"infinitystore.*"})')
  [ "$ups" = 3 ] && break
  kill -0 "$PROM_PID" 2>/dev/null || break
  sleep 0.5
done
[ "$ups" = 3 ] && pass "Prometheus scrapes all 3 nodes (sum(up) = 3)" || fail "Prometheus: sum(up) = '$ups'"
deadline=$(($(now_ms) + 20000))
got=""
while [ "$(now_ms)" -lt "$deadline" ]; do
  got=$(query 'sum(infinity_http_requests_total{route="/set",code="200"})')
  [ "$got" = "$WRITES" ] && break
  sleep 0.5
done
[ "$got" = "$WRITES" ] && pass "Prometheus query API returns the /set counter: $got" ||
  fail "Prometheus: sum of /set 200 = '$got', expected $WRITES"
leaders=$(query 'sum(infinity_raft_role{role="leader"})')
[ "$leaders" = 1 ] && pass "Prometheus sees exactly one leader" || fail "Prometheus: leaders = '$leaders'"
kill "$PROM_PID" 2>/dev/null
wait "$PROM_PID" 2>/dev/null

# -- 5. the leader dies: the others become ready again and count the change -----------------------

SURVIVORS=()
for name in n1 n2 n3; do [ "$name" != "$LEADER" ] && SURVIVORS+=("$name"); done
first=${SURVIVORS[0]}
changes_before=$(metric "$first" infinity_raft_leader_changes_total)
{
  kill -9 "${PID[$LEADER]}"
  wait "${PID[$LEADER]}"
} 2>/dev/null
deadline=$(($(now_ms) + 20000))
new_leader=""
while [ "$(now_ms)" -lt "$deadline" ]; do
  req "$first" GET /ready
  new_leader=$(jstr "$BODY" leader)
  [ "$STATUS" = 200 ] && [ -n "$new_leader" ] && [ "$new_leader" != "$LEADER" ] && break
  sleep 0.1
done
if [ "$STATUS" = 200 ] && [ "$new_leader" != "$LEADER" ]; then
  pass "$first ready again under new leader $new_leader"
else
  fail "$first after the leader died: $STATUS $BODY"
fi
changes_after=$(metric "$first" infinity_raft_leader_changes_total)
[ -n "$changes_after" ] && [ "$changes_after" -gt "$changes_before" ] &&
  pass "$first counted the leader change ($changes_before -> $changes_after)" ||
  fail "leader changes on $first: $changes_before -> $changes_after"

# -- 6. JSON logs ----------------------------------------------------------------------------------

for name in n1 n2 n3; do
  if out=$(python3 - "${LOGF[$name]}" "$name" <<'PY'
import json, sys
path, node = sys.argv[1], sys.argv[2]
lines = open(path, encoding="utf-8").read().splitlines()
assert lines, "empty log"
for n, line in enumerate(lines, 1):
    obj = json.loads(line)
    assert list(obj) == ["time", "level", "node", "event"], f"line {n}: fields {list(obj)}"
    assert obj["node"] == node, f"line {n}: node {obj['node']}"
    assert obj["level"] in ("error", "warn", "info", "debug"), f"line {n}: level"
    assert obj["time"].endswith("Z") and len(obj["time"]) == 24, f"line {n}: time {obj['time']}"
print(len(lines))
PY
  ); then
    pass "$name: all $out log lines are JSON objects with time, level, node, event"
  else
    fail "$name: JSON log: $out"
  fi
done
grep -q '"event":"[^"]*leader' "${LOGF[$first]}" && pass "$first logged the leader change as a JSON event" ||
  fail "$first: no leader event in its JSON log"

finish
