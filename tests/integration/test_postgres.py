"""PostgreSQL as the shared database of several nodes: exact counts from two
nodes at once, the catalog and key revocations seen by every node, the API
rate limit held across nodes, an outage of PostgreSQL during traffic (the
CDN keeps serving; nothing lost or counted twice), `pixflare db copy` both
ways with identical API answers, start-up errors that say which and how
to fix them without showing the password, two nodes contending for the
scheduler's slots (one run per slot; a killed runner's slot taken over),
and two nodes making the same variants at once in one shared storage
directory (whole, identical files; no temporary left).

Each test here needs a real PostgreSQL (PIXFLARE_TEST_PG_URL, started by
scripts/test.sh); the outage test starts one of its own with scripts/pg.sh,
since it stops it hard."""
import datetime
import fcntl
import json
import os
import struct
import subprocess
import threading
import time
import urllib.parse
import zlib

import pytest

import pftest
from pftest import Server, import_tree, make_png
from test_analytics import Traffic, expected_tables, tables, today
from test_batch import faked

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SECRET = "pg-test-secret-0123456789abcdef"
FLUSH_MS = 300

pytestmark = pytest.mark.pg_only


def node(tmp_path, name, url, storage, extra=None):
    env = {"PIXFLARE_DATABASE": url, "PIXFLARE_STORAGE_DIR": str(storage),
           "PIXFLARE_SECRET": SECRET, "ANALYTICS_REALTIME_FLUSH_MS": str(FLUSH_MS),
           "ANALYTICS_BATCH_ENABLED": "false"}
    env.update(extra or {})
    return Server(tmp_path / name, env)


def wait_for(cond, timeout=15, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


def api(srv, key, path):
    status, headers, body = srv.request("GET", path, {"Authorization": "Bearer " + key})
    return status, headers, json.loads(body) if body else None


def new_key(srv, owner):
    return srv.cli("keys", "create", "--owner", owner, check=0).stdout.strip()


def test_two_nodes_count_exactly(tmp_path, images):
    """Random traffic on two nodes at once, into one database: the tables
    equal the counts this test made of the responses it received."""
    url = pftest.new_pg_database()
    storage = tmp_path / "shared-images"
    a = node(tmp_path, "a", url, storage)
    b = node(tmp_path, "b", url, storage)
    ids = import_tree(a, images[0])
    a.start()
    b.start()
    date = today()
    ta, tb = Traffic(a, ids, seed=7), Traffic(b, ids, seed=8)
    runs = [threading.Thread(target=t.run, args=(1500, 6)) for t in (ta, tb)]
    for r in runs:
        r.start()
    for r in runs:
        r.join()
    assert a.stop() == 0 and b.stop() == 0  # the final flushes
    if today() != date:
        pytest.skip("the UTC day turned during the test")
    want = expected_tables(ta.expected + tb.expected, SECRET, date)
    got = tables(a)
    assert got[0] == want[0], "analytics_daily differs"
    assert got[1] == want[1], "analytics_monthly differs"
    assert got[2] == want[2], "analytics_status_daily differs"


def test_catalog_and_revocation_reach_every_node(tmp_path, images):
    url = pftest.new_pg_database()
    storage = tmp_path / "shared-images"
    a = node(tmp_path, "a", url, storage)
    b = node(tmp_path, "b", url, storage)
    import_tree(a, images[0])
    a.start()
    b.start()
    # An image imported through node a's database is served by node b
    # without a restart.
    src = tmp_path / "later"
    (src / "alice" / "late").mkdir(parents=True)
    (src / "alice" / "late" / "new.png").write_bytes(make_png(40, 30, seed=9))
    new = import_tree(a, src)
    assert wait_for(lambda: b.request("GET", "/alice/late/new.png")[0] == 200, timeout=5)
    assert b.request("GET", "/i/%s" % new["alice/late/new.png"])[0] == 200
    # A key revoked through one node stops working on the other.
    key = new_key(a, "alice")
    assert api(b, key, "/v1/analytics/overview")[0] == 200
    a.cli("keys", "revoke", key.split("_")[1], check=0)
    assert wait_for(lambda: api(b, key, "/v1/analytics/overview")[0] == 401, timeout=5)
    assert a.stop() == 0 and b.stop() == 0


def test_rate_limit_holds_across_nodes(tmp_path, images):
    url = pftest.new_pg_database()
    storage = tmp_path / "shared-images"
    extra = {"PIXFLARE_API_RATE_LIMIT": "10"}
    a = node(tmp_path, "a", url, storage, extra)
    b = node(tmp_path, "b", url, storage, extra)
    import_tree(a, images[0])
    a.start()
    b.start()
    key = new_key(a, "alice")
    statuses = [api((a, b)[i % 2], key, "/v1/analytics/overview")[0] for i in range(16)]
    assert statuses == [200] * 10 + [429] * 6, statuses
    status, headers, body = api(b, key, "/v1/analytics/overview")
    assert status == 429 and body["error"]["code"] == "RATE_LIMITED"
    assert 1 <= int(headers["retry-after"]) <= 61
    # Another owner has a window of its own.
    assert api(a, new_key(a, "bob"), "/v1/analytics/overview")[0] == 200
    assert a.stop() == 0 and b.stop() == 0


@pytest.fixture
def own_pg(tmp_path):
    """A PostgreSQL of this test's own (it is stopped hard): its directory."""
    d = str(tmp_path / "pg")
    subprocess.run(["sh", os.path.join(ROOT, "scripts/pg.sh"), "start", d], check=True,
                   timeout=120)
    yield d
    subprocess.run(["sh", os.path.join(ROOT, "scripts/pg.sh"), "stop", d], timeout=120)


def pg_sh(*args):
    return subprocess.run(["sh", os.path.join(ROOT, "scripts/pg.sh")] + list(args), check=True,
                          capture_output=True, text=True, timeout=120).stdout.strip()


def test_outage_during_traffic_loses_nothing(tmp_path, images, own_pg):
    """PostgreSQL stopped hard (pg_ctl -m immediate) during traffic, then
    started again: the CDN serves throughout, the API answers 503
    UNAVAILABLE meanwhile, the log says once that the database is down and
    once that it is back, and the totals are exact afterwards."""
    url = pg_sh("createdb", own_pg, "outage")
    mport = pftest.free_port()
    srv = node(tmp_path, "a", url, tmp_path / "images",
               {"PIXFLARE_METRICS_LISTEN": "127.0.0.1:%d" % mport})
    ids = import_tree(srv, images[0])
    srv.start()
    key = new_key(srv, "alice")
    date = today()
    before, during, after = (Traffic(srv, ids, seed=s) for s in (11, 12, 13))
    before.run(400, 4)
    assert api(srv, key, "/v1/analytics/overview")[0] == 200  # warm connections
    pg_sh("crash", own_pg)
    during.run(600, 4)  # served from memory and disk; counted in memory
    assert all(e[3] < 500 for e in during.expected), during.expected  # as without an outage
    status, _, body = api(srv, key, "/v1/analytics/overview")
    assert status == 503 and body["error"]["code"] == "UNAVAILABLE", body
    time.sleep(1.5)  # several flushes fail meanwhile
    # The outage, as an operator's alert sees it: calls refused as
    # unavailable, flushes failing, their keys pending in memory.
    m = scrape(mport)
    assert m['pixflare_database_errors_total{reason="unavailable"}'] >= 1, m
    assert m["pixflare_realtime_flush_failures_total"] >= 1, m
    assert m["pixflare_realtime_pending_keys"] > 0, m
    assert m['pixflare_http_requests_total{route="api",status="503"}'] == 1, m
    pg_sh("start", own_pg)
    after.run(400, 4)
    assert wait_for(lambda: api(srv, key, "/v1/analytics/overview")[0] == 200, timeout=20)
    assert wait_for(lambda: scrape(mport)["pixflare_realtime_pending_keys"] == 0, timeout=20)
    assert srv.stop() == 0
    if today() != date:
        pytest.skip("the UTC day turned during the test")
    want = expected_tables(before.expected + during.expected + after.expected, SECRET, date)
    got = tables(srv)
    assert got[0] == want[0], "analytics_daily differs"
    assert got[1] == want[1], "analytics_monthly differs"
    assert got[2] == want[2], "analytics_status_daily differs"
    log = srv.log()
    assert log.count("PostgreSQL is unreachable") == 1, log
    assert log.count("PostgreSQL is reachable again") == 1, log
    assert "pixflare-test-secret" not in log


def scrape(port):
    """{series: value} of a metrics listener's /metrics."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    return {k: float(v) for k, _, v in (line.rpartition(" ") for line in text.splitlines()
                                         if line and not line.startswith("#"))}


def overview_answers(srv, key):
    out = []
    for q in ("days=30", "days=7", "days=90&limit=100"):
        status, _, body = api(srv, key, "/v1/analytics/overview?" + q)
        assert status == 200, body
        out.append(body)
    top = out[0]["top_images"][0]["image_id"]
    status, _, body = api(srv, key, "/v1/analytics/images/%s?days=30" % top)
    assert status == 200, body
    out.append(body)
    return out


def test_db_copy_both_ways_same_answers(tmp_path):
    """A demo install on SQLite, copied to PostgreSQL and back to a new
    SQLite file: each copy answers the API exactly as the original."""
    orig = Server(tmp_path / "orig", {"PIXFLARE_DATABASE": "sqlite:%s" % (tmp_path / "o.db"),
                                      "PIXFLARE_SECRET": SECRET,
                                      "ANALYTICS_BATCH_ENABLED": "false"})
    orig.cli("demo", check=0)
    key = new_key(orig, "alice")
    orig.start()
    want = overview_answers(orig, key)
    assert orig.stop() == 0
    pg = pftest.new_pg_database()
    p = orig.cli("db", "copy", "--to", pg, check=0)
    assert "copied" in p.stdout and "pixflare-test-secret" not in p.stdout + p.stderr
    # A non-empty target is refused, and named.
    p = orig.cli("db", "copy", "--to", pg, check=2)
    assert "not empty" in p.stderr and "pixflare-test-secret" not in p.stderr
    back = "sqlite:%s" % (tmp_path / "back.db")
    orig.cli("db", "copy", "--from", pg, "--to", back, check=0)
    for url in (pg, back):
        srv = Server(tmp_path / ("copy-" + url.split(":")[0]),
                     {"PIXFLARE_DATABASE": url, "PIXFLARE_SECRET": SECRET,
                      "PIXFLARE_STORAGE_DIR": orig.data_dir + "/images",
                      "ANALYTICS_BATCH_ENABLED": "false"})
        srv.start()
        assert overview_answers(srv, key) == want, url.split(":")[0]
        assert srv.stop() == 0
    # Bad usage: exit 2 with a reason.
    assert "--to" in orig.cli("db", "copy", check=2).stderr
    assert orig.cli("db", "move", check=2).returncode == 2


def test_startup_errors_say_which_and_hide_the_password(tmp_path):
    u = urllib.parse.urlsplit(pftest.new_pg_database())
    host, port, name = u.hostname, u.port, u.path[1:]
    cases = {
        "postgres://pixflare:wrong-password-123@%s:%d/%s" % (host, port, name): "password",
        "postgres://pixflare:pixflare-test-secret@%s:%d/no_such_db" % (host, port):
            "no such database",
        "postgres://pixflare:pixflare-test-secret@127.0.0.1:%d/%s" % (pftest.free_port(), name):
            "cannot reach",
    }
    for url, words in cases.items():
        srv = Server(tmp_path / "d", {"PIXFLARE_DATABASE": url})
        p = subprocess.run([pftest.BIN, "serve"], env=srv.env, capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 2, (url, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], p.stderr
        assert "wrong-password-123" not in p.stderr and "pixflare-test-secret" not in p.stderr
    # A value that is no URL is refused without being echoed.
    srv = Server(tmp_path / "d", {"PIXFLARE_DATABASE": "postgres://u:se cret@h/db"})
    p = srv.cli("serve", check=2)
    assert "se cret" not in p.stderr and "PIXFLARE_DATABASE" in p.stderr


def test_database_file(tmp_path, images):
    """PIXFLARE_DATABASE_FILE: the URL in a 0600 file (systemd credentials);
    a file others can read is refused."""
    url = pftest.new_pg_database()
    f = tmp_path / "db.url"
    f.write_text(url + "\n")
    os.chmod(f, 0o600)
    srv = Server(tmp_path / "data", {"PIXFLARE_DATABASE_FILE": str(f)})
    ids = import_tree(srv, images[0])
    srv.start()
    assert srv.request("GET", "/i/" + sorted(ids.values())[0])[0] == 200
    assert srv.stop() == 0
    assert len(pftest._run_sql(url, "SELECT id FROM images", (), True)) == len(ids)
    os.chmod(f, 0o644)
    p = srv.cli("keys", "list", check=2)
    assert "chmod 600" in p.stderr and url not in p.stderr
    os.chmod(f, 0o600)
    p = Server(tmp_path / "data", {"PIXFLARE_DATABASE_FILE": str(f),
                                   "PIXFLARE_DATABASE": url}).cli("keys", "list", check=2)
    assert "not both" in p.stderr


def test_batch_refuses_a_date_other_nodes_counted(tmp_path, images):
    """With the embedded engine a node's batch sees only its own events: on
    a database another node also counted a date in, it leaves the date as
    realtime counted it (and says why) unless --force."""
    url = pftest.new_pg_database()
    a = node(tmp_path, "a", url, tmp_path / "images")
    os.makedirs(a.data_dir, exist_ok=True)  # no secret file here: import makes none
    import_tree(a, images[0])
    yesterday = (time.time() // 86400 - 1) * 86400
    date = time.strftime("%Y-%m-%d", time.gmtime(yesterday))
    a.cli("aggregate", "--date", date, check=0)  # alone: fine
    pftest._run_sql(url, "INSERT INTO analytics_flushes (id, at) VALUES (?, ?)",
                    ("0123456789abcdef.00000000000000aa.1", int(yesterday) + 3600), False)
    p = a.cli("aggregate", "--date", date, check=2)
    assert "0123456789abcdef" in p.stderr and "ANALYTICS_ENGINE=clickhouse" in p.stderr
    a.cli("aggregate", "--date", date, "--force", check=0)


def test_nodes_starting_at_once_on_an_empty_database(tmp_path):
    """Migrations run under an advisory lock: commands opening one empty
    database at the same moment all succeed, and the schema is made once."""
    url = pftest.new_pg_database()
    procs = []
    for i in range(4):
        (tmp_path / ("n%d" % i)).mkdir()  # keys refuses a data directory that does not exist
        env = pftest.clean_env({"PIXFLARE_DATA_DIR": str(tmp_path / ("n%d" % i)),
                                "PIXFLARE_DATABASE": url})
        procs.append(subprocess.Popen([pftest.BIN, "keys", "list"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    assert pftest._run_sql(url, "SELECT version FROM pixflare_schema", (), True) == [(3,)]


def test_overview_cache_follows_other_nodes(tmp_path, images):
    """Node b answers from its in-memory copies of past dates' rows; counts
    written by node a reach b's answers at once (the dates' versions are in
    the database)."""
    url = pftest.new_pg_database()
    storage = tmp_path / "shared-images"
    a = node(tmp_path, "a", url, storage)
    b = node(tmp_path, "b", url, storage)
    ids = import_tree(a, images[0])
    a.start()
    b.start()
    key = new_key(a, "alice")
    first = api(b, key, "/v1/analytics/overview?days=7")[2]["totals"]["requests"]
    assert api(b, key, "/v1/analytics/overview?days=7")[2]["totals"]["requests"] == first
    alice = [i for rel, i in ids.items() if rel.startswith("alice/")]
    for i in range(5):
        assert a.request("GET", "/i/" + alice[i % len(alice)])[0] == 200
    assert wait_for(lambda: api(b, key, "/v1/analytics/overview?days=7")[2]["totals"]["requests"]
                    == first + 5, timeout=5)
    assert a.stop() == 0 and b.stop() == 0


# ---- The scheduler's slots across nodes ----

def node_id(srv):
    with open(os.path.join(srv.data_dir, "node-id")) as f:
        return f.read().strip()


def unix(iso):
    return int(datetime.datetime.fromisoformat(iso).replace(
        tzinfo=datetime.timezone.utc).timestamp())


def job_runs(url, job="cleanup"):
    """{slot: (node, attempts, finished, ok)} of job_runs."""
    return {r[0]: r[1:] for r in pftest._run_sql(
        url, "SELECT slot, node, attempts, finished_at IS NOT NULL, ok FROM job_runs "
             "WHERE job = ?", (job,), True)}


def start_together(*nodes):
    """Start the nodes at the same moment (each waits for its /healthz)."""
    ts = [threading.Thread(target=n.start) for n in nodes]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for n in nodes:
        assert n.proc is not None and n.proc.poll() is None, n.log()


def test_scheduler_runs_each_slot_on_one_node(tmp_path, images):
    """Two nodes start together just before the 01:00 cleanup: the start-up
    catch-up (the slot of the day before) and the 01:00 slot each run on
    exactly one node, once; the other node says so in one line. The run
    also sweeps the shared storage directory of a killed writer's old
    temporary file, and only of that."""
    url = pftest.new_pg_database()
    storage = tmp_path / "shared-images"
    date = today()
    when = faked(date + " 00:59:56")
    a = node(tmp_path, "a", url, storage, when)
    b = node(tmp_path, "b", url, storage, when)
    ids = import_tree(a, images[0])
    some = sorted(ids.values())[0]
    folder = storage / some[:2] / some
    stale, fresh = folder / "w512.png.tmp.00112233445566ff", folder / "w256.png.tmp.0011223344556677"
    for f, age in ((stale, 7200), (fresh, 60)):  # seconds before the faked start
        f.write_bytes(b"half a variant")
        os.utime(f, (unix(date + "T00:59:56") - age,) * 2)
    start_together(a, b)
    try:
        prev, slot = unix(date + "T01:00:00") - 86400, unix(date + "T01:00:00")
        assert wait_for(lambda: all(r[2] for r in job_runs(url).values())
                        and set(job_runs(url)) == {prev, slot}, timeout=30), job_runs(url)
        # The other node's clock reaches 01:00 a little later (it started
        # a little later): it then skips the slot.
        assert wait_for(lambda: " on another node" in a.log() + b.log(), timeout=15)
        time.sleep(1)
    finally:
        assert a.stop() == 0 and b.stop() == 0
    runs = job_runs(url)
    assert {s: (r[1], r[2], r[3]) for s, r in runs.items()} == \
        {prev: (1, True, True), slot: (1, True, True)}, runs
    assert {r[0] for r in runs.values()} <= {node_id(a), node_id(b)}
    logs = a.log() + b.log()
    assert logs.count("pixflare: cleanup: kept dates from") == 2, logs
    assert logs.count("pixflare: scheduler: cleanup of %sT01:00:00Z r" % date) == 1, logs
    assert logs.count(" on another node") == 1, logs
    assert not stale.exists() and fresh.exists()
    assert logs.count("removed 1 temporary files") == 1, logs


def test_scheduler_slot_of_a_killed_node_is_taken_over(tmp_path, images):
    """The node that claimed the 01:00 cleanup is killed -9 before it ends
    the run (it waits for its batch lock, held here): the other node, told
    the slot is taken, asks again, takes it over within seconds and runs
    it; the slot ends once, run by the survivor."""
    url = pftest.new_pg_database()
    storage = tmp_path / "shared-images"
    date = today()
    when = faked(date + " 00:59:56")
    a = node(tmp_path, "a", url, storage, when)
    b = node(tmp_path, "b", url, storage, when)
    import_tree(a, images[0])
    # A cleanup ran after the day before's slot: the start-ups owe none.
    pftest._run_sql(url, "INSERT INTO analytics_meta (key, value, updated_at) VALUES (?, ?, ?)",
                    ("last_cleanup_at", date + "T00:59:30Z", date + "T00:59:30Z"), False)
    locks = {}
    for n in (a, b):
        os.makedirs(n.data_dir, exist_ok=True)
        locks[n] = open(os.path.join(n.data_dir, ".batch.lock"), "a")
        fcntl.flock(locks[n], fcntl.LOCK_EX)
    start_together(a, b)
    slot = unix(date + "T01:00:00")
    try:
        assert wait_for(lambda: slot in job_runs(url), timeout=30), job_runs(url)
        winner_id, attempts, finished, _ = job_runs(url)[slot]
        assert attempts == 1 and not finished
        winner, other = (a, b) if winner_id == node_id(a) else (b, a)
        line = "pixflare: scheduler: cleanup of %sT01:00:00Z runs on another node" % date
        assert wait_for(lambda: line in other.log(), timeout=10), other.log()
        time.sleep(6)  # the other node asks again meanwhile: still taken
        assert job_runs(url)[slot] == (winner_id, 1, False, None)
        locks[other].close()  # the survivor may run the job as soon as it owns the slot
        t0 = time.time()
        winner.kill()
        assert wait_for(lambda: job_runs(url)[slot][2], timeout=20), job_runs(url)
        took = time.time() - t0
        assert job_runs(url)[slot] == (node_id(other), 2, True, True)
        assert took < 10, took
        log = other.log()
        assert ("pixflare: scheduler: cleanup of %sT01:00:00Z was left unfinished by its node; "
                "running it here" % date) in log, log
        assert log.count("pixflare: cleanup: kept dates from") == 1, log
        assert "pixflare: cleanup: kept dates from" not in winner.log()
    finally:
        assert other.stop() == 0
        locks[winner].close()


# ---- Shared storage: two nodes making the same variants ----

def png_pixels(data):
    """Check a PNG whole (every chunk's CRC, IEND last, the pixel data
    inflating to exactly its rows): (width, height)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    pos, idat, size, seen_end = 8, b"", None, False
    while pos < len(data):
        assert not seen_end, "bytes after IEND"
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        assert len(body) == length, "a chunk cut short"
        crc = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]
        assert zlib.crc32(kind + body) & 0xffffffff == crc, "bad CRC in " + repr(kind)
        if kind == b"IHDR":
            w, h, depth, colour = struct.unpack(">IIBB", body[:10])
            size = (w, h)
            channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
            row = (w * channels * depth + 7) // 8 + 1
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            seen_end = True
        pos += 12 + length
    assert seen_end and size is not None, "no IEND"
    assert len(zlib.decompress(idat)) == row * size[1]
    return size


def test_two_nodes_make_the_same_variants_at_once(tmp_path, images):
    """Both nodes get many requests at once for the same variants, none
    made yet, in the storage directory they share: every answer is a whole
    PNG of the right size, all answers for a variant are the same bytes
    (the file that won, also on disk), and no temporary file is left."""
    url = pftest.new_pg_database()
    storage = tmp_path / "shared-images"
    src = tmp_path / "big"
    (src / "alice" / "big").mkdir(parents=True)
    for i in range(3):  # large enough that making a variant takes a while
        (src / "alice" / "big" / ("n%d.png" % i)).write_bytes(
            make_png(1400, 1000, seed=20 + i, noise=True))
    a = node(tmp_path, "a", url, storage)
    b = node(tmp_path, "b", url, storage)
    ids = import_tree(a, images[0])
    ids.update(import_tree(a, src))
    start_together(a, b)
    variants = {"w128": 128, "w256": 256, "w512": 512, "thumb": 128, "og-image": 1200}
    targets = [(i, v) for i in sorted(ids.values()) for v in variants]
    answers = {t: [] for t in targets}
    errors = []
    barrier = threading.Barrier(8)

    def client(k):
        try:
            order = targets[k % 3:] + targets[:k % 3]
            barrier.wait()
            for image_id, v in order:
                srv = (a, b)[k % 2]
                status, headers, body = srv.request("GET", "/i/%s/%s" % (image_id, v))
                answers[(image_id, v)].append((status, int(headers["content-length"]), body))
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(repr(e))

    clients = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    try:
        assert not errors, errors
        for (image_id, v), got in answers.items():
            assert len(got) == 8
            assert all(s == 200 and n == len(body) for s, n, body in got), (image_id, v)
            bodies = {body for _, _, body in got}
            assert len(bodies) == 1, "%s/%s: %d different answers" % (image_id, v, len(bodies))
            w, h = png_pixels(bodies.pop())
            assert w <= variants[v] and (v not in ("thumb", "og-image") or w == variants[v])
    finally:
        assert a.stop() == 0 and b.stop() == 0
    on_disk = {}
    for root, _, files in os.walk(storage):
        for f in files:
            assert ".tmp." not in f, os.path.join(root, f)
            on_disk[os.path.join(os.path.basename(root), f)] = os.path.join(root, f)
    for (image_id, v), got in answers.items():
        with open(on_disk[os.path.join(image_id, v + ".png")], "rb") as f:
            assert f.read() == got[0][2]
    for n in (a, b):
        assert "cannot write variant" not in n.log() and "cannot make variant" not in n.log()
