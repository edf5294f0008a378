#!/usr/bin/env bash
# End-to-end test of snapshots and log compaction on real infinitystore processes (127.0.0.1):
#   1. a static 3-node cluster with small snapshot thresholds takes writes while one follower is
#      down (kill -9); the others snapshot, compact and keep only --snapshot-retain files;
#   2. the follower restarts and, its next entry compacted away, catches up by InstallSnapshot,
#      then serves every key;
#   3. kill -9 of all three: they restart from their snapshots plus the log after them and serve
#      every acknowledged write;
#   4. a corrupt newest snapshot (one flipped byte) on a stopped node: it falls back to the older
#      one (its log still covers the gap), says so in its log, and serves every key.
#
# Usage: snapshot_test.sh path/to/infinitystore
# Needs curl and python3. Only processes started here are killed, by PID. Prints one line per
# check and, last, "N passed, M failed"; exits non-zero if any check failed.
set -u

STORE=${1:?usage: snapshot_test.sh path/to/infinitystore}
[ -x "$STORE" ] || { echo "not executable: $STORE" >&2; exit 2; }
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "snapshot_test.sh needs $tool" >&2; exit 2; }
done
TMP=$(mktemp -d /tmp/infinity-snapshot-e2e.XXXXXX)
cp "$STORE" "$TMP/infinitystore" || { echo "cannot copy the binary" >&2; rm -rf "$TMP"; exit 2; }
STORE="$TMP/infinitystore"
PIDS=()
PASSES=0
FAILURES=0
KEYS=1500
DOWN_AT=200 # n3 is killed after this many keys

declare -A RP HP PID LOGF DIR

now_ms() { echo $(($(date +%s%N) / 1000000)); }
START_MS=$(now_ms)

cleanup() {
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
    for name in n1 n2 n3; do
      [ -s "${LOGF[$name]}" ] || continue
      echo "---- last 25 lines of $name's log ----"
      tail -n 25 "${LOGF[$name]}"
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

NAMES=(n1 n2 n3)
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
pick_ports() {
  local attempt base p ok i name
  for attempt in $(seq 1 50); do
    base=$((20000 + (RANDOM % 600) * 20))
    ok=1
    for p in $(seq "$base" $((base + 5))); do
      port_free "$p" || { ok=0; break; }
    done
    if [ "$ok" = 1 ]; then
      i=0
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
ep() { echo "127.0.0.1:${HP[$1]}"; }
CLUSTER="n1=127.0.0.1:${RP[n1]},n2=127.0.0.1:${RP[n2]},n3=127.0.0.1:${RP[n3]}"

start() { # start NAME: runs the node in the background, waits until its HTTP port answers
  local name=$1 deadline
  "$STORE" --node-id "$name" --raft-addr "127.0.0.1:${RP[$name]}" \
    --http-addr "127.0.0.1:${HP[$name]}" --data-dir "${DIR[$name]}" \
    --initial-cluster "$CLUSTER" --snapshot-entries 300 --snapshot-keep-tail 100 \
    --snapshot-retain 2 >>"${LOGF[$name]}" 2>&1 &
  PID[$name]=$!
  PIDS+=("$!")
  deadline=$(($(now_ms) + 10000))
  until curl -s --max-time 1 -o /dev/null "http://$(ep "$name")/status"; do
    kill -0 "${PID[$name]}" 2>/dev/null || return 1
    [ "$(now_ms)" -ge "$deadline" ] && return 1
    sleep 0.05
  done
}

kill9() {
  kill -9 "${PID[$1]}" 2>/dev/null
  wait "${PID[$1]}" 2>/dev/null
}

find_leader() { # find_leader SECONDS NAMES...: sets LEADER to the node all of NAMES agree on
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

# write_keys ENDPOINT FIRST LAST: sets kI=vI for I in FIRST..LAST over one keep-alive connection,
# retrying a key until it is acknowledged (200); fails if one is not within 20 s.
write_keys() {
  python3 - "$@" <<'EOF'
import http.client, json, sys, time
host, port = sys.argv[1].split(":")
first, last = int(sys.argv[2]), int(sys.argv[3])
conn = None
for i in range(first, last + 1):
    body = json.dumps({"key": f"k{i}", "value": f"v{i}", "action": "set"})
    deadline = time.time() + 20
    while True:
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, int(port), timeout=5)
            conn.request("POST", "/set", body, {"Content-Type": "application/json"})
            reply = conn.getresponse()
            reply.read()
            if reply.status == 200:
                break
        except Exception:
            conn = None
        if time.time() > deadline:
            print(f"k{i} not acknowledged", file=sys.stderr)
            sys.exit(1)
        time.sleep(0.05)
EOF
}

# all_keys ENDPOINT CONSISTENCY: every key k1..kKEYS answers vI.
all_keys() {
  python3 - "$1" "$2" "$KEYS" <<'EOF'
import http.client, json, sys
host, port = sys.argv[1].split(":")
consistency, keys = sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPConnection(host, int(port), timeout=5)
bad = []
for i in range(1, keys + 1):
    conn.request("GET", f"/get?key=k{i}&consistency={consistency}")
    reply = conn.getresponse()
    body = reply.read()
    if reply.status != 200 or json.loads(body).get("value") != f"v{i}":
        bad.append(f"k{i}: {reply.status} {body[:80]!r}")
if bad:
    print(f"{len(bad)} keys wrong, first: {bad[0]}", file=sys.stderr)
    sys.exit(1)
EOF
}

# wait_all_keys NAME SECONDS: until NAME serves every key from its own state (stale reads).
wait_all_keys() {
  local deadline=$(($(now_ms) + $2 * 1000))
  until all_keys "$(ep "$1")" stale 2>/dev/null; do
    [ "$(now_ms)" -ge "$deadline" ] && { all_keys "$(ep "$1")" stale; return 1; }
    sleep 0.3
  done
}

snapshot_files() { ls "${DIR[$1]}/snapshots/" 2>/dev/null | grep -c '\.snap$'; }

# == 1. writes with a follower down ================================================================
echo "--- 1. $KEYS writes, n3 down after $DOWN_AT"
for n in n1 n2 n3; do start "$n" || abort "cannot start $n"; done
find_leader 15 n1 n2 n3 || abort "no leader"
check "writes k1..k$DOWN_AT" write_keys "$(ep "$LEADER")" 1 "$DOWN_AT"
kill9 n3
echo "killed n3"
find_leader 15 n1 n2 || abort "no leader of n1, n2"
check "writes k$((DOWN_AT + 1))..k$KEYS with n3 down" write_keys "$(ep "$LEADER")" $((DOWN_AT + 1)) "$KEYS"
for n in n1 n2; do
  deadline=$(($(now_ms) + 10000))
  until [ "$(snapshot_files "$n")" -ge 2 ] || [ "$(now_ms)" -ge "$deadline" ]; do sleep 0.2; done
  check "$n wrote snapshots" grep -q "snapshot: wrote" "${LOGF[$n]}"
  check "$n keeps at most 2 snapshot files ($(snapshot_files "$n"))" test "$(snapshot_files "$n")" -le 2
done

status_field() { # status_field NAME FIELD
  curl -s --max-time 2 "http://$(ep "$1")/status" |
    python3 -c "import json,sys; print(json.load(sys.stdin).get('$2', -1))"
}
check "the leader's /status shows a snapshot ($(status_field "$LEADER" snapshot_index))" \
  test "$(status_field "$LEADER" snapshot_index)" -gt 0
check "and a compacted log (first index $(status_field "$LEADER" log_first_index))" \
  test "$(status_field "$LEADER" log_first_index)" -gt 1
check "/metrics exports the snapshot index" \
  sh -c "curl -s 'http://$(ep "$LEADER")/metrics' | grep -Eq '^infinity_raft_snapshot_index [1-9]'"

# == 2. the follower catches up by snapshot ========================================================
echo "--- 2. n3 restarts behind the compacted log"
start n3 || abort "cannot restart n3"
check "n3 serves every key after catching up" wait_all_keys n3 30
check "n3 caught up by InstallSnapshot" grep -q "installed snapshot" "${LOGF[n3]}"
check "the leader sent it a snapshot" grep -q "sending snapshot at" "${LOGF[$LEADER]}"

# == 3. kill -9 of every node ======================================================================
echo "--- 3. kill -9 of all three, restart"
for n in n1 n2 n3; do kill9 "$n"; done
for n in n1 n2 n3; do start "$n" || abort "cannot restart $n"; done
find_leader 20 n1 n2 n3 || abort "no leader after restarting all"
for n in n1 n2 n3; do
  check "$n restarted from a snapshot" grep -q "snapshots: loaded snapshot" "${LOGF[$n]}"
done
check "every acknowledged write survives (linearizable reads)" all_keys "$(ep "$LEADER")" linearizable

# == 4. a corrupt newest snapshot ==================================================================
echo "--- 4. one byte flipped in n2's newest snapshot"
find_leader 10 n1 n2 n3
VICTIM=n2
[ "$LEADER" = n2 ] && VICTIM=n1
kill9 "$VICTIM"
NEWEST=$(ls "${DIR[$VICTIM]}/snapshots/"*.snap | sort | tail -n 1)
python3 - "$NEWEST" <<'EOF'
import os, sys
path = sys.argv[1]
size = os.path.getsize(path)
with open(path, "r+b") as f:
    f.seek(size // 2)
    b = f.read(1)
    f.seek(size // 2)
    f.write(bytes([b[0] ^ 0x40]))
EOF
: >"${LOGF[$VICTIM]}.before"
cp "${LOGF[$VICTIM]}" "${LOGF[$VICTIM]}.before"
start "$VICTIM" || abort "cannot restart $VICTIM with a corrupt snapshot"
check "$VICTIM says it skipped the corrupt snapshot" \
  sh -c "diff '${LOGF[$VICTIM]}.before' '${LOGF[$VICTIM]}' | grep -q 'skipped'"
check "$VICTIM serves every key" wait_all_keys "$VICTIM" 30

finish
