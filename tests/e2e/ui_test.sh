#!/usr/bin/env bash
# The /ui dashboard in a real headless browser (Debian's chromium) against a 3-node cluster:
# members and leader appear, kill -9 of the leader shows the new leader within a few seconds,
# screenshots land in OUTPUT_DIR (ui_browser.py does the browser side).
#
# Usage: ui_test.sh path/to/infinitystore OUTPUT_DIR
# Only 127.0.0.1, ports checked free before use; bounded waits; only processes started here
# are killed, by PID. Without chromium it prints "SKIPPED: <why>" and exits 0.
set -u

BIN=${1:?usage: ui_test.sh path/to/infinitystore OUTPUT_DIR}
OUT=${2:?usage: ui_test.sh path/to/infinitystore OUTPUT_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
[ -x "$BIN" ] || { echo "not executable: $BIN" >&2; exit 2; }
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
# skip WHY: tells ctest this test did not run, and why (ctest prints $INFINITY_SKIP_REASON_FILE).
skip() {
  echo "SKIPPED: $*"
  if [ -n "${INFINITY_SKIP_REASON_FILE:-}" ]; then
    mkdir -p "$(dirname "$INFINITY_SKIP_REASON_FILE")" && echo "$*" >"$INFINITY_SKIP_REASON_FILE"
  fi
  exit 0
}
[ -n "$CHROMIUM" ] || skip "chromium is not installed (bash scripts/install-deps.sh installs it)"
command -v python3 >/dev/null || skip "python3 is not installed (bash scripts/install-deps.sh installs it)"
TMP=$(mktemp -d /tmp/infinitystore-ui.XXXXXX)
cp "$BIN" "$TMP/infinitystore" || { echo "cannot copy $BIN" >&2; rm -rf "$TMP"; exit 2; }
BIN="$TMP/infinitystore"
mkdir -p "$OUT"
PIDS=()
declare -A RP HP PID LOGF

now_ms() { echo $(($(date +%s%N) / 1000000)); }

cleanup() {
  for pid in "${PIDS[@]}"; do
    kill -9 "$pid" 2>/dev/null
  done
  wait 2>/dev/null
  [ -n "${KEEP_TMP:-}" ] && { echo "kept $TMP" >&2; return; }
  rm -rf "$TMP"
}
trap cleanup EXIT

die() {
  echo "FAIL: $*"
  for name in n1 n2 n3; do
    echo "---- last 10 lines of $name's log ----"
    tail -n 10 "${LOGF[$name]}" 2>/dev/null
  done
  exit 1
}

# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

pick_ports() {
  local attempt base p ok i name
  for attempt in $(seq 1 50); do
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
        LOGF[$name]="$TMP/$name.log"
        i=$((i + 2))
      done
      CDP_PORT=$((base + 6))
      return 0
    fi
  done
  return 1
}
pick_ports || { echo "no free port range found" >&2; exit 1; }
CLUSTER="n1=127.0.0.1:${RP[n1]},n2=127.0.0.1:${RP[n2]},n3=127.0.0.1:${RP[n3]}"

for name in n1 n2 n3; do
  "$BIN" --node-id "$name" --raft-addr "127.0.0.1:${RP[$name]}" --http-addr "127.0.0.1:${HP[$name]}" \
    --data-dir "$TMP/data-$name" --initial-cluster "$CLUSTER" >"${LOGF[$name]}" 2>&1 &
  PID[$name]=$!
  PIDS+=("$!")
done

# Wait until every node is ready and agrees on the leader.
deadline=$(($(now_ms) + 30000))
LEADER=""
while [ "$(now_ms)" -lt "$deadline" ]; do
  leaders=""
  for name in n1 n2 n3; do
    body=$(curl -s --max-time 2 "http://127.0.0.1:${HP[$name]}/ready")
    [[ "$body" == *'"ready":true'* ]] || { leaders=""; break; }
    leaders+="$(sed -n 's/.*"leader":"\([^"]*\)".*/\1/p' <<<"$body") "
  done
  set -- $leaders
  if [ $# = 3 ] && [ "$1" = "$2" ] && [ "$2" = "$3" ]; then
    LEADER=$1
    break
  fi
  sleep 0.2
done
[ -n "$LEADER" ] || die "the cluster did not agree on a leader within 30 s"
for name in n1 n2 n3; do [ "$name" != "$LEADER" ] && { PAGE_NODE=$name; break; }; done
echo "leader $LEADER; the page is served by $PAGE_NODE"

# Some traffic, so the request rate and latency on the page are not empty.
(
  i=0
  while :; do
    i=$((i + 1))
    curl -s --max-time 2 -XPOST "http://127.0.0.1:${HP[$PAGE_NODE]}/set" \
      -d "{\"key\":\"k$((i % 50))\",\"value\":\"v$i\",\"action\":\"set\"}" >/dev/null
    sleep 0.05
  done
) &
PIDS+=("$!")

"$CHROMIUM" --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
  --no-default-browser-check --disable-extensions --disable-background-networking \
  --remote-debugging-address=127.0.0.1 --remote-debugging-port="$CDP_PORT" \
  --user-data-dir="$TMP/chromium-profile" about:blank >"$TMP/chromium.log" 2>&1 &
PIDS+=("$!")

timeout 120 python3 "$HERE/ui_browser.py" --cdp-port "$CDP_PORT" \
  --url "http://127.0.0.1:${HP[$PAGE_NODE]}/ui" --members n1,n2,n3 --leader "$LEADER" \
  --leader-pid "${PID[$LEADER]}" --failover-seconds 8 --out "$OUT"
rc=$?
if [ "$rc" != 0 ]; then
  echo "---- chromium log ----"
  tail -n 20 "$TMP/chromium.log"
  die "the browser checks failed (exit $rc)"
fi
echo "screenshots in $OUT"
echo "all browser checks passed"
