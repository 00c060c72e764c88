"""The ClickHouse harness itself (pftest.py, scripts/ch.sh): the shared
server PIXFLARE_TEST_CH_URL names, a database per test, a server of the
test's own that stops, crashes and pauses, and the fault proxy's modes, with
urllib against a real ClickHouse (no pixflare). Skipped without
PIXFLARE_TEST_CH_URL (the shared server's tests) or without clickhouse-server
(a server's own)."""
import http.client
import os
import time
import urllib.error
import urllib.parse

import pytest

import pftest
from pftest import CH_PASSWORD, CH_USER, ClickHouse, ClickHouseError, FaultProxy, ch_env, ch_query

pytestmark = pytest.mark.no_db

needs_shared = pytest.mark.skipif(not pftest.CH_URL, reason="PIXFLARE_TEST_CH_URL is not set "
                                  "(scripts/test.sh starts a ClickHouse with scripts/ch.sh)")

TIMEOUTS = (TimeoutError, urllib.error.URLError)  # a read's, a connect's (wrapped)


def shared_port():
    return urllib.parse.urlsplit(pftest.CH_URL).port


def make_table(db, url=None):
    ch_query("CREATE TABLE %s.t (n UInt64) ENGINE = MergeTree ORDER BY n" % db, url=url)


def count(db, url=None):
    return int(ch_query("SELECT count() FROM %s.t" % db, url=url))


@needs_shared
def test_shared_server_answers_as_both_users():
    version = ch_query("SELECT version()").strip()
    assert int(version.split(".")[0]) >= 18, version
    assert ch_query("SELECT 1", user=CH_USER, password=CH_PASSWORD) == "1\n"
    with pytest.raises(ClickHouseError) as e:
        ch_query("SELECT 1", user=CH_USER, password="wrong")
    # 193 WRONG_PASSWORD (18.16), 516 AUTHENTICATION_FAILED (current releases)
    assert e.value.code in (193, 516) and e.value.status == 401, e.value
    with pytest.raises(ClickHouseError) as e:
        ch_query("SELECT nosuchcolumn FROM system.one")
    assert e.value.code == 47 and "nosuchcolumn" in e.value.message, e.value


@needs_shared
def test_new_ch_database_is_fresh_and_dropped_after_the_test():
    db = pftest.new_ch_database()
    other = pftest.new_ch_database()
    assert db != other
    assert ch_query("SELECT count() FROM system.tables WHERE database = '%s'" % db) == "0\n"
    make_table(db)
    ch_query("INSERT INTO t FORMAT TabSeparated", database=db, data=b"1\n2\n3\n")
    env = ch_env(db)
    assert env == {"ANALYTICS_ENGINE": "clickhouse",
                   "ANALYTICS_ENGINE_URL": pftest.CH_URL + "?database=" + db,
                   "ANALYTICS_ENGINE_USER": "pixflare",
                   "ANALYTICS_ENGINE_PASSWORD": "pixflare-test-secret"}
    # The URL pixflare gets names the database: no prefix needed.
    assert ch_query("SELECT count() FROM t", url=env["ANALYTICS_ENGINE_URL"],
                    user=env["ANALYTICS_ENGINE_USER"],
                    password=env["ANALYTICS_ENGINE_PASSWORD"]) == "3\n"
    pftest.end_clickhouse()  # what the end of the test does
    names = ch_query("SELECT name FROM system.databases").split()
    assert db not in names and other not in names


def test_own_clickhouse_stops_crashes_pauses_and_keeps_its_data(tmp_path):
    d = tmp_path / "ch"
    started = time.monotonic()
    with ClickHouse(d) as ch:
        took = time.monotonic() - started
        assert took < 15, took
        assert int(ch.query("SELECT version()").split(".")[0]) >= 18
        url, port = ch.url, ch.port
        assert url == "http://127.0.0.1:%d/" % port
        db = ch.new_database()
        make_table(db, url)
        ch.query("INSERT INTO %s.t VALUES (1), (2)" % db, user=CH_USER, password=CH_PASSWORD)
        assert ch.env(db)["ANALYTICS_ENGINE_URL"] == url + "?database=" + db

        ch.stop()
        with pytest.raises(TIMEOUTS + (ConnectionError,)):
            ch.query("SELECT 1", timeout=5)
        ch.start()
        assert ch.port == port
        assert count(db, url) == 2

        ch.query("INSERT INTO %s.t VALUES (3)" % db)
        ch.crash()
        with pytest.raises(TIMEOUTS + (ConnectionError,)):
            ch.query("SELECT 1", timeout=5)
        ch.start()
        assert ch.port == port
        assert count(db, url) == 3

        ch.pause()
        # Stopped (state T) before asking: the signal is asynchronous.
        with open(os.path.join(ch.dir, "pid")) as f:
            pid = f.read().strip()
        deadline = time.time() + 10
        while time.time() < deadline:
            with open("/proc/%s/stat" % pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "T":
                    break
            time.sleep(0.05)
        with pytest.raises(TIMEOUTS):
            ch.query("SELECT 1", timeout=1)
        ch.resume()
        assert ch.query("SELECT 1") == "1\n"
        assert "Ready for connections" in ch.log()
    assert not d.exists()


def test_own_clickhouse_is_closed_after_the_test_if_left_running(tmp_path):
    ch = ClickHouse(tmp_path / "ch").start()
    ch.pause()  # even paused
    pftest.end_clickhouse()  # what the end of the test does
    assert not os.path.exists(ch.dir)
    with pytest.raises(TIMEOUTS + (ConnectionError,)):
        ch_query("SELECT 1", url=ch.url, timeout=5)


@needs_shared
def test_fault_proxy_modes():
    db = pftest.new_ch_database()
    make_table(db)
    with FaultProxy(shared_port()) as proxy:
        assert proxy.url == "http://127.0.0.1:%d/" % proxy.port
        # pass: both ways
        ch_query("INSERT INTO %s.t VALUES (1)" % db, url=proxy.url)
        assert count(db, proxy.url) == 1
        assert proxy.count("pass") == 2

        # blackhole_response: ClickHouse inserts, the answer never comes
        proxy.mode = "blackhole_response"
        started = time.monotonic()
        with pytest.raises(TIMEOUTS):
            ch_query("INSERT INTO %s.t VALUES (2)" % db, url=proxy.url, timeout=1.5)
        assert time.monotonic() - started >= 1.4
        assert proxy.count("blackhole_response") == 1
        assert count(db) == 2  # directly: it landed

        # hang: nothing reaches ClickHouse, nothing comes back
        proxy.set_mode("hang")
        with pytest.raises(TIMEOUTS):
            ch_query("INSERT INTO %s.t VALUES (3)" % db, url=proxy.url, timeout=1)
        assert proxy.count("hang") == 1
        assert count(db) == 2

        # refuse: closed at once
        proxy.mode = "refuse"
        started = time.monotonic()
        with pytest.raises((ConnectionError, urllib.error.URLError, http.client.HTTPException)):
            ch_query("INSERT INTO %s.t VALUES (4)" % db, url=proxy.url, timeout=10)
        assert time.monotonic() - started < 5
        assert proxy.count("refuse") == 1
        assert count(db) == 2

        proxy.mode = "pass"
        assert count(db, proxy.url) == 2
        assert proxy.counts == {"pass": 3, "refuse": 1, "blackhole_response": 1, "hang": 1}
        deadline = time.monotonic() + 5  # the timed-out clients have closed theirs
        while proxy.open_connections() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proxy.open_connections() == 0


@needs_shared
def test_fault_proxy_mode_applies_to_open_connections():
    """A client that keeps its connection alive (libcurl does) meets the
    fault too."""
    db = pftest.new_ch_database()
    make_table(db)
    with FaultProxy(shared_port()) as proxy:
        c = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=1.5)
        try:
            c.request("POST", "/", body=b"INSERT INTO %s.t VALUES (1)" % db.encode())
            r = c.getresponse()
            assert r.status == 200, r.read()
            r.read()
            proxy.mode = "blackhole_response"
            c.request("POST", "/", body=b"INSERT INTO %s.t VALUES (2)" % db.encode())
            with pytest.raises(TimeoutError):
                c.getresponse()
        finally:
            c.close()
        assert proxy.counts["pass"] == 1 and proxy.counts["blackhole_response"] == 1
        assert count(db) == 2
