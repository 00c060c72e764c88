"""`pixflare doctor`: one line per check (OK / WARN / FAIL / SKIP, the check's
name, what it found and the fix), a summary line, exit 0 when nothing
fails, 1 otherwise, 2 for a missing data directory. Each condition the
doctor looks for is made here for real: a demo data directory, settings,
file modes, a closed port, an empty ClickHouse database, an older schema,
clocks set by libfaketime. And the doctor changes nothing: no data
directory, database, schema, node id or ClickHouse table appears."""
import datetime
import os
import re
import shutil
import sqlite3

import pytest

from pftest import (CH_URL, Server, ch_env, ch_query, clean_env, database_url, new_ch_database,
                    run, sql)

FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
LINE = re.compile(r"(OK|WARN|FAIL|SKIP) +(\S+) +(.*)")


def day(offset):
    d = datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=offset)
    return d.isoformat()


def faked(spec):
    """Environment for a pixflare whose clock libfaketime sets: "@YYYY-MM-DD
    HH:MM:SS" (starts there) or "+N"/"-N" (seconds off). See test_batch.py
    for the ASan options."""
    asan = os.environ.get("ASAN_OPTIONS", "")
    return {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME": spec, "TZ": "UTC",
            "ASAN_OPTIONS": (asan + ":" if asan else "")
            + "verify_asan_link_order=0:allocator_release_to_os_interval_ms=-1"}


def doctor(data_dir, extra=None, check=None):
    """Run `pixflare doctor`: (exit code, {check: (level, text)}, stdout)."""
    env = clean_env({"PIXFLARE_DATA_DIR": str(data_dir)})
    env.update(extra or {})
    p = run(["doctor"], env)
    if check is not None:
        assert p.returncode == check, (p.returncode, p.stdout, p.stderr)
    lines = p.stdout.splitlines()
    assert lines and lines[-1].startswith("doctor: "), p.stdout
    found = {}
    for line in lines[:-1]:
        m = LINE.fullmatch(line)
        assert m, line  # no colour: stdout is not a terminal
        found.setdefault(m.group(2), (m.group(1), m.group(3)))
    counts = re.match(r"doctor: (\d+) OK, (\d+) WARN, (\d+) FAIL, (\d+) SKIP", lines[-1])
    assert counts, lines[-1]
    assert int(counts.group(3)) == sum(1 for lv, _ in found.values() if lv == "FAIL")
    return p.returncode, found, p.stdout


def snapshot(root):
    """Every file under root with its size and mtime (SQLite's -wal/-shm,
    there only while a connection is open, left out)."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            if name.endswith(("-wal", "-shm")):
                continue
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            out[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return out


def demo(tmp_path, aggregate=True):
    """A data directory filled by `pixflare demo` (30 days of traffic up to
    now) and, as a healthy installation has it, aggregated up to yesterday."""
    data = tmp_path / "data"
    env = clean_env({"PIXFLARE_DATA_DIR": str(data)})
    run(["demo"], env, check=0)
    if aggregate:
        run(["aggregate", "--from", day(-29)], env, check=0)
    return data


def assert_only(found, failing):
    """Every check OK (or SKIP) except those of `failing`: {check: level}."""
    for name, (level, text) in found.items():
        want = failing.get(name)
        assert level == (want or "OK"), (name, level, text)


def test_healthy_demo(tmp_path):
    data = demo(tmp_path)
    before = snapshot(data)
    rc, found, out = doctor(data, check=0)
    assert_only(found, {})
    for name in ("data-dir", "analytics", "secret", "disk", "database", "engine", "traffic",
                 "aggregation", "retention", "clock"):
        assert name in found, out
    assert "reachable (schema " in found["database"][1]
    assert "password" not in out and "@" not in found["database"][1]
    assert re.search(r"\d+ requests counted today and yesterday", found["traffic"][1])
    assert "last aggregated date %s" % day(-1) in found["aggregation"][1]
    assert out.splitlines()[-1].endswith("nothing fails")
    assert snapshot(data) == before


@pytest.mark.sqlite_only
def test_engine_none(tmp_path):
    data = demo(tmp_path)
    rc, found, _ = doctor(data, {"ANALYTICS_ENGINE": "none"}, check=0)
    assert found["analytics"][0] == "WARN" and "ANALYTICS_ENGINE=none" in found["analytics"][1]
    assert "fix: ANALYTICS_ENGINE=embedded" in found["analytics"][1]
    rc, found, _ = doctor(data, {"ANALYTICS_ENGINE": "none",
                                 "ANALYTICS_REALTIME_ENABLED": "false"}, check=1)
    assert found["analytics"][0] == "FAIL" and "nothing is recorded" in found["analytics"][1]
    assert found["traffic"][0] == "SKIP"


@pytest.mark.sqlite_only
def test_realtime_and_batch_both_off(tmp_path):
    data = demo(tmp_path)
    rc, found, _ = doctor(data, {"ANALYTICS_REALTIME_ENABLED": "false",
                                 "ANALYTICS_BATCH_ENABLED": "no"}, check=1)
    level, text = found["analytics"]
    assert level == "FAIL" and "no stats are collected" in text
    assert "ANALYTICS_REALTIME_ENABLED" in text and "ANALYTICS_BATCH_ENABLED" in text
    assert_only(found, {"analytics": "FAIL", "traffic": "SKIP"})


def test_no_traffic(tmp_path):
    data = tmp_path / "data"
    srv = Server(data).start()  # serves, answers nothing: no CDN request
    srv.stop()
    rc, found, _ = doctor(data, check=0)
    level, text = found["traffic"]
    assert level == "WARN" and "no CDN request recorded today or yesterday" in text
    assert "pixflare serve" in text
    assert_only(found, {"traffic": "WARN"})


def test_aggregation_lagging(tmp_path):
    data = demo(tmp_path, aggregate=False)  # 30 days of events, never aggregated
    rc, found, _ = doctor(data, check=1)
    level, text = found["aggregation"]
    assert level == "FAIL" and "lagging, the oldest %s" % day(-29) in text
    assert "last aggregated date never" in text and "'pixflare aggregate --from %s'" % day(-29) in text
    assert_only(found, {"aggregation": "FAIL"})


@pytest.mark.sqlite_only  # a faked clock against PostgreSQL's real one is clock skew
def test_aggregation_follows_the_cron(tmp_path):
    """Aggregated up to the day before yesterday; yesterday's run is at 02:00
    today (the default cron): not owed at 01:00, maybe running at 02:30,
    lagging at 03:30."""
    data = tmp_path / "data"
    env = clean_env({"PIXFLARE_DATA_DIR": str(data)})
    run(["demo"], env, check=0)
    run(["aggregate", "--from", day(-29), "--to", day(-2)], env, check=0)
    rc, found, _ = doctor(data, faked("@%s 01:00:00" % day(0)), check=0)
    assert found["aggregation"][0] == "OK", found["aggregation"]
    rc, found, _ = doctor(data, faked("@%s 02:30:00" % day(0)), check=0)
    level, text = found["aggregation"]
    assert level == "WARN" and "from %s" % day(-1) in text and "under way" in text
    rc, found, _ = doctor(data, faked("@%s 03:30:00" % day(0)), check=1)
    level, text = found["aggregation"]
    assert level == "FAIL" and "1 date(s) lagging, the oldest %s" % day(-1) in text
    assert "%sT02:00:00Z" % day(0) in text


@pytest.mark.sqlite_only
def test_clickhouse_unreachable(tmp_path):
    data = demo(tmp_path)
    before = snapshot(data)
    extra = {"ANALYTICS_ENGINE": "clickhouse",
             "ANALYTICS_ENGINE_URL": "http://127.0.0.1:1/?database=nowhere"}
    rc, found, _ = doctor(data, extra, check=1)
    level, text = found["engine"]
    assert level == "FAIL" and "unreachable" in text and "ANALYTICS_ENGINE_URL" in text
    assert snapshot(data) == before


@pytest.mark.sqlite_only
def test_clickhouse_dataset_missing_then_present(tmp_path):
    if not CH_URL:
        pytest.skip("PIXFLARE_TEST_CH_URL is not set (scripts/ch.sh starts a ClickHouse)")
    database = new_ch_database()
    data = demo(tmp_path)
    os.unlink(data / "node-id")
    extra = ch_env(database)
    rc, found, _ = doctor(data, extra, check=1)
    level, text = found["engine"]
    assert level == "FAIL" and "has no table %s.pixflare_cdn_metrics" % database in text
    assert "ANALYTICS_DATASET" in text
    # Nothing made: no table, no node id.
    assert ch_query("EXISTS TABLE %s.pixflare_cdn_metrics" % database).strip() == "0"
    assert not (data / "node-id").exists()
    # `pixflare events` opens the engine for real, which makes the tables.
    run(["events", "--date", day(0)], clean_env({"PIXFLARE_DATA_DIR": str(data), **extra}),
        check=0)
    rc, found, _ = doctor(data, extra)
    assert found["engine"] == ("OK", "clickhouse: reachable, table pixflare_cdn_metrics present")


@pytest.mark.sqlite_only
def test_retention_shorter_than_the_aggregation_interval(tmp_path):
    data = demo(tmp_path)
    rc, found, _ = doctor(data, {"ANALYTICS_RETENTION_DAYS": "1",
                                 "ANALYTICS_AGGREGATION_CRON": "0 2 * * 1"}, check=1)
    level, text = found["retention"]
    assert level == "FAIL" and "7 days between runs" in text
    assert "ANALYTICS_RETENTION_DAYS=1" in text and "never aggregated" in text


def test_secret_file_mode(tmp_path):
    data = demo(tmp_path)
    os.chmod(data / "secret", 0o644)
    rc, found, _ = doctor(data, check=1)
    level, text = found["secret"]
    assert level == "FAIL" and "mode 0644" in text and "chmod 600 %s" % (data / "secret") in text
    assert_only(found, {"secret": "FAIL"})
    # The secret given in the settings: no file to check.
    secret = (data / "secret").read_text().strip()
    rc, found, _ = doctor(data, {"PIXFLARE_SECRET": secret}, check=0)
    assert found["secret"][0] == "OK" and "PIXFLARE_SECRET is set" in found["secret"][1]
    os.chmod(data / "secret", 0o600)
    rc, found, _ = doctor(data, check=0)
    assert found["secret"][0] == "OK" and "mode 0600" in found["secret"][1]


@pytest.mark.sqlite_only
def test_min_free_space(tmp_path):
    data = demo(tmp_path)
    free_mb = shutil.disk_usage(data).free >> 20
    if free_mb + 100 > 1048576:
        pytest.skip("more than 1 TiB free: PIXFLARE_MIN_FREE_MB cannot exceed it")
    rc, found, _ = doctor(data, {"PIXFLARE_MIN_FREE_MB": str(free_mb + 100)}, check=1)
    level, text = found["disk"]
    assert level == "FAIL" and "less than PIXFLARE_MIN_FREE_MB=%d" % (free_mb + 100) in text
    assert str(data) in text


def test_missing_data_dir_creates_nothing(tmp_path):
    data = tmp_path / "data"
    rc, found, out = doctor(data, check=2)
    assert found["data-dir"][0] == "FAIL" and "PIXFLARE_DATA_DIR=%s" % data in out
    assert "pixflare serve" in found["data-dir"][1]
    assert list(tmp_path.iterdir()) == []


def test_missing_database_creates_nothing(tmp_path):
    """An empty data directory: the database is a FAIL with its fix, not a new
    empty database (nor schema, secret or node id)."""
    data = tmp_path / "data"
    data.mkdir()
    url = database_url(data)
    rc, found, _ = doctor(data, check=1)
    level, text = found["database"]
    assert level == "FAIL" and "'pixflare serve'" in text
    assert found["secret"][0] == "FAIL" and found["traffic"][0] == "SKIP"
    assert list(data.iterdir()) == []
    if url.startswith("postgres"):
        assert "no Pixflare schema" in text
        assert sql(url, "SELECT to_regclass('pixflare_schema') IS NULL") == [(True,)]


@pytest.mark.sqlite_only
def test_older_schema_is_not_migrated(tmp_path):
    data = demo(tmp_path)
    db = sqlite3.connect(data / "pixflare.db")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    db.execute("PRAGMA user_version = %d" % (version - 1))
    db.commit()
    rc, found, _ = doctor(data, check=1)
    level, text = found["database"]
    assert level == "FAIL" and "schema version %d, older" % (version - 1) in text
    assert "migrates it at start" in text
    assert db.execute("PRAGMA user_version").fetchone()[0] == version - 1
    db.close()


@pytest.mark.pg_only
def test_clock_skew_against_postgres(tmp_path):
    data = demo(tmp_path)
    rc, found, _ = doctor(data, check=0)
    assert found["clock"][0] == "OK" and "from the database's" in found["clock"][1]
    rc, found, _ = doctor(data, faked("+10"), check=0)
    level, text = found["clock"]
    assert level == "WARN" and re.search(r"clock is \+(9|10)\.\d s from the database's", text)
    assert "NTP" in text
    rc, found, _ = doctor(data, faked("-120"), check=1)
    level, text = found["clock"]
    assert level == "FAIL" and re.search(r"clock is -1(19|20)\.\d s", text)
