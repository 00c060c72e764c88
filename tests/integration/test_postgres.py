"""PostgreSQL as the shared database of several nodes: exact counts from two
nodes at once, the catalog and key revocations seen by every node, the API
rate limit held across nodes, an outage of PostgreSQL during traffic (the
CDN keeps serving; nothing lost or counted twice), `pixflare db copy` both
ways with identical API answers, and start-up errors that say which and how
to fix them without showing the password.

Each test here needs a real PostgreSQL (PIXFLARE_TEST_PG_URL, started by
scripts/test.sh); the outage test starts one of its own with scripts/pg.sh,
since it stops it hard."""
import json
import os
import subprocess
import threading
import time
import urllib.parse

import pytest

import pftest
from pftest import Server, import_tree, make_png
from test_analytics import Traffic, expected_tables, tables, today

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
    srv = node(tmp_path, "a", url, tmp_path / "images")
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
    pg_sh("start", own_pg)
    after.run(400, 4)
    assert wait_for(lambda: api(srv, key, "/v1/analytics/overview")[0] == 200, timeout=20)
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
        env = pftest.clean_env({"PIXFLARE_DATA_DIR": str(tmp_path / ("n%d" % i)),
                                "PIXFLARE_DATABASE": url})
        procs.append(subprocess.Popen([pftest.BIN, "keys", "list"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    assert pftest._run_sql(url, "SELECT version FROM pixflare_schema", (), True) == [(1,)]


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
