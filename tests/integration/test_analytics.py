"""Analytics capture: one event per CDN response in the embedded event store,
and realtime rollups in analytics_daily / analytics_monthly /
analytics_status_daily, checked against counts this test computes itself
from the responses it received."""
import collections
import datetime
import glob
import hashlib
import hmac
import json
import os
import random
import re
import sqlite3
import threading
import time
import uuid

import pytest

from pftest import Server, db_text, import_tree

COUNTRY_OK = re.compile(r"^[A-Z][A-Z0-9]$")
FLUSH_MS = 400


def owner_hash(secret, owner):
    return hmac.new(secret.encode(), owner.encode(), hashlib.sha256).digest()[:16].hex()


def today():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


def secret_of(srv):
    with open(os.path.join(srv.data_dir, "secret")) as f:
        return f.read().strip()


def events(srv, date=None, check=0):
    p = srv.cli("events", "--date", date or today(), check=check)
    return [json.loads(line) for line in p.stdout.splitlines()], p


def tables(srv):
    daily = {tuple(r[:5]): (r[5], r[6]) for r in srv.sql(
        "SELECT owner, date, image_id, variant, country, requests, bandwidth_bytes "
        "FROM analytics_daily")}
    monthly = {tuple(r[:2]): (r[2], r[3]) for r in srv.sql(
        "SELECT owner, year_month, requests, bandwidth_bytes FROM analytics_monthly")}
    status = {tuple(r[:3]): r[3] for r in srv.sql(
        "SELECT owner, date, status, requests FROM analytics_status_daily")}
    return daily, monthly, status


class Traffic:
    """Sends a random mix of CDN requests and keeps, for every response
    received, what its event must say."""

    def __init__(self, srv, ids, seed):
        self.srv = srv
        self.ids = ids
        self.rng = random.Random(seed)
        self.expected = []  # (owner or None, image_id, variant, status, country, bytes)
        self.lock = threading.Lock()
        self.etags = {}

    def plan(self, n):
        """n requests: (method, path, headers, owner, image_id, variant)."""
        rng = self.rng
        names = sorted(self.ids)
        variants = ["", "/w128", "/thumb", "/original", "/w256"]
        countries = ["US", "DE", "T1", "XX", "A1", "us", "USA", "1A", "", None, None]
        out = []
        for _ in range(n):
            rel = rng.choice(names)
            owner = rel.split("/")[0]
            image_id = self.ids[rel]
            v = rng.choice(variants)
            vname = v[1:] or "original"
            kind = rng.random()
            if kind < 0.05:
                path, owner, image_id, vname = "/carol/none/x.png" + v, None, "", vname
            elif kind < 0.10:
                path, image_id = "/%s/pics/missing.png%s" % (owner, v), ""
            elif kind < 0.13:
                path, owner, image_id = "/i/zzzzzz" + v, None, ""
            elif kind < 0.16:
                path, owner, image_id, vname = "/%s/bogus" % rel.replace(" ", "%20"), None, "", ""
            elif kind < 0.55:
                path = "/i/%s%s" % (image_id, v)
            else:
                path = "/" + "/".join(p.replace(" ", "%20") for p in rel.split("/")) + v
            headers = {}
            c = rng.choice(countries)
            if c is not None:
                headers["CF-IPCountry"] = c
            method = "HEAD" if rng.random() < 0.1 else "GET"
            extra = rng.random()
            if extra < 0.1 and image_id:
                headers["If-None-Match"] = "ETAG"  # filled once known
            elif extra < 0.15 and image_id and method == "GET":
                headers["Range"] = "bytes=0-9"
            out.append((method, path, headers, owner, image_id, vname))
        return out

    def send(self, reqs):
        conn = self.srv.connect()
        try:
            for method, path, headers, owner, image_id, vname in reqs:
                headers = dict(headers)
                extra = self.label(headers)
                if headers.get("If-None-Match") == "ETAG":
                    etag = self.etags.get(path)
                    if etag is None:
                        del headers["If-None-Match"]
                    else:
                        headers["If-None-Match"] = etag
                conn.request(method, path, headers=headers)
                r = conn.getresponse()
                body = r.read()
                if r.status == 200 and r.getheader("ETag"):
                    self.etags[path] = r.getheader("ETag")
                c = headers.get("CF-IPCountry")
                country = c if c is not None and COUNTRY_OK.match(c) else "XX"
                nbytes = 0 if method == "HEAD" or r.status == 304 else len(body)
                with self.lock:
                    self.expected.append((owner if r.status != 400 else None,
                                          image_id if r.status != 400 else "",
                                          vname, r.status, country, nbytes) + extra)
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = self.srv.connect()
        finally:
            conn.close()

    def label(self, headers):
        """Fields a subclass adds to each expected entry, taken out of the
        request's headers before it is sent: none here."""
        return ()

    def run(self, n, workers):
        reqs = self.plan(n)
        chunks = [reqs[i::workers] for i in range(workers)]
        threads = [threading.Thread(target=self.send, args=(c,)) for c in chunks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(self.expected) == n


def expected_event_keys(expected, secret):
    keys = collections.Counter()
    for owner, image_id, vname, status, country, nbytes in expected:
        keys[(owner_hash(secret, owner) if owner else "", image_id, vname, status, country,
              nbytes)] += 1
    return keys


def event_keys(evs):
    return collections.Counter((e["owner"], e["image_id"], e["variant"], e["status"],
                                e["country"], e["bytes"]) for e in evs)


def expected_tables(expected, secret, date):
    daily = collections.defaultdict(lambda: [0, 0])
    monthly = collections.defaultdict(lambda: [0, 0])
    status = collections.Counter()
    for owner, image_id, vname, st, country, nbytes in expected:
        h = owner_hash(secret, owner) if owner else ""
        status[(h, date, st)] += 1
        if st in (200, 206, 304):
            d = daily[(h, date, image_id, vname, country)]
            d[0] += 1
            d[1] += nbytes
            m = monthly[(h, date[:7])]
            m[0] += 1
            m[1] += nbytes
    return ({k: tuple(v) for k, v in daily.items()}, {k: tuple(v) for k, v in monthly.items()},
            dict(status))


@pytest.fixture
def tree(tmp_path, images):
    return images[0]


def test_mixed_traffic_tables_and_events_exact(tmp_path, tree):
    srv = Server(tmp_path / "data", {"ANALYTICS_REALTIME_FLUSH_MS": str(FLUSH_MS)})
    ids = import_tree(srv, tree)
    srv.start()
    try:
        date = today()
        traffic = Traffic(srv, ids, seed=42)
        traffic.run(3000, workers=12)
        # The contract: rows reach the database within one flush interval.
        time.sleep(FLUSH_MS / 1000)
        if today() != date:
            pytest.skip("the UTC day turned during the test")
        secret = secret_of(srv)
        want = expected_tables(traffic.expected, secret, date)
        got = tables(srv)
        assert got[0] == want[0], "analytics_daily differs"
        assert got[1] == want[1], "analytics_monthly differs"
        assert got[2] == want[2], "analytics_status_daily differs"
        statuses = {e[3] for e in traffic.expected}
        assert {200, 206, 304, 400, 404} <= statuses, statuses

        # The event store, read while the server runs: one event per response.
        evs, _ = events(srv)
        assert len(evs) == len(traffic.expected)
        assert event_keys(evs) == expected_event_keys(traffic.expected, secret)
        assert len({e["request_id"] for e in evs}) == len(evs)
        assert all(re.match(r"^[0-9a-f]{32}$", e["request_id"]) for e in evs)
        now_ms = time.time() * 1000
        assert all(now_ms - 600000 < e["timestamp"] <= now_ms for e in evs)
    finally:
        assert srv.stop() == 0
    # A clean stop changes nothing, and seals every segment.
    assert tables(srv) == got
    evs2, _ = events(srv)
    assert event_keys(evs2) == event_keys(evs)
    day_dir = os.path.join(srv.data_dir, "events", "pixflare_cdn_metrics", date)
    assert glob.glob(day_dir + "/*.pfe") and not glob.glob(day_dir + "/*.open")
    assert "3000 events stored (0 could not be)" in srv.log()


def test_sigterm_flushes_realtime_counts(tmp_path, tree):
    srv = Server(tmp_path / "data", {"ANALYTICS_REALTIME_FLUSH_MS": "600000"})
    ids = import_tree(srv, tree)
    srv.start()
    traffic = Traffic(srv, ids, seed=7)
    traffic.run(300, workers=4)
    date = today()
    assert tables(srv) == ({}, {}, {})  # nothing flushed yet
    assert srv.stop() == 0
    if today() != date:
        pytest.skip("the UTC day turned during the test")
    assert tables(srv) == expected_tables(traffic.expected, secret_of(srv), date)


def test_kill9_loses_no_event_of_a_sent_response(tmp_path, tree):
    srv = Server(tmp_path / "data", {"ANALYTICS_REALTIME_FLUSH_MS": "600000",
                                     "ANALYTICS_FSYNC_MS": "600000"})
    ids = import_tree(srv, tree)
    srv.start()
    date = today()
    traffic = Traffic(srv, ids, seed=9)
    traffic.run(1500, workers=8)
    srv.kill()
    if today() != date:
        pytest.skip("the UTC day turned during the test")
    day_dir = os.path.join(srv.data_dir, "events", "pixflare_cdn_metrics", date)
    assert glob.glob(day_dir + "/*.open"), "the killed server left no live segment"
    secret = secret_of(srv)
    want = expected_event_keys(traffic.expected, secret)
    # Readable as they are, before any repair...
    evs, _ = events(srv)
    assert event_keys(evs) == want
    # ...and after the restart seals them.
    srv.start()
    assert "recovered" in srv.log()
    assert srv.stop() == 0
    assert not glob.glob(day_dir + "/*.open")
    evs, _ = events(srv)
    assert event_keys(evs) == want
    # The realtime counts of the killed server were never flushed (the batch
    # aggregation restores them from the events); nothing is counted twice.
    assert tables(srv) == ({}, {}, {})


def serve_one_image(tmp_path, tree, n, crash):
    """n GETs of one image on a one-thread server (so one segment), then
    kill -9 (crash) or a clean stop. Returns (server, day dir, path)."""
    srv = Server(tmp_path / "data", {"PIXFLARE_THREADS": "1"})
    ids = import_tree(srv, tree)
    srv.start()
    date = today()
    path = "/i/%s" % sorted(ids.values())[0]
    for _ in range(n):
        assert srv.request("GET", path)[0] == 200
    if crash:
        srv.kill()
    else:
        assert srv.stop() == 0
    if today() != date:
        pytest.skip("the UTC day turned during the test")
    return srv, os.path.join(srv.data_dir, "events", "pixflare_cdn_metrics", date), path


def test_torn_tail_is_cut_and_the_valid_prefix_kept(tmp_path, tree):
    srv, day_dir, _ = serve_one_image(tmp_path, tree, 20, crash=True)
    [seg] = glob.glob(day_dir + "/*.open")
    # Cut the segment in the middle of its 11th record: a torn write.
    with open(seg, "r+b") as f:
        f.truncate(16 + 10 * 72 + 30)
    srv.start()
    log = srv.log()
    assert "torn record" in log, log
    assert srv.stop() == 0
    [sealed] = glob.glob(day_dir + "/*.pfe")
    assert os.path.getsize(sealed) == 16 + 10 * 72
    evs, p = events(srv)
    assert len(evs) == 10 and p.returncode == 0


def test_damaged_files_are_reported_and_skipped(tmp_path, tree):
    srv, day_dir, path = serve_one_image(tmp_path, tree, 30, crash=False)
    [seg] = glob.glob(day_dir + "/*.pfe")
    with open(seg, "r+b") as f:  # flip bytes inside record 5
        f.seek(16 + 4 * 72 + 20)
        f.write(b"\xff\xfe\xfd")
    with open(os.path.join(day_dir, "00-garbage-000-0000.pfe"), "wb") as f:
        f.write(b"this is not an event file at all" * 10)
    evs, p = events(srv, check=1)
    assert len(evs) == 29
    assert "damaged" in p.stderr and "garbage" in p.stderr
    # Never fatal: the server starts, serves and records on top of it.
    srv.start()
    assert srv.request("GET", path)[0] == 200
    assert srv.stop() == 0
    evs, _ = events(srv, check=1)
    assert len(evs) == 30


def test_privacy_no_client_data_anywhere(tmp_path, tree):
    srv = Server(tmp_path / "data", {"ANALYTICS_REALTIME_FLUSH_MS": "100"})
    ids = import_tree(srv, tree)
    srv.start()
    markers = []
    rels = sorted(ids)
    for i in range(40):
        tag = uuid.uuid4().hex
        ip = "198.51.%d.%d" % (100 + i // 200, 7 + i)
        ua = "MarkerAgent/%s" % tag
        ref = "https://ref-%s.example/page" % tag
        q = "q%s" % tag
        markers += [ip, ua, ref, q, tag]
        rel = rels[i % len(rels)]
        paths = ["/i/%s?%s=1" % (ids[rel], q),
                 "/" + rel.replace(" ", "%20") + "/w128?%s" % q,
                 "/nobody/x/y.png?%s" % q]
        for p in paths:
            srv.request("GET", p, headers={"X-Forwarded-For": ip, "X-Real-IP": ip,
                                           "Forwarded": "for=%s" % ip, "User-Agent": ua,
                                           "Referer": ref, "CF-IPCountry": "FR"})
    time.sleep(0.3)
    assert srv.stop() == 0
    blobs = [srv.log().encode(), db_text(srv.database)]
    for root, _, files in os.walk(srv.data_dir):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                blobs.append(f.read())
    evs, _ = events(srv)
    assert len(evs) == 120
    for m in markers:
        mb = m.encode()
        for enc in (mb, m.encode("utf-16-le")):
            assert not any(enc in b for b in blobs), "marker %r found" % m


def test_modes(tmp_path, tree):
    path_of = None
    results = {}
    for engine, realtime in (("none", "false"), ("none", "true"), ("embedded", "false"),
                             ("embedded", "true")):
        d = tmp_path / ("data-%s-%s" % (engine, realtime))
        srv = Server(d, {"ANALYTICS_ENGINE": engine, "ANALYTICS_REALTIME_ENABLED": realtime})
        ids = import_tree(srv, tree)
        path_of = "/i/%s" % sorted(ids.values())[0]
        srv.start()
        for _ in range(5):
            assert srv.request("GET", path_of, headers={"CF-IPCountry": "NL"})[0] == 200
        assert srv.stop() == 0
        daily, _, _ = tables(srv)
        store = os.path.join(srv.data_dir, "events")
        n_events = 0
        if engine == "embedded":
            n_events = len(events(srv)[0])
        else:
            assert not os.path.exists(store)
            p = srv.cli("events", check=2)
            assert "no embedded event store" in p.stderr
        results[(engine, realtime)] = (sum(v[0] for v in daily.values()), n_events)
    assert results == {("none", "false"): (0, 0), ("none", "true"): (5, 0),
                       ("embedded", "false"): (0, 5), ("embedded", "true"): (5, 5)}


def test_server_routes_and_refusals(tmp_path, tree):
    """healthz makes no event; refusals on CDN paths (405) do."""
    srv = Server(tmp_path / "data")
    ids = import_tree(srv, tree)
    srv.start()
    rel = sorted(ids)[0]
    for _ in range(3):
        srv.request("GET", "/healthz")
    assert srv.request("POST", "/i/%s" % ids[rel])[0] == 405
    assert srv.request("GET", "/v1/nothing")[0] == 401  # the API asks for a key first
    assert srv.stop() == 0
    evs, _ = events(srv)
    assert [(e["status"], e["image_id"]) for e in evs] == [(405, ids[rel])]
    assert evs[0]["owner"] == owner_hash(secret_of(srv), rel.split("/")[0])


def test_one_server_per_event_store(tmp_path, tree):
    srv = Server(tmp_path / "data")
    import_tree(srv, tree)
    srv.start()
    other = Server(tmp_path / "data")
    try:
        with pytest.raises(AssertionError) as e:
            other.start()
        assert "in use by another pixflare server" in str(e.value)
    finally:
        assert srv.stop() == 0


def test_events_command_errors(tmp_path):
    srv = Server(tmp_path / "data")
    os.mkdir(srv.data_dir)  # events never makes a data directory (test_cli.py)
    for bad in ("2026-02-30", "yesterday", "2026-1-1"):
        p = srv.cli("events", "--date", bad, check=2)
        assert "--date" in p.stderr
    srv.cli("events", "--bogus", check=2)
    evs, p = events(srv, date="2020-01-01")  # an empty store is not an error
    assert evs == [] and p.returncode == 0


MMDB = os.environ.get("PIXFLARE_TEST_MMDB",
                      os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                   "../../build/geoip/country.mmdb"))


def test_geoip_database(tmp_path, tree):
    """With a real GeoIP database: the header still wins; a loopback client
    is in no country (XX); a missing database stops the server with exit 2."""
    assert os.path.exists(MMDB), "run 'make geoip' first"
    srv = Server(tmp_path / "data", {"PIXFLARE_GEOIP_DB": MMDB})
    ids = import_tree(srv, tree)
    srv.start()
    path = "/i/%s" % sorted(ids.values())[0]
    srv.request("GET", path, headers={"CF-IPCountry": "JP"})
    srv.request("GET", path)
    srv.request("GET", path, headers={"CF-IPCountry": "nope"})
    assert srv.stop() == 0
    evs, _ = events(srv)
    assert sorted(e["country"] for e in evs) == ["JP", "XX", "XX"]
    bad = Server(tmp_path / "data2", {"PIXFLARE_GEOIP_DB": str(tmp_path / "missing.mmdb")})
    p = bad.cli("serve", check=2)
    assert "PIXFLARE_GEOIP_DB" in p.stderr


def test_demo_traffic_is_recorded_once_and_consistent(tmp_path):
    srv = Server(tmp_path / "data")
    p = srv.cli("demo", check=0)
    assert "requests of demo traffic over 30 days" in p.stderr
    daily, monthly, status = tables(srv)
    assert sum(v[0] for v in daily.values()) > 1000
    # The realtime tables say what the event store says, day by day.
    per_day = collections.Counter()
    per_month = collections.defaultdict(lambda: [0, 0])
    n_events = 0
    day = datetime.date.fromisoformat(today())
    for i in range(30):
        d = (day - datetime.timedelta(days=i)).isoformat()
        evs, _ = events(srv, date=d)
        assert evs, d
        n_events += len(evs)
        for e in evs:
            per_day[(e["owner"], d, e["status"])] += 1
            if e["status"] in (200, 206, 304):
                m = per_month[(e["owner"], d[:7])]
                m[0] += 1
                m[1] += e["bytes"]
    assert status == dict(per_day)
    assert monthly == {k: tuple(v) for k, v in per_month.items()}
    again = srv.cli("demo", check=0)
    assert "demo traffic" not in again.stderr
    assert tables(srv) == (daily, monthly, status)
    assert sum(status.values()) == n_events


def test_open_segment_with_a_damaged_header_is_kept_not_deleted(tmp_path, tree):
    srv, day_dir, _ = serve_one_image(tmp_path, tree, 10, crash=True)
    [seg] = glob.glob(day_dir + "/*.open")
    with open(seg, "r+b") as f:
        f.seek(3)
        f.write(b"X")
    srv.start()
    assert srv.stop() == 0
    assert "bad file header" in srv.log()
    kept = seg[:-len(".open")] + ".pfe"
    assert os.path.getsize(kept) > 16 + 10 * 72  # as it was: nothing cut, nothing deleted
    evs, p = events(srv, check=1)
    assert evs == [] and "bad file header" in p.stderr


@pytest.mark.sqlite_only  # SQLite's file lock (BEGIN EXCLUSIVE)
def test_realtime_counts_survive_a_locked_database(tmp_path, tree):
    """While another process holds the database's write lock the flushes
    fail; the counts are kept and written once the lock goes."""
    srv = Server(tmp_path / "data", {"ANALYTICS_REALTIME_FLUSH_MS": "200"})
    ids = import_tree(srv, tree)
    srv.start()
    try:
        date = today()
        locker = sqlite3.connect(os.path.join(srv.data_dir, "pixflare.db"), timeout=10,
                                 isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        traffic = Traffic(srv, ids, seed=11)
        traffic.run(400, workers=4)
        time.sleep(2.5)  # several flushes fail meanwhile
        assert "cannot write realtime counts" in srv.log()
        locker.execute("ROLLBACK")
        locker.close()
        want = expected_tables(traffic.expected, secret_of(srv), date)
        deadline = time.time() + 10
        while tables(srv) != want and time.time() < deadline:
            time.sleep(0.1)
        if today() != date:
            pytest.skip("the UTC day turned during the test")
        assert tables(srv) == want
    finally:
        assert srv.stop() == 0
