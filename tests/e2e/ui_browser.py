#!/usr/bin/env python3
"""Drives headless Chromium over the DevTools protocol (a minimal WebSocket client, stdlib only)
to check the /ui dashboard of a live cluster:

  1. the page shows every member and the leader the cluster agrees on;
  2. after the leader is killed (kill -9 of the PID the calling test started and passed here),
     the page shows another leader within --failover-seconds;
  3. screenshots (phone and desktop widths) go to --out.

Prints "ok: ..." / "FAIL: ..." lines; exits 1 on any failure. Every wait has a deadline.
"""
import argparse
import base64
import json
import os
import signal
import socket
import struct
import sys
import time
import urllib.request


class DevTools:
    """One WebSocket connection to a page target; call() sends a command, waits for its reply."""

    def __init__(self, ws_url, timeout):
        assert ws_url.startswith("ws://")
        hostport, path = ws_url[5:].split("/", 1)
        host, port = hostport.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise RuntimeError("DevTools closed the connection during the handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError("WebSocket handshake refused: " + head.decode(errors="replace"))
        self.next_id = 0

    def _recv_exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise RuntimeError("DevTools connection closed")
            data += chunk
        return data

    def _send(self, text):
        payload = text.encode()
        header = bytes([0x81])  # FIN, text frame
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)  # clients must mask (RFC 6455 §5.3)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _recv_message(self):
        message = b""
        while True:
            b0, b1 = self._recv_exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._recv_exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._recv_exact(8))[0]
            data = self._recv_exact(n)
            opcode = b0 & 0x0F
            if opcode == 0x8:
                raise RuntimeError("DevTools closed the WebSocket")
            if opcode in (0x9, 0xA):
                continue  # ping/pong: not used by DevTools
            message += data
            if b0 & 0x80:
                return json.loads(message)

    def call(self, method, **params):
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            reply = self._recv_message()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")


PICTURE = """JSON.stringify({
  leader: (document.getElementById('leader') || {}).textContent,
  members: [...document.querySelectorAll('.member')].map(m => [m.dataset.member, m.dataset.role]),
  timeline: [...document.querySelectorAll('#timeline li')].map(li => li.textContent)
})"""


def picture(tools):
    text = tools.evaluate(PICTURE)
    return json.loads(text) if text else {"leader": None, "members": [], "timeline": []}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cdp-port", type=int, required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--members", required=True, help="comma-separated ids")
    ap.add_argument("--leader", required=True)
    ap.add_argument("--leader-pid", type=int, required=True)
    ap.add_argument("--failover-seconds", type=float, default=8)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    members = sorted(args.members.split(","))
    failures = 0

    def ok(text):
        print("ok: " + text, flush=True)

    def fail(text):
        nonlocal failures
        failures += 1
        print("FAIL: " + text, flush=True)

    deadline = time.monotonic() + 40
    target = None
    while time.monotonic() < deadline and target is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{args.cdp_port}/json/list", timeout=2) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
                target = pages[0]["webSocketDebuggerUrl"] if pages else None
        except OSError:
            pass
        if target is None:
            time.sleep(0.3)
    if target is None:
        fail("Chromium's DevTools endpoint did not come up within 40 s")
        return 1
    tools = DevTools(target, timeout=20)
    tools.call("Page.enable")
    # A phone-sized viewport first: the page must be usable there.
    tools.call("Emulation.setDeviceMetricsOverride", width=412, height=915, deviceScaleFactor=2,
               mobile=True)
    tools.call("Page.navigate", url=args.url)

    # 1. members and the leader appear.
    deadline = time.monotonic() + 20
    pic = {}
    while time.monotonic() < deadline:
        pic = picture(tools)
        shown = sorted(m[0] for m in pic["members"])
        if shown == members and pic["leader"] == args.leader:
            break
        time.sleep(0.2)
    shown = sorted(m[0] for m in pic.get("members", []))
    if shown == members and pic.get("leader") == args.leader:
        ok(f"the page shows members {shown} and leader {args.leader}")
    else:
        fail(f"the page shows members {shown}, leader {pic.get('leader')!r}; expected "
             f"{members} and {args.leader}")
    roles = dict(pic.get("members", []))
    if roles.get(args.leader) == "leader" and all(
            roles.get(m) == "follower" for m in members if m != args.leader):
        ok(f"roles on the page: {roles}")
    else:
        fail(f"roles on the page: {roles}")
    width = tools.evaluate("document.documentElement.scrollWidth")
    if width is not None and width <= 412:
        ok(f"no horizontal scrolling at phone width (scrollWidth {width})")
    else:
        fail(f"the page is wider than a phone screen: scrollWidth {width}")
    os.makedirs(args.out, exist_ok=True)

    def screenshot(name):
        data = tools.call("Page.captureScreenshot", format="png")["data"]
        path = os.path.join(args.out, name)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    ok("screenshot " + screenshot("ui-phone-before.png"))

    # 2. kill -9 the leader; the page must show another one.
    os.kill(args.leader_pid, signal.SIGKILL)
    killed = time.monotonic()
    deadline = killed + args.failover_seconds
    new_leader = None
    while time.monotonic() < deadline:
        pic = picture(tools)
        if pic["leader"] and pic["leader"] not in (args.leader, "none", "?"):
            new_leader = pic["leader"]
            break
        time.sleep(0.1)
    took = time.monotonic() - killed
    if new_leader:
        ok(f"after kill -9 of {args.leader} the page shows leader {new_leader} "
           f"within {took:.1f} s")
    else:
        fail(f"the page still shows leader {pic['leader']!r} {args.failover_seconds} s after "
             f"kill -9 of {args.leader}")
    if any(("leader is now " + str(new_leader)) in line for line in pic["timeline"]):
        ok("the timeline records the leader change")
    else:
        fail(f"timeline lacks the change: {pic['timeline'][:5]}")
    time.sleep(2.5)  # a few polls: rates and the dead member's state settle
    ok("screenshot " + screenshot("ui-phone-after.png"))
    tools.call("Emulation.setDeviceMetricsOverride", width=1100, height=720, deviceScaleFactor=1,
               mobile=False)
    time.sleep(1.2)
    ok("screenshot " + screenshot("ui-desktop-after.png"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
