#!/usr/bin/env bash
# End-to-end test of infinitystore clusters of real processes on 127.0.0.1:
#   1. the original README flow (nodes started alone, then POST /join on node 1);
#   2. a static 3-node cluster (--initial-cluster): forwarding, redirects, deletes;
#   3. kill -9 of the leader under a stream of writes: failover, no acknowledged write lost,
#      the old leader restarted on its ports and data dir catches up;
#   4. kill -9 of every node and restart: every acknowledged write still there;
#   5. a 4th node joining with --join through a member's HTTP address;
#   6. a lone node holding writes of its own: POST /join answers 409, nothing lost on either side;
#   7. bad requests against a follower while the cluster serves;
#   8. SIGTERM: every node exits 0 within 5 s.
#
# Usage: cluster_test.sh path/to/infinitystore
# Only 127.0.0.1, ports checked free before use; every wait is a polling loop with a deadline;
# only processes started here are killed, by PID. Prints one line per check and, last,
# "N passed, M failed"; exits non-zero if any check failed (with the tails of the node logs).
set -u

BIN=${1:?usage: cluster_test.sh path/to/infinitystore}
[ -x "$BIN" ] || { echo "not executable: $BIN" >&2; exit 2; }
TMP=$(mktemp -d /tmp/infinitystore-cluster.XXXXXX)
# A private copy: every node of the run uses the same executable even if the build tree is
# relinked meanwhile.
cp "$BIN" "$TMP/infinitystore" || { echo "cannot copy $BIN" >&2; rm -rf "$TMP"; exit 2; }
BIN_NAME=$BIN
BIN="$TMP/infinitystore"
PIDS=()
PASSES=0
FAILURES=0
START_MS=0

declare -A RP HP PID LOGF DIR
# Every acknowledged write of the static cluster: key -> value, or DELETED.
declare -A EXPECT
LAST_KEY=""
DELETED="<deleted>"

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

# check WHAT COMMAND...: passes if the command succeeds; returns its outcome.
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

elapsed() { echo "$(( ($(now_ms) - START_MS) / 1000 ))s"; }

dump_logs() {
  local name
  for name in "${NAMES[@]}"; do
    [ -s "${LOGF[$name]}" ] || continue
    echo "---- last 40 lines of $name's log (${LOGF[$name]}) ----"
    tail -n 40 "${LOGF[$name]}" 2>/dev/null
  done
}

finish() {
  echo "total time $(elapsed)"
  if [ "$FAILURES" != 0 ]; then
    dump_logs
  fi
  echo "$PASSES passed, $FAILURES failed"
  [ "$FAILURES" = 0 ] && exit 0
  exit 1
}

# Fatal: the rest of the script cannot run meaningfully.
abort() {
  fail "$*"
  echo "aborting"
  finish
}

# -- ports -------------------------------------------------------------------------------------------

NAMES=(a1 a2 a3 n1 n2 n3 n4 n5)
NPORTS=$((2 * ${#NAMES[@]}))

port_free() {
  # No socket of any state on the port (listening or connected), and nothing answers on it.
  [ -z "$(ss -Htan "sport = :$1" 2>/dev/null)" ] || return 1
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 1
  return 0
}

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
      return 0
    fi
  done
  return 1
}

pick_ports || { echo "no free port range found" >&2; exit 1; }

# -- HTTP helpers ------------------------------------------------------------------------------------

# req NODE METHOD PATH [curl args...]: sets STATUS and BODY (STATUS 000: no answer); the
# response headers are left in $TMP/headers (see location). One fork per request: the machine
# this runs on is small and busy.
req() {
  local node=$1 method=$2 path=$3 out
  shift 3
  : >"$TMP/headers"
  out=$(curl -s -X "$method" --max-time 10 -D "$TMP/headers" -w '\n%{http_code}' "$@" \
    "http://127.0.0.1:${HP[$node]}$path")
  STATUS=${out##*$'\n'}
  BODY=${out%$'\n'*}
}

# The Location header of the last response.
location() { sed -n 's/^[Ll]ocation: *//p' "$TMP/headers" | tr -d '\r'; }

# expect WHAT STATUS [SUBSTRING...]: checks the last response.
expect() {
  local what=$1 status=$2
  shift 2
  if [ "$STATUS" != "$status" ]; then
    fail "$what: status $STATUS, expected $status; body: $BODY"
    return 1
  fi
  local needle
  for needle in "$@"; do
    if [[ "$BODY" != *"$needle"* ]]; then
      fail "$what: body lacks $needle: $BODY"
      return 1
    fi
  done
  pass "$what ($status)"
}

# Fields of a flat JSON object (our responses): a string, the members array.
jstr() { sed -n "s/.*\"$2\":\"\\([^\"]*\\)\".*/\\1/p" <<<"$1"; }
jmembers() { sed -n 's/.*"members":\[\([^]]*\)\].*/\1/p' <<<"$1" | tr -d '"'; }

set_json() { printf '{"key":"%s","value":"%s","action":"set"}' "$1" "$2"; }
del_json() { printf '{"key":"%s","action":"delete"}' "$1"; }

# retry_req SECONDS NODE METHOD PATH [curl args...]: req, repeated while the answer is 503 or
# nothing (both mean nothing was done: safe to retry), until the deadline.
retry_req() {
  local limit=$1
  shift
  local deadline=$(($(now_ms) + limit * 1000))
  while :; do
    req "$@"
    [ "$STATUS" != 503 ] && [ "$STATUS" != 000 ] && return
    [ "$(now_ms)" -ge "$deadline" ] && return
    sleep 0.2
  done
}

# write NODE KEY VALUE WHAT: a set that must succeed (retried on 503); records it in EXPECT.
write() {
  retry_req 15 "$1" POST /set -d "$(set_json "$2" "$3")"
  if expect "$4" 200 "\"key\":\"$2\"" '"action":"set"' '"index":'; then
    EXPECT[$2]=$3
    LAST_KEY=$2
  fi
}

# get_is NODE KEY VALUE|DELETED [stale]: one read (retried on 503 / no answer for up to 10 s)
# returns that value, or 404 for DELETED. Sets GOT to a description of what came back.
get_is() {
  local node=$1 key=$2 want=$3 query="/get?key=$2"
  [ "${4:-}" = stale ] && query="$query&consistency=stale"
  retry_req 10 "$node" GET "$query"
  GOT="$STATUS $BODY"
  if [ "$want" = "$DELETED" ]; then
    [ "$STATUS" = 404 ]
  else
    [ "$STATUS" = 200 ] && [ "$BODY" = "{\"key\":\"$key\",\"value\":\"$want\"}" ]
  fi
}

# wait_stale NODE KEY VALUE|DELETED SECONDS: polls a stale read until it matches.
wait_stale() {
  local deadline=$(($(now_ms) + $4 * 1000))
  while :; do
    req "$1" GET "/get?key=$2&consistency=stale"
    GOT="$STATUS $BODY"
    if [ "$3" = "$DELETED" ]; then
      [ "$STATUS" = 404 ] && return 0
    else
      [ "$STATUS" = 200 ] && [ "$BODY" = "{\"key\":\"$2\",\"value\":\"$3\"}" ] && return 0
    fi
    [ "$(now_ms)" -ge "$deadline" ] && return 1
    sleep 0.2
  done
}

# -- processes ---------------------------------------------------------------------------------------

# start NAME [extra args...]: starts node NAME on its ports and data dir; waits until /status
# answers (up to 20 s). Logs of successive runs are appended to one file per node.
start() {
  local name=$1
  shift
  echo "=== start $name $* ($(date -u +%H:%M:%S.%N | cut -c1-12))" >>"${LOGF[$name]}"
  "$BIN" --node-id "$name" --raft-addr "127.0.0.1:${RP[$name]}" \
    --http-addr "127.0.0.1:${HP[$name]}" --data-dir "${DIR[$name]}" --log-level info "$@" \
    >>"${LOGF[$name]}" 2>&1 &
  PID[$name]=$!
  PIDS+=("$!")
  local deadline=$(($(now_ms) + 20000))
  while :; do
    if ! kill -0 "${PID[$name]}" 2>/dev/null; then
      fail "start $name: the process exited; log: $(tail -n 5 "${LOGF[$name]}")"
      return 1
    fi
    req "$name" GET /status
    [ "$STATUS" = 200 ] && return 0
    if [ "$(now_ms)" -ge "$deadline" ]; then
      fail "start $name: /status did not answer within 20 s"
      return 1
    fi
    sleep 0.1
  done
}

# kill9 NAME...: SIGKILL and reap.
kill9() {
  local name
  for name in "$@"; do
    kill -9 "${PID[$name]}" 2>/dev/null
  done
  for name in "$@"; do
    wait "${PID[$name]}" 2>/dev/null
  done
}

# sigterm_all WHAT NAME...: SIGTERM to all, then each must exit 0 within 5 s of the signal.
sigterm_all() {
  local what=$1 name
  shift
  local signalled=$(now_ms)
  for name in "$@"; do
    kill -TERM "${PID[$name]}" 2>/dev/null
  done
  for name in "$@"; do
    local pid=${PID[$name]}
    while kill -0 "$pid" 2>/dev/null && [ $(($(now_ms) - signalled)) -lt 5000 ]; do
      sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
      fail "$what: $name still running 5 s after SIGTERM"
      kill -9 "$pid" 2>/dev/null
      wait "$pid" 2>/dev/null
      continue
    fi
    wait "$pid" 2>/dev/null
    local rc=$?
    local took=$(($(now_ms) - signalled))
    if [ "$rc" = 0 ]; then
      pass "$what: $name exited 0 after SIGTERM (${took} ms)"
    else
      fail "$what: $name exited $rc after SIGTERM; log: $(tail -n 3 "${LOGF[$name]}")"
    fi
  done
}

# find_leader SECONDS NAME...: polls until one of the nodes is leader and every listed node
# names it as its leader. Sets LEADER (empty on timeout) and LEADER_STATUS.
find_leader() {
  local limit=$1
  shift
  local deadline=$(($(now_ms) + limit * 1000)) name candidate agreed
  LEADER=""
  while :; do
    candidate=""
    for name in "$@"; do
      req "$name" GET /status
      if [ "$STATUS" = 200 ] && [[ "$BODY" == *'"role":"leader"'* ]]; then
        candidate=$name
        LEADER_STATUS=$BODY
      fi
    done
    if [ -n "$candidate" ]; then
      agreed=1
      for name in "$@"; do
        req "$name" GET /status
        [ "$(jstr "$BODY" leader)" = "$candidate" ] || agreed=0
      done
      if [ "$agreed" = 1 ]; then
        LEADER=$candidate
        return 0
      fi
    fi
    [ "$(now_ms)" -ge "$deadline" ] && return 1
    sleep 0.1
  done
}

# wait_members SECONDS NODE EXPECTED: polls NODE's /status until its members are EXPECTED
# (comma-separated, sorted as the node prints them).
wait_members() {
  local deadline=$(($(now_ms) + $1 * 1000))
  while :; do
    req "$2" GET /status
    [ "$(jmembers "$BODY")" = "$3" ] && return 0
    [ "$(now_ms)" -ge "$deadline" ] && return 1
    sleep 0.2
  done
}

# verify_all WHAT [stale] NODE...: every EXPECT entry, read through the nodes in turn.
verify_all() {
  local what=$1
  shift
  local mode=""
  if [ "$1" = stale ]; then mode=stale; shift; fi
  local nodes=("$@") i=0 bad=0 key first=""
  for key in "${!EXPECT[@]}"; do
    local node=${nodes[$((i % ${#nodes[@]}))]}
    i=$((i + 1))
    if ! get_is "$node" "$key" "${EXPECT[$key]}" $mode; then
      bad=$((bad + 1))
      [ -z "$first" ] && first="$key on $node: want ${EXPECT[$key]}, got $GOT"
    fi
  done
  if [ "$bad" = 0 ] && [ "$i" -gt 0 ]; then
    pass "$what: all $i acknowledged writes read back"
  else
    fail "$what: $bad of $i acknowledged writes wrong or missing (first: $first)"
  fi
}

echo "binary $BIN_NAME, ports ${RP[a1]}..$((${RP[a1]} + NPORTS - 1)), dir $TMP"

# == 1. README flow: nodes started alone, joined through POST /join on node 1 ========================

echo "--- 1. three lone nodes joined with POST /join [t=$(elapsed)]"
for n in a1 a2 a3; do start "$n" || abort "cannot start $n"; done
# a1 must lead its one-node cluster before it can add anyone.
find_leader 15 a1 || abort "a1 did not become leader of its one-node cluster: $BODY"
pass "a1 leads its one-node cluster"
for n in a2 a3; do
  retry_req 20 a1 POST "/join?nodeid=$n&nodeaddr=127.0.0.1:${RP[$n]}"
  expect "POST /join $n on a1" 200 "\"nodeid\":\"$n\"" "\"nodeaddr\":\"127.0.0.1:${RP[$n]}\"" \
    || abort "join of $n failed"
done
retry_req 15 a1 POST /set -d "$(set_json readme hello)"
expect "set on the leader a1" 200 '"key":"readme"' '"action":"set"'
for n in a2 a3; do
  check "linearizable get on follower $n" get_is "$n" readme hello || echo "  got: $GOT"
  check "stale get on follower $n once applied" wait_stale "$n" readme hello 10 || echo "  got: $GOT"
done
for n in a1 a2 a3; do
  check "status of $n lists 3 members" wait_members 10 "$n" "a1,a2,a3" || echo "  status: $BODY"
done
if find_leader 10 a1 a2 a3 && [ "$LEADER" = a1 ]; then
  pass "a1, a2, a3 agree on the leader a1"
else
  fail "a1, a2, a3 do not agree on the leader a1 (leader '$LEADER')"
fi
sigterm_all "1. shutdown" a1 a2 a3

# == 2. static cluster ==============================================================================

echo "--- 2. static 3-node cluster [t=$(elapsed)]"
CLUSTER="n1=127.0.0.1:${RP[n1]},n2=127.0.0.1:${RP[n2]},n3=127.0.0.1:${RP[n3]}"
for n in n1 n2 n3; do start "$n" --initial-cluster "$CLUSTER" || abort "cannot start $n"; done
find_leader 20 n1 n2 n3 || abort "no agreed leader among n1 n2 n3 within 20 s"
pass "static cluster elected $LEADER"
L=$LEADER
FOLLOWERS=()
for n in n1 n2 n3; do [ "$n" != "$L" ] && FOLLOWERS+=("$n"); done
F1=${FOLLOWERS[0]}
F2=${FOLLOWERS[1]}
req "$L" GET /status
check "leader status: 3 members, leader_http 127.0.0.1:${HP[$L]}" \
  test "$(jmembers "$BODY")" = "n1,n2,n3" -a "$(jstr "$BODY" leader_http)" = "127.0.0.1:${HP[$L]}"

# Writes through one follower, linearizable reads through the other: each read sees the write
# acknowledged just before it.
for i in 1 2 3 4 5; do
  if [ $((i % 2)) = 1 ]; then W=$F1 R=$F2; else W=$F2 R=$F1; fi
  write "$W" latest "v$i" "forwarded set latest=v$i through follower $W"
  check "linearizable get through follower $R returns v$i" get_is "$R" latest "v$i" \
    || echo "  got: $GOT"
done
check "linearizable get through the leader returns v5" get_is "$L" latest v5 || echo "  got: $GOT"

# ?redirect=1 on a follower: 307 to the leader's HTTP address, nothing applied there.
req "$F1" POST "/set?redirect=1" -d "$(set_json redirected r1)"
LOCATION=$(location)
if [ "$STATUS" = 307 ] && [ "$LOCATION" = "http://127.0.0.1:${HP[$L]}/set?redirect=1" ]; then
  pass "redirect=1 write on follower $F1: 307 to $LOCATION"
else
  fail "redirect=1 write on follower $F1: $STATUS, Location '$LOCATION' (leader $L at 127.0.0.1:${HP[$L]}); body $BODY"
fi
check "the redirected write was not applied by the follower" get_is "$F2" redirected "$DELETED" \
  || echo "  got: $GOT"
# A client that follows redirects (curl -L keeps POST and the body on a 307) gets its write done.
req "$F1" POST "/set?redirect=1" -L -d "$(set_json redirected r1)"
expect "redirect=1 write followed with curl -L" 200 '"key":"redirected"' && EXPECT[redirected]=r1
req "$F2" GET "/get?key=redirected&redirect=1"
LOCATION=$(location)
check "redirect=1 read on follower $F2: 307 to the leader" \
  test "$STATUS" = 307 -a "$LOCATION" = "http://127.0.0.1:${HP[$L]}/get?key=redirected&redirect=1"
req "$L" GET "/get?key=redirected&redirect=1"
expect "redirect=1 read on the leader is served" 200 '"value":"r1"'

# Delete through a follower: 404 everywhere (linearizable, and stale once applied).
write "$F1" doomed x "set doomed"
retry_req 15 "$F2" POST /set -d "$(del_json doomed)"
expect "delete doomed through follower $F2" 200 '"key":"doomed"' '"action":"delete"' \
  && EXPECT[doomed]=$DELETED
for n in n1 n2 n3; do
  check "get doomed on $n: 404" get_is "$n" doomed "$DELETED" || echo "  got: $GOT"
  check "stale get doomed on $n: 404 once applied" wait_stale "$n" doomed "$DELETED" 10 \
    || echo "  got: $GOT"
done

# == 3. kill -9 of the leader under writes ===========================================================

echo "--- 3. kill -9 of the leader $L under a stream of writes [t=$(elapsed)]"
WLOG="$TMP/writer.log"
STOP="$TMP/writer.stop"
: >"$WLOG"
rm -f "$STOP"
# The writer: distinct keys, round robin over the three nodes, one line per attempt.
(
  i=0
  nodes=(n1 n2 n3)
  while [ ! -e "$STOP" ]; do
    i=$((i + 1))
    node=${nodes[$((i % 3))]}
    code=$(curl -s -X POST --max-time 8 -o /dev/null -w '%{http_code}' \
      -d "{\"key\":\"w$i\",\"value\":\"val$i\",\"action\":\"set\"}" \
      "http://127.0.0.1:${HP[$node]}/set")
    echo "w$i val$i $code $node" >>"$WLOG"
    [ "$code" = 000 ] && sleep 0.05
  done
) &
WRITER=$!
PIDS+=("$WRITER")

acked() { grep -c ' 200 ' "$WLOG"; }
wait_acked() { # wait_acked COUNT SECONDS
  local deadline=$(($(now_ms) + $2 * 1000))
  while [ "$(acked)" -lt "$1" ]; do
    [ "$(now_ms)" -ge "$deadline" ] && return 1
    sleep 0.1
  done
}
check "writer acknowledged >= 10 writes before the crash" wait_acked 10 15
kill9 "$L"
KILLED_AT=$(now_ms)
ACKED_AT_KILL=$(acked)
echo "killed $L (pid ${PID[$L]}) after $ACKED_AT_KILL acknowledged writes"
if find_leader 10 "$F1" "$F2"; then
  pass "new leader $LEADER elected $(($(now_ms) - KILLED_AT)) ms after the kill"
else
  fail "no new leader among $F1 $F2 within 10 s of the kill"
fi
NEW_L=$LEADER
check "writes acknowledged again after the failover" wait_acked $((ACKED_AT_KILL + 10)) 20
touch "$STOP"
WRITER_DEADLINE=$(($(now_ms) + 15000))
while kill -0 "$WRITER" 2>/dev/null && [ "$(now_ms)" -lt "$WRITER_DEADLINE" ]; do sleep 0.1; done
kill -9 "$WRITER" 2>/dev/null
wait "$WRITER" 2>/dev/null
echo "writer: $(wc -l <"$WLOG") attempts: $(awk '{print $3}' "$WLOG" | sort | uniq -c | tr '\n' ' ')"
while read -r key value code _; do
  if [ "$code" = 200 ]; then
    EXPECT[$key]=$value
    LAST_KEY=$key
  fi
done <"$WLOG"
verify_all "3. after the failover (linearizable, through $F1 and $F2)" "$F1" "$F2"
# 503 means nothing was changed (busy, no leader, not the leader): such a write must be absent.
# 500 means unknown: present with the value sent, or absent, never anything else.
REFUSED=0
UNKNOWN=0
REFUSED_BAD=""
UNKNOWN_BAD=""
while read -r key value code _; do
  if [ "$code" = 503 ]; then
    REFUSED=$((REFUSED + 1))
    get_is "$F1" "$key" "$DELETED" || REFUSED_BAD="$REFUSED_BAD $key($GOT)"
  elif [ "$code" = 500 ]; then
    UNKNOWN=$((UNKNOWN + 1))
    get_is "$F1" "$key" "$value" || get_is "$F1" "$key" "$DELETED" \
      || UNKNOWN_BAD="$UNKNOWN_BAD $key($GOT)"
  fi
done <"$WLOG"
if [ -z "$REFUSED_BAD" ]; then
  pass "3. none of the $REFUSED writes answered 503 was applied"
else
  fail "3. writes answered 503 (nothing changed) were applied:$REFUSED_BAD"
fi
if [ -z "$UNKNOWN_BAD" ]; then
  pass "3. the $UNKNOWN writes answered 500 are either applied as sent or absent"
else
  fail "3. writes answered 500 read back as something else:$UNKNOWN_BAD"
fi

start "$L" --initial-cluster "$CLUSTER" || abort "cannot restart $L"
if wait_stale "$L" "$LAST_KEY" "${EXPECT[$LAST_KEY]}" 20; then
  pass "restarted $L caught up: stale read of $LAST_KEY matches"
else
  fail "restarted $L did not catch up within 20 s: stale $LAST_KEY = $GOT"
fi
verify_all "3. restarted $L (stale)" stale "$L"
if find_leader 10 n1 n2 n3; then
  pass "n1, n2, n3 agree on the leader $LEADER after the restart"
  # Pre-vote and check-quorum: the rejoining node must not depose the working leader.
  check "the rejoining $L did not depose $NEW_L" test "$LEADER" = "$NEW_L"
else
  fail "n1, n2, n3 do not agree on a leader after $L restarted"
fi

# == 4. kill -9 of every node ========================================================================

echo "--- 4. kill -9 of every node, restart [t=$(elapsed)]"
kill9 n1 n2 n3
pass "killed n1 n2 n3 with SIGKILL"
for n in n1 n2 n3; do start "$n" --initial-cluster "$CLUSTER" || abort "cannot restart $n"; done
find_leader 20 n1 n2 n3 || abort "no agreed leader after restarting every node"
pass "restarted cluster elected $LEADER"
verify_all "4. after kill -9 of every node (linearizable)" n1 n2 n3
write n2 after-crash yes "write after restarting every node"

# == 5. a 4th node joins with --join =================================================================

echo "--- 5. n4 joins with --join [t=$(elapsed)]"
find_leader 10 n1 n2 n3
L=$LEADER
JOIN_VIA=n1
[ "$L" = n1 ] && JOIN_VIA=n2
start n4 --join "127.0.0.1:${HP[$JOIN_VIA]}" || abort "cannot start n4"
if wait_members 20 "$L" "n1,n2,n3,n4"; then
  pass "leader $L lists 4 members after n4 joined through $JOIN_VIA"
else
  fail "leader $L does not list n4 within 20 s: $BODY"
fi
if wait_stale n4 "$LAST_KEY" "${EXPECT[$LAST_KEY]}" 20; then
  pass "n4 caught up: stale read of $LAST_KEY matches"
else
  fail "n4 did not catch up within 20 s: stale $LAST_KEY = $GOT"
fi
verify_all "5. n4 serves the data (stale)" stale n4
check "n4's status lists 4 members" wait_members 10 n4 "n1,n2,n3,n4" || echo "  status: $BODY"
if find_leader 10 n1 n2 n3 n4; then
  pass "n1..n4 agree on the leader $LEADER"
else
  fail "n1..n4 do not agree on a leader"
fi
write n4 via-n4 four "write through n4"
check "linearizable read through n4" get_is n4 via-n4 four || echo "  got: $GOT"

# == 6. a lone node with writes of its own is refused ================================================

echo "--- 6. POST /join of a lone node holding writes [t=$(elapsed)]"
start n5 || abort "cannot start n5"
find_leader 15 n5 || abort "lone n5 did not become leader of its own cluster"
retry_req 15 n5 POST /set -d "$(set_json lone mine)"
expect "write on lone n5" 200 '"key":"lone"'
find_leader 10 n1 n2 n3 n4
L=$LEADER
retry_req 20 "$L" POST "/join?nodeid=n5&nodeaddr=127.0.0.1:${RP[n5]}"
expect "POST /join n5 on leader $L is refused" 409 '"error"'
sleep 1 # let anything the refused join set in motion happen before looking
check "n5 still reads its own write (linearizable)" get_is n5 lone mine || echo "  got: $GOT"
check "n5 still reads its own write (stale)" get_is n5 lone mine stale || echo "  got: $GOT"
req n5 GET /status
check "n5 still a one-node cluster it leads" \
  test "$(jmembers "$BODY")" = n5 -a "$(jstr "$BODY" role)" = leader
check "the cluster still has 4 members" wait_members 5 "$L" "n1,n2,n3,n4" || echo "  status: $BODY"
check "the cluster did not get n5's key" get_is "$L" lone "$DELETED" || echo "  got: $GOT"
check "the cluster still serves its data" get_is n3 after-crash yes || echo "  got: $GOT"
write n1 after-refusal ok "the cluster still takes writes"

# == 7. bad requests against a follower ==============================================================

echo "--- 7. bad requests [t=$(elapsed)]"
find_leader 10 n1 n2 n3 n4
F=n1
[ "$LEADER" = n1 ] && F=n2
echo "(against follower $F)"
req "$F" POST /set -d 'not json'
expect "unreadable JSON" 400 '"error"'
req "$F" POST /set -d '{"value":"v","action":"set"}'
expect "missing key" 400 '"error"'
req "$F" POST /set -d '{"key":"badaction","value":"v","action":"frobnicate"}'
expect "unknown action" 400 '"error"'
req "$F" GET /get
expect "GET /get without key" 400 '"error"'
req "$F" GET /no-such-path
expect "unknown path" 404 '"error"'
req "$F" GET /set
expect "wrong method (GET /set)" 405 '"error"'
req "$F" POST /join
expect "POST /join without parameters" 400 '"error"'
req "$F" POST "/join?nodeid=n9"
expect "POST /join without nodeaddr" 400 '"error"'
check "no bad request wrote anything" get_is "$F" badaction "$DELETED" || echo "  got: $GOT"
check "$F still alive" kill -0 "${PID[$F]}"
write "$F" after-bad fine "write through $F after the bad requests"
check "linearizable read through $F after the bad requests" get_is "$F" after-bad fine \
  || echo "  got: $GOT"
check "the cluster still has 4 members" wait_members 5 "$F" "n1,n2,n3,n4" || echo "  status: $BODY"
verify_all "7. every acknowledged write still there" n1 n2 n3 n4

# == 8. SIGTERM ======================================================================================

echo "--- 8. SIGTERM [t=$(elapsed)]"
sigterm_all "8. shutdown" n1 n2 n3 n4 n5

finish
