"""Helpers shared by the integration tests: image files made here (no
downloads), image-size parsing, a handle on a real pixflare server, and SQL
on the database of a data directory, whichever backend the test runs on.

The database backend (conftest.py's `backend` fixture sets it per test):
- "sqlite": pixflare's default, $PIXFLARE_DATA_DIR/pixflare.db;
- "postgres": each data directory a test uses gets a fresh PostgreSQL
  database of its own on the server PIXFLARE_TEST_PG_URL names (its
  maintenance database's URL, as scripts/pg.sh writes it), created on first
  use and dropped after the test. clean_env() (so every Server) then carries
  PIXFLARE_DATABASE=<that database's URL>.

ClickHouse, the event engine (ANALYTICS_ENGINE=clickhouse), whatever the
backend: new_ch_database() makes a fresh database on the server
PIXFLARE_TEST_CH_URL names (scripts/test.sh starts one with scripts/ch.sh),
dropped after the test; ch_env() is what a pixflare needs to ship there;
ch_query() runs SQL over HTTP. ClickHouse(dir) is a server of the test's own
that it may stop, kill or pause; FaultProxy sits between pixflare and a
ClickHouse to refuse, hang or lose answers."""
import datetime
import decimal
import http.client
import os
import random
import select
import signal
import socket
import sqlite3
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib

BIN = os.environ.get("PIXFLARE_BIN",
                     os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../build/pixflare"))


def make_png(width, height, seed=1, noise=False):
    """A truecolour PNG: a gradient, or incompressible noise when asked."""
    rng = random.Random(seed)
    rows = []
    for y in range(height):
        if noise:
            row = rng.randbytes(width * 3)
        else:
            row = bytes(v for x in range(width)
                        for v in (x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                                  seed * 40 % 256))
        rows.append(b"\x00" + row)
    raw = zlib.compress(b"".join(rows), 6)

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def image_size(data):
    """(width, height) of a PNG, GIF, WebP or JPEG body."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return struct.unpack("<HH", data[6:10])
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        kind = data[12:16]
        if kind == b"VP8 ":
            w, h = struct.unpack("<HH", data[26:30])
            return w & 0x3fff, h & 0x3fff
        if kind == b"VP8L":
            b = int.from_bytes(data[21:25], "little")
            return (b & 0x3fff) + 1, ((b >> 14) & 0x3fff) + 1
        if kind == b"VP8X":
            return (int.from_bytes(data[24:27], "little") + 1,
                    int.from_bytes(data[27:30], "little") + 1)
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            marker = data[i + 1]
            length = struct.unpack(">H", data[i + 2:i + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2):
                h, w = struct.unpack(">HH", data[i + 5:i + 9])
                return w, h
            i += 2 + length
    raise ValueError("unknown image format")


# Ports for the servers the tests start: below Linux's ephemeral range
# (32768-60999) and below scripts/pg.sh's and ch.sh's (20000-32767), so that
# a port found free here is not handed to someone else before the server
# binds it. Under pytest-xdist (`-n N`, what `make test` runs) each worker
# takes its own thousand (gw0: 10000-10999, gw1: 11000-11999, ...): two
# workers never pick the same port. A port still taken (a server of an
# earlier test in TIME_WAIT is fine: Pixflare sets SO_REUSEADDR) is skipped.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0) % 10
_next_port = [random.Random(os.getpid()).randrange(1000)]


def free_port():
    for _ in range(1000):
        port = 10000 + _WORKER * 1000 + _next_port[0] % 1000
        _next_port[0] += 1
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port in this worker's range")


def clean_env(extra=None):
    """The test process's environment without any Pixflare setting, plus
    `extra`; when `extra` names a data directory (PIXFLARE_DATA_DIR) and no
    database, also the current backend's database for that directory (see
    database_env)."""
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("PIXFLARE_") or k.startswith("ANALYTICS_"))}
    extra = extra or {}
    if ("PIXFLARE_DATA_DIR" in extra and "PIXFLARE_DATABASE" not in extra
            and "PIXFLARE_DATABASE_FILE" not in extra):
        env.update(database_env(extra["PIXFLARE_DATA_DIR"]))
    env.update(extra)
    return env


# ---- the database backend ----

PG_URL = os.environ.get("PIXFLARE_TEST_PG_URL", "")
BACKEND = "sqlite"  # "sqlite" or "postgres": the current test's (conftest.py)
_pg_dbs = {}  # this test's: absolute data dir -> database URL
_pg_created = []  # this test's databases, dropped after it
_pg_conns = {}  # database URL -> open psycopg2 connection (autocommit)


def _psycopg2():
    try:
        import psycopg2
    except ImportError:
        raise AssertionError("PIXFLARE_TEST_PG_URL is set but psycopg2 is missing: "
                             "apt-get install python3-psycopg2 (sh scripts/deps.sh test)")
    return psycopg2


def _pg_conn(url):
    conn = _pg_conns.get(url)
    if conn is None or conn.closed:
        conn = _psycopg2().connect(url)
        conn.autocommit = True
        _pg_conns[url] = conn
    return conn


def pg_url_of(name):
    """The URL of database `name` on the PIXFLARE_TEST_PG_URL server."""
    u = urllib.parse.urlsplit(PG_URL)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + name, u.query, u.fragment))


def new_pg_database():
    """A fresh, empty database on the PIXFLARE_TEST_PG_URL server (whatever
    the test's backend): its URL. Dropped after the test."""
    if not PG_URL:
        import pytest
        pytest.skip("PIXFLARE_TEST_PG_URL is not set (scripts/test.sh starts a PostgreSQL)")
    name = "t_" + uuid.uuid4().hex[:16]
    cur = _pg_conn(PG_URL).cursor()
    # FILE_COPY: 3x faster than PostgreSQL 15's default with fsync off.
    strategy = " STRATEGY = FILE_COPY" if _pg_conn(PG_URL).server_version >= 150000 else ""
    cur.execute('CREATE DATABASE "%s"%s' % (name, strategy))
    _pg_created.append(name)
    return pg_url_of(name)


def use_backend(name):
    """Start of a test (conftest.py): the backend its databases are on."""
    global BACKEND
    assert name in ("sqlite", "postgres"), name
    BACKEND = name


def end_backend():
    """End of a test (conftest.py): drop its PostgreSQL databases (whoever
    is still connected is cut off), back to SQLite; stop its ClickHouse
    servers and fault proxies, drop its databases on PIXFLARE_TEST_CH_URL."""
    global BACKEND
    BACKEND = "sqlite"
    _pg_dbs.clear()
    for url in list(_pg_conns):
        if url != PG_URL:
            _pg_conns.pop(url).close()
    errors = []
    while _pg_created:
        name = _pg_created.pop()
        try:
            _pg_conn(PG_URL).cursor().execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
        except Exception as e:  # noqa: BLE001 (dropped or not, go on with the rest)
            errors.append("%s: %s" % (name, e))
    try:
        end_clickhouse()
    except AssertionError as e:
        errors.append(str(e))
    assert not errors, "cannot drop test databases: " + "; ".join(errors)


def database_url(data_dir):
    """The PIXFLARE_DATABASE of a data directory on the current backend:
    sqlite:DATA_DIR/pixflare.db (the default), or its own PostgreSQL
    database (created on first use)."""
    data_dir = os.path.abspath(str(data_dir))
    if BACKEND == "sqlite":
        return "sqlite:" + os.path.join(data_dir, "pixflare.db")
    if data_dir not in _pg_dbs:
        _pg_dbs[data_dir] = new_pg_database()
    return _pg_dbs[data_dir]


def database_env(data_dir):
    """What a pixflare on `data_dir` needs in its environment to use the
    current backend: nothing on SQLite (the default is exercised), else
    PIXFLARE_DATABASE."""
    if BACKEND == "sqlite":
        return {}
    return {"PIXFLARE_DATABASE": database_url(data_dir)}


def _value(v):
    """PostgreSQL's values as SQLite's: SUM() of integers is numeric there."""
    if isinstance(v, decimal.Decimal) and v == v.to_integral_value():
        return int(v)
    if isinstance(v, datetime.date) and not isinstance(v, datetime.datetime):
        return v.isoformat()
    if isinstance(v, memoryview):
        return bytes(v)
    return v


def _run_sql(database, query, params, fetch):
    params = tuple(params)
    if database.startswith("sqlite:"):
        db = sqlite3.connect(database[len("sqlite:"):], timeout=30)
        try:
            cur = db.execute(query, params)
            out = cur.fetchall() if fetch else cur.rowcount
            db.commit()
            return out
        finally:
            db.close()
    if database.startswith(("postgres://", "postgresql://")):
        # psycopg2's placeholders; a literal % doubled. (A ? inside a string
        # literal would be taken too: pass such text as a parameter.)
        query = query.replace("%", "%%").replace("?", "%s")
        with _pg_conn(database).cursor() as cur:
            cur.execute(query, params)
            if not fetch:
                return cur.rowcount
            return [tuple(_value(v) for v in row) for row in cur.fetchall()]
    raise ValueError("unknown database URL " + database)


def sql(database, query, params=()):
    """Rows (tuples) of one SQL statement on `database` (a PIXFLARE_DATABASE
    value: sqlite:PATH or postgres://...). `?` placeholders on both; each
    statement commits on its own. Keep the SQL portable (the tables and
    columns are the same on both backends)."""
    return _run_sql(database, query, params, True)


def sql_exec(database, query, params=()):
    """One SQL statement that returns no rows (INSERT, UPDATE, DELETE) on
    `database`, committed: the number of rows it touched."""
    return _run_sql(database, query, params, False)


def db_text(database):
    """Every row of every table of `database`, as text: for checks that
    something is stored nowhere (a file walk of the data directory does not
    see a PostgreSQL database)."""
    if database.startswith("sqlite:"):
        names = [r[0] for r in sql(database, "SELECT name FROM sqlite_master WHERE type = 'table'")]
    else:
        names = [r[0] for r in sql(database, "SELECT tablename FROM pg_tables "
                                             "WHERE schemaname = current_schema()")]
    out = []
    for name in names:
        for row in sql(database, 'SELECT * FROM "%s"' % name):
            out.append("\t".join(str(v) for v in row))
    return "\n".join(out).encode("utf-8", "surrogateescape")


# ---- ClickHouse, the event engine ----

CH_URL = os.environ.get("PIXFLARE_TEST_CH_URL") or None  # http://127.0.0.1:PORT/
CH_USER = "pixflare"  # scripts/ch.sh's users: this one and `default` (no password)
CH_PASSWORD = "pixflare-test-secret"
CH_SH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../scripts/ch.sh")
CH_SERVER = os.environ.get("CH_SERVER", "/usr/sbin/clickhouse-server")  # as scripts/ch.sh
_ch_created = []  # this test's databases on CH_URL, dropped after it
_ch_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no http_proxy


class ClickHouseError(Exception):
    """ClickHouse answered an HTTP error: .status (401, 404, 500...), .code
    (ClickHouse's "Code: N", or None) and .message (its text, as sent)."""

    def __init__(self, status, message):
        self.status = status
        self.message = message
        head = message.split(",", 1)[0]
        digits = head[len("Code:"):].strip()
        self.code = int(digits) if head.startswith("Code:") and digits.isdigit() else None
        super().__init__("ClickHouse HTTP %d: %s" % (status, message))


def ch_query(sql, url=None, user="default", password="", database=None, data=None, timeout=30):
    """The text answer (str, ClickHouse's TabSeparated unless the SQL says
    FORMAT) of one statement on the ClickHouse at `url` (default CH_URL; a
    ?database= in it is kept). With `data` (bytes), the SQL goes in the URL
    and `data` is the body: INSERT INTO t FORMAT RowBinary, say. An HTTP
    error raises ClickHouseError with ClickHouse's message."""
    url = url or CH_URL
    assert url, "no ClickHouse URL (PIXFLARE_TEST_CH_URL is not set)"
    u = urllib.parse.urlsplit(url)
    params = urllib.parse.parse_qsl(u.query)
    if database is not None:
        params = [(k, v) for k, v in params if k != "database"] + [("database", database)]
    body = sql.encode()
    if data is not None:
        params.append(("query", sql))
        body = data
    full = urllib.parse.urlunsplit((u.scheme, u.netloc, u.path or "/",
                                    urllib.parse.urlencode(params), ""))
    req = urllib.request.Request(full, data=body, method="POST",
                                 headers={"X-ClickHouse-User": user, "X-ClickHouse-Key": password})
    try:
        with _ch_opener.open(req, timeout=timeout) as r:
            return r.read().decode()
    except urllib.error.HTTPError as e:
        raise ClickHouseError(e.code, e.read().decode(errors="replace").strip()) from None


def _ch_name():
    return "t_" + uuid.uuid4().hex[:16]


def new_ch_database():
    """A fresh, empty database on the PIXFLARE_TEST_CH_URL server: its name.
    Dropped after the test. Skips the test without the URL."""
    if not CH_URL:
        import pytest
        pytest.skip("PIXFLARE_TEST_CH_URL is not set (scripts/test.sh starts a ClickHouse)")
    name = _ch_name()
    ch_query("CREATE DATABASE %s" % name)
    _ch_created.append(name)
    return name


def ch_env(database, url=None):
    """What a pixflare needs in its environment to ship its events to
    `database` on the ClickHouse at `url` (default CH_URL; a FaultProxy's or
    a ClickHouse's .url for theirs), as the `pixflare` user."""
    url = url or CH_URL
    assert url, "no ClickHouse URL (PIXFLARE_TEST_CH_URL is not set)"
    return {"ANALYTICS_ENGINE": "clickhouse",
            "ANALYTICS_ENGINE_URL": "%s?database=%s" % (url, database),
            "ANALYTICS_ENGINE_USER": CH_USER,
            "ANALYTICS_ENGINE_PASSWORD": CH_PASSWORD}


def end_clickhouse():
    """End of a test (end_backend): stop its fault proxies and its own
    ClickHouse servers (data removed), drop its databases on CH_URL."""
    errors = []
    for proxy in list(FaultProxy.live):
        proxy.close()
    for ch in list(ClickHouse.live):
        try:
            ch.close()
        except Exception as e:  # noqa: BLE001 (go on with the rest)
            errors.append("%s: %s" % (ch.dir, e))
    while _ch_created:
        name = _ch_created.pop()
        try:
            ch_query("DROP DATABASE IF EXISTS %s" % name)
        except Exception as e:  # noqa: BLE001 (dropped or not, go on with the rest)
            errors.append("%s: %s" % (name, e))
    assert not errors, "cannot clean up ClickHouse: " + "; ".join(errors)


class ClickHouse:
    """A ClickHouse server of the test's own (scripts/ch.sh in `dir`, which
    is created, and removed by close()), for the tests that stop, kill or
    pause it; the shared one (CH_URL) must stay up. A context manager:
    `with ClickHouse(tmp_path / "ch") as ch:` starts it and closes it at the
    end; whatever is left is closed after the test anyway. Its port stays
    the same across stop()/crash() and start(), so pixflare's URL does.
    Skips the test when there is no clickhouse-server."""
    live = set()  # started and not closed: closed after each test (end_clickhouse)

    def __init__(self, dir):
        self.dir = os.path.abspath(str(dir))
        self._port = None

    def _sh(self, cmd):
        p = subprocess.run(["sh", CH_SH, cmd, self.dir], capture_output=True, text=True,
                           timeout=120)
        if p.returncode != 0:
            raise AssertionError("scripts/ch.sh %s %s: exit %d\n%s" % (cmd, self.dir, p.returncode,
                                                                    p.stderr))
        return p.stdout.strip()

    def start(self):
        """Start (first time: configure, on free ports) or start again
        after stop() or crash(), same port, same data; returns once it
        answers GET /ping."""
        if not os.access(CH_SERVER, os.X_OK):
            import pytest
            pytest.skip("no %s (apt-get install clickhouse-server; sh scripts/deps.sh test)"
                        % CH_SERVER)
        ClickHouse.live.add(self)
        self._sh("start")
        self._port = int(self._sh("port"))
        return self

    def stop(self):
        """A graceful shutdown (SIGTERM); the data stays for start()."""
        self._sh("halt")

    def crash(self):
        """kill -9: no shutdown; the data stays for start()."""
        self._sh("crash")

    def pause(self):
        """SIGSTOP: connections open (the kernel accepts them), nothing
        answers; resume() goes on."""
        self._sh("pause")

    def resume(self):
        self._sh("resume")

    def close(self):
        """Stop it (gracefully) and remove its directory."""
        ClickHouse.live.discard(self)
        self._sh("stop")

    @property
    def port(self):
        """Its HTTP port."""
        assert self._port is not None, "ClickHouse(%s) was never started" % self.dir
        return self._port

    @property
    def url(self):
        """Its HTTP interface: http://127.0.0.1:PORT/"""
        return "http://127.0.0.1:%d/" % self.port

    def query(self, sql, **kw):
        """ch_query on this server (user `default` unless told)."""
        return ch_query(sql, url=self.url, **kw)

    def new_database(self):
        """A fresh, empty database here: its name (gone with the server)."""
        name = _ch_name()
        self.query("CREATE DATABASE %s" % name)
        return name

    def env(self, database):
        """ch_env for `database` on this server."""
        return ch_env(database, url=self.url)

    def log(self):
        """Its server log (this start's)."""
        try:
            with open(os.path.join(self.dir, "log", "server.log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


class FaultProxy:
    """A TCP proxy on 127.0.0.1 (a free port: .port, .url) to
    127.0.0.1:target_port, in threads, for a test to put faults between
    pixflare and ClickHouse. Its mode may change at any time, and applies at
    once to every connection, open ones included (a client that keeps its
    connection alive meets the fault too):
    - "pass": forwards both ways;
    - "refuse": closes new connections at once, and open ones;
    - "blackhole_response": forwards what the client sends to the target,
      drops what the target answers, and holds the client's connection open
      until the client closes it: the target did the work (ClickHouse
      inserted), its answer was lost, the client times out;
    - "hang": reads what the client sends, forwards nothing, answers
      nothing, holds the connection open until the client closes it.
    count(mode): how many connections met `mode` (were accepted in it, cut
    by "refuse", or carried bytes either way in it), so a test can check
    that its fault was hit. A context manager; whatever is left is closed
    after the test."""
    MODES = ("pass", "refuse", "blackhole_response", "hang")
    live = set()  # not closed: closed after each test (end_clickhouse)

    def __init__(self, target_port, mode="pass"):
        self.target_port = int(target_port)
        self._lock = threading.Lock()
        self._counts = {m: 0 for m in self.MODES}
        self._conns = set()  # client sockets being served
        self._threads = []
        self._stopping = threading.Event()
        self.set_mode(mode)
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        FaultProxy.live.add(self)
        t = threading.Thread(target=self._accept_loop, name="FaultProxy-accept", daemon=True)
        t.start()
        self._threads.append(t)

    @property
    def url(self):
        """http://127.0.0.1:PORT/: a ClickHouse URL through the proxy."""
        return "http://127.0.0.1:%d/" % self.port

    @property
    def mode(self):
        return self._mode

    @mode.setter
    def mode(self, mode):
        self.set_mode(mode)

    def set_mode(self, mode):
        assert mode in self.MODES, mode
        self._mode = mode

    def count(self, mode):
        """Connections that met `mode` so far."""
        assert mode in self.MODES, mode
        with self._lock:
            return self._counts[mode]

    @property
    def counts(self):
        """{mode: count(mode)} for every mode."""
        with self._lock:
            return dict(self._counts)

    def open_connections(self):
        """Client connections open now."""
        with self._lock:
            return len(self._conns)

    def _met(self, seen, mode):
        if mode not in seen:
            seen.add(mode)
            with self._lock:
                self._counts[mode] += 1

    def _accept_loop(self):
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if self._mode == "refuse":
                self._met(set(), "refuse")
                client.close()
                continue
            t = threading.Thread(target=self._serve, args=(client,), name="FaultProxy-conn",
                                 daemon=True)
            with self._lock:
                self._threads = [x for x in self._threads if x.is_alive()]
                self._threads.append(t)
            t.start()

    def _serve(self, client):
        seen = set()
        up = None
        with self._lock:
            self._conns.add(client)
        try:
            self._met(seen, self._mode)
            client_eof = False
            while not self._stopping.is_set():
                mode = self._mode
                if mode == "refuse":
                    self._met(seen, mode)
                    return
                if up is None and mode in ("pass", "blackhole_response") and not client_eof:
                    try:
                        up = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                    except OSError:
                        return  # the target is down: so is this connection
                    up.settimeout(None)
                socks = [s for s in (None if client_eof else client, up) if s is not None]
                if not socks:
                    return
                ready, _, _ = select.select(socks, [], [], 0.05)
                for s in ready:
                    try:
                        data = s.recv(65536)
                    except OSError:
                        data = b""
                    if data:
                        self._met(seen, mode)
                    if s is client:
                        if not data:
                            # The client is done sending (or gone): so is the
                            # target's side; an answer may still come back.
                            client_eof = True
                            if up is None or mode != "pass":
                                return
                            try:
                                up.shutdown(socket.SHUT_WR)
                            except OSError:
                                return
                        elif mode in ("pass", "blackhole_response") and up is not None:
                            up.sendall(data)
                        # hang: read and dropped
                    else:
                        if not data:
                            up.close()
                            up = None
                            if mode == "pass" or client_eof:
                                return  # the answer is complete: close the client
                            # blackhole_response, hang: the client waits on
                        elif mode == "pass":
                            client.sendall(data)
                        # blackhole_response, hang: the answer is lost
        except OSError:
            return
        finally:
            with self._lock:
                self._conns.discard(client)
            for s in (client, up):
                if s is not None:
                    s.close()

    def close(self):
        """Stop accepting, close every connection, join the threads."""
        FaultProxy.live.discard(self)
        self._stopping.set()
        self._listener.close()
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run(args, env, check=None, **kw):
    p = subprocess.run([BIN] + list(args), env=env, capture_output=True, text=True,
                       timeout=120, **kw)
    if check is not None:
        assert p.returncode == check, (args, p.returncode, p.stdout, p.stderr)
    sanitizer_clean(p.stderr)
    return p


def sanitizer_clean(stderr):
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer"):
        assert marker not in stderr, stderr


class Server:
    live = set()  # started and not stopped: killed after each test (conftest.py)

    def __init__(self, data_dir, extra_env=None):
        self.data_dir = str(data_dir)
        self.port = free_port()
        env = {"PIXFLARE_DATA_DIR": self.data_dir, "PIXFLARE_LISTEN": "127.0.0.1:%d" % self.port}
        env.update(extra_env or {})
        self.env = clean_env(env)  # with the backend's database, unless extra_env names one
        self.proc = None
        self.stderr_path = os.path.join(os.path.dirname(self.data_dir),
                                        os.path.basename(self.data_dir) + ".serve.log")

    def cli(self, *args, check=None):
        return run(args, self.env, check=check)

    @property
    def database(self):
        """This server's PIXFLARE_DATABASE (sqlite:PATH or postgres://...)."""
        if self.env.get("PIXFLARE_DATABASE"):
            return self.env["PIXFLARE_DATABASE"]
        if self.env.get("PIXFLARE_DATABASE_FILE"):
            with open(self.env["PIXFLARE_DATABASE_FILE"]) as f:
                return f.read().strip()
        return "sqlite:" + os.path.join(os.path.abspath(self.data_dir), "pixflare.db")

    def sql(self, query, params=()):
        """Rows of a query on this server's database (see pftest.sql)."""
        return sql(self.database, query, params)

    def sql_exec(self, query, params=()):
        """A statement on this server's database, committed (pftest.sql_exec)."""
        return sql_exec(self.database, query, params)

    def start(self):
        self.stderr_file = open(self.stderr_path, "w")
        self.proc = subprocess.Popen([BIN, "serve"], env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=self.stderr_file)
        Server.live.add(self)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("server exited: " + self.log())
            try:
                status, _, _ = self.request("GET", "/healthz")
                if status == 200:
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("server did not start: " + self.log())

    def log(self):
        with open(self.stderr_path) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=60)
        self.proc = None
        Server.live.discard(self)
        self.stderr_file.close()
        sanitizer_clean(self.log())
        return rc

    def kill(self):
        """kill -9: no chance to flush or seal anything."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        Server.live.discard(self)
        self.stderr_file.close()

    def connect(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, headers=None):
        c = self.connect()
        try:
            c.request(method, path, headers=headers or {})
            r = c.getresponse()
            body = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, body
        finally:
            c.close()

    def raw(self, data, timeout=10):
        """Send raw bytes; return (status, headers, body) of the reply, parsed
        loosely so that malformed requests can be tested."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(data)
            buf = b""
            try:
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    buf += b
                    head, sep, body = buf.partition(b"\r\n\r\n")
                    if sep:
                        length = None
                        for line in head.split(b"\r\n")[1:]:
                            k, _, v = line.partition(b":")
                            if k.strip().lower() == b"content-length":
                                length = int(v)
                        if length is not None and len(body) >= length:
                            break
            except (socket.timeout, ConnectionResetError):
                pass
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower().decode()] = v.strip().decode()
        return status, headers, body


def import_tree(srv, src):
    """Run `pixflare import SRC` on srv's data dir: {owner/album/file: image id}."""
    p = srv.cli("import", str(src), check=0)
    ids = {}
    for line in p.stdout.splitlines():
        image_id, rel = line.split("\t")
        ids[rel] = image_id
    return ids
