"""Batch aggregation, retention and the scheduler: traffic is made on past
dates by real servers whose clock is set back with libfaketime (Debian's
faketime package), then `pixflare aggregate` / `pixflare cleanup` and the
scheduler inside `pixflare serve` are checked against counts this test
computes from the responses it received."""
import collections
import datetime
import fcntl
import os
import pty
import re
import shutil
import signal
import sqlite3  # test_a_locked_database_fails_cleanly's lock only
import subprocess
import threading
import time

import pytest

from pftest import BIN, Server, clean_env, database_url, sanitizer_clean, sql, sql_exec
from test_analytics import Traffic, expected_tables, import_tree, secret_of

FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
DATASET = "pixflare_cdn_metrics"

assert os.path.exists(FAKETIME_LIB), "libfaketime missing: make deps (apt-get install faketime)"


def day(offset):
    """The UTC date `offset` days from today, as YYYY-MM-DD."""
    d = datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=offset)
    return d.isoformat()


def shift(date, days):
    return (datetime.date.fromisoformat(date) + datetime.timedelta(days=days)).isoformat()


def faked(when, extra=None):
    """Environment for a pixflare whose clocks start at `when` (UTC) and run
    on. (The monotonic clock is shifted too: with it left real, libfaketime's
    pthread_cond_timedwait() mistimes waits on it.) Under ASan: its runtime
    must not insist on coming first in the library list, and its allocator
    must not read the clock (it would call libfaketime before that is set
    up, which allocates: a deadlock)."""
    asan = os.environ.get("ASAN_OPTIONS", "")
    env = {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME": "@" + when, "TZ": "UTC",
           "ASAN_OPTIONS": (asan + ":" if asan else "")
           + "verify_asan_link_order=0:allocator_release_to_os_interval_ms=-1"}
    env.update(extra or {})
    return env


class Store:
    """One data directory shared by the servers and commands of a test."""

    def __init__(self, tmp_path, tree, env=None):
        self.dir = tmp_path / "data"
        self.env = dict(env or {})
        self.database = database_url(self.dir)  # the backend's, for self.dir
        self.first = Server(self.dir, self.env)
        self.ids = import_tree(self.first, tree)
        self.secret = secret_of(self.first)
        self.expected = collections.defaultdict(list)  # date -> responses
        self.seed = 0

    def server(self, when, extra=None):
        env = dict(self.env)
        env.update(faked(when, extra))
        return Server(self.dir, env)

    def traffic(self, date, n=300, realtime=True, extra=None):
        """Serve n mixed requests at noon of `date`, then stop."""
        env = {"ANALYTICS_BATCH_ENABLED": "false",
               "ANALYTICS_REALTIME_ENABLED": "true" if realtime else "false"}
        env.update(extra or {})
        srv = self.server(date + " 12:00:00", env).start()
        try:
            self.seed += 1
            t = Traffic(srv, self.ids, seed=1000 + self.seed)
            t.run(n, workers=4)
            self.expected[date].extend(t.expected)
        finally:
            assert srv.stop() == 0
        return srv

    def cli(self, *args, when=None, extra=None, check=None):
        env = clean_env({"PIXFLARE_DATA_DIR": str(self.dir)})
        env.update(self.env)
        if when is not None:
            env.update(faked(when))
        env.update(extra or {})
        p = subprocess.run([BIN] + list(args), env=env, capture_output=True, text=True,
                           timeout=120)
        sanitizer_clean(p.stderr)
        if check is not None:
            assert p.returncode == check, (args, p.returncode, p.stdout, p.stderr)
        return p

    def want(self, dates):
        """analytics_daily, analytics_monthly, analytics_status_daily as the
        responses of `dates` make them."""
        daily, monthly, status = {}, collections.Counter(), {}
        monthly_bytes = collections.Counter()
        for d in dates:
            dd, mm, ss = expected_tables(self.expected[d], self.secret, d)
            daily.update(dd)
            status.update(ss)
            for k, (r, b) in mm.items():
                monthly[k] += r
                monthly_bytes[k] += b
        return daily, {k: (monthly[k], monthly_bytes[k]) for k in monthly}, status

    def query(self, query, *args):
        """Rows of a query on the store's database (pftest.sql)."""
        return sql(self.database, query, args)

    def execute(self, query, *args):
        """A statement on the store's database, committed (pftest.sql_exec)."""
        return sql_exec(self.database, query, args)

    def tables(self, dates=None):
        where = ""
        if dates is not None:
            where = " WHERE date IN (%s)" % ",".join("'%s'" % d for d in dates)
        daily = {tuple(r[:5]): (r[5], r[6]) for r in self.query(
            "SELECT owner, date, image_id, variant, country, requests, bandwidth_bytes "
            "FROM analytics_daily" + where)}
        monthly = {tuple(r[:2]): (r[2], r[3]) for r in self.query(
            "SELECT owner, year_month, requests, bandwidth_bytes FROM analytics_monthly")}
        status = {tuple(r[:3]): r[3] for r in self.query(
            "SELECT owner, date, status, requests FROM analytics_status_daily" + where)}
        return daily, monthly, status

    def meta(self):
        return {k: v for k, v, _ in self.query("SELECT key, value, updated_at FROM analytics_meta")}

    def batch_days(self):
        return {r[0]: r[1:] for r in self.query(
            "SELECT date, events, daily_rows, status_rows, drift FROM analytics_batch_days")}

    def day_dir(self, date):
        return self.dir / "events" / DATASET / date

    def dump(self):
        """Every analytics row, for before/after comparisons."""
        out = {}
        for t in ("analytics_daily", "analytics_status_daily", "analytics_monthly",
                  "analytics_owner_daily"):
            out[t] = sorted(self.query("SELECT * FROM " + t))
        return out


def lines(p):
    return [line for line in p.stdout.splitlines() if line]


def parse_line(line):
    date, *pairs = line.split()
    return date, {k: int(v) for k, v in (p.split("=") for p in pairs)}


def wait_for(fn, timeout=30, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


@pytest.fixture
def tree(images):
    return images[0]


def month_edge_dates():
    """Three dates across a month boundary, all within the last 35 days."""
    first = datetime.datetime.now(datetime.timezone.utc).date().replace(day=1)
    base = (first - datetime.timedelta(days=1)).replace(day=1)  # first of last month
    return [shift(base.isoformat(), -2), shift(base.isoformat(), -1), base.isoformat()]


def test_batch_only_fills_the_tables_exactly(tmp_path, tree):
    st = Store(tmp_path, tree)
    dates = month_edge_dates()
    for d in dates:
        st.traffic(d, realtime=False)
    assert st.tables() == ({}, {}, {})  # batch-only: nothing until aggregation

    p = st.cli("aggregate", "--from", dates[0], "--to", dates[-1], check=0)
    out = dict(parse_line(line) for line in lines(p))
    assert sorted(out) == dates
    want = st.want(dates)
    assert st.tables() == want
    for d in dates:
        n = len(st.expected[d])
        daily_requests = sum(1 for e in st.expected[d] if e[3] in (200, 206, 304))
        assert out[d]["events"] == n
        assert out[d]["requests"] == daily_requests
        assert out[d]["drift"] == -daily_requests  # realtime had counted nothing
        assert st.batch_days()[d] == (n, out[d]["daily_rows"], out[d]["status_rows"],
                                      -daily_requests)
    meta = st.meta()
    assert meta["last_aggregation_date"] == dates[-1]
    assert int(meta["last_aggregation_rows"]) == (out[dates[-1]]["daily_rows"]
                                                  + out[dates[-1]]["status_rows"])
    assert int(meta["last_aggregation_drift"]) == out[dates[-1]]["drift"]
    # Plain progress lines on stderr when it is not a terminal.
    assert "pixflare aggregate: 3/3 %s" % dates[-1] in p.stderr
    # Monthly rows span both months and equal the sums of their days.
    assert {k[1] for k in want[1]} == {dates[0][:7], dates[-1][:7]}

    # Idempotent: a second run changes no row, and finds no drift.
    before = st.dump()
    p = st.cli("aggregate", "--from", dates[0], "--to", dates[-1], check=0)
    assert all(parse_line(line)[1]["drift"] == 0 for line in lines(p))
    assert st.dump() == before
    # Re-running an older date does not move last_aggregation_date back.
    st.cli("aggregate", "--date", dates[0], check=0)
    assert st.meta()["last_aggregation_date"] == dates[-1]


def test_realtime_and_batch_agree_and_never_double_count(tmp_path, tree):
    st = Store(tmp_path, tree)
    dates = [day(-3), day(-2)]
    for d in dates:
        st.traffic(d, realtime=True)
    want = st.want(dates)
    assert st.tables() == want  # realtime alone
    realtime = st.dump()
    p = st.cli("aggregate", "--from", dates[0], "--to", dates[1], check=0)
    assert [parse_line(line)[1]["drift"] for line in lines(p)] == [0, 0]
    assert st.tables() == want  # batch over realtime: the same, not twice
    assert st.dump() == realtime

    # Batch-only on a copy of the same events gives the same tables.
    st2 = Store(tmp_path / "other", tree)
    st2.dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(st.dir / "events"), str(st2.dir)], check=True)
    subprocess.run(["cp", str(st.dir / "secret"), str(st2.dir / "secret")], check=True)
    st2.cli("aggregate", "--from", dates[0], "--to", dates[1], check=0)
    assert st2.dump()["analytics_daily"] == realtime["analytics_daily"]
    assert st2.dump()["analytics_status_daily"] == realtime["analytics_status_daily"]
    assert st2.dump()["analytics_monthly"] == realtime["analytics_monthly"]


def test_counts_pending_when_the_batch_runs_are_not_added_again(tmp_path, tree):
    """A server still holds realtime counts for a date (a long flush interval)
    when the batch aggregates that date: on its final flush they are left
    out, because the batch counted their events."""
    st = Store(tmp_path, tree)
    date = day(-2)
    srv = st.server(date + " 12:00:00", {"ANALYTICS_BATCH_ENABLED": "false",
                                         "ANALYTICS_REALTIME_FLUSH_MS": "3600000"}).start()
    try:
        t = Traffic(srv, st.ids, seed=7)
        t.run(400, workers=4)
        st.expected[date].extend(t.expected)
        assert st.tables()[2] == {}  # nothing flushed yet
        st.cli("aggregate", "--date", date, check=0)  # the real clock: the date is over
        assert st.tables() == st.want([date])
    finally:
        assert srv.stop() == 0
    assert st.tables() == st.want([date])
    assert "400 requests arrived for dates the batch had already aggregated" in srv.log()


def test_drift_is_recorded_and_lost_rows_restored(tmp_path, tree):
    st = Store(tmp_path, tree)
    date = day(-2)
    st.traffic(date, n=400, realtime=True)
    want = st.want([date])
    # Lose some realtime rows (and their day totals, as a failed flush would).
    lost = st.query("SELECT owner, image_id, variant, country, requests FROM analytics_daily "
                    "WHERE date = ? ORDER BY requests DESC LIMIT 3", date)
    for owner, image_id, variant, country, _ in lost:
        st.execute("DELETE FROM analytics_daily WHERE owner = ? AND date = ? AND image_id = ? "
                   "AND variant = ? AND country = ?", owner, date, image_id, variant, country)
    st.execute("DELETE FROM analytics_status_daily WHERE date = ? AND status = 404", date)
    missing = sum(r[4] for r in lost)
    assert missing > 0
    p = st.cli("aggregate", "--date", date, check=0)
    assert parse_line(lines(p)[0])[1]["drift"] == -missing
    assert st.meta()["last_aggregation_drift"] == str(-missing)
    assert st.batch_days()[date][3] == -missing
    assert st.tables() == want


def test_catch_up_after_a_week_of_downtime(tmp_path, tree):
    st = Store(tmp_path, tree)
    dates = [day(-12 + i) for i in range(8)]  # W0 .. W7
    for d in dates:
        st.traffic(d, n=120, realtime=False)
    st.cli("aggregate", "--date", dates[0], check=0)
    assert st.meta()["last_aggregation_date"] == dates[0]
    # Down a week: the server comes back the day after W7, past 2 AM.
    srv = st.server(shift(dates[-1], 1) + " 03:00:00").start()
    try:
        wait_for(lambda: len(st.batch_days()) == 8, what="the catch-up")
        assert "catching up 7 dates (%s .. %s)" % (dates[1], dates[-1]) in srv.log()
    finally:
        assert srv.stop() == 0
    assert st.tables() == st.want(dates)
    assert st.meta()["last_aggregation_date"] == dates[-1]
    assert srv.log().count("pixflare: batch: aggregated ") == 7


def test_the_scheduler_fires_at_the_cron_time(tmp_path, tree):
    st = Store(tmp_path, tree)
    date = day(-3)
    st.traffic(date, n=200, realtime=False)
    # Start at 01:59:57 the next day: the date's slot (02:00) has not come,
    # so the start-up catch-up leaves it; the 02:00 run aggregates it.
    srv = st.server(shift(date, 1) + " 01:59:57").start()
    try:
        assert date not in st.batch_days()
        wait_for(lambda: date in st.batch_days(), timeout=20, what="the 02:00 run")
        assert re.search(r"aggregation next at %sT02:00:00Z" % shift(date, 1), srv.log())
    finally:
        assert srv.stop() == 0
    assert st.tables() == st.want([date])


def test_sigterm_during_a_catch_up_leaves_every_date_whole(tmp_path, tree):
    st = Store(tmp_path, tree)
    dates = [day(-10 + i) for i in range(6)]
    for d in dates:
        st.traffic(d, n=150, realtime=False)
    # A job waiting for the batch lock (held here, as by a running
    # `pixflare aggregate`) gives up at once on SIGTERM.
    lock = open(st.dir / ".batch.lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    srv = st.server(day(-3) + " 12:00:00").start()
    time.sleep(0.5)
    t0 = time.time()
    assert srv.stop() == 0
    assert time.time() - t0 < 5
    assert st.batch_days() == {}
    fcntl.flock(lock, fcntl.LOCK_UN)
    lock.close()
    # Stopped at once, in the middle of the catch-up or not: every date is
    # either exactly its events or untouched.
    srv = st.server(day(-3) + " 12:00:00").start()
    assert srv.stop() == 0
    done = st.batch_days()
    daily, _, status = st.tables()
    for d in dates:
        want = st.want([d]) if d in done else ({}, {}, {})
        assert {k: v for k, v in daily.items() if k[1] == d} == want[0]
        assert {k: v for k, v in status.items() if k[1] == d} == want[2]
    # The next start finishes the job.
    srv = st.server(day(-3) + " 12:00:00").start()
    try:
        wait_for(lambda: set(dates) <= set(st.batch_days()), what="the catch-up")
    finally:
        assert srv.stop() == 0
    assert st.tables() == st.want(dates)


def test_retention_deletes_exactly_what_is_older(tmp_path, tree):
    st = Store(tmp_path, tree)
    keep3 = {"ANALYTICS_RETENTION_DAYS": "3"}
    dates = [day(-10 + i) for i in range(5)]  # R1 .. R5
    for d in dates:
        st.traffic(d, n=100, realtime=True)
    monthly_before = st.tables()[1]
    owner_days_before = st.dump()["analytics_owner_daily"]
    assert all(st.day_dir(d).is_dir() for d in dates)
    p = st.cli("cleanup", when=dates[-1] + " 12:00:00", extra=keep3, check=0)
    # Kept: the last 3 dates, R3 .. R5 (today, R5, included).
    assert "kept dates from %s" % dates[2] in p.stdout
    assert st.tables(dates) == (st.want(dates[2:])[0], monthly_before, st.want(dates[2:])[2])
    assert {r[0] for r in st.query("SELECT DISTINCT date FROM analytics_daily")} == set(dates[2:])
    assert {r[0] for r in st.query("SELECT DISTINCT date FROM analytics_status_daily")} \
        == set(dates[2:])
    assert [st.day_dir(d).exists() for d in dates] == [False, False, True, True, True]
    assert st.dump()["analytics_owner_daily"] == owner_days_before  # kept, as monthly
    assert st.meta()["last_cleanup_at"] == dates[-1] + "T12:00:00Z"
    # Re-aggregating a kept date keeps the months whole, purged days included.
    st.cli("aggregate", "--date", dates[2], check=0)
    assert st.tables()[1] == monthly_before
    # A purged date is refused even once the retention is raised again (it
    # would drop out of its month's totals).
    p = st.cli("aggregate", "--date", dates[0], check=2)
    assert "was purged by the retention" in p.stderr
    assert st.tables()[1] == monthly_before
    assert st.dump()["analytics_owner_daily"] == owner_days_before
    # A second cleanup finds nothing more.
    p = st.cli("cleanup", when=dates[-1] + " 13:00:00", extra=keep3, check=0)
    assert "removed 0 analytics_daily rows and 0 analytics_status_daily rows of 0 dates, " \
           "and 0 event files" in p.stdout
    # Raw events of yesterday stay even with a retention of one day: they
    # are the batch's input.
    p = st.cli("cleanup", when=dates[-1] + " 14:00:00",
               extra={"ANALYTICS_RETENTION_DAYS": "1"}, check=0)
    assert [st.day_dir(d).exists() for d in dates] == [False, False, False, True, True]
    assert {r[0] for r in st.query("SELECT DISTINCT date FROM analytics_daily")} == {dates[-1]}


def test_retention_removes_rows_and_files_it_never_tracked(tmp_path, tree):
    """Retention is complete: rows of analytics_daily and
    analytics_status_daily older than the retention, and every raw event
    directory, are removed whatever wrote them (a restored backup, a `db
    copy`, a hand-written row), not only the dates the server tracked in
    analytics_owner_daily from the last cleanup's cutoff on."""
    st = Store(tmp_path, tree)
    keep3 = {"ANALYTICS_RETENTION_DAYS": "3"}
    dates = [day(-6), day(-5), day(-1)]
    for d in dates:
        st.traffic(d, n=60, realtime=True)
    st.cli("cleanup", when=day(-1) + " 12:00:00", extra=keep3, check=0)  # cutoff day(-3)
    assert st.meta()["cleanup_before"] == day(-3)
    kept = st.tables([day(-1)])
    # Written behind the server's back: a date long before the last cutoff,
    # one after it but older than the next cutoff, for an owner the server
    # never counted, and for an owner it counted, on a date it did not.
    old, mid = day(-40), day(-2)
    real_owner = next(iter(kept[0]))[0]
    for owner, d in (("ghost", old), ("ghost", mid), (real_owner, old), (real_owner, mid),
                     ("zz-last", old)):
        st.execute("INSERT INTO analytics_daily (owner, date, image_id, variant, country, "
                   "requests, bandwidth_bytes) VALUES (?, ?, 'abcdefg', 'original', 'XX', 5, 50)",
                   owner, d)
    st.execute("INSERT INTO analytics_status_daily (owner, date, status, requests) "
               "VALUES ('ghost', ?, 404, 3)", old)
    # A raw event directory a restore brought back, long before the cutoff.
    src = next(p for p in st.day_dir(day(-1)).iterdir() if p.is_file())
    st.day_dir(old).mkdir(parents=True)
    shutil.copy(src, st.day_dir(old) / src.name)
    # The next day's cleanup (cutoff day(-1)): everything before it goes,
    # the day kept stays as it was.
    p = st.cli("cleanup", when=day(0) + " 12:00:00", extra={"ANALYTICS_RETENTION_DAYS": "2"},
               check=0)
    assert {r[0] for r in st.query("SELECT DISTINCT date FROM analytics_daily")} == {day(-1)}
    assert {r[0] for r in st.query("SELECT DISTINCT date FROM analytics_status_daily")} \
        == {day(-1)}
    assert st.tables([day(-1)]) == kept
    assert not st.day_dir(old).exists()
    assert "removed" in p.stdout
    # The versions of the dates whose rows went were raised (the API's
    # cached answers for them are dropped).
    versions = {r[0] for r in st.query("SELECT date FROM analytics_day_versions")}
    assert {old, mid} <= versions
    # Nothing left for a second run.
    p = st.cli("cleanup", when=day(0) + " 13:00:00", extra={"ANALYTICS_RETENTION_DAYS": "2"},
               check=0)
    assert "removed 0 analytics_daily rows and 0 analytics_status_daily rows of 0 dates, " \
           "and 0 event files" in p.stdout


def test_scheduled_cleanup(tmp_path, tree):
    st = Store(tmp_path, tree)
    keep2 = {"ANALYTICS_RETENTION_DAYS": "2"}
    dates = [day(-8 + i) for i in range(4)]
    for d in dates:
        st.traffic(d, n=60, realtime=True)
    # The last cleanup ran after the day before's 01:00 slot: the start-up
    # owes none.
    st.cli("cleanup", when=dates[-1] + " 01:30:00", extra=keep2, check=0)
    assert {r[0] for r in st.query("SELECT DISTINCT date FROM analytics_daily")} == \
        set(dates[-2:])
    env = dict(keep2, ANALYTICS_BATCH_ENABLED="false")
    srv = st.server(shift(dates[-1], 1) + " 00:59:57", env).start()
    try:
        assert "pixflare: cleanup:" not in srv.log()
        # 3 s of the faked clock, but a loaded machine (ASan, 2 cores) can
        # take much longer to get there: generous.
        wait_for(lambda: "pixflare: cleanup: kept dates from %s" % dates[-1] in srv.log(),
                 timeout=60, what="the 01:00 cleanup")
    finally:
        assert srv.stop() == 0
    assert {r[0] for r in st.query("SELECT DISTINCT date FROM analytics_daily")} == {dates[-1]}
    assert st.meta()["last_cleanup_at"].startswith(shift(dates[-1], 1) + "T01:00:0")


def test_failures_leave_the_date_as_it_was(tmp_path, tree):
    st = Store(tmp_path, tree)
    bad, good = day(-3), day(-2)
    for d in (bad, good):
        st.traffic(d, n=200, realtime=True)
    before = st.dump()
    # Lose some realtime rows of `bad`, then damage one of its event files:
    # the aggregation of `bad` must not replace its rows with a short count.
    st.execute("DELETE FROM analytics_daily WHERE date = ? AND image_id = ?",
               bad, st.expected[bad][0][1] or "none")
    st.execute("DELETE FROM analytics_status_daily WHERE date = ? AND status = 200", bad)
    damaged = st.dump()
    seg = sorted(st.day_dir(bad).glob("*.pfe"), key=lambda f: -f.stat().st_size)[0]
    data = bytearray(seg.read_bytes())
    data[16 + 72 * 2 + 20] ^= 0xFF  # one record's payload: its checksum fails
    seg.write_bytes(bytes(data))
    p = st.cli("aggregate", "--from", bad, "--to", good, check=1)
    assert "%s: the event store is damaged" % bad in p.stderr
    assert "--force" in p.stderr
    assert [parse_line(line)[0] for line in lines(p)] == [good]  # the good date is done
    after = st.dump()
    assert [r for r in after["analytics_daily"] if r[1] == bad] == \
           [r for r in damaged["analytics_daily"] if r[1] == bad]
    assert bad not in st.batch_days()
    # --force aggregates the readable events: one event fewer.
    p = st.cli("aggregate", "--date", bad, "--force", check=0)
    assert parse_line(lines(p)[0])[1]["events"] == len(st.expected[bad]) - 1

    # An unreadable file (here a directory where a segment should be).
    (st.day_dir(good) / "23-0000000000000000-000-000001.pfe").mkdir()
    p = st.cli("aggregate", "--date", good, check=1)
    assert "could not be read" in p.stderr
    assert [r for r in st.dump()["analytics_daily"] if r[1] == good] == \
           [r for r in before["analytics_daily"] if r[1] == good]
    (st.day_dir(good) / "23-0000000000000000-000-000001.pfe").rmdir()

    # No events at all for a date the tables count: left alone.
    other = day(-5)
    st.execute("INSERT INTO analytics_status_daily (owner, date, status, requests) "
               "VALUES ('', ?, 200, 5)", other)
    p = st.cli("aggregate", "--date", other, check=1)
    assert "no events for %s" % other in p.stderr
    assert st.query("SELECT requests FROM analytics_status_daily WHERE date = ?", other) == [(5,)]


@pytest.mark.sqlite_only  # SQLite's file lock (BEGIN EXCLUSIVE)
def test_a_locked_database_fails_cleanly(tmp_path, tree):
    st = Store(tmp_path, tree)
    date = day(-2)
    st.traffic(date, n=100, realtime=False)
    db = sqlite3.connect(str(st.dir / "pixflare.db"))
    db.execute("BEGIN EXCLUSIVE")
    try:
        p = st.cli("aggregate", "--date", date, check=1)
    finally:
        db.rollback()
        db.close()
    assert "database" in p.stderr and "left as they were" in p.stderr
    assert st.tables() == ({}, {}, {})
    st.cli("aggregate", "--date", date, check=0)
    assert st.tables() == st.want([date])


def test_one_job_at_a_time(tmp_path, tree):
    st = Store(tmp_path, tree)
    date = day(-2)
    st.traffic(date, n=100, realtime=False)
    lock = open(st.dir / ".batch.lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    env = clean_env({"PIXFLARE_DATA_DIR": str(st.dir)})
    proc = subprocess.Popen([BIN, "aggregate", "--date", date], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.5)
    assert proc.poll() is None  # waiting for the lock
    assert st.tables() == ({}, {}, {})
    fcntl.flock(lock, fcntl.LOCK_UN)
    lock.close()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "another aggregation or cleanup is running" in err
    assert st.tables() == st.want([date])


def test_progress_bar_on_a_terminal(tmp_path, tree):
    st = Store(tmp_path, tree)
    dates = [day(-4), day(-3), day(-2)]
    for d in dates:
        st.traffic(d, n=50, realtime=False)
    master, slave = pty.openpty()
    env = clean_env({"PIXFLARE_DATA_DIR": str(st.dir)})
    proc = subprocess.Popen([BIN, "aggregate", "--from", dates[0], "--to", dates[-1]],
                            env=env, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    chunks = []

    def reader():
        while True:
            try:
                b = os.read(master, 4096)
            except OSError:
                break
            if not b:
                break
            chunks.append(b)
    t = threading.Thread(target=reader)
    t.start()
    out, _ = proc.communicate(timeout=60)
    t.join(timeout=10)
    os.close(master)
    tty = b"".join(chunks).decode()
    assert proc.returncode == 0
    assert "\r" in tty and "[" + "#" * 30 + "] 3/3" in tty
    assert len(out.decode().splitlines()) == 3  # the results stay on stdout


def test_aggregate_usage_errors(tmp_path):
    (tmp_path / "d").mkdir()  # aggregate refuses a data directory that does not exist
    env = clean_env({"PIXFLARE_DATA_DIR": str(tmp_path / "d")})

    def run(*args, extra=None):
        e = dict(env)
        e.update(extra or {})
        p = subprocess.run([BIN] + list(args), env=e, capture_output=True, text=True,
                           timeout=60)
        sanitizer_clean(p.stderr)
        return p

    cases = [
        (["aggregate", "--date", day(0)], "has not ended yet"),
        (["aggregate", "--date", day(3)], "has not ended yet"),
        (["aggregate", "--date", "2026-02-30"], "is not a date"),
        (["aggregate", "--date"], "--date needs a value"),
        (["aggregate", "--from", day(-2), "--to", day(-4)], "is after --to"),
        (["aggregate", "--date", day(-2), "--from", day(-3)], "cannot be combined"),
        (["aggregate", "--to", day(-2)], "--to needs --from"),
        (["aggregate", "--threads", "0"], "must be 1-64"),
        (["aggregate", "--date", day(-90)], "older than the retention"),
        (["aggregate", "--from", day(-100), "--to", day(-2)], "older than the retention"),
        (["aggregate", "--bogus"], "unknown argument"),
        (["cleanup", "extra"], "unexpected argument"),
    ]
    for args, msg in cases:
        p = run(*args)
        assert p.returncode == 2, (args, p.stderr)
        assert msg in p.stderr, (args, p.stderr)
    p = run("aggregate", "--date", day(-2), extra={"ANALYTICS_ENGINE": "none"})
    assert p.returncode == 2 and "no event store" in p.stderr
    p = run("aggregate", extra={"ANALYTICS_AGGREGATION_CRON": "0 2 * *"})
    assert p.returncode == 2 and "ANALYTICS_AGGREGATION_CRON" in p.stderr
    # An empty store: nothing recorded, nothing counted; zero rows, exit 0.
    p = run("aggregate", "--date", day(-2))
    assert p.returncode == 0, p.stderr
    assert parse_line(p.stdout.strip())[1]["events"] == 0


def test_serve_rejects_a_bad_cron_at_start(tmp_path):
    srv = Server(tmp_path / "data", {"ANALYTICS_CLEANUP_CRON": "0 1 * * * *"})
    p = subprocess.run([BIN, "serve"], env=srv.env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 2
    assert "ANALYTICS_CLEANUP_CRON" in p.stderr and "column" in p.stderr


def test_demo_days_are_caught_up_by_a_real_server(tmp_path):
    srv = Server(tmp_path / "data")
    srv.cli("demo", check=0)
    before = sorted(srv.sql("SELECT * FROM analytics_daily"))
    srv.start()
    try:
        # 30 days of demo traffic up to today: the past ones whose 02:00
        # slot has passed (28 or 29, by the time of day) are owed.
        m = wait_for(lambda: re.search(r"catching up (\d+) dates", srv.log()),
                     what="the catch-up to start")
        n = int(m.group(1))
        assert n in (28, 29), n
        wait_for(lambda: srv.sql("SELECT COUNT(*) FROM analytics_batch_days")[0][0] == n,
                 what="the demo catch-up")
        drifts = srv.sql("SELECT DISTINCT drift FROM analytics_batch_days")
    finally:
        assert srv.stop() == 0
    assert drifts == [(0,)]  # the demo's realtime rows equal its events
    after = sorted(srv.sql("SELECT * FROM analytics_daily"))
    assert after == before


def test_serve_warns_when_the_cron_outruns_the_retention(tmp_path):
    srv = Server(tmp_path / "data", {"ANALYTICS_AGGREGATION_CRON": "0 2 1 * *",
                                     "ANALYTICS_RETENTION_DAYS": "20"}).start()
    assert srv.stop() == 0
    assert "warning: ANALYTICS_AGGREGATION_CRON '0 2 1 * *' can leave 31 days between runs" \
        in srv.log()
    srv = Server(tmp_path / "data2").start()
    assert srv.stop() == 0
    assert "warning" not in srv.log()
