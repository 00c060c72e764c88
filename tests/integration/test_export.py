"""GET /v1/analytics/export (issue 20) end to end: a real server on
127.0.0.1, keys made with `pixflare keys`, analytics_daily rows this test
writes straight into the database (SQLite or PostgreSQL: every test runs on
both), and every export parsed back and compared with the table as the
database itself lists it.

The year test streams 366 days of 1,500 rows (549,000 rows, tens of MB of
text) while it samples the server's resident memory (/proc/PID/status,
VmRSS) and checks that the growth stays under 16 MiB: a page of rows is
some 200 KB of text and the export holds at most its low-water mark plus a
page per download, so what remains is SQLite's page cache (2 MiB per
connection, up to four connections: the API's two and the export's two)
and the allocator's per-thread arenas. A buffered export would need the
whole body (25 MB of CSV, 60 MB of NDJSON). The same server then serves a
client that reads slowly (memory stays flat while the other calls and a
second export go on), clients that leave after the first chunk, and a
SIGTERM in the middle of a download (the server stops, the body is cut)."""
import csv
import datetime
import hashlib
import hmac
import http.client
import io
import json
import os
import socket
import sqlite3
import threading
import time

import pytest

import pftest
from pftest import BIN, Server
from test_api import assert_error, new_key

SECRET = "export-test-secret-00000000000001"
COLS = ("date", "image_id", "variant", "country", "requests", "bandwidth_bytes")
CSV_HEADER = ",".join(COLS)
RSS_BOUND_KIB = 16 * 1024


def owner_hash(name):
    return hmac.new(SECRET.encode(), name.encode(), hashlib.sha256).digest()[:16].hex()


def day(offset):
    d = datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=offset)
    return d.isoformat()


def sanitized():
    """An ASan or TSan build: their allocators keep freed memory (ASan's
    quarantine is 256 MiB), so RSS says nothing there (as test_cache.py)."""
    with open(BIN, "rb") as f:
        data = f.read()
    return b"__asan_init" in data or b"__tsan_init" in data


def new_server(tmp_path, extra=None):
    env = {"PIXFLARE_SECRET": SECRET, "ANALYTICS_BATCH_ENABLED": "false",
           "PIXFLARE_API_RATE_LIMIT": "0", "ANALYTICS_RETENTION_DAYS": "400"}
    env.update(extra or {})
    return Server(tmp_path / "data", env).start()


def seed(srv, rows):
    """analytics_daily rows (owner, date, image_id, variant, country,
    requests, bandwidth_bytes) written in bulk: one transaction on SQLite,
    COPY on PostgreSQL."""
    db = srv.database
    if db.startswith("sqlite:"):
        conn = sqlite3.connect(db[len("sqlite:"):], timeout=30)
        try:
            conn.executemany("INSERT INTO analytics_daily (owner, date, image_id, variant, country,"
                             " requests, bandwidth_bytes) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            conn.commit()
        finally:
            conn.close()
        return
    buf = io.StringIO("".join("\t".join(str(v) for v in r) + "\n" for r in rows))
    with pftest._pg_conn(db).cursor() as cur:
        cur.copy_from(buf, "analytics_daily", columns=("owner", "date", "image_id", "variant",
                                                       "country", "requests", "bandwidth_bytes"))


def table(srv, owner_hex, start, end):
    """The owner's rows of the range as the database lists them, in key order."""
    return [tuple(r) for r in srv.sql(
        "SELECT date, image_id, variant, country, requests, bandwidth_bytes FROM analytics_daily "
        "WHERE owner = ? AND date BETWEEN ? AND ? ORDER BY date, image_id, variant, country",
        (owner_hex, start, end))]


def unguard(s):
    """A CSV text field as it was before the formula guard."""
    return s[1:] if s[:1] == "'" and s[1:2] in ("=", "+", "-", "@", "\t", "\r") else s


def parse_csv(body):
    text = body.decode("utf-8")
    assert text.startswith(CSV_HEADER + "\r\n"), text[:200]
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == list(COLS)
    assert all(len(r) == 6 for r in rows[1:])
    # Every record ends with CRLF (csv.reader accepts LF too: count them).
    assert text.count("\r\n") >= len(rows) and text.endswith("\r\n")
    return [(unguard(r[0]), unguard(r[1]), unguard(r[2]), unguard(r[3]), int(r[4]), int(r[5]))
            for r in rows[1:]]


def parse_ndjson(body):
    out = []
    text = body.decode("utf-8")
    assert text == "" or text.endswith("\n")
    for line in text.splitlines():
        j = json.loads(line)
        assert list(j) == list(COLS), j
        out.append(tuple(j[c] for c in COLS))
    return out


def export_path(query):
    return "/v1/analytics/export" + ("?" + query if query else "")


def get(srv, key, query, method="GET"):
    return srv.request(method, export_path(query), {"Authorization": "Bearer " + key})


def open_export(srv, key, query):
    """An export's response, its body not read yet."""
    c = srv.connect(timeout=120)
    c.request("GET", export_path(query), headers={"Authorization": "Bearer " + key})
    r = c.getresponse()
    assert r.status == 200, (r.status, r.read())
    return c, r


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class RssSampler:
    """The server's VmRSS every 10 ms on a thread, while a block runs."""

    def __init__(self, pid):
        self.pid = pid
        self.samples = []
        self._stop = threading.Event()

    def __enter__(self):
        self.samples.append(rss_kib(self.pid))
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.wait(0.01):
            self.samples.append(rss_kib(self.pid))

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.samples.append(rss_kib(self.pid))

    @property
    def peak(self):
        return max(self.samples)


def check_headers(hdrs, csv_format, start, end):
    assert hdrs["content-type"] == ("text/csv; charset=utf-8" if csv_format
                                    else "application/x-ndjson"), hdrs
    assert hdrs["content-disposition"] == 'attachment; filename="pixflare-export-%s-%s.%s"' % (
        start, end, "csv" if csv_format else "ndjson"), hdrs
    assert hdrs.get("cache-control") == "no-store"
    assert hdrs.get("transfer-encoding") == "chunked" and "content-length" not in hdrs, hdrs


# ---- Small exports: the rows, the formats, the parameters, the keys ----

def test_csv_and_ndjson_equal_the_table(tmp_path):
    srv = new_server(tmp_path)
    key = new_key(srv, "alice")
    a, b = owner_hash("alice"), owner_hash("bob")
    d0, d1, d2, d3 = day(-3), day(-2), day(-1), day(0)
    rows = [(a, d, "img%03d" % i, v, c, i * 7 + 1, i * 1000 + len(v))
            for d in (d1, d2, d3) for i in range(40) for v in ("original", "w512", "thumb")
            for c in ("US", "DE")]
    # Outside the range, another owner's, and rows written by hand that a
    # spreadsheet would take for formulas or that need quoting.
    rows += [(a, d0, "img000", "original", "US", 5, 5), (b, d2, "img900", "original", "US", 9, 9),
             (a, d2, "=cmd|x", "-w512", "+1", 3, 30), (a, d2, "a,b", 'say "hi"', "@X", 4, 40)]
    seed(srv, rows)
    want = table(srv, a, d1, d3)
    assert len(want) == 3 * 40 * 3 * 2 + 2
    assert want == sorted(want)  # the database's key order is byte order

    st, hdrs, body = get(srv, key, "start=%s&end=%s" % (d1, d3))
    assert st == 200, body
    check_headers(hdrs, True, d1, d3)
    assert "x-ratelimit-limit" not in hdrs  # PIXFLARE_API_RATE_LIMIT=0
    assert parse_csv(body) == want
    assert b"'=cmd|x" in body and b'"a,b"' in body and b'"say ""hi"""' in body

    st, hdrs, body = get(srv, key, "start=%s&end=%s&format=ndjson" % (d1, d3))
    assert st == 200, body
    check_headers(hdrs, False, d1, d3)
    assert parse_ndjson(body) == want

    st, hdrs, body = get(srv, key, "start=%s&end=%s&format=csv" % (d2, d2))
    assert st == 200 and parse_csv(body) == table(srv, a, d2, d2)
    # days: the range ends today, as for the other endpoints.
    st, hdrs, body = get(srv, key, "days=2")
    assert st == 200 and parse_csv(body) == table(srv, a, d2, d3)
    check_headers(hdrs, True, d2, d3)
    # The default range: 30 days ending today.
    st, hdrs, body = get(srv, key, "")
    assert st == 200 and parse_csv(body) == table(srv, a, day(-29), d3)
    # HEAD: the headers, no body.
    st, hdrs, body = get(srv, key, "days=2", method="HEAD")
    assert st == 200 and body == b""
    assert hdrs["content-type"] == "text/csv; charset=utf-8"
    srv.stop()


def test_empty_range_is_the_header_alone(tmp_path):
    srv = new_server(tmp_path)
    key = new_key(srv, "alice")
    seed(srv, [(owner_hash("bob"), day(-1), "img001", "original", "US", 1, 1)])
    st, hdrs, body = get(srv, key, "days=7")
    assert st == 200 and body == (CSV_HEADER + "\r\n").encode()
    check_headers(hdrs, True, day(-6), day(0))
    st, hdrs, body = get(srv, key, "days=7&format=ndjson")
    assert st == 200 and body == b""
    srv.stop()


def test_parameters_are_checked_strictly(tmp_path):
    srv = new_server(tmp_path)
    key = new_key(srv, "alice")
    cases = [
        ("day=7", "day", "unknown parameter 'day' (known: days, start, end, format)"),
        ("limit=5", "limit", None),
        ("interval=day", "interval", None),
        ("format=json", "format", "format must be csv or ndjson"),
        ("format=CSV", "format", None),
        ("days=367", "days", "days must be a whole number from 1 to 366"),
        ("days=0", "days", None),
        ("days=7.5", "days", None),
        ("days=7&start=%s" % day(-3), "days", "days cannot be combined with start or end"),
        ("start=%s&end=%s" % (day(-366), day(0)), "start",
         "the range from start to end may span at most 366 days"),
        ("start=2026-02-30", "start", "start must be a real calendar date written YYYY-MM-DD"),
        ("end=%s" % day(1), "end", None),
        ("start=%s&end=%s" % (day(-1), day(-2)), "start", "start must not be after end"),
        ("format=csv&format=csv", "format", "format: given more than once"),
    ]
    for query, param, message in cases:
        st, hdrs, body = get(srv, key, query)
        assert_error(st, hdrs, body, 400, "INVALID_PARAMETER", parameter=param)
        if message is not None:
            assert json.loads(body)["error"]["message"] == message, (query, body)
    # A year, leap day or not, is allowed.
    st, _, body = get(srv, key, "start=%s&end=%s" % (day(-365), day(0)))
    assert st == 200 and body == (CSV_HEADER + "\r\n").encode()
    st, _, _ = get(srv, key, "days=366&format=ndjson")
    assert st == 200
    srv.stop()


def test_keys_scopes_and_rate_limit_as_the_other_endpoints(tmp_path):
    srv = new_server(tmp_path, {"PIXFLARE_API_RATE_LIMIT": "2"})
    good = new_key(srv, "alice")
    writer = new_key(srv, "alice", "--scopes", "write")
    revoked = new_key(srv, "alice")
    srv.cli("keys", "revoke", revoked[4:16], check=0)
    seed(srv, [(owner_hash("alice"), day(0), "img001", "original", "US", 1, 1)])

    st, hdrs, body = srv.request("GET", export_path("days=1"))
    assert_error(st, hdrs, body, 401, "UNAUTHORIZED")
    assert hdrs["www-authenticate"] == 'Bearer realm="pixflare"'
    st, hdrs, body = get(srv, revoked, "days=1")
    assert_error(st, hdrs, body, 401, "UNAUTHORIZED")
    st, hdrs, body = get(srv, writer, "days=1")
    assert_error(st, hdrs, body, 403, "FORBIDDEN")

    # One export is one call of the owner's rate, errors included.
    st, hdrs, body = get(srv, good, "days=1")
    assert st == 200 and parse_csv(body) == [(day(0), "img001", "original", "US", 1, 1)]
    assert hdrs["x-ratelimit-limit"] == "2" and hdrs["x-ratelimit-remaining"] == "1"
    st, hdrs, body = get(srv, good, "bad=1")
    assert_error(st, hdrs, body, 400, "INVALID_PARAMETER", parameter="bad")
    assert hdrs["x-ratelimit-remaining"] == "0"
    st, hdrs, body = get(srv, good, "days=1")
    assert_error(st, hdrs, body, 429, "RATE_LIMITED")
    assert 1 <= int(hdrs["retry-after"]) <= 61
    # Shared with the owner's other analytics calls.
    st, hdrs, body = srv.request("GET", "/v1/analytics/overview",
                                 {"Authorization": "Bearer " + good})
    assert_error(st, hdrs, body, 429, "RATE_LIMITED")
    srv.stop()


# ---- A year: bounded memory, slow and vanishing clients, a stop ----

IMAGES, VARIANTS, COUNTRIES = 50, ("original", "thumb", "w512"), ("DE", "FR", "GB", "JP", "US",
                                                                    "XX", "BR", "IN", "T1", "CA")
PER_DAY = IMAGES * len(VARIANTS) * len(COUNTRIES)  # 1,500


def year_rows(owner_hex):
    out = []
    for back in range(366):
        d = day(-back)
        for i in range(IMAGES):
            for v in VARIANTS:
                for n, c in enumerate(COUNTRIES):
                    req = (back * 7 + i * 3 + n) % 997 + 1
                    out.append((owner_hex, d, "i%05d" % (i * 37 % 100000), v, c, req,
                                req * (1000 + i)))
    return out


def read_all(r, chunk=65536):
    parts = []
    while True:
        b = r.read(chunk)
        if not b:
            return b"".join(parts)
        parts.append(b)


def test_a_year_streams_with_flat_memory(tmp_path):
    srv = new_server(tmp_path)
    key = new_key(srv, "alice")
    a = owner_hash("alice")
    start, end = day(-365), day(0)
    seed(srv, year_rows(a) + [(owner_hash("bob"), day(-5), "b00001", "original", "US", 1, 1)])
    want = table(srv, a, start, end)
    assert len(want) == 366 * PER_DAY and want == sorted(want)
    pid = srv.proc.pid
    year = "start=%s&end=%s" % (start, end)

    # Warm-up: the API's and the export's threads, their connections and
    # statements, exist before the baseline.
    for q in ("days=3", "days=3&format=ndjson"):
        st, _, body = get(srv, key, q)
        assert st == 200 and len(body) > 100000
    base = rss_kib(pid)

    with RssSampler(pid) as csv_rss:
        c, r = open_export(srv, key, year)
        body = read_all(r)
        c.close()
    got = parse_csv(body)
    assert got == want
    csv_len = len(body)
    del body, got

    with RssSampler(pid) as nd_rss:
        c, r = open_export(srv, key, year + "&format=ndjson")
        body = read_all(r)
        c.close()
    assert parse_ndjson(body) == want
    nd_len = len(body)
    del body
    print("export of %d rows: CSV %.1f MB, NDJSON %.1f MB; server VmRSS %d KiB before, peak "
          "%d KiB during the CSV (+%d KiB), %d KiB during the NDJSON (+%d KiB); %s" % (
              len(want), csv_len / 1e6, nd_len / 1e6, base, csv_rss.peak, csv_rss.peak - base,
              nd_rss.peak, nd_rss.peak - base, "sanitizer build: bound not checked"
              if sanitized() else "bound %d KiB" % RSS_BOUND_KIB))
    assert csv_len > 20e6 and nd_len > 50e6
    if not sanitized():
        assert csv_rss.peak - base < RSS_BOUND_KIB, (base, csv_rss.samples[-20:])
        assert nd_rss.peak - base < RSS_BOUND_KIB, (base, nd_rss.samples[-20:])

    # A slow client: the server sends what the socket takes, then waits
    # with no thread held: the other calls, and a whole second export, go
    # on meanwhile, and memory stays flat.
    slow_base = rss_kib(pid)
    with RssSampler(pid) as slow_rss:
        c, r = open_export(srv, key, year)
        first = r.read(65536)
        for _ in range(20):
            time.sleep(0.1)
            first += r.read(4096)
        # Meanwhile (the slow client still holds its download):
        st, _, body = srv.request("GET", "/v1/analytics/overview?days=7",
                                  {"Authorization": "Bearer " + key})
        assert st == 200, body
        st, _, body = get(srv, key, "days=30")
        assert st == 200 and parse_csv(body) == table(srv, a, day(-29), end)
        time.sleep(1)
        rest = read_all(r)
        c.close()
    assert parse_csv(first + rest) == want
    print("slow client: VmRSS %d KiB before, peak %d KiB (+%d KiB)" % (
        slow_base, slow_rss.peak, slow_rss.peak - slow_base))
    if not sanitized():
        assert slow_rss.peak - base < RSS_BOUND_KIB, (base, slow_rss.samples[-20:])

    # Clients that leave after the first chunk: their refills stop, nothing
    # stays behind (ASan's leak check at the stop below), the server serves on.
    with RssSampler(pid) as gone_rss:
        for i in range(20):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
            s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n" % (
                export_path(year + ("&format=ndjson" if i % 2 else "")), key)).encode())
            assert s.recv(4096).startswith(b"HTTP/1.1 200 ")
            s.close()
        st, _, body = get(srv, key, "days=2")
        assert st == 200 and parse_csv(body) == table(srv, a, day(-1), end)
    assert srv.request("GET", "/healthz")[0] == 200
    print("20 clients gone after their first chunk: VmRSS peak %d KiB (+%d KiB)" % (
        gone_rss.peak, gone_rss.peak - base))
    if not sanitized():
        assert gone_rss.peak - base < RSS_BOUND_KIB, (base, gone_rss.samples[-20:])

    # SIGTERM in the middle of a download whose client has stopped reading:
    # the server stops (after its grace period for requests in flight) and
    # the body is cut: no end of the chunked body.
    c, r = open_export(srv, key, year)
    part = r.read(100000)
    assert srv.stop() == 0
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        part += read_all(r)
        assert len(part) < csv_len  # a complete body would be a failure
    c.close()
    assert "export cut short" not in srv.log()  # a stop is not a database failure

    # Again with a client that keeps reading, slowly enough (1.3 MB/s) that
    # the download outlasts the stop's 10 s grace: the download goes on
    # through the grace (as any request in flight), then the stop cuts the
    # body; nothing hangs.
    srv = new_server(tmp_path)
    c, r = open_export(srv, key, year)
    got, errors = [], []

    def reader():
        try:
            while True:
                b = r.read(65536)
                if not b:
                    return
                got.append(len(b))
                time.sleep(0.05)
        except (http.client.IncompleteRead, ConnectionError) as e:
            errors.append(e)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    time.sleep(1)
    assert srv.stop() == 0
    t.join(60)
    c.close()
    assert not t.is_alive() and errors and 0 < sum(got) < csv_len, (errors, sum(got))
    print("SIGTERM during a download read at 1.3 MB/s: %d bytes received, then %r" % (
        sum(got), errors[0]))
