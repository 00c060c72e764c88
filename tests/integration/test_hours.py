"""Issue 20's analytics on the capture path: hourly rows, client classes and
bots' shares counted exactly (realtime and batch, every backend and engine),
unique clients estimated within the documented bound (one node and three
nodes sharing PostgreSQL), and the privacy promise: no address, user agent
or hash of one in any byte Pixflare keeps, and a day's salt gone once the
day is over.

Traffic is made on past hours by real servers whose clock is set back with
libfaketime (test_batch.faked); each server lives inside one hour, so the
hour of every response is known without asking the server."""
import collections
import hashlib
import os
import random
import socket
import struct
import threading
import time

import pytest

import pftest
from pftest import Server
from test_analytics import Traffic, owner_hash
from test_batch import Store, day, faked

# Real user agents (tests/data/ua_labelled.tsv has hundreds) and the class
# each must be told to be. No User-Agent at all is a bot.
AGENTS = [
    ("human", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0.0.0 Safari/537.36"),
    ("human", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
              "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"),
    ("human", "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"),
    ("bot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
    ("bot", "curl/7.88.1"),
    ("bot", None),
    ("preview", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"),
    ("preview", "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"),
    ("preview", "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)"),
]
CLIENT = {"human": 0, "bot": 1, "preview": 2}
FLUSH_MS = 200
QUICK = os.environ.get("PIXFLARE_TEST_QUICK") == "1" or "ASAN_OPTIONS" in os.environ


class ClientTraffic(Traffic):
    """Traffic's random mix, each request with a user agent of AGENTS; the
    expected entries gain its class."""

    def plan(self, n):
        out = []
        for method, path, headers, owner, image_id, vname in super().plan(n):
            cls, ua = self.rng.choice(AGENTS)
            headers = dict(headers)
            if ua is not None:
                headers["User-Agent"] = ua
            headers["X-Class"] = cls  # not a header Pixflare reads: the label
            out.append((method, path, headers, owner, image_id, vname))
        return out

    def label(self, headers):
        return (headers.pop("X-Class"),)


def want_tables(entries, secret):
    """analytics_hourly, analytics_clients_daily and the bots' share of
    analytics_daily as the (entry, date, hour) responses make them."""
    hourly = collections.defaultdict(lambda: [0, 0, 0, 0])
    clients = collections.defaultdict(lambda: [0, 0])
    daily_bots = collections.defaultdict(lambda: [0, 0])
    for (owner, image_id, vname, st, country, nbytes, cls), date, hour in entries:
        if st not in (200, 206, 304):
            continue
        h = owner_hash(secret, owner) if owner else ""
        bot = cls == "bot"
        for img in (image_id, ""):
            r = hourly[(h, hour, img)]
            r[0] += 1
            r[1] += nbytes
            r[2] += bot
            r[3] += nbytes if bot else 0
            c = clients[(h, date, img, cls)]
            c[0] += 1
            c[1] += nbytes
        if bot:
            d = daily_bots[(h, date, image_id, vname, country)]
            d[0] += 1
            d[1] += nbytes
    return ({k: tuple(v) for k, v in hourly.items()}, {k: tuple(v) for k, v in clients.items()},
            {k: tuple(v) for k, v in daily_bots.items()})


def got_tables(st, date, hours):
    lo, hi = min(hours), max(hours)
    hourly = {(r[0], r[1], r[2]): tuple(r[3:]) for r in st.query(
        "SELECT owner, hour, image_id, requests, bandwidth_bytes, bot_requests, "
        "bot_bandwidth_bytes FROM analytics_hourly WHERE hour >= %d AND hour <= %d" % (lo, hi))}
    clients = {tuple(r[:4]): tuple(r[4:]) for r in st.query(
        "SELECT owner, date, image_id, client, requests, bandwidth_bytes "
        "FROM analytics_clients_daily WHERE date = '%s'" % date)}
    bots = {tuple(r[:5]): tuple(r[5:]) for r in st.query(
        "SELECT owner, date, image_id, variant, country, bot_requests, bot_bandwidth_bytes "
        "FROM analytics_daily WHERE date = '%s' AND bot_requests > 0" % date)}
    return hourly, clients, bots


def unix_hour(date, hour):
    import datetime
    d = datetime.datetime.fromisoformat(date + "T00:00:00+00:00")
    return int(d.timestamp()) // 3600 + hour


@pytest.fixture
def tree(images):
    return images[0]


@pytest.mark.parametrize("engine", ["embedded", "clickhouse"])
def test_hourly_and_client_counts_are_exact(tmp_path, tree, engine):
    """A random mix over random hours of a past day: the realtime rows
    equal the independent count, and so do the batch's, rebuilt from the
    events after the realtime rows were wiped."""
    env = {}
    if engine == "clickhouse":
        if not pftest.CH_URL:
            pytest.skip("PIXFLARE_TEST_CH_URL is not set (scripts/test.sh starts a ClickHouse)")
        from test_clickhouse import ch_env_fast
        env = ch_env_fast(pftest.new_ch_database(), secret=False)
    st = Store(tmp_path, tree, env)
    date = day(-2)
    rng = random.Random(2026)
    hours = sorted(rng.sample(range(24), 3 if QUICK else 5))
    entries = []
    for i, h in enumerate(hours):
        srv = st.server("%s %02d:%02d:00" % (date, h, rng.randrange(0, 30)),
                        {"ANALYTICS_BATCH_ENABLED": "false",
                         "ANALYTICS_REALTIME_FLUSH_MS": str(FLUSH_MS)}).start()
        try:
            t = ClientTraffic(srv, st.ids, seed=500 + i)
            t.run(rng.randrange(60, 160), workers=3)
        finally:
            assert srv.stop() == 0
        entries += [(e, date, unix_hour(date, h)) for e in t.expected]
    classes = {e[0][6] for e in entries}
    assert classes == {"human", "bot", "preview"}, classes
    want = want_tables(entries, st.secret)
    uhours = [unix_hour(date, h) for h in hours]
    got = got_tables(st, date, uhours)
    assert got[0] == want[0], "analytics_hourly (realtime) differs"
    assert got[1] == want[1], "analytics_clients_daily (realtime) differs"
    assert got[2] == want[2], "analytics_daily's bots' share (realtime) differs"
    # Hours without traffic have no row: the API fills them with zeros.
    assert {k[1] for k in got[0]} == set(uhours)

    # The batch rebuilds every one of them from the events alone.
    st.execute("DELETE FROM analytics_hourly")
    st.execute("DELETE FROM analytics_clients_daily")
    st.execute("UPDATE analytics_daily SET bot_requests = 0, bot_bandwidth_bytes = 0")
    st.cli("aggregate", "--date", date, check=0)
    got = got_tables(st, date, uhours)
    assert got[0] == want[0], "analytics_hourly (batch) differs"
    assert got[1] == want[1], "analytics_clients_daily (batch) differs"
    assert got[2] == want[2], "analytics_daily's bots' share (batch) differs"


# ---- Unique clients ---------------------------------------------------------

def blast(port, agents, path, threads=4, depth=100):
    """One pipelined HEAD of `path` per user agent, from `threads`
    connections, `depth` requests in flight each. Returns the statuses."""
    statuses = collections.Counter()
    lock = threading.Lock()

    def worker(part):
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        buf = b""
        local = collections.Counter()
        try:
            for i in range(0, len(part), depth):
                chunk = part[i:i + depth]
                s.sendall(b"".join(b"HEAD %s HTTP/1.1\r\nHost: x\r\nUser-Agent: %s\r\n\r\n"
                                   % (path.encode(), ua.encode()) for ua in chunk))
                seen = 0
                while seen < len(chunk):
                    while b"\r\n\r\n" not in buf:
                        data = s.recv(1 << 16)
                        assert data, "connection closed"
                        buf += data
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    local[int(head.split(b" ", 2)[1])] += 1
                    seen += 1
        finally:
            s.close()
        with lock:
            statuses.update(local)

    parts = [agents[i::threads] for i in range(threads)]
    ts = [threading.Thread(target=worker, args=(p,)) for p in parts]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return statuses


def client_agents(ids, rng):
    """A browser user agent per client id (each a distinct client), and
    each client's requests: 1 to 3 (so requests are not clients)."""
    out = []
    for i in ids:
        ua = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0.%d.%d Safari/537.36" % (i // 1000, i % 1000))
        out += [ua] * rng.choice((1, 1, 2, 3))
    rng.shuffle(out)
    return out


def uniques_row(srv, secret, owner, date, image_id=""):
    rows = srv.sql("SELECT uniques FROM analytics_uniques_daily WHERE owner = '%s' AND "
                   "date = '%s' AND image_id = '%s'" % (owner_hash(secret, owner), date, image_id))
    return rows[0][0] if rows else None


def wait_for(cond, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    return cond()


def first_image(ids):
    rel = sorted(ids)[0]
    return rel.split("/")[0], ids[rel]


def test_unique_clients_within_the_bound(tmp_path, tree):
    """100,000 distinct clients (20,000 under ASan), each one to three
    requests: the owner's and the image's day sketches estimate the exact
    count within 4 standard errors (3.3%: a single run; the unit test
    hll_test measures the 95th percentile over 100 runs, 1.4%)."""
    n = 20000 if QUICK else 100000
    srv = Server(tmp_path / "data", {"ANALYTICS_REALTIME_FLUSH_MS": str(FLUSH_MS)})
    ids = pftest.import_tree(srv, tree)
    srv.start()
    try:
        date = day(0)
        owner, image = first_image(ids)
        agents = client_agents(range(n), random.Random(7))
        statuses = blast(srv.port, agents, "/i/" + image)
        assert statuses == {200: len(agents)}, statuses
        secret = open(os.path.join(srv.data_dir, "secret")).read().strip()
        # Bots never count: a crawler's requests add nothing.
        blast(srv.port, ["Googlebot/2.1 (+http://www.google.com/bot.html) %d" % i
                         for i in range(500)], "/i/" + image, threads=1)
        time.sleep(3 * FLUSH_MS / 1000)
        if day(0) != date:
            pytest.skip("the UTC day turned during the test")
        est = wait_for(lambda: uniques_row(srv, secret, owner, date))
        est_img = uniques_row(srv, secret, owner, date, image)
    finally:
        assert srv.stop() == 0
    err = abs(est - n) / n
    print("unique clients: exact %d, estimate %d (owner), %d (image): error %.2f%%"
          % (n, est, est_img, 100 * err))
    assert err <= 0.033, (n, est)
    assert est_img == est  # the same clients: the same registers


@pytest.mark.pg_only
def test_unique_clients_merge_across_three_nodes(tmp_path, tree):
    """Three nodes on one PostgreSQL database, each seeing an overlapping
    part of the clients (a client may reach one, two or all three): the
    merged sketch estimates the exact union, as one node would."""
    from test_postgres import node
    n = 15000 if QUICK else 60000
    url = pftest.database_url(tmp_path / "shared")
    storage = tmp_path / "storage"
    nodes = [node(tmp_path, name, url, storage) for name in ("a", "b", "c")]
    ids = pftest.import_tree(nodes[0], tree)
    for srv in nodes:
        srv.start()
    try:
        date = day(0)
        owner, image = first_image(ids)
        rng = random.Random(11)
        parts = [[], [], []]
        for i in range(n):
            for k in rng.sample(range(3), rng.choice((1, 1, 2, 3))):
                parts[k].append(i)
        for srv, part in zip(nodes, parts):
            agents = client_agents(part, random.Random(len(part)))
            assert blast(srv.port, agents, "/i/" + image, threads=2) == {200: len(agents)}
        time.sleep(3 * 300 / 1000)
        if day(0) != date:
            pytest.skip("the UTC day turned during the test")
        from test_postgres import SECRET
        est = wait_for(lambda: uniques_row(nodes[0], SECRET, owner, date))
        salts = nodes[0].sql("SELECT count(*) FROM analytics_salts")
    finally:
        for srv in nodes:
            assert srv.stop() == 0
    err = abs(est - n) / n
    print("three nodes: %s clients seen per node, union %d, estimate %d: error %.2f%%"
          % ([len(p) for p in parts], n, est, 100 * err))
    assert err <= 0.033, (n, est)
    assert salts[0][0] in (1, 2)  # today's (and perhaps tomorrow's): one per day, shared


# ---- Privacy ---------------------------------------------------------------

def siphash24(key, data):
    """SipHash-2-4 (the reference algorithm), for the test's own hashes."""
    def rotl(x, b):
        return ((x << b) | (x >> (64 - b))) & 0xFFFFFFFFFFFFFFFF
    k0, k1 = struct.unpack("<QQ", key)
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D, k0 ^ 0x6C7967656E657261,
         k1 ^ 0x7465646279746573]

    def rnd():
        v[0] = (v[0] + v[1]) & 0xFFFFFFFFFFFFFFFF
        v[1] = rotl(v[1], 13) ^ v[0]
        v[0] = rotl(v[0], 32)
        v[2] = (v[2] + v[3]) & 0xFFFFFFFFFFFFFFFF
        v[3] = rotl(v[3], 16) ^ v[2]
        v[0] = (v[0] + v[3]) & 0xFFFFFFFFFFFFFFFF
        v[3] = rotl(v[3], 21) ^ v[0]
        v[2] = (v[2] + v[1]) & 0xFFFFFFFFFFFFFFFF
        v[1] = rotl(v[1], 17) ^ v[2]
        v[2] = rotl(v[2], 32)

    b = len(data) << 56
    tail = len(data) - len(data) % 8
    for i in range(0, tail, 8):
        m = struct.unpack("<Q", data[i:i + 8])[0]
        v[3] ^= m
        rnd()
        rnd()
        v[0] ^= m
    for i, c in enumerate(data[tail:]):
        b |= c << (8 * i)
    v[3] ^= b
    rnd()
    rnd()
    v[0] ^= b
    v[2] ^= 0xFF
    for _ in range(4):
        rnd()
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def needles(ip, ua, salt=None):
    """Every form of the marked address and user agent someone might store:
    as text, as bytes, hashed by the usual functions (raw and hex), and the
    client hash itself under the day's salt (raw, both byte orders, hex)."""
    raw_ip = socket.inet_aton(ip)
    forms = [ip.encode(), raw_ip, ua.encode(), b"6099.73317"]
    for text in (ip.encode(), ua.encode(), ip.encode() + ua.encode(), raw_ip + ua.encode()):
        for algo in ("md5", "sha1", "sha256"):
            d = hashlib.new(algo, text).digest()
            forms += [d, d.hex().encode(), d[:8]]
    if salt is not None:
        h = siphash24(salt, raw_ip + ua.encode())
        forms += [struct.pack("<Q", h), struct.pack(">Q", h), ("%016x" % h).encode()]
    return forms


def all_files(root):
    for d, _, files in os.walk(root):
        for f in files:
            yield os.path.join(d, f)


def find_any(blobs, forms):
    hits = []
    for name, data in blobs:
        for f in forms:
            if f in data:
                hits.append((name, f))
    return hits


def test_marked_clients_leave_no_trace(tmp_path, tree):
    """Requests from a marked address (127.13.37.42: the loopback network is
    all ours) with a marked user agent: neither appears, as text, bytes or
    any usual hash, nor their client hash under the day's salt, in any file
    of the data directory, the database (dumped row by row) or ClickHouse."""
    env = {"ANALYTICS_REALTIME_FLUSH_MS": str(FLUSH_MS)}
    ch_db = None
    if pftest.CH_URL:
        from test_clickhouse import ch_env_fast
        ch_db = pftest.new_ch_database()
        env.update(ch_env_fast(ch_db, secret=False))
    srv = Server(tmp_path / "data", env)
    ids = pftest.import_tree(srv, tree)
    srv.start()
    # A browser's user agent (a bot's would not count as a unique client),
    # marked by a version no browser has.
    ip = "127.13.37.42"
    ua = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.6099.73317 Safari/537.36")
    try:
        date = day(0)
        owner, image = first_image(ids)
        for path in ("/i/" + image, "/i/%s/thumb?utm_source=marked" % image, "/i/zzzzzz"):
            s = socket.create_connection(("127.0.0.1", srv.port), source_address=(ip, 0))
            s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nUser-Agent: %s\r\nReferer: "
                      b"https://marked.example/page\r\nConnection: close\r\n\r\n"
                      % (path.encode(), ua.encode()))
            while s.recv(65536):
                pass
            s.close()
        secret = open(os.path.join(srv.data_dir, "secret")).read().strip()
        assert wait_for(lambda: uniques_row(srv, secret, owner, date)) == 1
        salt_rows = srv.sql("SELECT salt FROM analytics_salts WHERE date = '%s'" % date)
        salt = bytes(salt_rows[0][0])
        assert len(salt) == 16
        if ch_db is not None:
            wait_for(lambda: int(pftest.ch_query(
                "SELECT count() FROM %s.pixflare_cdn_metrics" % ch_db)) >= 3)
    finally:
        assert srv.stop() == 0
    forms = needles(ip, ua, salt) + [b"marked.example", b"utm_source"]
    blobs = [(f, open(f, "rb").read()) for f in all_files(srv.data_dir)]
    blobs.append(("serve log", open(srv.stderr_path, "rb").read()))
    if pftest.BACKEND == "postgres":
        for (table,) in srv.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"):
            blobs.append((table, repr(srv.sql("SELECT * FROM %s" % table)).encode()))
    if ch_db is not None:
        # Every column as text (binary ones in hex, which the needles
        # below also take).
        blobs.append(("clickhouse events", pftest.ch_query(
            "SELECT timestamp, hex(request_id), hex(owner), image_id, variant, status, "
            "country, bytes, node, batch, client FROM %s.pixflare_cdn_metrics "
            "FORMAT TabSeparated" % ch_db).encode()))
        blobs.append(("clickhouse nodes", pftest.ch_query(
            "SELECT * FROM %s.pixflare_cdn_metrics_nodes FORMAT TabSeparated" % ch_db).encode()))
        forms += [f.hex().upper().encode() for f in forms if len(f) >= 8]
    assert len(blobs) > 5
    assert find_any(blobs, forms) == []
    # The salt itself is kept only while its day lasts (next test): it is
    # in the database now, and nowhere else.
    holders = {name for name, _ in find_any(blobs, [salt])}
    assert holders <= {os.path.join(srv.data_dir, n) for n in ("pixflare.db", "pixflare.db-wal")} \
        | {"analytics_salts"}, holders


@pytest.mark.sqlite_only
def test_yesterdays_salt_is_gone_after_midnight(tmp_path, tree):
    """A server whose clock starts a few seconds before midnight: the day's
    salt is made for the traffic before midnight; after it, its row is
    deleted and its bytes are in no file (SQLite's secure_delete, the WAL
    truncated)."""
    data = tmp_path / "data"
    first = Server(data)
    ids = pftest.import_tree(first, tree)
    date = day(-3)
    nxt = day(-2)
    srv = Server(data, faked(date + " 23:59:56", {"ANALYTICS_REALTIME_FLUSH_MS": "200"}))
    srv.start()
    try:
        owner, image = first_image(ids)
        blast(srv.port, [AGENTS[0][1]], "/i/" + image, threads=1)
        salt = bytes(srv.sql("SELECT salt FROM analytics_salts WHERE date = '%s'" % date)[0][0])
        # Midnight passes (the faked clock runs on), and a flush after it.
        gone = wait_for(lambda: not srv.sql(
            "SELECT salt FROM analytics_salts WHERE date = '%s'" % date), timeout=20)
        assert gone, "the salt of %s is still in analytics_salts" % date
        assert srv.sql("SELECT count(*) FROM analytics_salts WHERE date = '%s'" % nxt)[0][0] == 1
        blast(srv.port, [AGENTS[1][1]], "/i/" + image, threads=1)
        time.sleep(0.5)
    finally:
        assert srv.stop() == 0
    hits = [f for f in all_files(srv.data_dir) if salt in open(f, "rb").read()]
    assert hits == [], hits
