#!/usr/bin/env bash
# End-to-end test of the client port under attack, against real infinitystore processes on
# 127.0.0.1: an oversized chunked trailer and oversized headers (answered, then closed, no
# CLOSE-WAIT left), slow headers, a slow body, a silent and an idle client (closed at their
# deadline),
# the connection limit (503, existing connections unharmed, room again after some close),
# 20 clients pipelining GETs of a 512 KiB value without reading (RSS bounded), the absolute-form
# request target, the descriptor limit clamping the connection limit, descriptors back to their
# baseline after the clients leave; then HTTPS (a throwaway CA made with the openssl tool, TLS 1.1
# refused, plain HTTP on the TLS port answered 400 and closed, handshake deadline) and bearer
# tokens (401/403/200), and the option errors.
#
# Usage: http_limits_test.sh path/to/infinitystore
# Attack clients: tests/e2e/http_limits_attack.py (python3 standard library); curl, openssl, ss.
# Every wait is bounded; only processes started here are killed, by PID. About 30 s.
set -u

BIN=${1:?usage: http_limits_test.sh path/to/infinitystore}
HERE=$(cd "$(dirname "$0")" && pwd)
ATTACK="$HERE/http_limits_attack.py"
TMP=$(mktemp -d /tmp/infinitystore-limits.XXXXXX)
PIDS=()
FAILURES=0
NODE_PID=""
PORT=""
LOG=""
SECONDS=0

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

check() { # check WHAT CONDITION-RESULT(0/1) DETAIL
  if [ "$2" = 0 ]; then pass "$1"; else fail "$1: $3"; fi
}

# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

# start_node NAME [extra args...]: starts a node on an ephemeral port; sets NODE_PID, PORT, LOG.
start_node() {
  local name=$1
  shift
  LOG="$TMP/$name.log"
  # Never listened on in these tests, but bound: two runs at once must not share it.
  local raft_port
  raft_port=$(pick_free_port 20000 20000) || { echo "no free port for the Raft address" >&2; exit 1; }
  "$BIN" --node-id "$name" --http-addr 127.0.0.1:0 --raft-addr "127.0.0.1:$raft_port" \
    --data-dir "$TMP/$name" "$@" >"$LOG" 2>&1 &
  NODE_PID=$!
  PIDS+=("$NODE_PID")
  PORT=""
  for _ in $(seq 1 100); do
    PORT=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$LOG" | head -n1 | sed 's/.*://')
    [ -n "$PORT" ] && break
    kill -0 "$NODE_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$PORT" ]; then
    echo "node $name did not start; log:" >&2
    cat "$LOG" >&2
    exit 1
  fi
}

# curl_status URL [curl args...]: sets STATUS, BODY and HEADERS.
curl_status() {
  local url=$1
  shift
  STATUS=$(curl -s --max-time 10 -D "$TMP/headers" -o "$TMP/body" -w '%{http_code}' "$@" "$url")
  BODY=$(cat "$TMP/body" 2>/dev/null)
  HEADERS=$(cat "$TMP/headers" 2>/dev/null)
}

# wait_for_leader URL [curl args...]
wait_for_leader() {
  local url=$1
  shift
  for _ in $(seq 1 100); do
    curl_status "$url/status" "$@"
    [[ "$BODY" == *'"role":"leader"'* ]] && return 0
    sleep 0.1
  done
  fail "no leader within 10 s: $STATUS $BODY"
  exit 1
}

fd_count() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }

close_wait_count() { ss -Htn state close-wait "( sport = :$1 )" 2>/dev/null | wc -l; }

# wait_fds_back PID BASELINE: waits (5 s at most) until the node has no more descriptors than at
# its baseline; sets FDS.
wait_fds_back() {
  for _ in $(seq 1 50); do
    FDS=$(fd_count "$1")
    [ "$FDS" -le "$2" ] && return 0
    sleep 0.1
  done
  return 1
}

# attack ARGS...: runs the attack client; its key=value lines become shell variables A_<key>.
attack() {
  local out
  unset "${!A_@}" # no stale values from an earlier attack
  out=$(timeout 30 python3 "$ATTACK" "$@" 2>&1)
  echo "  attack $1: $(echo "$out" | tr '\n' ' ')"
  while IFS='=' read -r key value; do
    [[ "$key" =~ ^[a-z0-9_]+$ ]] && printf -v "A_$key" '%s' "$value"
  done <<<"$out"
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

# within LOW HIGH VALUE: LOW <= VALUE <= HIGH (decimals allowed).
within() { python3 -c "import sys; sys.exit(0 if $1 <= $3 <= $2 else 1)"; }

# -- plain HTTP node with small limits -------------------------------------------------------------

# A fixed mmap threshold makes glibc return large freed blocks at once, so RSS measures the
# memory the node holds rather than what the allocator keeps for reuse.
MAX_CONN=24
GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072 start_node limits \
  --http-max-connections "$MAX_CONN" --http-header-timeout-ms 2000 --http-body-timeout-ms 2000 \
  --http-idle-timeout-ms 4000
BASE="http://127.0.0.1:$PORT"
wait_for_leader "$BASE"
{ printf '{"key":"big","value":"'; head -c 524288 /dev/zero | tr '\0' 'v'; printf '","action":"set"}'; } >"$TMP/big.json"
curl_status "$BASE/set" --data-binary "@$TMP/big.json"
check "set a 512 KiB value" "$([ "$STATUS" = 200 ] && echo 0 || echo 1)" "$STATUS $BODY"
curl_status "$BASE/set" -d '{"key":"a","value":"1","action":"set"}'
FD_BASE=$(fd_count "$NODE_PID")
echo "  baseline: $FD_BASE descriptors"

# Absolute-form target (RFC 7230 §5.3.2).
curl_status "$BASE/" --request-target "http://127.0.0.1:$PORT/get?key=a"
check "absolute-form target" "$([ "$STATUS" = 200 ] && [[ "$BODY" == *'"value":"1"'* ]] && echo 0 || echo 1)" \
  "$STATUS $BODY"

# A chunked trailer with one 70 KiB field: answered (431), then closed, nothing left behind.
attack trailer "$PORT"
check "oversized trailer answered 431 with JSON and Connection: close" \
  "$([ "${A_status:-}" = 431 ] && [ "${A_json:-}" = 1 ] && [ "${A_connection:-}" = close ] && echo 0 || echo 1)" \
  "status ${A_status:-none}, json ${A_json:-?}, connection '${A_connection:-}'"
check "oversized trailer: the node closed the socket" "$([ "${A_closed:-}" = 1 ] && echo 0 || echo 1)" \
  "still open 4 s after the answer"
sleep 0.5
CW=$(close_wait_count "$PORT")
check "no CLOSE-WAIT after the trailer attack" "$([ "$CW" = 0 ] && echo 0 || echo 1)" "$CW sockets"
echo "  CLOSE-WAIT on the client port after the trailer attack: $CW"

attack header "$PORT"
check "20 KiB of headers answered 431 and closed" \
  "$([ "${A_status:-}" = 431 ] && [ "${A_closed:-}" = 1 ] && [ "${A_json:-}" = 1 ] && echo 0 || echo 1)" \
  "status ${A_status:-none}, closed ${A_closed:-?}"

# Slow clients, in parallel: each must be closed at its deadline (2 s for the headers, counted
# from accept for the first request, and for the body; 4 s idle after a whole request), not
# before, not much after.
for mode in headers silent body idle; do
  timeout 30 python3 "$ATTACK" slow "$PORT" "$mode" 9 >"$TMP/slow.$mode" 2>&1 &
done
for _ in $(seq 1 150); do
  [ "$(cat "$TMP"/slow.* 2>/dev/null | grep -c '^seconds=')" = 4 ] && break
  sleep 0.1
done
for mode in headers silent body idle; do
  closed=$(grep -o 'closed=[01]' "$TMP/slow.$mode" | cut -d= -f2)
  secs=$(grep -o 'seconds=[0-9.]*' "$TMP/slow.$mode" | cut -d= -f2)
  deadline=2
  [ "$mode" = idle ] && deadline=4
  echo "  slow $mode: closed=${closed:-?} after ${secs:-?} s"
  check "slow $mode closed at the $deadline s deadline" \
    "$([ "${closed:-}" = 1 ] && within $((deadline - 1)).5 $((deadline + 2)).5 "${secs:-99}" && echo 0 || echo 1)" \
    "closed ${closed:-?} after ${secs:-?} s"
done

# The connection limit: with 24 connections open, 10 more at once: 8 (max-connections / 16, at
# least 8) get 503 and are closed, the other 2 are closed without an answer; the 24 keep
# working, and once some close new ones are served again.
attack limit "$PORT" "$MAX_CONN" 10
check "over the limit: 8 answered 503 with Retry-After, JSON and Connection: close" \
  "$([ "${A_over_503:-}" = 8 ] && [ "${A_over_503_well_formed:-}" = 8 ] && echo 0 || echo 1)" \
  "503: ${A_over_503:-none}, well formed: ${A_over_503_well_formed:-none}"
check "over the limit and out of 503 slots: 2 closed without an answer" \
  "$([ "${A_over_unanswered:-}" = 2 ] && [ "${A_over_other:-}" = 0 ] && [ "${A_over_closed:-}" = 1 ] && echo 0 || echo 1)" \
  "unanswered ${A_over_unanswered:-?}, other ${A_over_other:-?}, all closed ${A_over_closed:-?}"
check "existing connections still served at the limit" \
  "$([ "${A_existing_statuses:-}" = "200,200,200" ] && echo 0 || echo 1)" "${A_existing_statuses:-none}"
check "new connections served again after some closed" \
  "$([ "${A_after_close_status:-}" = 200 ] && echo 0 || echo 1)" "${A_after_close_status:-none}"

# 20 clients pipeline GETs of the 512 KiB value and never read. The node must stop reading them
# once about --http-max-queued-response-bytes (4 MiB) wait per connection: measured about
# 4.2 MiB each; allow 6 (copies of responses still being prepared come and go). Without the
# backpressure the node grew by about 640 MiB here.
CLIENTS=20
BOUND_MIB=$((CLIENTS * 6))
attack pipeline "$PORT" "$NODE_PID" "$CLIENTS" 100 4
echo "  RSS before ${A_rss_before_kib:-?} KiB, peak ${A_rss_peak_kib:-?} KiB (+${A_rss_growth_mib:-?} MiB), after the clients left ${A_rss_after_kib:-?} KiB"
check "non-reading pipeliners: RSS growth within $BOUND_MIB MiB" \
  "$(within 0 "$BOUND_MIB" "${A_rss_growth_mib:-9999}" && echo 0 || echo 1)" "grew ${A_rss_growth_mib:-?} MiB"
check "non-reading pipeliners: memory given back after they left" \
  "$(within 0 $((16 * 1024)) "$(( ${A_rss_after_kib:-999999} - ${A_rss_before_kib:-0} ))" && echo 0 || echo 1)" \
  "RSS ${A_rss_after_kib:-?} KiB after, ${A_rss_before_kib:-?} KiB before"

wait_fds_back "$NODE_PID" "$FD_BASE"
check "descriptors back to the baseline ($FD_BASE)" "$?" "$FDS open"
echo "  descriptors: baseline $FD_BASE, after the attacks $FDS"
CW=$(close_wait_count "$PORT")
check "no CLOSE-WAIT after all attacks" "$([ "$CW" = 0 ] && echo 0 || echo 1)" "$CW sockets"

kill -TERM "$NODE_PID"
wait_exit "$NODE_PID" 10
check "SIGTERM after the attacks exits 0" "$RC" "exit $RC; $(tail -3 "$LOG")"

# The descriptor limit caps the connection limit: with ulimit -n 256, 64 kept for the node and
# 64 for 503 answers, 128 remain.
LOG="$TMP/rlimit.log"
(
  ulimit -n 256
  exec "$BIN" --node-id rlimit --http-addr 127.0.0.1:0 --raft-addr "127.0.0.1:$(pick_free_port 20000 20000)" \
    --data-dir "$TMP/rlimit" --http-max-connections 4096
) >"$LOG" 2>&1 &
RPID=$!
PIDS+=("$RPID")
for _ in $(seq 1 100); do
  grep -q "listening on" "$LOG" 2>/dev/null && break
  sleep 0.1
done
check "ulimit -n 256 clamps the connection limit to 128" \
  "$(grep -q 'listening on .*at most 128 connections' "$LOG" && echo 0 || echo 1)" "$(grep http: "$LOG")"
kill -TERM "$RPID"
wait_exit "$RPID" 10

# -- option errors ---------------------------------------------------------------------------------

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=test-ca \
  -keyout "$TMP/ca.key" -out "$TMP/ca.pem" >/dev/null 2>&1
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
  -keyout "$TMP/server.key" -out "$TMP/server.csr" >/dev/null 2>&1
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
  >"$TMP/server.ext"
openssl x509 -req -in "$TMP/server.csr" -CA "$TMP/ca.pem" -CAkey "$TMP/ca.key" -CAcreateserial \
  -days 2 -extfile "$TMP/server.ext" -out "$TMP/server.pem" >/dev/null 2>&1
[ -s "$TMP/server.pem" ] || {
  fail "openssl could not make the test certificates"
  exit 1
}
token() { head -c 24 /dev/urandom | base64 | tr '+/' '-_'; }
ADMIN=$(token)
CLIENT=$(token)
printf '%s\n' "$ADMIN" >"$TMP/admin.token"
printf '%s\n' "$CLIENT" >"$TMP/client.token"
chmod 600 "$TMP/admin.token" "$TMP/client.token"

# option_error WHAT MENTION ARGS...: the node must exit 2 with one line that mentions MENTION.
option_error() {
  local what=$1 mention=$2
  shift 2
  "$BIN" --node-id opt --data-dir "$TMP/opt" "$@" >"$TMP/opt.log" 2>&1
  local rc=$?
  check "$what: exit 2 with one line" \
    "$([ "$rc" = 2 ] && [ "$(wc -l <"$TMP/opt.log")" = 1 ] && grep -q -- "$mention" "$TMP/opt.log" && echo 0 || echo 1)" \
    "exit $rc: $(cat "$TMP/opt.log")"
}
option_error "certificate without key" "--http-tls-key" --http-tls-cert "$TMP/server.pem"
option_error "key without certificate" "--http-tls-cert" --http-tls-key "$TMP/server.key"
cp "$TMP/admin.token" "$TMP/open.token"
chmod 644 "$TMP/open.token"
option_error "world-readable token file" "admin-token-file" --admin-token-file "$TMP/open.token"
printf 'short\n' >"$TMP/short.token"
chmod 600 "$TMP/short.token"
option_error "too short a token" "client-token-file" --client-token-file "$TMP/short.token"

# -- HTTPS and tokens ------------------------------------------------------------------------------

start_node tls --http-tls-cert "$TMP/server.pem" --http-tls-key "$TMP/server.key" \
  --admin-token-file "$TMP/admin.token" --client-token-file "$TMP/client.token" \
  --http-header-timeout-ms 2000
TLS="https://127.0.0.1:$PORT"
CA=(--cacert "$TMP/ca.pem")
AS_CLIENT=(-H "Authorization: Bearer $CLIENT")
AS_ADMIN=(-H "Authorization: Bearer $ADMIN")
wait_for_leader "$TLS" "${CA[@]}" "${AS_CLIENT[@]}"
FD_BASE=$(fd_count "$NODE_PID")

curl_status "$TLS/status" "${CA[@]}" "${AS_CLIENT[@]}"
check "HTTPS with a client token (certificate verified)" \
  "$([ "$STATUS" = 200 ] && [[ "$BODY" == *'"id":"tls"'* ]] && echo 0 || echo 1)" "$STATUS $BODY"
curl_status "$TLS/set" "${CA[@]}" "${AS_CLIENT[@]}" -d '{"key":"t","value":"secure","action":"set"}'
curl_status "$TLS/get?key=t" "${CA[@]}" "${AS_CLIENT[@]}"
check "write and read over HTTPS" "$([ "$STATUS" = 200 ] && [[ "$BODY" == *'"value":"secure"'* ]] && echo 0 || echo 1)" \
  "$STATUS $BODY"
curl_status "$TLS/status" "${CA[@]}"
check "no token: 401 with WWW-Authenticate: Bearer and JSON" \
  "$([ "$STATUS" = 401 ] && grep -qi '^WWW-Authenticate: Bearer' "$TMP/headers" && [[ "$BODY" == '{"error"'* ]] && echo 0 || echo 1)" \
  "$STATUS $BODY $HEADERS"
curl_status "$TLS/get?key=t" "${CA[@]}" -H "Authorization: Bearer ${CLIENT}x"
check "wrong token: 401" "$([ "$STATUS" = 401 ] && [[ "$BODY" != *secure* ]] && echo 0 || echo 1)" "$STATUS $BODY"
curl_status "$TLS/join?nodeid=n2&nodeaddr=127.0.0.1:2" -X POST "${CA[@]}" "${AS_CLIENT[@]}"
check "client token on POST /join: 403 with JSON" \
  "$([ "$STATUS" = 403 ] && [[ "$BODY" == '{"error"'* ]] && echo 0 || echo 1)" "$STATUS $BODY"
curl_status "$TLS/join?nodeid=n2&nodeaddr=127.0.0.1:2" -X POST "${CA[@]}"
check "no token on POST /join: 401" "$([ "$STATUS" = 401 ] && echo 0 || echo 1)" "$STATUS $BODY"
curl_status "$TLS/join?nodeid=n2&nodeaddr=127.0.0.1:2" -X POST "${CA[@]}" "${AS_ADMIN[@]}"
check "admin token on POST /join reaches the join (503: nobody runs n2)" \
  "$([ "$STATUS" = 503 ] && [[ "$BODY" == *'nothing was changed'* ]] && echo 0 || echo 1)" "$STATUS $BODY"
curl_status "$TLS/get?key=t" "${CA[@]}" "${AS_ADMIN[@]}"
check "admin token on a client endpoint: 200" "$([ "$STATUS" = 200 ] && echo 0 || echo 1)" "$STATUS $BODY"

curl_status "http://127.0.0.1:$PORT/status" "${AS_CLIENT[@]}"
check "plain HTTP on the HTTPS port: 400 naming HTTPS" \
  "$([ "$STATUS" = 400 ] && [[ "$BODY" == *HTTPS* ]] && echo 0 || echo 1)" "$STATUS $BODY"
openssl s_client -connect "127.0.0.1:$PORT" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' \
  </dev/null >"$TMP/tls11.log" 2>&1
# A handshake that failed prints "Cipher is (NONE)"; one that worked names its cipher.
check "TLS 1.1 refused" "$(grep -q 'Cipher is [A-Z0-9]' "$TMP/tls11.log" && echo 1 || echo 0)" \
  "$(grep -e 'Cipher is' -e 'Protocol' "$TMP/tls11.log")"
openssl s_client -connect "127.0.0.1:$PORT" -tls1_2 -CAfile "$TMP/ca.pem" \
  </dev/null >"$TMP/tls12.log" 2>&1
check "TLS 1.2 accepted" \
  "$(grep -q 'Cipher is [A-Z0-9]' "$TMP/tls12.log" && grep -q 'Protocol *: TLSv1.2' "$TMP/tls12.log" && echo 0 || echo 1)" \
  "$(grep -i -e protocol -e error "$TMP/tls12.log" | head -3)"
attack slow "$PORT" silent 8
check "TLS port: a client that never handshakes is closed at the 2 s deadline" \
  "$([ "${A_closed:-}" = 1 ] && within 1.5 4.5 "${A_seconds:-99}" && echo 0 || echo 1)" \
  "closed ${A_closed:-?} after ${A_seconds:-?} s"

wait_fds_back "$NODE_PID" "$FD_BASE"
check "TLS node: descriptors back to the baseline ($FD_BASE)" "$?" "$FDS open"
CW=$(close_wait_count "$PORT")
check "TLS node: no CLOSE-WAIT" "$([ "$CW" = 0 ] && echo 0 || echo 1)" "$CW sockets"
kill -TERM "$NODE_PID"
wait_exit "$NODE_PID" 10
check "TLS node: SIGTERM exits 0" "$RC" "exit $RC"

echo "took ${SECONDS} s"
if [ "$FAILURES" != 0 ]; then
  echo "$FAILURES check(s) failed; node logs:" >&2
  tail -n 20 "$TMP"/*.log >&2 2>/dev/null
  exit 1
fi
echo "all http limit checks passed"
