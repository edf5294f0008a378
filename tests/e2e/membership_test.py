#!/usr/bin/env python3
"""End-to-end membership test on real infinitystore processes (127.0.0.1 only).

Under a continuous stream of writes (a background writer that records every answer):
  1. grow a cluster from 1 to 3 to 5 nodes (nodes started alone, POST /join on the leader);
  2. transfer leadership (POST /transfer-leader?nodeid=X) and check X leads;
  3. shrink to 3: remove a follower, then the leader itself (it hands over first); a removed
     node answers 409 {"reason": "removed"} to writes, reads and admin requests;
  4. replace a kill -9'ed node: POST /remove of the dead node, then a new node joins;
after each step every acknowledged write must read back (linearizable GET through the members),
and at the end writes answered 409/503 (nothing changed) must be absent, writes answered 500
(unknown) present as sent or absent.

Usage: membership_test.py path/to/infinitystore
Ports are checked free before use, every wait has a deadline, and only processes started here
are killed, by PID. Prints one line per check and "N passed, M failed"; exits 1 on a failure.
"""
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

BIN_ARG = sys.argv[1] if len(sys.argv) > 1 else None
if not BIN_ARG or not os.access(BIN_ARG, os.X_OK):
    print("usage: membership_test.py path/to/infinitystore", file=sys.stderr)
    sys.exit(2)

TMP = tempfile.mkdtemp(prefix="infinitystore-members.")
# A private copy: the build tree may be relinked while the test runs.
BIN = os.path.join(TMP, "infinitystore")
shutil.copy(BIN_ARG, BIN)
NAMES = ["m1", "m2", "m3", "m4", "m5", "m6"]
RP, HP, PROC = {}, {}, {}
passes = 0
failures = 0
START = time.monotonic()


def elapsed():
    return "%.0fs" % (time.monotonic() - START)


def ok(what):
    global passes
    passes += 1
    print("ok: " + what, flush=True)


def fail(what):
    global failures
    failures += 1
    print("FAIL: " + what, flush=True)


def check(what, cond, detail=""):
    (ok if cond else fail)(what + ("" if cond or not detail else ": " + detail))
    return cond


# -- ports ------------------------------------------------------------------------------------


def port_free(port):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
        s.bind(("127.0.0.1", port))
    except OSError:
        return False
    finally:
        s.close()
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return False
    except OSError:
        return True


def pick_ports():
    for _ in range(50):
        # Below the ephemeral range (32768+), so no outgoing connection takes one of ours.
        base = 20000 + random.randrange(600) * 20
        ports = list(range(base, base + 2 * len(NAMES)))
        if all(port_free(p) for p in ports):
            for i, name in enumerate(NAMES):
                RP[name], HP[name] = ports[2 * i], ports[2 * i + 1]
            return True
    return False


# -- HTTP -------------------------------------------------------------------------------------


def req(node, method, path, body=None, timeout=10):
    """(status, parsed JSON body or text); status 0: no answer."""
    conn = http.client.HTTPConnection("127.0.0.1", HP[node], timeout=timeout)
    try:
        conn.request(method, path, body=body)
        r = conn.getresponse()
        text = r.read().decode()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text
    except OSError as e:
        return 0, str(e)
    finally:
        conn.close()


def retry_req(limit, node, method, path, body=None):
    """req, repeated while the answer is 503 or nothing (nothing was done: safe to retry)."""
    deadline = time.monotonic() + limit
    while True:
        status, answer = req(node, method, path, body)
        if status not in (0, 503) or time.monotonic() >= deadline:
            return status, answer
        time.sleep(0.2)


def set_body(key, value):
    return json.dumps({"key": key, "value": value, "action": "set"})


# -- processes --------------------------------------------------------------------------------


def start(name, *extra):
    log = open(os.path.join(TMP, name + ".log"), "a")
    log.write("=== start %s %s\n" % (name, " ".join(extra)))
    log.flush()
    args = [BIN, "--node-id", name, "--raft-addr", "127.0.0.1:%d" % RP[name],
            "--http-addr", "127.0.0.1:%d" % HP[name],
            "--data-dir", os.path.join(TMP, "data-" + name), "--log-level", "info",
            # Small snapshots: nodes added later can only catch up by InstallSnapshot.
            "--snapshot-entries", "50", "--snapshot-keep-tail", "10"] + list(extra)
    PROC[name] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if PROC[name].poll() is not None:
            fail("start %s: the process exited" % name)
            return False
        if req(name, "GET", "/status", timeout=2)[0] == 200:
            return True
        time.sleep(0.1)
    fail("start %s: /status did not answer within 20 s" % name)
    return False


def kill9(name):
    PROC[name].send_signal(signal.SIGKILL)
    PROC[name].wait()


def status(name):
    s, body = req(name, "GET", "/status", timeout=3)
    return body if s == 200 and isinstance(body, dict) else {}


def find_leader(limit, names):
    """The node all of `names` agree leads, or None after `limit` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        leaders = {status(n).get("leader") for n in names}
        if len(leaders) == 1:
            leader = leaders.pop()
            if leader in names and status(leader).get("role") == "leader":
                return leader
        time.sleep(0.1)
    return None


def wait_members(limit, node, voters):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        st = status(node)
        if sorted(st.get("members", [])) == sorted(voters) and not st.get("learners"):
            return True
        time.sleep(0.2)
    return False


# -- the writer -------------------------------------------------------------------------------


class Writer(threading.Thread):
    """Distinct keys, round robin over `targets`; every answer recorded as (key, value, code)."""

    def __init__(self, targets):
        super().__init__(daemon=True)
        self.targets = list(targets)
        self.lock = threading.Lock()
        self.log = []
        self.ack_times = []
        self.stop = threading.Event()

    def set_targets(self, targets):
        with self.lock:
            self.targets = list(targets)

    def run(self):
        i = 0
        while not self.stop.is_set():
            i += 1
            with self.lock:
                node = self.targets[i % len(self.targets)]
            key, value = "w%d" % i, "val%d" % i
            code, _ = req(node, "POST", "/set", set_body(key, value), timeout=8)
            with self.lock:
                self.log.append((key, value, code, node))
                if code == 200:
                    self.ack_times.append(time.monotonic())
            time.sleep(0.02 if code else 0.05)

    def longest_gap(self, since):
        """The longest time without an acknowledged write after `since` (seconds)."""
        with self.lock:
            times = [since] + [t for t in self.ack_times if t > since]
        return max(b - a for a, b in zip(times, times[1:])) if len(times) > 1 else None

    def acked(self):
        with self.lock:
            return [(k, v) for k, v, c, _ in self.log if c == 200]

    def wait_acked(self, count, limit):
        deadline = time.monotonic() + limit
        while len(self.acked()) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return len(self.acked()) >= count


def get_is(node, key, want):
    """want None: absent (404). Linearizable read, retried on 503 / no answer for 10 s."""
    s, body = retry_req(10, node, "GET", "/get?key=" + urllib.parse.quote(key))
    if want is None:
        return s == 404, "%s %s" % (s, body)
    return s == 200 and isinstance(body, dict) and body.get("value") == want, "%s %s" % (s, body)


def verify(what, writer, nodes):
    acked = writer.acked()
    bad, first = 0, ""
    for i, (key, value) in enumerate(acked):
        good, got = get_is(nodes[i % len(nodes)], key, value)
        if not good:
            bad += 1
            first = first or "%s: want %s, got %s" % (key, value, got)
    check("%s: all %d acknowledged writes read back through %s" % (what, len(acked),
                                                                   ",".join(nodes)),
          bad == 0 and len(acked) > 0, "%d wrong or missing (first: %s)" % (bad, first))


def join(leader, name):
    s, body = retry_req(30, leader, "POST",
                        "/join?nodeid=%s&nodeaddr=127.0.0.1:%d" % (name, RP[name]))
    return check("POST /join %s on %s" % (name, leader), s == 200, "%s %s" % (s, body))


# -- the test ---------------------------------------------------------------------------------


def main():
    if not pick_ports():
        print("no free port range found", file=sys.stderr)
        return 1
    print("binary %s, ports %d..%d, dir %s" % (BIN_ARG, RP["m1"], HP["m6"], TMP), flush=True)

    print("--- 1. grow 1 -> 3 -> 5 under writes [t=%s]" % elapsed(), flush=True)
    if not start("m1"):
        return 1
    if not check("m1 leads its one-node cluster", find_leader(15, ["m1"]) == "m1"):
        return 1
    writer = Writer(["m1"])
    writer.start()
    check("writer acknowledged >= 20 writes on m1 alone", writer.wait_acked(20, 15))
    for name in ["m2", "m3"]:
        if not (start(name) and join("m1", name)):
            return 1
    serving = ["m1", "m2", "m3"]
    writer.set_targets(serving)
    check("3 voters", wait_members(15, "m1", serving), str(status("m1")))
    n = len(writer.acked())
    check("writes acknowledged through all 3", writer.wait_acked(n + 40, 30))
    verify("1. 3 nodes", writer, serving)
    n = len(writer.acked())
    check("100 more writes: the log is compacted past what m4 and m5 could replay",
          writer.wait_acked(n + 100, 30))
    for name in ["m4", "m5"]:
        if not (start(name) and join("m1", name)):
            return 1
    serving = ["m1", "m2", "m3", "m4", "m5"]
    writer.set_targets(serving)
    check("5 voters", wait_members(15, "m1", serving), str(status("m1")))
    verify("1. 5 nodes", writer, serving)
    for name in ["m4", "m5"]:
        with open(os.path.join(TMP, name + ".log")) as log:
            check("%s caught up by InstallSnapshot" % name, "installed snapshot" in log.read())

    print("--- 2. transfer leadership under writes [t=%s]" % elapsed(), flush=True)
    leader = find_leader(10, serving)
    target = [n for n in serving if n != leader][-1]
    # Sent to a follower: it forwards to the leader.
    via = [n for n in serving if n not in (leader, target)][0]
    n = len(writer.acked())
    began = time.monotonic()
    s, body = retry_req(20, via, "POST", "/transfer-leader?nodeid=" + target)
    check("POST /transfer-leader?nodeid=%s via %s (leader %s)" % (target, via, leader), s == 200,
          "%s %s" % (s, body))
    check("%s leads after the transfer" % target, find_leader(10, serving) == target)
    check("writes acknowledged after the transfer", writer.wait_acked(n + 40, 30))
    print("longest pause between acknowledged writes around the transfer: %.0f ms"
          % (1000 * writer.longest_gap(began)), flush=True)
    verify("2. after the transfer", writer, serving)

    print("--- 3. shrink 5 -> 3: a follower, then the leader itself [t=%s]" % elapsed(),
          flush=True)
    leader = find_leader(10, serving)
    follower = [n for n in serving if n != leader][0]
    serving = [n for n in serving if n != follower]
    writer.set_targets(serving)
    s, body = retry_req(20, leader, "POST", "/remove?nodeid=" + follower)
    check("POST /remove?nodeid=%s on the leader %s" % (follower, leader), s == 200,
          "%s %s" % (s, body))
    serving = [n for n in serving if n != leader]
    writer.set_targets(serving)
    n = len(writer.acked())
    began = time.monotonic()
    # Not retried: the previous change committed, so the successor must not answer "busy" (it
    # waits for its own term's first commit instead).
    s, body = req(leader, "POST", "/remove?nodeid=" + leader, timeout=30)
    check("POST /remove?nodeid=%s of the leader itself (handed over first)" % leader, s == 200,
          "%s %s" % (s, body))
    new_leader = find_leader(10, serving)
    check("a remaining node leads (%s)" % new_leader, new_leader in serving)
    check("3 voters left", wait_members(15, serving[0], serving), str(status(serving[0])))
    check("writes acknowledged after the shrink", writer.wait_acked(n + 40, 30))
    print("longest pause between acknowledged writes around the leader's removal: %.0f ms"
          % (1000 * writer.longest_gap(began)), flush=True)
    verify("3. 3 nodes left", writer, serving)
    for gone in (follower, leader):
        deadline = time.monotonic() + 10
        while status(gone).get("role") != "removed" and time.monotonic() < deadline:
            time.sleep(0.2)
        check("%s knows it was removed (/status role)" % gone,
              status(gone).get("role") == "removed", str(status(gone)))
        answers = [
            req(gone, "POST", "/set", set_body("after-removal", "x")),
            req(gone, "GET", "/get?key=w1"),
            req(gone, "GET", "/get?key=w1&consistency=stale"),
            req(gone, "POST", "/join?nodeid=m6&nodeaddr=127.0.0.1:%d" % RP["m6"]),
            req(gone, "POST", "/remove?nodeid=" + serving[0]),
            req(gone, "POST", "/transfer-leader"),
        ]
        check("%s answers 409 reason 'removed' to set, get, stale get, join, remove, transfer"
              % gone,
              all(s == 409 and isinstance(b, dict) and b.get("reason") == "removed"
                  for s, b in answers), str(answers))
    for gone in (follower, leader):
        PROC[gone].terminate()
        PROC[gone].wait(timeout=10)

    print("--- 4. replace a kill -9'ed node (remove + join) [t=%s]" % elapsed(), flush=True)
    leader = find_leader(10, serving)
    dead = [n for n in serving if n != leader][0]
    kill9(dead)
    serving = [n for n in serving if n != dead]
    writer.set_targets(serving)
    s, body = retry_req(20, leader, "POST", "/remove?nodeid=" + dead)
    check("POST /remove?nodeid=%s (killed) on %s" % (dead, leader), s == 200,
          "%s %s" % (s, body))
    if not (start("m6") and join(leader, "m6")):
        return 1
    serving.append("m6")
    writer.set_targets(serving)
    check("3 voters with the replacement m6", wait_members(15, leader, serving),
          str(status(leader)))
    n = len(writer.acked())
    check("writes acknowledged after the replacement", writer.wait_acked(n + 40, 30))
    verify("4. after the replacement", writer, serving)

    writer.stop.set()
    writer.join(timeout=15)
    codes = {}
    for _, _, code, _ in writer.log:
        codes[code] = codes.get(code, 0) + 1
    print("writer: %d attempts: %s" % (len(writer.log), codes), flush=True)
    verify("final", writer, serving)
    refused_bad, unknown_bad = [], []
    for key, value, code, _ in writer.log:
        if code in (409, 503):
            good, got = get_is(serving[0], key, None)
            if not good:
                refused_bad.append("%s(%s)" % (key, got))
        elif code in (0, 500):
            if not (get_is(serving[0], key, value)[0] or get_is(serving[0], key, None)[0]):
                unknown_bad.append(key)
    check("writes answered 409/503 (nothing changed) are absent", not refused_bad,
          " ".join(refused_bad[:5]))
    check("writes with unknown outcome are applied as sent or absent", not unknown_bad,
          " ".join(unknown_bad[:5]))
    return 0


def cleanup():
    for p in PROC.values():
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait()


if __name__ == "__main__":
    rc = 1
    try:
        rc = main()
    finally:
        cleanup()
        print("total time " + elapsed())
        if failures or rc:
            for name in NAMES:
                path = os.path.join(TMP, name + ".log")
                if os.path.exists(path):
                    print("---- last 30 lines of %s ----" % path)
                    with open(path) as f:
                        print("".join(f.readlines()[-30:]), end="")
        print("%d passed, %d failed" % (passes, failures))
        if os.environ.get("KEEP_TMP"):
            print("kept " + TMP)
        else:
            shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(1 if failures or rc else 0)
