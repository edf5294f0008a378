#!/usr/bin/env bash
# End-to-end test of infinityctl against real infinitystore processes on 127.0.0.1:
#   1. a static 3-node cluster (--initial-cluster), own data dirs;
#   2. usage errors: exit 2, one line on stderr, nothing on stdout;
#   3. put/get/del round trips (spaces, quotes, newlines, unicode, stdin), exit 1 for a missing
#      key, exit 4 for what the server refuses (400, 413);
#   4. -o json output of every command parses;
#   5. status (all three nodes, exactly one leader) and members;
#   6. failover: a dead endpoint first, a follower alone (linearizable and stale reads), a
#      silent endpoint (--timeout), nothing listening at all (exit 3), a redirect to a real node
#      and a redirect loop (both from a small Python server);
#   7. transfer-leader to a named follower, then to the most up-to-date voter, and to a non-member
#      (refused);
#   8. https:// endpoints with --cacert and --token-file against a Python TLS server (trusted,
#      untrusted, wrong host name, missing token);
#   9. join of a 4th node started alone (the original flow), then served through it;
#  10. kill -9 of the leader: a get through the endpoint list still succeeds;
#  11. remove of the dead leader: three members remain and take writes.
#
# Usage: ctl_test.sh path/to/infinitystore path/to/infinityctl
# Needs curl, python3 and openssl. Only processes started here are killed, by PID. Prints one
# line per check and, last, "N passed, M failed"; exits non-zero if any check failed.
set -u

STORE=${1:?usage: ctl_test.sh path/to/infinitystore path/to/infinityctl}
CTL=${2:?usage: ctl_test.sh path/to/infinitystore path/to/infinityctl}
for tool in "$STORE" "$CTL"; do
  [ -x "$tool" ] || { echo "not executable: $tool" >&2; exit 2; }
done
for tool in curl python3 openssl; do
  command -v "$tool" >/dev/null || { echo "ctl_test.sh needs $tool" >&2; exit 2; }
done
TMP=$(mktemp -d /tmp/infinityctl-e2e.XXXXXX)
# Private copies: the build tree may be relinked while the test runs.
cp "$STORE" "$TMP/infinitystore" && cp "$CTL" "$TMP/infinityctl" \
  || { echo "cannot copy the binaries" >&2; rm -rf "$TMP"; exit 2; }
STORE="$TMP/infinitystore"
CTL="$TMP/infinityctl"
PIDS=()
PASSES=0
FAILURES=0

declare -A RP HP PID LOGF DIR

now_ms() { echo $(($(date +%s%N) / 1000000)); }
START_MS=$(now_ms)

cleanup() {
  # The group's stderr also takes bash's "Killed" job notices.
  {
    for pid in "${PIDS[@]}"; do
      kill -9 "$pid"
    done
    wait
  } 2>/dev/null
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

# check WHAT COMMAND...: passes if the command succeeds.
check() {
  local what=$1
  shift
  if "$@"; then
    pass "$what"
  else
    fail "$what"
    return 1
  fi
}

finish() {
  echo "total time $((($(now_ms) - START_MS) / 1000))s"
  if [ "$FAILURES" != 0 ]; then
    for name in n1 n2 n3 n4; do
      [ -s "${LOGF[$name]}" ] || continue
      echo "---- last 20 lines of $name's log ----"
      tail -n 20 "${LOGF[$name]}"
    done
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

# -- ports -------------------------------------------------------------------------------------------

NAMES=(n1 n2 n3 n4)
NPORTS=$((2 * ${#NAMES[@]} + 1)) # Raft and HTTP per node, and one that nothing listens on

# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

pick_ports() {
  local attempt base p ok
  for attempt in $(seq 1 50); do
    # Below the ephemeral range (32768+), so no outgoing connection takes one of ours meanwhile.
    base=$((20000 + (RANDOM % 600) * 20))
    ok=1
    for p in $(seq "$base" $((base + NPORTS - 1))); do
      port_free "$p" || { ok=0; break; }
    done
    if [ "$ok" = 1 ]; then
      local i=0 name
      for name in "${NAMES[@]}"; do
        RP[$name]=$((base + i))
        HP[$name]=$((base + i + 1))
        DIR[$name]="$TMP/data-$name"
        LOGF[$name]="$TMP/$name.log"
        i=$((i + 2))
      done
      DEAD_PORT=$((base + i))
      return 0
    fi
  done
  return 1
}

pick_ports || { echo "no free port range found" >&2; exit 1; }
ep() { echo "127.0.0.1:${HP[$1]}"; }
DEAD="127.0.0.1:$DEAD_PORT"

# -- running infinityctl -----------------------------------------------------------------------------

# ctl [--stdin FILE] ARGS...: runs infinityctl; sets RC, OUT, ERR and TOOK (ms). Its stdout is
# also kept byte for byte in $TMP/out.
ctl() {
  local input=/dev/null started
  if [ "${1:-}" = --stdin ]; then
    input=$2
    shift 2
  fi
  started=$(now_ms)
  "$CTL" "$@" <"$input" >"$TMP/out" 2>"$TMP/err"
  RC=$?
  TOOK=$(($(now_ms) - started))
  OUT=$(cat "$TMP/out")
  ERR=$(cat "$TMP/err")
}

# expect_rc WHAT CODE [STDOUT_REGEX [STDERR_SUBSTRING]]: checks the last ctl run.
expect_rc() {
  local what=$1 code=$2 pattern=${3:-} needle=${4:-}
  if [ "$RC" != "$code" ]; then
    fail "$what: exit $RC, expected $code; stdout: $OUT; stderr: $ERR"
    return 1
  fi
  if [ -n "$pattern" ] && ! grep -Eq -- "$pattern" <<<"$OUT"; then
    fail "$what: stdout does not match /$pattern/: $OUT"
    return 1
  fi
  if [ -n "$needle" ] && [[ "$ERR" != *"$needle"* ]]; then
    fail "$what: stderr lacks '$needle': $ERR"
    return 1
  fi
  pass "$what (exit $code)"
}

# out_is VALUE: stdout was exactly VALUE and one newline.
out_is() { printf '%s\n' "$1" | cmp -s - "$TMP/out"; }

# json_ok: stdout is one JSON document (python3 -m json.tool parses it).
json_ok() { python3 -m json.tool "$TMP/out" >/dev/null 2>&1; }

# expect_usage WHAT ARGS...: exit 2, one line on stderr naming the problem, nothing on stdout.
expect_usage() {
  local what=$1
  shift
  ctl "$@"
  if [ "$RC" = 2 ] && [ -z "$OUT" ] && [ "$(wc -l <"$TMP/err")" = 1 ] \
    && [[ "$ERR" == infinityctl:* ]]; then
    pass "usage error: $what (exit 2: $ERR)"
  else
    fail "usage error: $what: exit $RC, stdout '$OUT', stderr '$ERR'"
  fi
}

# -- processes ---------------------------------------------------------------------------------------

# start NAME [extra args...]: starts a node; waits until its /status answers (up to 20 s).
start() {
  local name=$1
  shift
  "$STORE" --node-id "$name" --raft-addr "127.0.0.1:${RP[$name]}" \
    --http-addr "127.0.0.1:${HP[$name]}" --data-dir "${DIR[$name]}" --log-level info "$@" \
    >>"${LOGF[$name]}" 2>&1 &
  PID[$name]=$!
  PIDS+=("$!")
  local deadline=$(($(now_ms) + 20000))
  while :; do
    kill -0 "${PID[$name]}" 2>/dev/null || { fail "start $name: the process exited"; return 1; }
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$(ep "$name")/status")" = 200 ] \
      && return 0
    [ "$(now_ms)" -ge "$deadline" ] && { fail "start $name: no /status within 20 s"; return 1; }
    sleep 0.1
  done
}

# find_leader SECONDS NAME...: polls /status (with curl, independent of infinityctl) until one
# node leads and every listed node names it. Sets LEADER.
find_leader() {
  local deadline=$(($(now_ms) + $1 * 1000)) name body candidate agreed
  shift
  LEADER=""
  while :; do
    candidate=""
    for name in "$@"; do
      body=$(curl -s --max-time 2 "http://$(ep "$name")/status")
      [[ "$body" == *'"role":"leader"'* ]] && candidate=$name
    done
    if [ -n "$candidate" ]; then
      agreed=1
      for name in "$@"; do
        body=$(curl -s --max-time 2 "http://$(ep "$name")/status")
        [[ "$body" == *"\"leader\":\"$candidate\""* ]] || agreed=0
      done
      [ "$agreed" = 1 ] && { LEADER=$candidate; return 0; }
    fi
    [ "$(now_ms)" -ge "$deadline" ] && return 1
    sleep 0.1
  done
}

# fake_server MODE ARGS...: starts tests' Python HTTP(S) server (see below) on a free port;
# sets FAKE_PORT.
fake_server() {
  local port_file="$TMP/fake.$RANDOM.port"
  python3 "$TMP/fake_server.py" "$port_file" "$@" 2>>"$TMP/fake.log" &
  PIDS+=("$!")
  local deadline=$(($(now_ms) + 10000))
  until [ -s "$port_file" ]; do
    [ "$(now_ms)" -ge "$deadline" ] && { FAKE_PORT=""; return 1; }
    sleep 0.05
  done
  FAKE_PORT=$(cat "$port_file")
}

cat >"$TMP/fake_server.py" <<'PYTHON'
# Servers infinityctl must cope with and infinitystore cannot (yet) play:
#   silent                 accepts connections, never answers
#   redirect BASE_URL      307 to BASE_URL + the request's path and query
#   loop                   307 to itself, forever
#   tls CERT KEY TOKEN     HTTPS; 401 without "Authorization: Bearer TOKEN"; GET /get?key=k
import http.server, json, os, socket, ssl, sys, time

port_file, mode, args = sys.argv[1], sys.argv[2], sys.argv[3:]

def announce(port):
    with open(port_file + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(port_file + ".tmp", port_file)

if mode == "silent":
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    announce(listener.getsockname()[1])
    while True:
        time.sleep(3600)

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if mode == "redirect":
            self.reply(307, {"error": "not the leader"}, [("Location", args[0] + self.path)])
        elif mode == "loop":
            self.reply(307, {"error": "loop"}, [("Location", self.path)])
        elif self.headers.get("Authorization") != "Bearer " + args[2]:
            self.reply(401, {"error": "missing or wrong token"})
        elif self.command == "GET" and self.path == "/get?key=k":
            self.reply(200, {"key": "k", "value": "over tls"})
        else:
            self.reply(404, {"error": "no such endpoint"})

    do_GET = serve
    do_POST = serve

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
if mode == "tls":
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args[0], args[1])
    server.socket = context.wrap_socket(server.socket, server_side=True)
announce(server.server_address[1])
server.serve_forever()
PYTHON

echo "binaries $STORE $CTL, ports ${RP[n1]}..$((RP[n1] + NPORTS - 1)), dir $TMP"

# == 1. a static 3-node cluster ======================================================================

echo "--- 1. static 3-node cluster"
CLUSTER="n1=127.0.0.1:${RP[n1]},n2=127.0.0.1:${RP[n2]},n3=127.0.0.1:${RP[n3]}"
for n in n1 n2 n3; do start "$n" --initial-cluster "$CLUSTER" || abort "cannot start $n"; done
find_leader 20 n1 n2 n3 || abort "no agreed leader among n1 n2 n3 within 20 s"
pass "the cluster elected $LEADER"
L=$LEADER
FOLLOWERS=()
for n in n1 n2 n3; do [ "$n" != "$L" ] && FOLLOWERS+=("$n"); done
F1=${FOLLOWERS[0]}
F2=${FOLLOWERS[1]}
ALL="$(ep n1),$(ep n2),$(ep n3)"
export INFINITYCTL_ENDPOINTS=$ALL

# == 2. usage errors =================================================================================

echo "--- 2. usage errors"
expect_usage "no command"
expect_usage "unknown command" frob
expect_usage "unknown option" --frob status
expect_usage "get without a key" get
expect_usage "get with two keys" get a b
expect_usage "put without a value" put k
expect_usage "empty key" get ""
expect_usage "bad endpoint" --endpoints localhost get k
expect_usage "empty endpoint entry" --endpoints "$(ep n1)," get k
expect_usage "bad --output" -o yaml status
expect_usage "bad --timeout" --timeout 0s get k
expect_usage "option without its value" get k --timeout
expect_usage "--consistency on put" --consistency stale put k v
expect_usage "bad node id for join" join "bad/id" 127.0.0.1:1
expect_usage "bad address for join" join n9 nowhere
expect_usage "unreadable --token-file" --token-file "$TMP/no-such-file" get k
expect_usage "unreadable --cacert" --cacert "$TMP/no-such-file" get k
echo "not a certificate" >"$TMP/not-pem"
expect_usage "a --cacert that holds no certificate" --cacert "$TMP/not-pem" get k
INFINITYCTL_ENDPOINTS="not-an-endpoint" expect_usage "bad INFINITYCTL_ENDPOINTS" get k
ctl --help
expect_rc "--help" 0 "Exit status" && check "--help documents exit status 4" grep -q "4  refused" "$TMP/out"
ctl put --help
expect_rc "put --help" 0 "infinityctl \[options\] put KEY VALUE"
ctl help transfer-leader
expect_rc "help transfer-leader" 0 "transfer-leader \[ID\]"
ctl --version
expect_rc "--version" 0 "^infinityctl [0-9]+\.[0-9]+\.[0-9]+$"

# == 3. round trips ==================================================================================

echo "--- 3. put / get / del"
ctl put greeting "hello world"
expect_rc "put a value with a space" 0 '^OK \(index [0-9]+\)$'
ctl get greeting
expect_rc "get it back" 0 && check "the value is printed bare, newline-terminated" out_is "hello world"
check "\$(infinityctl get) captures the value" test "$("$CTL" get greeting)" = "hello world"

TRICKY=$'two lines\n"quoted" \\back\\slash\ttab'
ctl put "key with spaces/and?query&chars=" "$TRICKY"
expect_rc "put quotes, backslashes, a tab and a newline under an odd key" 0 '^OK'
ctl get "key with spaces/and?query&chars="
expect_rc "get the odd key" 0 && check "the tricky value comes back exactly" out_is "$TRICKY"

UNI_KEY="ключ-ü-🔑"
UNI_VALUE="grüße, 世界 👋"
ctl put "$UNI_KEY" "$UNI_VALUE"
expect_rc "put a unicode key and value" 0 '^OK'
ctl get "$UNI_KEY"
expect_rc "get the unicode key" 0 && check "the unicode value comes back exactly" out_is "$UNI_VALUE"

printf 'from stdin\nsecond line\n' >"$TMP/value.txt"
ctl --stdin "$TMP/value.txt" put from-stdin -
expect_rc "put KEY - reads the value from stdin" 0 '^OK'
ctl -o json get from-stdin
if [ "$RC" = 0 ] && python3 -c 'import json, sys
sys.exit(json.load(open(sys.argv[1]))["value"] != open(sys.argv[2]).read())' "$TMP/out" "$TMP/value.txt"; then
  pass "the value from stdin is stored exactly, trailing newline included"
else
  fail "the value from stdin: exit $RC, got $OUT"
fi
: >"$TMP/empty.txt"
ctl --stdin "$TMP/empty.txt" put empty -
expect_rc "put an empty value from stdin" 0 '^OK'
ctl get empty
expect_rc "get the empty value" 0 && check "an empty value prints one newline" out_is ""

ctl del greeting
expect_rc "del" 0 '^OK \(index [0-9]+\)$'
ctl get greeting
expect_rc "get of a deleted key" 1 "" "not found"
check "nothing on stdout for a missing key" test ! -s "$TMP/out"
ctl del never-existed
expect_rc "del of a key that never existed" 0 '^OK'

ctl put "$(head -c 2000 /dev/zero | tr '\0' k)" v
expect_rc "a 2000-byte key is refused by the server" 4 "" "(400)"
check "the refusal carries the server's message" grep -q "longer than 1024" "$TMP/err"
head -c 600000 /dev/zero | tr '\0' v >"$TMP/big.txt"
ctl --stdin "$TMP/big.txt" put big -
expect_rc "a 600 KB value is refused by the server" 4 "" "(413)"

# == 4. JSON output ==================================================================================

echo "--- 4. -o json"
ctl -o json put j1 "json value"
expect_rc "-o json put" 0 && check "-o json put prints JSON" json_ok
check "-o json put is the server's reply" grep -q '"action":"set"' "$TMP/out"
ctl -o json get j1
expect_rc "-o json get" 0 && check "-o json get prints JSON" json_ok
check "-o json get has the value" grep -q '"value":"json value"' "$TMP/out"
ctl -o json del j1
expect_rc "-o json del" 0 && check "-o json del prints JSON" json_ok
ctl -o json status
expect_rc "-o json status" 0 && check "-o json status prints JSON" json_ok
check "-o json status has the three endpoints" test "$(grep -o '"endpoint":' "$TMP/out" | wc -l)" = 3
ctl -o json members
expect_rc "-o json members" 0 && check "-o json members prints JSON" json_ok

# == 5. status and members ===========================================================================

echo "--- 5. status, members"
ctl status
expect_rc "status" 0 "^ENDPOINT +ID +ROLE +TERM +LEADER +COMMIT +APPLIED +LAST INDEX$"
check "status has a row per node" test "$(wc -l <"$TMP/out")" = 4
for n in n1 n2 n3; do
  check "status lists $n at $(ep "$n")" grep -Eq "^$(ep "$n") +$n " "$TMP/out"
done
check "status shows exactly one leader" test "$(awk 'NR > 1 && $3 == "leader"' "$TMP/out" | wc -l)" = 1
check "every node names the same leader $L" \
  test "$(awk 'NR > 1 {print $5}' "$TMP/out" | sort -u)" = "$L"
ctl members
expect_rc "members" 0 "^ID +RAFT ADDRESS +ROLE +LEADER$"
check "members lists n1, n2, n3" test "$(awk 'NR > 1 {print $1}' "$TMP/out" | sort | tr '\n' ' ')" = "n1 n2 n3 "
check "members marks $L as the leader, a voter, with its Raft address" \
  grep -Eq "^$L +127.0.0.1:${RP[$L]} +voter +true$" "$TMP/out"

# == 6. failover, timeouts, redirects ================================================================

echo "--- 6. failover"
ctl --endpoints "$DEAD,$(ep "$F1")" put failover yes
expect_rc "put with a dead endpoint first fails over" 0 '^OK'
ctl --endpoints "$DEAD,$(ep "$F2")" get failover
expect_rc "get with a dead endpoint first fails over" 0 && check "and reads the value" out_is yes
ctl --endpoints "$(ep "$F1")" put via-follower f1
expect_rc "put through follower $F1 alone" 0 '^OK'
ctl --endpoints "$(ep "$F2")" get via-follower
expect_rc "linearizable get through follower $F2 alone" 0 && check "sees the write" out_is f1
STALE_OK=0
for _ in $(seq 1 50); do
  ctl --endpoints "$(ep "$F2")" get --consistency stale via-follower
  [ "$RC" = 0 ] && out_is f1 && { STALE_OK=1; break; }
  sleep 0.1
done
check "stale get through follower $F2 returns the value once applied" test "$STALE_OK" = 1
ctl --endpoints "$DEAD" get failover
expect_rc "nothing listening: unavailable" 3 "" "cannot connect"
check "nothing listening fails fast (${TOOK} ms)" test "$TOOK" -lt 3000

if fake_server silent; then
  SILENT="127.0.0.1:$FAKE_PORT"
  ctl --timeout 500ms --endpoints "$SILENT,$(ep "$F1")" get failover
  expect_rc "a silent endpoint is left after --timeout" 0 && check "and the next one answers" out_is yes
  check "the failover took about --timeout (${TOOK} ms)" test "$TOOK" -lt 3000
  ctl --timeout 300ms --command-timeout 1500ms --endpoints "$SILENT" get failover
  expect_rc "only a silent endpoint: unavailable" 3 "" "no answer within --timeout"
  check "--command-timeout bounds the whole command (${TOOK} ms)" test "$TOOK" -lt 3000
else
  fail "cannot start the silent server: $(tail -n 3 "$TMP/fake.log")"
fi

if fake_server redirect "http://$(ep "$F1")"; then
  ctl --endpoints "127.0.0.1:$FAKE_PORT" get failover
  expect_rc "a 307 to a real node is followed" 0 && check "and the value read there" out_is yes
  ctl --endpoints "127.0.0.1:$FAKE_PORT" put redirected r1
  expect_rc "a redirected put keeps its method and body" 0 '^OK'
  ctl get redirected
  expect_rc "the redirected put was applied" 0 && check "with its value" out_is r1
else
  fail "cannot start the redirecting server: $(tail -n 3 "$TMP/fake.log")"
fi
if fake_server loop; then
  ctl --endpoints "127.0.0.1:$FAKE_PORT" get failover
  expect_rc "a redirect loop is given up" 3 "" "more than 3 redirects"
  ctl --endpoints "127.0.0.1:$FAKE_PORT,$(ep "$F2")" get failover
  expect_rc "after a redirect loop the next endpoint answers" 0 && check "with the value" out_is yes
else
  fail "cannot start the looping server: $(tail -n 3 "$TMP/fake.log")"
fi

# == 7. leadership transfer ========================================================================

echo "--- 7. transfer-leader"
ctl --command-timeout 10s transfer-leader "$F1"
expect_rc "transfer-leader $F1" 0 '^OK'
find_leader 10 n1 n2 n3 || fail "no agreed leader after the transfer"
check "$F1 leads after transfer-leader $F1" test "$LEADER" = "$F1"
ctl --command-timeout 10s transfer-leader
expect_rc "transfer-leader to the most up-to-date voter" 0 '^OK'
find_leader 10 n1 n2 n3 || fail "no agreed leader after the second transfer"
check "leadership moved away from $F1" test "$LEADER" != "$F1"
ctl transfer-leader nobody
check "transfer-leader to a non-member is refused (exit $RC: $(head -c 200 "$TMP/err"))" test "$RC" != 0
ctl put after-transfer yes
expect_rc "writes go on after the transfers" 0 '^OK'
ctl members
check "nothing else changed: still three members" test "$(awk 'NR > 1' "$TMP/out" | wc -l)" = 3

# == 8. TLS and tokens ===============================================================================

echo "--- 8. https:// endpoints, --cacert, --token-file"
make_cert() { # make_cert NAME SUBJECT_ALT_NAME
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=infinityctl-test" -addext "subjectAltName=$2" \
    -keyout "$TMP/$1.key" -out "$TMP/$1.pem" >/dev/null 2>&1
}
echo "s3cret-token" >"$TMP/token"
echo "wrong-token" >"$TMP/wrong-token"
if make_cert server IP:127.0.0.1 && make_cert other IP:127.0.0.1 \
  && fake_server tls "$TMP/server.pem" "$TMP/server.key" s3cret-token; then
  TLS_EP="https://127.0.0.1:$FAKE_PORT"
  ctl --endpoints "$TLS_EP" --cacert "$TMP/server.pem" --token-file "$TMP/token" get k
  expect_rc "https with a trusted certificate and the token" 0 && check "reads over TLS" out_is "over tls"
  ctl --endpoints "$TLS_EP" --cacert "$TMP/server.pem" get k
  expect_rc "https without the token is refused" 4 "" "missing or wrong token"
  ctl --endpoints "$TLS_EP" --cacert "$TMP/server.pem" --token-file "$TMP/wrong-token" get k
  expect_rc "https with a wrong token is refused" 4 "" "(401)"
  ctl --endpoints "$TLS_EP" --cacert "$TMP/other.pem" --token-file "$TMP/token" get k
  expect_rc "a certificate from another CA is rejected" 3 "" "certificate verify failed"
  ctl --endpoints "$TLS_EP" --token-file "$TMP/token" get k
  expect_rc "a self-signed certificate is not in the system's store" 3 "" "TLS handshake failed"
  ctl --endpoints "https://localhost:$FAKE_PORT" --cacert "$TMP/server.pem" --token-file "$TMP/token" get k
  expect_rc "a certificate for 127.0.0.1 does not pass for localhost" 3 "" "hostname mismatch"
  ctl --endpoints "127.0.0.1:$FAKE_PORT,$(ep "$F1")" --command-timeout 3s get failover
  expect_rc "plain HTTP to a TLS port fails over to the next endpoint" 0 && check "which answers" out_is yes
else
  fail "cannot set up the TLS server: $(tail -n 3 "$TMP/fake.log")"
fi

# == 9. join =========================================================================================

echo "--- 9. join of a 4th node started alone"
start n4 || abort "cannot start n4"
ctl --command-timeout 30s join n4 "127.0.0.1:${RP[n4]}"
expect_rc "join n4 through the cluster's endpoints" 0 '^OK \(index [0-9]+\)$'
ctl join n4 "127.0.0.1:${RP[n4]}"
expect_rc "joining twice is harmless" 0 '^OK'
JOINED=0
for _ in $(seq 1 100); do
  ctl --endpoints "$(ep n4)" members
  [ "$RC" = 0 ] && [ "$(awk 'NR > 1 {print $1}' "$TMP/out" | sort | tr '\n' ' ')" = "n1 n2 n3 n4 " ] \
    && { JOINED=1; break; }
  sleep 0.2
done
check "n4 lists four members" test "$JOINED" = 1 || echo "  members: $OUT $ERR"
ctl --endpoints "$(ep n4)" get via-follower
expect_rc "a linearizable get through n4" 0 && check "returns the cluster's value" out_is f1
ctl --endpoints "$ALL,$(ep n4)" status
expect_rc "status of four nodes" 0
check "status shows exactly one leader among four" \
  test "$(awk 'NR > 1 && $3 == "leader"' "$TMP/out" | wc -l)" = 1

# == 10. kill -9 of the leader =======================================================================

echo "--- 10. kill -9 of the leader"
find_leader 10 n1 n2 n3 n4 || fail "no agreed leader before the kill"
L=$LEADER
ctl put before-kill survived
expect_rc "put before the kill" 0 '^OK'
kill -9 "${PID[$L]}"
wait "${PID[$L]}" 2>/dev/null
echo "killed the leader $L"
# The leader first in the list: infinityctl must skip it and wait out the election.
REST=""
for n in n1 n2 n3 n4; do [ "$n" != "$L" ] && REST="$REST,$(ep "$n")"; done
ctl --endpoints "$(ep "$L")$REST" --command-timeout 20s get before-kill
expect_rc "get through the endpoint list after the leader died (${TOOK} ms)" 0 \
  && check "returns the value written before the kill" out_is survived
ctl --endpoints "$(ep "$L")$REST" --command-timeout 20s put after-kill yes
expect_rc "put after the failover" 0 '^OK'
ctl --endpoints "$(ep "$L")$REST" status
expect_rc "status with the old leader down" 3 "" "cannot connect"
check "status still lists the three live nodes" test "$(awk 'NR > 1' "$TMP/out" | wc -l)" = 3
check "with exactly one leader" test "$(awk 'NR > 1 && $3 == "leader"' "$TMP/out" | wc -l)" = 1

# == 11. remove the dead node ========================================================================

echo "--- 11. remove the killed leader $L"
ctl --endpoints "${REST#,}" --command-timeout 20s remove "$L"
expect_rc "remove $L" 0 '^OK'
GONE=0
for _ in $(seq 1 50); do
  ctl --endpoints "${REST#,}" members
  [ "$RC" = 0 ] && ! grep -Eq "^$L " "$TMP/out" && [ "$(awk 'NR > 1' "$TMP/out" | wc -l)" = 3 ] \
    && { GONE=1; break; }
  sleep 0.2
done
check "three members remain, without $L" test "$GONE" = 1 || echo "  members: $OUT $ERR"
ctl --endpoints "${REST#,}" --command-timeout 20s put after-remove yes
expect_rc "writes go on with three members" 0 '^OK'

finish
