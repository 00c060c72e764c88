"""ClickHouse as the event engine (ANALYTICS_ENGINE=clickhouse): every event
of a response in ClickHouse exactly once, whatever fails on the way
(ClickHouse down, an answer lost after ClickHouse inserted, the node killed
-9 in the middle of an insert, a batch refused), the batch aggregation and
`pixflare events` read from ClickHouse, the retention drops partitions, the
batch waits for events still in a node's spool, start-up errors say which,
and three nodes on one PostgreSQL and one ClickHouse count exactly through
an outage and a crash.

The shared ClickHouse is PIXFLARE_TEST_CH_URL (scripts/test.sh starts one
with scripts/ch.sh; each test gets a database of its own); tests that stop
ClickHouse start their own (pftest.ClickHouse). Faults between pixflare and
ClickHouse come from pftest.FaultProxy."""
import http.client
import json
import os
import random
import subprocess
import threading
import time

import pytest

import pftest
from pftest import ClickHouse, FaultProxy, Server, ch_env, ch_query, free_port, import_tree
from test_analytics import (Traffic, event_keys, events, expected_event_keys, expected_tables,
                            secret_of, tables, today)
from test_analytics import owner_hash
from test_batch import Store, day, faked, lines, parse_line

TABLE = "pixflare_cdn_metrics"
SECRET = "ch-test-secret-0123456789abcdef"


@pytest.fixture
def tree(images):
    return images[0]


def wait_for(cond, timeout=30, step=0.1, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    v = cond()
    assert v, "timed out waiting for " + what
    return v


def ch_env_fast(database, url=None, extra=None, secret=True):
    """ch_env, shipping every 100 ms; the test's PIXFLARE_SECRET unless
    secret=False (a Store reads the data directory's)."""
    env = ch_env(database, url)
    env.update({"ANALYTICS_ENGINE_BATCH_MS": "100", "ANALYTICS_REALTIME_FLUSH_MS": "300"})
    if secret:
        env["PIXFLARE_SECRET"] = SECRET
    env.update(extra or {})
    return env


def counts(database, url=None):
    """(rows, distinct request ids) of the events table."""
    out = ch_query("SELECT count(), uniqExact(request_id) FROM %s.%s" % (database, TABLE),
                   url=url)
    rows, uniq = out.split()
    return int(rows), int(uniq)


def more(t, n, workers):
    """n more requests of Traffic t (whose run() wants to be called once)."""
    reqs = t.plan(n)
    threads = [threading.Thread(target=t.send, args=(reqs[i::workers],)) for i in range(workers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


def metrics(port):
    """{series: value} scraped from a metrics listener."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def spool_segments(srv):
    root = os.path.join(srv.data_dir, "events", TABLE)
    out = []
    for d in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        if os.path.isdir(os.path.join(root, d)):
            out += [f for f in os.listdir(os.path.join(root, d)) if not f.startswith(".")]
    return out


def test_every_event_shipped_once(tmp_path, tree):
    """Mixed traffic: ClickHouse holds one row per response, `pixflare
    events` (from ClickHouse) says what each response was, and the spool is
    empty once the server stops."""
    db = pftest.new_ch_database()
    srv = Server(tmp_path / "data", ch_env_fast(db))
    ids = import_tree(srv, tree)
    srv.start()
    t = Traffic(srv, ids, seed=11)
    t.run(1200, 6)
    wait_for(lambda: counts(db)[0] >= 1200, what="1200 events in ClickHouse")
    assert srv.stop() == 0
    assert counts(db) == (1200, 1200)
    evs, p = events(srv, today(), check=0)
    assert event_keys(evs) == expected_event_keys(t.expected, SECRET)
    assert spool_segments(srv) == [], "shipped segments are deleted"
    assert "cannot ship" not in srv.log()
    # The node's progress after a clean stop: everything, for good.
    rows = ch_query("SELECT argMax(shipped_through, updated) FROM %s.%s_nodes" % (db, TABLE))
    assert int(rows) == 2**63 - 1


def test_batch_from_clickhouse_counts_exactly(tmp_path, tree):
    """Dates served by nodes whose clock is set back: `pixflare aggregate`
    groups them in ClickHouse into exactly the independent count, with the
    meta rows and drift of the embedded engine's batch."""
    db = pftest.new_ch_database()
    st = Store(tmp_path, tree, ch_env_fast(db, secret=False))
    d1, d2 = day(-3), day(-2)
    st.traffic(d1, n=300, realtime=False)
    st.traffic(d2, n=300, realtime=True)
    p = st.cli("aggregate", "--from", d1, "--to", d2, check=0)
    out = dict(parse_line(line) for line in lines(p))
    assert st.tables([d1, d2]) == st.want([d1, d2])
    requests1 = sum(1 for e in st.expected[d1] if e[3] in (200, 206, 304))
    assert out[d1]["events"] == 300 and out[d1]["drift"] == -requests1  # batch only
    assert out[d2]["events"] == 300 and out[d2]["drift"] == 0  # realtime agreed
    meta = st.meta()
    assert meta["last_aggregation_date"] == d2
    assert int(meta["last_aggregation_drift"]) == 0
    # events --date reads ClickHouse: the same responses.
    evs = [json.loads(x) for x in st.cli("events", "--date", d1, check=0).stdout.splitlines()]
    assert event_keys(evs) == expected_event_keys(st.expected[d1], st.secret)


@pytest.mark.sqlite_only
def test_clickhouse_down_mid_traffic(tmp_path, tree):
    """ClickHouse stopped while the CDN serves: every response still
    succeeds, the events wait in the spool, the log says so once and once
    when ClickHouse is back, and then ClickHouse holds each event once."""
    with ClickHouse(tmp_path / "ch") as ch:
        db = ch.new_database()
        mport = free_port()
        srv = Server(tmp_path / "data", ch_env_fast(db, ch.url, {
            "PIXFLARE_METRICS_LISTEN": "127.0.0.1:%d" % mport}))
        ids = import_tree(srv, tree)
        srv.start()
        t = Traffic(srv, ids, seed=21)
        t.run(300, 4)
        wait_for(lambda: counts(db, ch.url)[0] == 300, what="the first 300 events")
        m = metrics(mport)
        assert m["pixflare_ship_events_total"] == 300 and m["pixflare_ship_down"] == 0
        ch.stop()
        more(t, 300, 4)  # every response arrives
        time.sleep(1.5)  # several tries meet the outage
        assert len(spool_segments(srv)) > 0
        # The outage, as an operator's alert sees it.
        m = metrics(mport)
        assert m["pixflare_ship_down"] == 1 and m["pixflare_ship_errors_total"] >= 1, m
        assert m["pixflare_ship_pending_bytes"] > 0
        assert m["pixflare_ship_events_total"] == 300
        assert m["pixflare_events_appended_total"] == 600
        ch.start()
        wait_for(lambda: counts(db, ch.url)[0] >= 600, what="the spool shipped")
        wait_for(lambda: metrics(mport)["pixflare_ship_down"] == 0, what="ship_down back to 0")
        more(t, 100, 2)
        wait_for(lambda: counts(db, ch.url)[0] >= 700, what="new events")
        assert srv.stop() == 0
        assert counts(db, ch.url) == (700, 700)
        log = srv.log()
        assert log.count("cannot ship events") == 1, log
        assert log.count("is reachable again") == 1, log


@pytest.mark.sqlite_only
def test_answer_lost_after_insert_is_not_sent_twice(tmp_path, tree):
    """ClickHouse inserts a batch but its answer never arrives (the client
    times out): the retry asks ClickHouse first, finds the batch, and does
    not send it again."""
    db = pftest.new_ch_database()
    port = int(pftest.CH_URL.rstrip("/").rsplit(":", 1)[1])
    with FaultProxy(port, mode="blackhole_response") as proxy:
        srv = Server(tmp_path / "data",
                     ch_env_fast(db, proxy.url, {"ANALYTICS_ENGINE_TIMEOUT_MS": "1000"}))
        ids = import_tree(srv, tree)
        proxy.mode = "pass"  # the start-up checks
        srv.start()
        proxy.mode = "blackhole_response"
        t = Traffic(srv, ids, seed=31)
        t.run(200, 4)
        # The first batch goes in, its answer is lost: the shipper times
        # out, and its checks (through the same fault) too, so it sends
        # nothing more until the fault ends.
        wait_for(lambda: counts(db)[0] > 0, what="a batch inserted behind the proxy")
        time.sleep(2.5)
        landed = counts(db)[0]
        assert proxy.count("blackhole_response") >= 1 and "Timeout" in srv.log()
        proxy.mode = "pass"
        more(t, 50, 2)
        wait_for(lambda: counts(db)[0] >= 250, what="the events after the fault")
        assert srv.stop() == 0
        evs, _ = events(srv, today(), check=0)
    assert 0 < landed <= 200
    assert counts(db) == (250, 250)
    assert event_keys(evs) == expected_event_keys(t.expected, SECRET)


@pytest.mark.sqlite_only
@pytest.mark.parametrize("fault", ["blackhole_response", "hang", "refuse"])
def test_kill9_during_an_insert(tmp_path, tree, fault):
    """The node killed -9 while an insert is in flight (inserted but not
    acknowledged; never arrived; refused at connect), started again: every
    event in ClickHouse once."""
    db = pftest.new_ch_database()
    port = int(pftest.CH_URL.rstrip("/").rsplit(":", 1)[1])
    with FaultProxy(port) as proxy:
        env = ch_env_fast(db, proxy.url, {"ANALYTICS_ENGINE_TIMEOUT_MS": "20000"})
        srv = Server(tmp_path / "data", env)
        ids = import_tree(srv, tree)
        srv.start()
        t = Traffic(srv, ids, seed=41)
        t.run(100, 2)
        wait_for(lambda: counts(db)[0] >= 100, what="the first events")
        proxy.mode = fault
        more(t, 150, 3)
        if fault == "blackhole_response":
            wait_for(lambda: counts(db)[0] > 100, what="an insert behind the proxy")
        else:
            time.sleep(1.0)
            assert counts(db)[0] == 100
        assert proxy.count(fault) >= 1
        srv.kill()
        proxy.mode = "pass"
        srv.start()
        more(t, 50, 2)
        wait_for(lambda: counts(db)[0] >= 300, what="the spool shipped after the restart")
        assert srv.stop() == 0
    assert counts(db) == (300, 300)


@pytest.mark.sqlite_only
def test_refused_batch_is_logged_once_and_kept(tmp_path, tree):
    """ClickHouse answers an error (the table is gone): the log says so once,
    with ClickHouse's message, and the batch goes once the table is back."""
    db = pftest.new_ch_database()
    srv = Server(tmp_path / "data", ch_env_fast(db))
    ids = import_tree(srv, tree)
    srv.start()
    t = Traffic(srv, ids, seed=51)
    t.run(50, 2)
    wait_for(lambda: counts(db)[0] >= 50, what="the first events")
    ch_query("RENAME TABLE %s.%s TO %s.away" % (db, TABLE, db))
    more(t, 80, 2)
    wait_for(lambda: "was refused" in srv.log(), what="the refusal in the log")
    time.sleep(1.0)  # more tries
    ch_query("RENAME TABLE %s.away TO %s.%s" % (db, db, TABLE))
    wait_for(lambda: counts(db)[0] >= 130, what="the kept batch")
    assert srv.stop() == 0
    assert counts(db) == (130, 130)
    log = srv.log()
    assert log.count("was refused") == 1, log
    assert "doesn't exist" in log or "Code: 60" in log, log


@pytest.mark.sqlite_only
def test_startup_errors_say_which(tmp_path):
    db = pftest.new_ch_database()
    data = tmp_path / "data"

    def serve(env):
        srv = Server(data, env)
        p = subprocess.run([pftest.BIN, "serve"], env=pftest.clean_env(
            dict(srv.env, PIXFLARE_DATA_DIR=str(data), PIXFLARE_LISTEN="127.0.0.1:0")),
            capture_output=True, text=True, timeout=60)
        return p

    free = pftest.free_port()
    p = serve(ch_env(db, "http://127.0.0.1:%d/" % free))
    assert p.returncode == 2 and "ClickHouse is unreachable" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    env = ch_env(db)
    env["ANALYTICS_ENGINE_PASSWORD"] = "not-the-password"
    p = serve(env)
    assert p.returncode == 2 and "refused the credentials" in p.stderr, p.stderr
    assert "not-the-password" not in p.stderr
    # Credentials in the URL are never shown either.
    env = ch_env(db, pftest.CH_URL.replace("http://", "http://pixflare:url-secret-x@"))
    env.pop("ANALYTICS_ENGINE_USER")
    env.pop("ANALYTICS_ENGINE_PASSWORD")
    p = serve(dict(env, ANALYTICS_ENGINE_URL=env["ANALYTICS_ENGINE_URL"].replace(
        "url-secret-x", "wrong-url-secret")))
    assert p.returncode == 2 and "wrong-url-secret" not in p.stderr, p.stderr
    ch_query("CREATE TABLE %s.%s (timestamp DateTime, owner String) ENGINE = Memory"
             % (db, TABLE))
    p = serve(ch_env(db))
    assert p.returncode == 2 and "wrong columns" in p.stderr, p.stderr
    assert "'timestamp' is DateTime, expected UInt64" in p.stderr, p.stderr
    # The commands that read the engine say the same.
    p = Server(data, ch_env(db)).cli("events", check=2)
    assert "wrong columns" in p.stderr


@pytest.mark.sqlite_only
def test_retention_drops_whole_partitions(tmp_path, tree):
    db = pftest.new_ch_database()
    st = Store(tmp_path, tree, ch_env_fast(db, secret=False))
    old, recent = day(-6), day(-1)
    st.traffic(old, n=60)
    st.traffic(recent, n=40)

    def days():
        return ch_query("SELECT DISTINCT partition FROM system.parts WHERE active AND "
                        "database = '%s' AND table = '%s' ORDER BY partition" % (db, TABLE)).split()

    assert len(days()) == 2
    st.cli("cleanup", extra={"ANALYTICS_RETENTION_DAYS": "3"}, check=0)
    assert len(days()) == 1
    assert counts(db) == (40, 40)
    assert st.cli("events", "--date", old, check=0).stdout == ""


@pytest.mark.sqlite_only
def test_batch_waits_for_a_node_whose_events_are_still_in_its_spool(tmp_path, tree):
    """A node served a date while ClickHouse was unreachable and died: its
    events are in its spool only. The batch refuses the date (naming the
    node) rather than replace the realtime counts with fewer; once the node
    is back and has shipped, the batch counts exactly."""
    db = pftest.new_ch_database()
    port = int(pftest.CH_URL.rstrip("/").rsplit(":", 1)[1])
    with FaultProxy(port) as proxy:
        st = Store(tmp_path, tree, ch_env_fast(db, proxy.url, secret=False))
        d = day(-1)
        srv = st.server(d + " 12:00:00", {"ANALYTICS_BATCH_ENABLED": "false"}).start()
        proxy.mode = "refuse"
        t = Traffic(srv, st.ids, seed=61)
        t.run(200, 4)
        st.expected[d].extend(t.expected)
        time.sleep(1.0)  # the realtime counts reach the database
        srv.kill()
        proxy.mode = "pass"
        p = st.cli("aggregate", "--date", d, check=1)
        assert "have not shipped all their events of %s" % d in p.stderr, p.stderr
        assert st.tables([d]) == st.want([d])  # realtime's rows, untouched
        srv = Server(st.dir, st.env).start()  # today: ships yesterday's spool
        wait_for(lambda: counts(db)[0] >= 200, what="the spool shipped")
        assert srv.stop() == 0
        p = st.cli("aggregate", "--date", d, check=0)
    assert parse_line(lines(p)[0])[1]["drift"] == 0
    assert st.tables([d]) == st.want([d])


@pytest.mark.pg_only
def test_three_nodes_one_clickhouse_count_exactly(tmp_path, tree):
    """Three nodes, one PostgreSQL, one ClickHouse (the test's own), one
    storage directory, their clocks set to yesterday noon; random traffic
    over the nodes; ClickHouse stopped for seconds and started again; one
    node killed -9 and restarted. Then ClickHouse holds one event per
    response, every node's API answers the independent count, and `pixflare
    aggregate` writes daily rows equal to it."""
    d = day(-1)
    with ClickHouse(tmp_path / "ch") as ch:
        db = ch.new_database()
        url = pftest.new_pg_database()
        storage = tmp_path / "shared-images"
        env = ch_env_fast(db, ch.url, {"PIXFLARE_DATABASE": url,
                                       "PIXFLARE_STORAGE_DIR": str(storage),
                                       "ANALYTICS_BATCH_ENABLED": "false"})
        nodes = [Server(tmp_path / name, dict(env, **faked(d + " 12:00:00")))
                 for name in ("a", "b", "c")]
        ids = import_tree(Server(tmp_path / "a", env), tree)
        for n in nodes:
            n.start()
        traffic = [Traffic(n, ids, seed=70 + i) for i, n in enumerate(nodes)]
        stop = threading.Event()
        errors = []

        def drive(i):
            rng = random.Random(100 + i)
            try:
                while not stop.is_set():
                    traffic[i].send(traffic[i].plan(rng.randint(5, 30)))
            except Exception as e:  # noqa: BLE001 (checked below)
                errors.append((i, e))

        # Phase 0: all up. Phase 1: ClickHouse down. Phase 2: ClickHouse
        # back, node c killed -9 mid-traffic and restarted.
        for phase in range(3):
            if phase == 1:
                ch.stop()
            if phase == 2:
                ch.start()
            workers = [threading.Thread(target=drive, args=(i,)) for i in range(3)]
            for w in workers:
                w.start()
            if phase == 2:
                time.sleep(1.0)
                nodes[2].kill()  # its driver's connection breaks
            time.sleep(2.0)
            stop.set()
            for w in workers:
                w.join()
            stop.clear()
            if phase == 2:
                errors = [(i, e) for i, e in errors if i != 2]
                nodes[2].start()
                traffic[2].send(traffic[2].plan(100))
            assert not errors, errors
        # Every response received is in t.expected; kill -9 may also cut a
        # response off after its event was made (it was sent, not
        # received): such an event is in ClickHouse too. Nothing else.
        expected = [e for t in traffic for e in t.expected]
        total = len(expected)
        wait_for(lambda: counts(db, ch.url)[0] >= total, timeout=60, what="every event shipped")
        for n in nodes:
            assert n.stop() == 0  # clean stops: each node says it shipped all
        rows, uniq = counts(db, ch.url)
        assert rows == uniq, "an event twice"
        assert total <= rows <= total + 16, (total, rows)
        reader = Server(tmp_path / "b", env)
        evs = [json.loads(x) for x in reader.cli("events", "--date", d, check=0).stdout.splitlines()]
        want_keys = expected_event_keys(expected, SECRET)
        missing = want_keys - event_keys(evs)
        extra = event_keys(evs) - want_keys
        assert not missing, missing
        assert sum(extra.values()) == rows - total
        # The batch from ClickHouse writes the independent count (realtime
        # lost the killed node's unflushed counts: the drift says how many).
        p = reader.cli("aggregate", "--date", d, check=0)
        out = parse_line(lines(p)[0])[1]
        assert out["events"] == rows, p.stdout
        daily, _, _ = expected_tables(expected, SECRET, d)
        got = tables(reader)[0]
        served = {k: v for k, v in got.items() if k[1] == d}
        want_requests = sum(r for r, _ in daily.values()) + sum(
            k for key, k in extra.items() if key[3] in (200, 206, 304))
        assert sum(r for r, _ in served.values()) == want_requests
        if not extra:
            assert served == daily
        # Every node's API answers it.
        alice = owner_hash(SECRET, "alice")
        want_alice = sum(r for k, (r, _) in served.items() if k[0] == alice)
        assert want_alice > 0
        key = reader.cli("keys", "create", "--owner", "alice", check=0).stdout.strip()
        for n in nodes:
            n.env.update(faked(d + " 18:00:00"))
            n.start()
            status, _, body = n.request("GET", "/v1/analytics/overview?days=1",
                                        {"Authorization": "Bearer " + key})
            assert status == 200, body
            assert json.loads(body)["totals"]["requests"] == want_alice, n.data_dir
            assert n.stop() == 0
