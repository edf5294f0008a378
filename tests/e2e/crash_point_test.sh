#!/usr/bin/env bash
# Crash points on a real process (issue: "a crash that leaves a node unable to start"): a node
# runs under strace, which kills it (SIGKILL, as a power cut would end it) at the N-th call of one
# system call: fdatasync, rename, pwrite64/write, ftruncate, during bootstrap and under writes.
# After each kill the node restarts normally from what the kernel had: it must start, and every
# write it acknowledged must read back. One-node cluster, so every acknowledgement rests on this
# node's disk alone.
#
# The kill at a system call leaves the page cache intact (the process dies, the machine does not),
# so this tests the order of operations as the kernel saw them; lost unsynced writes and torn
# records are the simulated disk's part (file_storage_crash_test, the simulator).
#
# Usage: crash_point_test.sh path/to/infinitystore
# Needs curl, strace and setsid. Only processes started here are killed, by PID or by the
# process group each node was started in.
set -u

STORE=${1:?usage: crash_point_test.sh path/to/infinitystore}
[ -x "$STORE" ] || { echo "not executable: $STORE" >&2; exit 2; }
SKIP_FILE=${INFINITY_SKIP_REASON_FILE:-}
for tool in curl strace; do
  if ! command -v "$tool" >/dev/null; then
    echo "CRASH POINT TESTS SKIPPED: $tool is not installed"
    [ -n "$SKIP_FILE" ] && echo "$tool is not installed (scripts/install-deps.sh installs it)" >>"$SKIP_FILE"
    exit 0
  fi
done
TMP=$(mktemp -d /tmp/infinity-crash-points.XXXXXX)
cp "$STORE" "$TMP/infinitystore" || exit 2
STORE="$TMP/infinitystore"
PASSES=0
FAILURES=0
PID=""
# Every node runs in its own process group (setsid), strace and the node it traces together:
# killing strace alone would detach a node that has not reached its kill point and leave it
# running (and answering for the restarted one).
kill_group() {
  kill "-${2:-TERM}" -- "-$1" 2>/dev/null
}
cleanup() {
  [ -n "$PID" ] && kill_group "$PID" KILL
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
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
for _ in $(seq 1 50); do
  RAFT=$((20000 + (RANDOM % 600) * 20))
  HTTP=$((RAFT + 1))
  port_free "$RAFT" && port_free "$HTTP" && break
done
EP="127.0.0.1:$HTTP"

# run_case SYSCALLS N: kill at the N-th call of SYSCALLS (comma-separated), then restart.
run_case() {
  local calls=$1 n=$2 name dir log acked=() i code deadline started
  name="${calls%%,*}@$n"
  dir="$TMP/data-$name"
  log="$TMP/$name.log"
  setsid strace -f -qq -o /dev/null -e trace="$calls" -e inject="$calls":signal=SIGKILL:when="$n" \
    "$STORE" --node-id n1 --raft-addr "127.0.0.1:$RAFT" --http-addr "$EP" --data-dir "$dir" \
    >"$log" 2>&1 &
  PID=$!
  # Writes until the kill (or 60 of them): the acknowledged ones must survive.
  deadline=$(($(now_ms) + 5000))
  until curl -s -m 1 -o /dev/null "http://$EP/status"; do
    kill -0 "$PID" 2>/dev/null || break
    [ "$(now_ms)" -ge "$deadline" ] && break
    sleep 0.05
  done
  for i in $(seq 1 60); do
    kill -0 "$PID" 2>/dev/null || break
    code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' -XPOST "http://$EP/set" \
      -d "{\"key\":\"k$i\",\"value\":\"v$i\",\"action\":\"set\"}")
    [ "$code" = 200 ] && acked+=("$i")
  done
  kill -0 "$PID" 2>/dev/null && started=alive || started=killed
  kill_group "$PID" KILL
  wait "$PID" 2>/dev/null
  PID=""
  # Restart without strace.
  setsid "$STORE" --node-id n1 --raft-addr "127.0.0.1:$RAFT" --http-addr "$EP" --data-dir "$dir" \
    >>"$log" 2>&1 &
  PID=$!
  deadline=$(($(now_ms) + 10000))
  until curl -s -m 1 -o /dev/null "http://$EP/status"; do
    if ! kill -0 "$PID" 2>/dev/null; then
      fail "$name: the node does not start again after the kill: $(tail -n 2 "$log" | tr '\n' ' ')"
      PID=""
      return
    fi
    if [ "$(now_ms)" -ge "$deadline" ]; then
      fail "$name: the node does not answer within 10 s of its restart"
      kill_group "$PID" KILL
      wait "$PID" 2>/dev/null
      PID=""
      return
    fi
    sleep 0.05
  done
  local bad=0 first=""
  deadline=$(($(now_ms) + 10000))
  for i in "${acked[@]}"; do
    while :; do
      body=$(curl -s -m 2 "http://$EP/get?key=k$i")
      [[ "$body" == *"\"value\":\"v$i\""* ]] && break
      # 503 while the restarted node elects itself: retry; anything else is wrong.
      if [[ "$body" != *"leader"* ]] || [ "$(now_ms)" -ge "$deadline" ]; then
        bad=$((bad + 1))
        first=${first:-"k$i: $body"}
        break
      fi
      sleep 0.05
    done
  done
  if [ "$bad" = 0 ]; then
    pass "$name ($started before the restart, ${#acked[@]} writes acknowledged): restarts and serves all of them"
  else
    fail "$name: $bad of ${#acked[@]} acknowledged writes lost after the restart (first: $first)"
  fi
  kill_group "$PID"
  wait "$PID" 2>/dev/null
  PID=""
}

# Bootstrap: the identity and hard_state files are written by rename, the first segment created.
for n in 1 2 3 4; do run_case rename,renameat,renameat2 "$n"; done
# Under writes: each acknowledged batch ends with an fdatasync; term changes and commit hints
# replace hard_state by rename; appends go out with pwrite64/write.
for n in 2 5 9 17 30; do run_case fdatasync "$n"; done
for n in 6 9 14; do run_case rename,renameat,renameat2 "$n"; done
for n in 10 40 90; do run_case pwrite64,write "$n"; done
run_case ftruncate 1
run_case fsync 3

echo "$PASSES passed, $FAILURES failed"
[ "$FAILURES" = 0 ]
