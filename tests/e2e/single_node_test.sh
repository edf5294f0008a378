#!/usr/bin/env bash
# End-to-end test of one infinitystore process: the client API over real HTTP (curl and raw
# pipelined requests), crash recovery (kill -9, restart, data still there), clean SIGTERM exit,
# and the startup errors (port in use, data dir in use, bad option).
#
# Usage: single_node_test.sh path/to/infinitystore
# Only 127.0.0.1 and ephemeral ports; every wait is bounded; only processes started here are
# killed, by PID.
set -u

BIN=${1:?usage: single_node_test.sh path/to/infinitystore}
TMP=$(mktemp -d /tmp/infinitystore-e2e.XXXXXX)
PIDS=()
FAILURES=0
NODE_PID=""
PORT=""

cleanup() {
  for pid in "${PIDS[@]}"; do
    kill -9 "$pid" 2>/dev/null
  done
  rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  FAILURES=$((FAILURES + 1))
}

pass() { echo "ok: $*"; }

# start_node LOGFILE [extra args...]: starts a node on an ephemeral port, sets NODE_PID and PORT.
start_node() {
  local log=$1
  shift
  "$BIN" --node-id e2e --http-addr 127.0.0.1:0 --raft-addr 127.0.0.1:1 --data-dir "$TMP/data" \
    "$@" >"$log" 2>&1 &
  NODE_PID=$!
  PIDS+=("$NODE_PID")
  PORT=""
  for _ in $(seq 1 100); do
    PORT=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$log" | head -n1 | sed 's/.*://')
    [ -n "$PORT" ] && break
    kill -0 "$NODE_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$PORT" ]; then
    echo "node did not start; log:" >&2
    cat "$log" >&2
    exit 1
  fi
}

# req METHOD PATH [curl args...]: sets STATUS, BODY and HEADERS.
req() {
  local method=$1 path=$2
  shift 2
  STATUS=$(curl -s -X "$method" --max-time 10 -D "$TMP/headers" -o "$TMP/body" -w '%{http_code}' \
    "$@" "http://127.0.0.1:$PORT$path")
  BODY=$(cat "$TMP/body" 2>/dev/null)
  HEADERS=$(cat "$TMP/headers" 2>/dev/null)
}

# expect WHAT STATUS [SUBSTRING...]: checks the last response.
expect() {
  local what=$1 status=$2
  shift 2
  if [ "$STATUS" != "$status" ]; then
    fail "$what: status $STATUS, expected $status; body: $BODY"
    return
  fi
  for needle in "$@"; do
    if [[ "$BODY" != *"$needle"* ]]; then
      fail "$what: body lacks $needle: $BODY"
      return
    fi
  done
  pass "$what ($status)"
}

wait_for_leader() {
  for _ in $(seq 1 100); do
    req GET /status
    [[ "$BODY" == *'"role":"leader"'* ]] && return 0
    sleep 0.1
  done
  fail "no leader within 10 s: $BODY"
  exit 1
}

# wait_exit PID SECONDS: sets RC, or fails if the process is still running.
wait_exit() {
  local pid=$1 limit=$2
  for _ in $(seq 1 $((limit * 10))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    fail "process $pid still running after ${limit}s"
    kill -9 "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  RC=$?
}

set_json() { printf '{"key":"%s","value":"%s","action":"set"}' "$1" "$2"; }

# -- first run -------------------------------------------------------------------------------------

start_node "$TMP/log1"
wait_for_leader
expect "status" 200 '"id":"e2e"' '"members":["e2e"]'

req POST /set -d "$(set_json a 1)"
expect "set a" 200 '"key":"a"' '"action":"set"' '"index":'
req GET "/get?key=a"
expect "get a" 200 '{"key":"a","value":"1"}'
req GET "/get?key=a&consistency=stale"
expect "stale get a" 200 '"value":"1"'

req POST /set -d '{"key":"sp ace/\u00e9","value":"q\"uote\\\\","action":"set"}'
expect "set key needing escapes" 200
req GET "/get?key=sp+ace%2F%C3%A9"
expect "url-encoded get" 200 '"value":"q\"uote\\\\"'

req POST /set -d "$(set_json gone x)"
req POST /set -d '{"key":"gone","action":"delete"}'
expect "delete" 200 '"action":"delete"'
req GET "/get?key=gone"
expect "get deleted key" 404 '"error"'
req GET "/get?key=never"
expect "get absent key" 404 '"error"'

req POST /set -d 'not json'
expect "bad json" 400 '"error"'
req POST /set -d '{"value":"v","action":"set"}'
expect "missing key" 400 '"error"'
req POST /set -d '{"key":"k","value":"v"}'
expect "missing action" 400 '"error"'
req GET /get
expect "get without key" 400 '"error"'
req GET "/get?key=%zz"
expect "bad percent-encoding" 400 '"error"'
req GET /nothing-here
expect "unknown path" 404 '"error"'
req GET /set
expect "wrong method" 405 '"error"'
[[ "$HEADERS" == *"Allow: POST"* ]] && pass "405 has Allow" || fail "405 without Allow: $HEADERS"

# Oversized body (2 MB > 1 MiB default): rejected while reading.
{ printf '{"key":"big","value":"'; head -c 2000000 /dev/zero | tr '\0' 'a'; printf '","action":"set"}'; } >"$TMP/big.json"
req POST /set --data-binary "@$TMP/big.json" -H 'Content-Type: application/json'
expect "body over limit" 413 '"error"'
# A value over 512 KiB in a body under the limit: rejected by the codec.
{ printf '{"key":"big","value":"'; head -c 600000 /dev/zero | tr '\0' 'a'; printf '","action":"set"}'; } >"$TMP/value.json"
req POST /set --data-binary "@$TMP/value.json"
expect "value over limit" 413 '"error"'
req GET "/get?key=big"
expect "oversized writes left nothing" 404

req POST "/join?nodeid=n2&nodeaddr=127.0.0.1:2"
expect "join of a node nobody runs" 503 'nothing was changed'
req POST "/join?nodeid=n2&nodeaddr=nowhere"
expect "join bad address" 400 '"error"'

# Pipelining: three requests in one write; the answers must come back in order.
{
  exec 3<>"/dev/tcp/127.0.0.1/$PORT"
  PIPE_BODY='{"key":"p","value":"pipe","action":"set"}'
  printf 'POST /set HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s' "${#PIPE_BODY}" "$PIPE_BODY" >&3
  printf 'GET /get?key=p HTTP/1.1\r\nHost: x\r\n\r\n' >&3
  printf 'GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
  timeout 10 cat <&3 >"$TMP/pipelined"
  exec 3<&-
} 2>/dev/null
ORDER=$(grep -ao 'HTTP/1.1 [0-9]*' "$TMP/pipelined" | awk '{print $2}' | tr '\n' ' ')
if [ "$ORDER" = "200 200 404 " ] && grep -q '"value":"pipe"' "$TMP/pipelined"; then
  pass "pipelined responses in order"
else
  fail "pipelined responses: '$ORDER' $(cat "$TMP/pipelined")"
fi

# A stale read answered by the connection itself must still wait for the write before it (and
# see it): write, stale read of it, stale read of a missing key, in one segment.
{
  exec 3<>"/dev/tcp/127.0.0.1/$PORT"
  PIPE_BODY='{"key":"q","value":"quick","action":"set"}'
  printf 'POST /set HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%sGET /get?key=q&consistency=stale HTTP/1.1\r\nHost: x\r\n\r\nGET /get?key=nothing-here&consistency=stale HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' \
    "${#PIPE_BODY}" "$PIPE_BODY" >&3
  timeout 10 cat <&3 >"$TMP/pipelined-stale"
  exec 3<&-
} 2>/dev/null
ORDER=$(grep -ao 'HTTP/1.1 [0-9]*' "$TMP/pipelined-stale" | awk '{print $2}' | tr '\n' ' ')
if [ "$ORDER" = "200 200 404 " ] && grep -q '"value":"quick"' "$TMP/pipelined-stale"; then
  pass "pipelined stale reads wait for the write before them"
else
  fail "pipelined stale reads: '$ORDER' $(cat "$TMP/pipelined-stale")"
fi

# Malformed HTTP gets a JSON 400, not a hang.
{
  exec 3<>"/dev/tcp/127.0.0.1/$PORT"
  printf 'THIS IS NOT HTTP\r\n\r\n' >&3
  timeout 10 cat <&3 >"$TMP/malformed"
  exec 3<&-
} 2>/dev/null
if grep -q '^HTTP/1.1 400' "$TMP/malformed" && grep -q '"error"' "$TMP/malformed"; then
  pass "malformed request (400)"
else
  fail "malformed request: $(cat "$TMP/malformed")"
fi

# Startup errors while the node runs: its port, then its data directory.
"$BIN" --node-id other --http-addr "127.0.0.1:$PORT" --data-dir "$TMP/other" >"$TMP/port.log" 2>&1 &
OTHER=$!
PIDS+=("$OTHER")
wait_exit "$OTHER" 10
if [ "$RC" != 0 ] && grep -q "http-addr" "$TMP/port.log" && grep -qi "in use" "$TMP/port.log"; then
  pass "port in use (exit $RC)"
else
  fail "port in use: exit $RC, $(cat "$TMP/port.log")"
fi
"$BIN" --node-id other --http-addr 127.0.0.1:0 --data-dir "$TMP/data" >"$TMP/dir.log" 2>&1 &
OTHER=$!
PIDS+=("$OTHER")
wait_exit "$OTHER" 10
if [ "$RC" != 0 ] && grep -q "data-dir" "$TMP/dir.log"; then
  pass "data dir in use (exit $RC)"
else
  fail "data dir in use: exit $RC, $(cat "$TMP/dir.log")"
fi
"$BIN" --bogus-option >"$TMP/opt.log" 2>&1
RC=$?
if [ "$RC" != 0 ] && grep -q "bogus-option" "$TMP/opt.log"; then
  pass "unknown option (exit $RC)"
else
  fail "unknown option: exit $RC, $(cat "$TMP/opt.log")"
fi

# -- crash and restart -----------------------------------------------------------------------------

for i in 1 2 3 4 5; do
  req POST /set -d "$(set_json "crash$i" "value$i")"
  [ "$STATUS" = 200 ] || fail "set crash$i: $STATUS $BODY"
done
kill -9 "$NODE_PID"
wait "$NODE_PID" 2>/dev/null
pass "killed with SIGKILL"

start_node "$TMP/log2"
wait_for_leader
for i in 1 2 3 4 5; do
  req GET "/get?key=crash$i"
  expect "crash$i after restart" 200 "\"value\":\"value$i\""
done
req GET "/get?key=a"
expect "a after restart" 200 '"value":"1"'
req GET "/get?key=gone"
expect "deleted key stays deleted" 404
req POST /set -d "$(set_json after restart)"
expect "write after restart" 200

# -- clean shutdown --------------------------------------------------------------------------------

kill -TERM "$NODE_PID"
wait_exit "$NODE_PID" 10
if [ "$RC" = 0 ] && grep -q "stopped" "$TMP/log2"; then
  pass "SIGTERM exits 0"
else
  fail "SIGTERM: exit $RC; log: $(tail -5 "$TMP/log2")"
fi

if [ "$FAILURES" != 0 ]; then
  echo "$FAILURES check(s) failed; last node log:" >&2
  cat "$TMP/log2" >&2 2>/dev/null || cat "$TMP/log1" >&2
  exit 1
fi
echo "all e2e checks passed"
