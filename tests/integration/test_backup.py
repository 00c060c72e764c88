"""pixflare backup DEST: a copy of a serving data directory that is itself a
data directory. A server started on the copy serves the same bytes and
answers the API with the counts as of the backup; `pixflare aggregate` on the
copy agrees with them (taken at rest) or only adds events the database had
not counted yet (taken under traffic: events are copied after the database).
"""
import datetime
import json
import os
import stat
import threading

import pytest

import pftest
from pftest import Server, run, clean_env
from test_batch import faked

VARIANTS = ("original", "w128", "thumb")


def today():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


def overview(srv, key):
    status, _, body = srv.request("GET", "/v1/analytics/overview?days=1",
                                  {"Authorization": "Bearer " + key})
    assert status == 200, body
    return json.loads(body)


def aggregate_today(srv):
    """`pixflare aggregate` of today on srv's data directory, run as if
    today were over (libfaketime: half past midnight tomorrow)."""
    tomorrow = (datetime.datetime.now(datetime.timezone.utc).date()
                + datetime.timedelta(days=1)).isoformat()
    env = dict(srv.env)
    env.update(faked(tomorrow + " 00:30:00"))
    return run(["aggregate", "--date", today()], env, check=0)


def total(srv, key):
    return overview(srv, key)["totals"]["requests"]


def wait_total(srv, key, want, timeout=15):
    deadline = pftest.time.time() + timeout
    while pftest.time.time() < deadline:
        if total(srv, key) == want:
            return
        pftest.time.sleep(0.1)
    assert total(srv, key) == want


def get(srv, path):
    status, _, body = srv.request("GET", path)
    assert status == 200, (path, status)
    return body


def same_images(src, copy, ids):
    for image_id in ids.values():
        for v in VARIANTS:
            path = "/i/%s/%s" % (image_id, v)
            assert get(copy, path) == get(src, path), path


def backup(srv, dest, check=0):
    return srv.cli("backup", str(dest), check=check)


QUIET = {"PIXFLARE_API_RATE_LIMIT": "0"}  # the tests poll the API


def copy_server(dest):
    return Server(dest, QUIET)


def source(tmp_path, images):
    """A serving data directory over the `images` tree, and alice's key."""
    src, files = images
    srv = Server(tmp_path / "data", QUIET)
    srv.ids = pftest.import_tree(srv, src)
    srv.files = files
    srv.start()
    key = srv.cli("keys", "create", "--owner", "alice", check=0).stdout.strip()
    return srv, key


@pytest.mark.sqlite_only
def test_backup_at_rest_is_exact(tmp_path, images):
    server, key = source(tmp_path, images)
    alice = [i for rel, i in server.ids.items() if rel.startswith("alice/")]
    sent = 0
    for n in range(3):
        for image_id in alice:
            for v in VARIANTS:
                get(server, "/i/%s/%s" % (image_id, v))
                sent += 1
    wait_total(server, key, sent)
    dest = tmp_path / "bk"
    p = backup(server, dest)
    assert p.stdout.splitlines()[0] == "database: pixflare.db, one snapshot", p.stdout
    assert p.stdout.splitlines()[-1].startswith("backup: "), p.stdout
    assert p.stdout.splitlines()[-1].endswith(": %s" % dest)
    assert not [n for n in os.listdir(tmp_path) if ".partial-" in n]
    # A data directory: the secret with its mode, the same node, no locks.
    assert stat.S_IMODE(os.stat(dest / "secret").st_mode) == 0o600
    assert (dest / "secret").read_bytes() == (tmp_path / "data" / "secret").read_bytes()
    assert (dest / "node-id").read_bytes() == (tmp_path / "data" / "node-id").read_bytes()
    assert not (dest / ".batch.lock").exists() and not (dest / "pixflare.db-wal").exists()
    segs = [f for _, _, fs in os.walk(dest / "events") for f in fs]
    assert segs and all(f.endswith(".pfe") for f in segs), segs

    copy = copy_server(dest).start()
    assert total(copy, key) == sent  # the key works: same secret, same database
    events = copy.cli("events", "--date", today(), check=0).stdout.splitlines()
    assert len(events) == sent
    same_images(server, copy, server.ids)
    alice_now = sent + len(alice) * len(VARIANTS)
    wait_total(copy, key, alice_now)
    # The copy's events agree with its database: the batch changes nothing.
    aggregate_today(copy)
    assert total(copy, key) == alice_now
    assert copy.stop() == 0
    assert server.stop() == 0


@pytest.mark.sqlite_only
def test_backup_under_traffic(tmp_path, images):
    server, key = source(tmp_path, images)
    paths = ["/i/%s/%s" % (i, v) for rel, i in server.ids.items() if rel.startswith("alice/")
             for v in VARIANTS]
    stop = threading.Event()
    sent = [0]
    errors = []

    def traffic():
        n = 0
        try:
            while not stop.is_set():
                get(server, paths[n % len(paths)])
                sent[0] += 1
                if n % 25 == 0:
                    total(server, key)  # API calls too
                n += 1
        except Exception as e:  # reported by the main thread
            errors.append(e)

    t = threading.Thread(target=traffic)
    t.start()
    try:
        while sent[0] < 300:
            pftest.time.sleep(0.05)
        pftest.time.sleep(1.5)
        before = total(server, key)  # counted by the database before the backup
        assert before > 0
        dest = tmp_path / "bk"
        backup(server, dest)
        pftest.time.sleep(0.3)
    finally:
        stop.set()
        t.join()
    assert not errors, errors
    wait_total(server, key, sent[0])
    assert server.stop() == 0
    copy = copy_server(dest).start()
    copied = total(copy, key)
    assert before <= copied <= sent[0], (before, copied, sent[0])
    events = len(copy.cli("events", "--date", today(), check=0).stdout.splitlines())
    assert copied <= events <= sent[0], (copied, events, sent[0])
    # The batch counts the copy's events: what the database had, and more.
    aggregate_today(copy)
    assert total(copy, key) == events
    for image_id in server.ids.values():
        data = get(copy, "/i/%s" % image_id)
        rel = [r for r, i in server.ids.items() if i == image_id][0]
        assert data == server.files[rel]
    assert copy.stop() == 0


@pytest.mark.sqlite_only
def test_storage_and_database_elsewhere_come_home(tmp_path, images):
    src, files = images
    storage, db = tmp_path / "store", tmp_path / "db" / "x.db"
    srv = Server(tmp_path / "data", {"PIXFLARE_STORAGE_DIR": str(storage),
                                     "PIXFLARE_DATABASE": "sqlite:%s" % db})
    ids = pftest.import_tree(srv, src)
    srv.start()
    dest = tmp_path / "bk"
    p = backup(srv, dest)
    assert ("database: %s copied to DEST/pixflare.db" % db) in p.stdout, p.stdout
    assert ("images: %d files from PIXFLARE_STORAGE_DIR=%s copied to DEST/images"
            % (len(files), storage)) in p.stdout, p.stdout
    copy = Server(dest).start()  # the defaults: DEST alone
    for rel, image_id in ids.items():
        assert get(copy, "/i/%s" % image_id) == files[rel]
    assert copy.stop() == 0
    assert srv.stop() == 0


@pytest.mark.no_db
def test_dest_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    env = clean_env({"PIXFLARE_DATA_DIR": str(data),
                     "PIXFLARE_DATABASE": "sqlite:%s" % (data / "pixflare.db")})
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    (tmp_path / "file").write_text("x")
    for dest, why in ((full, "is not empty"), (tmp_path / "file", "is not a directory"),
                      (data / "bk", "inside the data or storage directory"),
                      (tmp_path / "no" / "bk", "parent directory does not exist")):
        p = run(["backup", str(dest)], env, check=2)
        assert p.stdout == ""
        assert p.stderr.startswith("pixflare backup: DEST %s: " % dest), p.stderr
        assert why in p.stderr, p.stderr
        assert len(p.stderr.splitlines()) == 1
    assert os.listdir(full) == ["x"] and not (data / "bk").exists()
    assert sorted(os.listdir(tmp_path)) == ["data", "file", "full"]
    for args in ([], ["a", "b"], ["--fast", "a"]):
        p = run(["backup"] + args, env, check=2)
        assert "see 'pixflare backup --help'" in p.stderr
    # An empty directory is fine, and a data directory with nothing yet.
    empty = tmp_path / "empty"
    empty.mkdir()
    p = run(["backup", str(empty)], env, check=0)
    assert "database: none yet" in p.stdout
    assert "events: none" in p.stdout


@pytest.mark.pg_only
def test_postgres_says_pg_dump_and_copies_the_rest(server, tmp_path):
    dest = tmp_path / "bk"
    p = backup(server, dest)
    url = server.database
    name = url.rsplit("/", 1)[1].split("?")[0]
    line = [l for l in p.stdout.splitlines() if l.startswith("database: ")]
    assert len(line) == 1 and "pg_dump --format=custom" in line[0], p.stdout
    assert "--dbname=%s" % name in line[0], line
    assert "password" not in p.stdout.lower()
    assert not (dest / "pixflare.db").exists()
    assert stat.S_IMODE(os.stat(dest / "secret").st_mode) == 0o600
    # The rest is a data directory for the same database.
    copy = Server(dest, {"PIXFLARE_DATABASE": url}).start()
    same_images(server, copy, server.ids)
    assert copy.stop() == 0


@pytest.mark.sqlite_only
def test_clickhouse_backup_starts_a_new_node_that_counts_once(tmp_path, images):
    """ANALYTICS_ENGINE=clickhouse: the events are ClickHouse's. The copy
    holds neither the node's spool nor its node id, so a server on it is a
    new node: nothing the original shipped is sent again, and its own
    events are counted once beside the original's."""
    if not pftest.CH_URL:
        pytest.skip("PIXFLARE_TEST_CH_URL is not set (scripts/test.sh starts a ClickHouse)")
    db = pftest.new_ch_database()
    env = dict(pftest.ch_env(db), ANALYTICS_ENGINE_BATCH_MS="100", **QUIET)
    src, _ = images
    srv = Server(tmp_path / "data", env)
    ids = pftest.import_tree(srv, src)
    srv.start()

    def rows():
        out = pftest.ch_query("SELECT count(), uniqExact(request_id) FROM %s.pixflare_cdn_metrics"
                              % db)
        return tuple(int(x) for x in out.split())

    try:
        for i in range(40):
            get(srv, "/i/%s" % list(ids.values())[i % len(ids)])
        dest = tmp_path / "copy"
        p = backup(srv, dest)
        assert "this node's spool of events not yet shipped is not copied" in p.stdout, p.stdout
        assert not (dest / "node-id").exists()
        assert not (dest / "events" / "pixflare_cdn_metrics").exists()
        assert (dest / "secret").exists()
        for i in range(10):
            get(srv, "/i/%s" % list(ids.values())[0])
    finally:
        assert srv.stop() == 0
    assert rows() == (50, 50)
    copy = Server(dest, env).start()
    try:
        node = (dest / "node-id").read_text().strip()
        assert node != (tmp_path / "data" / "node-id").read_text().strip()
        for rel, image_id in ids.items():  # the originals, byte for byte
            assert get(copy, "/i/%s" % image_id) == (src / rel).read_bytes(), rel
        for i in range(7):
            get(copy, "/i/%s" % list(ids.values())[1])
    finally:
        assert copy.stop() == 0
    assert rows() == (50 + len(ids) + 7, 50 + len(ids) + 7)
