#!/usr/bin/env bash
# End-to-end test of the Raft port's security on real processes (127.0.0.1 only):
#   1. a 3-node cluster with mutual TLS on the Raft port serves writes and reads;
#   2. a peer without a certificate, or with one from another CA, cannot connect; a member's
#      certificate connects (control); a server presenting a certificate for another id than
#      the one dialled is refused;
#   3. a BASP header claiming ~4 GiB is refused without allocating (leader RSS before/after),
#      whether sent in plain TCP or by a peer with a valid certificate; a connection that never
#      completes its handshake is closed within the bound;
#   4. an RPC whose `from` is not the member its certificate names is dropped (the leader's
#      term does not jump); local-only messages (peer down, ticks, proposals) sent by a remote
#      member are ignored and an anonymous message closes its connection;
#   5. kill -9 of the leader: a new leader serves writes, the old one restarts and catches up;
#      a fourth node joins with --join and catches up over TLS;
#   6. without certificates a non-loopback Raft address is refused unless --raft-insecure, and
#      on loopback the same frame checks run in plain TCP (4 GiB header, anonymous message);
#   7. SIGTERM: every node exits 0 within 5 s.
#
# Usage: raft_tls_test.sh path/to/infinitystore path/to/raft_peer_probe path/to/make-raft-certs.sh
# Only processes started here are killed, by PID; every wait is a polling loop with a deadline.
set -u

BIN=${1:?usage: raft_tls_test.sh infinitystore raft_peer_probe make-raft-certs.sh}
PROBE=${2:?}
MKCERTS=${3:?}
TMP=$(mktemp -d /tmp/infinitystore-raft-tls.XXXXXX)
cp "$BIN" "$TMP/infinitystore" && cp "$PROBE" "$TMP/probe" || { echo "cannot copy binaries" >&2; exit 2; }
BIN="$TMP/infinitystore"
PROBE="$TMP/probe"
PIDS=()
PASSES=0
FAILURES=0
declare -A RP HP PID LOGF

now_ms() { echo $(($(date +%s%N) / 1000000)); }

cleanup() {
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; done
  wait 2>/dev/null
  [ -n "${KEEP_TMP:-}" ] && { echo "kept $TMP" >&2; return; }
  rm -rf "$TMP"
}
trap cleanup EXIT

pass() { PASSES=$((PASSES + 1)); echo "ok: $*"; }
fail() { FAILURES=$((FAILURES + 1)); echo "FAIL: $*"; }

finish() {
  if [ "$FAILURES" != 0 ]; then
    for n in node1 node2 node3 node4; do
      [ -s "${LOGF[$n]:-/nonexistent}" ] || continue
      echo "---- last 30 lines of $n ----"
      tail -n 30 "${LOGF[$n]}"
    done
  fi
  echo "$PASSES passed, $FAILURES failed"
  [ "$FAILURES" = 0 ]
  exit
}

abort() { fail "$*"; finish; }

# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

pick_ports() {
  local attempt base p ok i
  for attempt in $(seq 1 50); do
    base=$((20000 + (RANDOM % 600) * 20))
    ok=1
    for p in $(seq "$base" $((base + 9))); do port_free "$p" || { ok=0; break; }; done
    [ "$ok" = 1 ] || continue
    for i in 1 2 3 4; do
      RP[node$i]=$((base + 2 * i - 2))
      HP[node$i]=$((base + 2 * i - 1))
      LOGF[node$i]="$TMP/node$i.log"
    done
    SPARE=$((base + 8))
    return 0
  done
  return 1
}
pick_ports || { echo "no free port range" >&2; exit 1; }

# -- certificates: the cluster's CA, and an unrelated CA with a "node1" certificate
bash "$MKCERTS" "$TMP/certs" node1 node2 node3 node4 || abort "make-raft-certs.sh failed"
bash "$MKCERTS" "$TMP/other" node1 || abort "make-raft-certs.sh (other CA) failed"
C="$TMP/certs"
IC="node1=127.0.0.1:${RP[node1]},node2=127.0.0.1:${RP[node2]},node3=127.0.0.1:${RP[node3]}"

start_node() {
  local n=$1
  "$BIN" --node-id "$n" --raft-addr "127.0.0.1:${RP[$n]}" --http-addr "127.0.0.1:${HP[$n]}" \
    --data-dir "$TMP/data-$n" --initial-cluster "$IC" --raft-tls-cert "$C/$n.pem" \
    --raft-tls-key "$C/$n.key" --raft-tls-ca "$C/ca.pem" >>"${LOGF[$n]}" 2>&1 &
  PID[$n]=$!
  PIDS+=($!)
}

status() { curl -s --max-time 3 "http://127.0.0.1:${HP[$1]}/status"; }
jstr() { sed -n "s/.*\"$2\":\"\\([^\"]*\\)\".*/\\1/p" <<<"$1"; }
jnum() { sed -n "s/.*\"$2\":\\([0-9]*\\).*/\\1/p" <<<"$1"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# wait_leader SECONDS [EXCLUDED]: sets LEADER and TERM once a live node reports itself leader.
wait_leader() {
  local deadline=$(($(now_ms) + $1 * 1000)) n s
  LEADER=""
  while [ "$(now_ms)" -lt "$deadline" ]; do
    for n in node1 node2 node3; do
      [ "$n" = "${2:-}" ] && continue
      s=$(status "$n")
      if [ "$(jstr "$s" role)" = leader ]; then
        LEADER=$n
        TERM=$(jnum "$s" term)
        CLUSTER=$(jstr "$s" cluster_id)
        return 0
      fi
    done
    sleep 0.2
  done
  return 1
}

put() {
  curl -s --max-time 5 -o /dev/null -w '%{http_code}' -XPOST "http://127.0.0.1:${HP[$1]}/set" \
    -d "{\"key\":\"$2\",\"value\":\"$3\",\"action\":\"set\"}"
}

# -- 1. the cluster
for n in node1 node2 node3; do start_node "$n"; done
wait_leader 20 || abort "no leader within 20 s with TLS on"
pass "3 nodes with mutual TLS elected $LEADER in term $TERM"
grep -q "raft port: mutual TLS" "${LOGF[node1]}" && pass "node1 reports mutual TLS" ||
  fail "node1 does not report mutual TLS"
code=$(put "$LEADER" k1 v1)
[ "$code" = 200 ] && pass "write through the leader (200)" || fail "write: $code"
FOLLOWERS=()
for n in node1 node2 node3; do [ "$n" != "$LEADER" ] && FOLLOWERS+=("$n"); done
F1=${FOLLOWERS[0]}
F2=${FOLLOWERS[1]}
body=$(curl -s --max-time 5 "http://127.0.0.1:${HP[$F1]}/get?key=k1")
[[ $body == *'"value":"v1"'* ]] && pass "linearizable read through follower $F1" ||
  fail "read through $F1: $body"

# -- 2. who may connect
LP=${RP[$LEADER]}
out=$("$PROBE" connect "127.0.0.1:$LP" "$LEADER" 2>&1)
[ $? = 1 ] && pass "a peer without a certificate is refused" || fail "no certificate: $out"
out=$("$PROBE" --cert "$TMP/other/node1.pem" --key "$TMP/other/node1.key" --ca "$C/ca.pem" \
  connect "127.0.0.1:$LP" "$LEADER" 2>&1)
[ $? = 1 ] && pass "a certificate of another CA is refused" || fail "other CA: $out"
out=$("$PROBE" --cert "$C/$F1.pem" --key "$C/$F1.key" --ca "$C/ca.pem" \
  connect "127.0.0.1:$LP" "$LEADER" 2>&1)
[ $? = 0 ] && pass "a member's certificate connects (control)" || fail "member cert: $out"
out=$("$PROBE" --cert "$C/$F1.pem" --key "$C/$F1.key" --ca "$C/ca.pem" \
  connect "127.0.0.1:$LP" "$F2" 2>&1)
if [ $? = 1 ] && [[ $out == *"presented a certificate for '$LEADER', expected '$F2'"* ]]; then
  pass "a server whose certificate names $LEADER is refused when dialled as $F2"
else
  fail "certificate for another id: $out"
fi
grep -q "TLS handshake failed" "${LOGF[$LEADER]}" && pass "the leader logged the failed handshakes" ||
  fail "no failed handshake in the leader's log"

# -- 3. oversized header, idle handshake
LPID=${PID[$LEADER]}
before=$(rss_kb "$LPID")
python3 - "$LP" <<'EOF'
import socket, struct, sys
port = int(sys.argv[1])
# client_handshake header announcing 0xfffffff0 payload bytes, in plain TCP, 5 times (the
# node logs at most 20 refusals per 10 s, and the checks below look for theirs)
for _ in range(5):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(struct.pack(">BBBBIQQQ", 1, 0, 0, 0, 0xFFFFFFF0, 0, 0, 0))
    s.settimeout(5)
    try:
        s.recv(64)
    except OSError:
        pass
    s.close()
EOF
# The same header from a peer with a valid certificate, after the TLS handshake.
(printf '\001\000\000\000\377\377\377\360'; head -c 24 /dev/zero; sleep 1) |
  timeout 10 openssl s_client -connect "127.0.0.1:$LP" -cert "$C/$F1.pem" -key "$C/$F1.key" \
    -CAfile "$C/ca.pem" -quiet >/dev/null 2>&1
sleep 0.5
after=$(rss_kb "$LPID")
echo "leader RSS before/after the oversized headers: ${before} kB / ${after} kB"
[ $((after - before)) -lt 8192 ] && pass "oversized headers cost no allocation (RSS +$((after - before)) kB)" ||
  fail "RSS grew by $((after - before)) kB"
grep -q "header announces a payload of 4294967280 bytes" "${LOGF[$LEADER]}" &&
  pass "the authenticated peer's 4 GiB header was refused before decoding" ||
  fail "no refusal of the 4 GiB header in the log"
t0=$(now_ms)
python3 - "$LP" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(15)
try:
    s.recv(10)
except OSError:
    pass
EOF
waited=$(($(now_ms) - t0))
[ "$waited" -ge 2500 ] && [ "$waited" -lt 6000 ] &&
  pass "a silent connection is closed after ${waited} ms (bound 3000 ms)" ||
  fail "silent connection closed after ${waited} ms"

# -- 4. forged `from`, local-only messages
out=$("$PROBE" --cert "$C/$F1.pem" --key "$C/$F1.key" --ca "$C/ca.pem" \
  forge "127.0.0.1:$LP" "$LEADER" "$F2" "$CLUSTER" 1000000 2>&1)
[ $? = 0 ] || fail "forge probe: $out"
sleep 1
s=$(status "$LEADER")
t=$(jnum "$s" term)
[ -n "$t" ] && [ "$t" -lt 1000000 ] && pass "RPCs from $F1's connection claiming to be $F2 were dropped (term $t)" ||
  fail "term after forged RPCs: $t"
grep -q "dropped an RPC claiming to be from '$F2' on a connection authenticated as '$F1'" \
  "${LOGF[$LEADER]}" && pass "the leader logged the forged from" || fail "no log of the forged from"
out=$("$PROBE" --cert "$C/$F1.pem" --key "$C/$F1.key" --ca "$C/ca.pem" \
  seams "127.0.0.1:$LP" "$LEADER" 3 "$F1" "$F2" 2>&1)
[ $? = 0 ] || fail "seams probe: $out"
sleep 1
s=$(status "$LEADER")
if [ "$(jstr "$s" role)" = leader ] && [ "$(jnum "$s" term)" = "$TERM" ] &&
  [[ $s != *'"connected":false'* ]]; then
  pass "3 s of remote peer-down/tick/propose messages changed nothing (still leader in term $TERM)"
else
  fail "after remote local-only messages: $s"
fi
grep -q "refused: anonymous message" "${LOGF[$LEADER]}" &&
  pass "an anonymous message closed its connection" || fail "anonymous message not refused"
code=$(put "$LEADER" k2 v2)
[ "$code" = 200 ] && pass "writes still served after the attacks" || fail "write after attacks: $code"

# -- 5. kill -9 of the leader
OLD=$LEADER
kill -9 "${PID[$OLD]}"
wait "${PID[$OLD]}" 2>/dev/null
wait_leader 20 "$OLD" || abort "no new leader within 20 s after kill -9 of $OLD"
pass "new leader $LEADER in term $TERM after kill -9 of $OLD"
code=000
deadline=$(($(now_ms) + 10000))
while [ "$code" != 200 ] && [ "$(now_ms)" -lt "$deadline" ]; do
  code=$(put "$LEADER" k3 v3)
  [ "$code" = 200 ] || sleep 0.2
done
[ "$code" = 200 ] && pass "write after failover (200)" || fail "write after failover: $code"
start_node "$OLD"
deadline=$(($(now_ms) + 20000))
body=""
while [ "$(now_ms)" -lt "$deadline" ]; do
  body=$(curl -s --max-time 3 "http://127.0.0.1:${HP[$OLD]}/get?key=k3&consistency=stale")
  [[ $body == *'"value":"v3"'* ]] && break
  sleep 0.2
done
[[ $body == *'"value":"v3"'* ]] && pass "restarted $OLD caught up over TLS" || fail "$OLD did not catch up: $body"

# -- a fourth node joins over TLS (the leader dials it before it knows any member)
"$BIN" --node-id node4 --raft-addr "127.0.0.1:${RP[node4]}" --http-addr "127.0.0.1:${HP[node4]}" \
  --data-dir "$TMP/data-node4" --join "127.0.0.1:${HP[$LEADER]}" --raft-tls-cert "$C/node4.pem" \
  --raft-tls-key "$C/node4.key" --raft-tls-ca "$C/ca.pem" >>"${LOGF[node4]}" 2>&1 &
PID[node4]=$!
PIDS+=($!)
deadline=$(($(now_ms) + 30000))
body=""
while [ "$(now_ms)" -lt "$deadline" ]; do
  body=$(curl -s --max-time 3 "http://127.0.0.1:${HP[node4]}/get?key=k3&consistency=stale")
  [[ $body == *'"value":"v3"'* ]] && break
  sleep 0.3
done
[[ $body == *'"value":"v3"'* ]] && pass "node4 joined over TLS and caught up" ||
  fail "node4 did not join over TLS: $body"

# -- 6. no certificates: loopback only unless --raft-insecure
out=$("$BIN" --node-id x --raft-addr "0.0.0.0:$SPARE" --http-addr "127.0.0.1:0" \
  --data-dir "$TMP/data-x" 2>&1)
[ $? = 2 ] && [[ $out == *"is not a loopback address"* ]] &&
  pass "no certificates and a non-loopback --raft-addr: refused to start" || fail "insecure start: $out"

# -- the loopback default without certificates runs the same frame checks, in plain TCP
"$BIN" --node-id solo --raft-addr "127.0.0.1:$SPARE" --http-addr "127.0.0.1:0" \
  --data-dir "$TMP/data-solo" >"$TMP/solo.log" 2>&1 &
SOLO=$!
PIDS+=($!)
deadline=$(($(now_ms) + 10000))
until grep -q "ready: http" "$TMP/solo.log" || [ "$(now_ms)" -ge "$deadline" ]; do sleep 0.1; done
grep -q "raft port: plain TCP, NOT authenticated" "$TMP/solo.log" &&
  pass "without certificates the node warns that its loopback Raft port is unauthenticated" ||
  fail "no plain-TCP warning"
before=$(rss_kb "$SOLO")
python3 - "$SPARE" <<'EOF2'
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(struct.pack(">BBBBIQQQ", 1, 0, 0, 0, 0xFFFFFFF0, 0, 0, 0))
s.settimeout(5)
try:
    s.recv(64)
except OSError:
    pass
EOF2
"$PROBE" seams "127.0.0.1:$SPARE" solo 1 solo >/dev/null 2>&1
sleep 0.3
after=$(rss_kb "$SOLO")
grep -q "refused: header announces a payload of 4294967280 bytes" "$TMP/solo.log" &&
  [ $((after - before)) -lt 8192 ] &&
  pass "plain TCP: the 4 GiB header refused before decoding (RSS ${before} -> ${after} kB)" ||
  fail "plain TCP: 4 GiB header (RSS ${before} -> ${after} kB): $(grep 'raft transport' "$TMP/solo.log")"
grep -q "refused: anonymous message" "$TMP/solo.log" &&
  pass "plain TCP: an anonymous message closed its connection" ||
  fail "plain TCP: anonymous message not refused"
kill -TERM "$SOLO"
wait "$SOLO" 2>/dev/null

# -- SIGTERM: every node stops its transport and exits 0 within 5 s
t0=$(now_ms)
for n in node1 node2 node3 node4; do kill -TERM "${PID[$n]}" 2>/dev/null; done
codes=""
for n in node1 node2 node3 node4; do
  wait "${PID[$n]}" 2>/dev/null
  codes="$codes $?"
done
took=$(($(now_ms) - t0))
[ "$codes" = " 0 0 0 0" ] && [ "$took" -lt 5000 ] &&
  pass "SIGTERM: all four nodes exited 0 in ${took} ms" || fail "SIGTERM: exit codes$codes in ${took} ms"
PIDS=()
finish
