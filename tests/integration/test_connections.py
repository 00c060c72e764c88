"""Connection limits against the real server: 10,000 concurrent kept-alive
connections held with memory and descriptors bounded (and measured: the
numbers are printed, `pytest -s` shows them), none leaked after they
close; PIXFLARE_MAX_CONNECTIONS refuses the next one clearly (503
TOO_MANY_CONNECTIONS, then closed) while the first keep working; a client
trickling its request header is cut off after PIXFLARE_HEADER_TIMEOUT_S
(libmicrohttpd's own timeout restarts on every byte, so it alone never
would) while others are served; an idle connection is closed after
PIXFLARE_IDLE_TIMEOUT_S. docs/HTTP.md."""
import json
import os
import random
import resource
import selectors
import socket
import time
import urllib.request

import pytest

import pftest
from pftest import Server, free_port

pytestmark = pytest.mark.no_db

REQ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def read_answer(s):
    """One whole answer on a blocking socket: (status, headers, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(65536)
        assert b, "closed before an answer: %r" % buf
        buf += b
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode()] = v.strip().decode()
    n = int(headers.get("content-length", "0"))
    while len(body) < n:
        b = s.recv(65536)
        assert b
        body += b
    return int(lines[0].split()[1]), headers, body[:n]


def is_open(s):
    """Whether the server still holds s open (nothing to read, no EOF)."""
    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except ConnectionError:
        return False
    finally:
        s.setblocking(True)


def wait_closed(s, limit):
    """Read until the server closes s; returns the seconds it took (at most
    `limit`: the caller's bound, not a timing assertion)."""
    t0 = time.monotonic()
    s.settimeout(limit)
    try:
        while s.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - t0


def metric(port, name):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


N = 10000
with open(pftest.BIN, "rb") as _f:
    SANITIZED = b"__asan_init" in _f.read()


def hold(srv, n):
    """Open n connections, one request each, all answered; check them held
    and measure the server; close them all. Returns (fds, rss KiB) held."""
    pid = srv.proc.pid
    sel = selectors.DefaultSelector()
    socks = []
    # A source address of its own for each round: the ports of an earlier
    # round (or test) are in TIME_WAIT, and Linux reuses those on loopback
    # (tcp_tw_reuse=2), which can meet a server end not yet closed.
    src = "127.%d.%d.%d" % (random.randrange(1, 255), random.randrange(256), random.randrange(1, 255))
    try:
        # Connect in batches (the listen backlog is 1024), send one request
        # each, read each answer whole.
        pending = {}
        answered = 0
        for i in range(0, n, 500):
            for _ in range(min(500, n - i)):
                s = socket.socket()
                s.setblocking(False)
                s.bind((src, 0))
                s.connect_ex(("127.0.0.1", srv.port))
                socks.append(s)
                pending[s.fileno()] = [s, REQ, b""]
                sel.register(s, selectors.EVENT_WRITE)
            while pending:
                events = sel.select(timeout=30)
                if not events and len(pending) % 128 == 0:
                    # The known libmicrohttpd 0.9.75 problem (docs/HTTP.md,
                    # "Known problem"): now and then a burst of connects
                    # leaves whole batches of 128 (its epoll batch size)
                    # accepted connections that it never reads; seen before
                    # this test's changes too. Reported, not hidden.
                    pytest.xfail("libmicrohttpd left %d accepted connections unread "
                                 "(%d answered): docs/HTTP.md, Known problem"
                                 % (len(pending), answered))
                assert events, "no progress for 30 s: %d answered" % answered
                for key, ev in events:
                    st = pending[key.fd]
                    s = st[0]
                    if ev & selectors.EVENT_WRITE:
                        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        assert err == 0, os.strerror(err)
                        st[1] = st[1][s.send(st[1]):]
                        if not st[1]:
                            sel.modify(s, selectors.EVENT_READ)
                        continue
                    b = s.recv(65536)
                    assert b, "connection %d closed before its answer: %s" % (
                        len(socks), srv.why())
                    st[2] += b
                    head, sep, body = st[2].partition(b"\r\n\r\n")
                    assert not sep or head.startswith(b"HTTP/1.1 200 "), head
                    if sep and len(body) >= int(
                            head.lower().split(b"content-length:")[1].split(b"\r\n")[0]):
                        sel.unregister(s)
                        del pending[key.fd]
                        answered += 1
        assert answered == n
        held = fds(pid), rss_kib(pid)
        still_open = sum(1 for s in socks if is_open(s))
        assert still_open == n
        # At the default PIXFLARE_MAX_CONNECTIONS (10000), a newcomer is
        # answered, with a 503.
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(REQ)
            assert read_answer(s)[0] == 503
        return held
    finally:
        sel.close()
        for s in socks:
            s.close()


def back_to(pid, base_fds):
    """The server's descriptors once it has seen the closes (at most 30 s)."""
    deadline = time.monotonic() + 30
    while fds(pid) > base_fds and time.monotonic() < deadline:
        time.sleep(0.1)
    return fds(pid)


def test_ten_thousand_kept_alive_connections(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = N + 1000
    if hard < want:
        pytest.skip("RLIMIT_NOFILE hard limit %d < %d" % (hard, want))
    # Raised for the test (the socket ends) and for the server it starts
    # (which raises its own soft limit to the hard one anyway).
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    try:
        mport = free_port()
        srv = Server(tmp_path / "data", {"PIXFLARE_THREADS": "2",
                                         "PIXFLARE_IDLE_TIMEOUT_S": "120",
                                         # on a loaded machine a round may stall for
                                         # seconds; the timeouts have their own tests
                                         "PIXFLARE_HEADER_TIMEOUT_S": "60",
                                         "PIXFLARE_METRICS_LISTEN": "127.0.0.1:%d" % mport}).start()
        srv.why = lambda: "open %s, refused %s, header timeouts %s" % (
            metric(mport, "pixflare_http_connections"),
            metric(mport, "pixflare_http_connections_refused_total"),
            metric(mport, "pixflare_http_header_timeouts_total"))
        pid = srv.proc.pid
        base_fds, base_rss = fds(pid), rss_kib(pid)
        held_fds, held_rss = hold(srv, N)
        after1 = back_to(pid, base_fds)
        # Again: the memory of the first round is reused, not added to.
        held_fds2, held_rss2 = hold(srv, N)
        after2 = back_to(pid, base_fds)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    per_conn = (held_rss - base_rss) / N
    print("\n%d kept-alive connections: server fds %d -> %d, RSS %d -> %d KiB "
          "(%.1f KiB a connection); all closed: fds %d; again: fds %d, RSS %d KiB; "
          "all closed: fds %d"
          % (N, base_fds, held_fds, base_rss, held_rss, per_conn, after1, held_fds2,
             held_rss2, after2))
    # One descriptor a connection, a few spare (the baseline may be off by
    # a passing descriptor or two: an event-log segment, the start probe).
    assert N - 5 <= held_fds - base_fds <= N + 50
    # libmicrohttpd's pool (CONN_POOL, 32 KiB, zeroed so resident) and its
    # connection state: bounded under 64 KiB a connection.
    assert held_rss - base_rss < N * 64
    # The second round reuses the first's memory: a leaked pool (32 KiB a
    # connection) would add about 320 MB. glibc's per-thread arenas may put
    # part of the second round's pools beside the first's freed ones rather
    # than in them: measured +33 to +83 MB (3.3 to 8.3 KiB a connection), so
    # the bound is half a pool a connection.
    if not SANITIZED:  # ASan's quarantine holds freed memory back by design
        assert held_rss2 < held_rss + N * 16
    # Nothing leaked: every connection's descriptor went with it (the
    # baseline may be off by a passing descriptor or two).
    assert after1 <= base_fds + 5 and after2 <= after1 + 2
    assert srv.stop() in (0, None)


def test_beyond_max_connections_is_refused_clearly(tmp_path):
    mport = free_port()
    srv = Server(tmp_path / "data", {"PIXFLARE_MAX_CONNECTIONS": "4",
                                     "PIXFLARE_METRICS_LISTEN": "127.0.0.1:%d" % mport}).start()
    held = []
    try:
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s.sendall(REQ)
            assert read_answer(s)[0] == 200
            held.append(s)
        # The fifth: answered 503 with our JSON, then closed.
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(REQ)
            status, headers, body = read_answer(s)
            assert status == 503 and headers["retry-after"] == "1"
            assert headers["connection"].lower() == "close"
            assert json.loads(body)["error"]["code"] == "TOO_MANY_CONNECTIONS"
            wait_closed(s, 10)
            assert not is_open(s)
        # The first four keep working.
        for s in held:
            s.sendall(REQ)
            assert read_answer(s)[0] == 200
        assert metric(mport, "pixflare_http_connections_refused_total") == 1
        assert metric(mport, "pixflare_http_connections") == 4
        # One goes: a newcomer is served again (once the server has seen
        # the close).
        held.pop().close()
        deadline = time.monotonic() + 10
        while True:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
                s.sendall(REQ)
                if read_answer(s)[0] == 200:
                    break
            assert time.monotonic() < deadline, "never served again"
            time.sleep(0.05)
    finally:
        for s in held:
            s.close()
    assert srv.stop() in (0, None)


def test_a_trickling_client_is_cut_off_and_others_are_served(tmp_path):
    mport = free_port()
    srv = Server(tmp_path / "data", {"PIXFLARE_HEADER_TIMEOUT_S": "2",
                                     "PIXFLARE_IDLE_TIMEOUT_S": "3600",
                                     "PIXFLARE_METRICS_LISTEN": "127.0.0.1:%d" % mport}).start()
    slow = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    header = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"s" * 200 + b"\r\n\r\n"
    t0 = time.monotonic()
    sent = 0
    served = 0
    try:
        # One byte every 0.1 s would take over 20 s for the whole header;
        # the server must close it long before (2 s), and every byte resets
        # libmicrohttpd's own (here one hour) timeout.
        while sent < len(header):
            try:
                slow.send(header[sent:sent + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
            if not is_open(slow):
                break
            # meanwhile a normal client is served
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
                s.sendall(REQ)
                assert read_answer(s)[0] == 200
                served += 1
            time.sleep(0.1)
            assert time.monotonic() - t0 < 15, "the trickling client was never cut off"
        took = time.monotonic() - t0
        print("\ntrickling client cut off after %.1f s and %d of %d bytes; %d others served meanwhile"
              % (took, sent, len(header), served))
        assert sent < len(header) and served > 0
        assert not is_open(slow)
        assert metric(mport, "pixflare_http_header_timeouts_total") == 1
    finally:
        slow.close()
    assert srv.stop() in (0, None)


def test_idle_and_slow_next_request_on_a_kept_alive_connection(tmp_path):
    srv = Server(tmp_path / "data", {"PIXFLARE_HEADER_TIMEOUT_S": "60",
                                     "PIXFLARE_IDLE_TIMEOUT_S": "2"}).start()
    try:
        # idle after an answer: closed by the idle timeout
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(REQ)
            assert read_answer(s)[0] == 200
            took = wait_closed(s, 15)
            assert not is_open(s), "idle connection kept"
        # its next request trickled: cut off within the idle timeout too,
        # though each byte restarts libmicrohttpd's own timer
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(REQ)
            assert read_answer(s)[0] == 200
            t0 = time.monotonic()
            try:
                for b in REQ[:-2] + b"X-Pad: " + b"p" * 300:
                    s.send(bytes([b]))
                    time.sleep(0.1)
                    if not is_open(s) or time.monotonic() - t0 > 20:
                        break
            except (BrokenPipeError, ConnectionResetError):
                pass
            assert not is_open(s), "trickled next request kept"
            print("\nidle connection closed after %.1f s; trickled next request cut off after %.1f s"
                  % (took, time.monotonic() - t0))
    finally:
        assert srv.stop() in (0, None)
