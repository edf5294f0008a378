#!/usr/bin/env python3
"""Attack clients for tests/e2e/http_limits_test.sh (standard library only).

Each subcommand talks to one infinitystore node on 127.0.0.1, prints `key=value` lines for the
shell script to check, and exits 0; the shell script decides what passes. Every wait is bounded.
"""
import socket
import sys
import threading
import time

HOST = "127.0.0.1"


def connect(port, timeout=5.0, rcvbuf=None):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect((HOST, port))
    return sock


def read_response(sock, deadline_s=5.0):
    """Reads one HTTP/1.1 response with Content-Length. Returns (status, headers, body) or
    (None, {}, b"") when the connection ended or timed out first."""
    data = b""
    end = time.monotonic() + deadline_s
    while b"\r\n\r\n" not in data:
        if time.monotonic() > end:
            return None, {}, b""
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, OSError):
            return None, {}, b""
        if not chunk:
            return None, {}, b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length and time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, OSError):
            break
        if not chunk:
            break
        body += chunk
    return status, headers, body[:length]


def closed_by_peer(sock, within_s):
    """True if the server closes the connection (EOF or reset) within `within_s`."""
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        sock.settimeout(max(0.05, end - time.monotonic()))
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            return False
        except OSError:
            return True
    return False


def get(sock, target, extra=""):
    sock.sendall(("GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (target, extra)).encode())
    return read_response(sock)


def report(**values):
    for key, value in values.items():
        print("%s=%s" % (key, value))
    sys.stdout.flush()


def oversized(port, kind):
    """A chunked request whose trailer has one 70 KiB field, or a request with 20 KiB of headers:
    expects an answer, then the server closing the connection."""
    sock = connect(port)
    if kind == "trailer":
        request = (b"POST /set HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\nhello\r\n0\r\nX-Big: " + b"a" * (70 * 1024) + b"\r\n\r\n")
    else:
        request = b"GET /status HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * (20 * 1024) + b"\r\n\r\n"
    # Sent from a thread: the server may answer before it has read everything.
    sender = threading.Thread(target=lambda: _send_quietly(sock, request))
    sender.start()
    status, headers, body = read_response(sock)
    closed = closed_by_peer(sock, 4.0)
    sender.join(5)
    sock.close()
    report(status=status, connection=headers.get("connection", ""), closed=int(closed),
           json=int(body.startswith(b'{"error"')))


def _send_quietly(sock, data):
    try:
        sock.sendall(data)
    except OSError:
        pass


def slow(port, mode, limit_s):
    """Slowloris variants; reports how long the server kept the connection open."""
    sock = connect(port)
    start = time.monotonic()
    if mode == "body":
        sock.sendall(b"POST /set HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n{\"key\":")
    elif mode == "headers":
        sock.sendall(b"GET /status HTTP/1.1\r\nHost: t\r\n")
    elif mode == "idle":  # one whole request, then nothing: the idle timeout applies
        status, _, _ = get(sock, "/status")
        if status != 200:
            report(mode=mode, closed=0, seconds=0, status=status)
            return
        start = time.monotonic()
    closed = False
    while time.monotonic() - start < limit_s:
        if mode in ("headers", "body"):
            try:
                sock.sendall(b"a")  # one byte at a time, never finishing
            except OSError:
                closed = True
                break
        if closed_by_peer(sock, 0.3):
            closed = True
            break
    report(mode=mode, closed=int(closed), seconds="%.2f" % (time.monotonic() - start))
    sock.close()


def limit(port, count, extra_count):
    """Fills the connection limit with `count` keep-alive connections, then opens `extra_count`
    more at once and keeps them open: reports how many got 503 and how many were closed without
    an answer, then checks the existing ones still work, and new ones work again after some of
    them close."""
    held = []
    for _ in range(count):
        sock = connect(port)
        status, _, _ = get(sock, "/status")
        if status != 200:
            report(fill_failed=status)
            return
        held.append(sock)
    extras = []
    for _ in range(extra_count):
        sock = connect(port)
        _send_quietly(sock, b"GET /status HTTP/1.1\r\nHost: t\r\n\r\n")
        extras.append(sock)
    answers = [read_response(sock) for sock in extras]
    busy = [a for a in answers if a[0] == 503]
    good = [a for a in busy
            if a[1].get("retry-after") == "1" and a[2].startswith(b'{"error"')
            and a[1].get("connection") == "close"]
    closed = all(closed_by_peer(sock, 4.0) for sock in extras)
    for sock in extras:
        sock.close()
    report(over_503=len(busy), over_503_well_formed=len(good),
           over_unanswered=sum(1 for a in answers if a[0] is None),
           over_other=sum(1 for a in answers if a[0] not in (None, 503)), over_closed=int(closed))
    existing = [get(sock, "/status")[0] for sock in held[:3]]
    report(existing_statuses=",".join(str(s) for s in existing))
    for sock in held[:5]:
        sock.close()
    held = held[5:]
    again = None
    end = time.monotonic() + 5
    while time.monotonic() < end:
        sock = connect(port)
        again = get(sock, "/status")[0]
        sock.close()
        if again == 200:
            break
        time.sleep(0.2)
    report(after_close_status=again)
    for sock in held:
        sock.close()


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pipeline(port, pid, clients, requests, seconds):
    """`clients` connections each pipeline `requests` GETs of a large value and never read."""
    before = vm_rss_kib(pid)
    request = b"GET /get?key=big&consistency=stale HTTP/1.1\r\nHost: t\r\n\r\n"
    socks = []
    for _ in range(clients):
        # A small receive window, so little of what the node writes can hide in this side's
        # kernel buffers.
        sock = connect(port, rcvbuf=64 * 1024)
        sock.sendall(request * requests)
        socks.append(sock)
    peak = before
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        peak = max(peak, vm_rss_kib(pid))
        time.sleep(0.1)
    for sock in socks:
        sock.close()
    time.sleep(1.0)
    after = vm_rss_kib(pid)
    report(rss_before_kib=before, rss_peak_kib=peak, rss_after_kib=after,
           rss_growth_mib="%.1f" % ((peak - before) / 1024.0))


def main():
    command, port = sys.argv[1], int(sys.argv[2])
    if command in ("trailer", "header"):
        oversized(port, command)
    elif command == "slow":
        slow(port, sys.argv[3], float(sys.argv[4]))
    elif command == "limit":
        limit(port, int(sys.argv[3]), int(sys.argv[4]))
    elif command == "pipeline":
        pipeline(port, int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]))
    else:
        sys.exit("unknown command " + command)


if __name__ == "__main__":
    main()
