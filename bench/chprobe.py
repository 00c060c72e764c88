#!/usr/bin/env python3
"""bench/chprobe.py - ClickHouse-side measurements for bench/clickhouse.sh.

Talks to ClickHouse's HTTP interface (one keep-alive connection per
thread, the `default` user) and to pixflare over HTTP. Standard library
only. Times are wall-clock (time.time()), the clock pixflare stamps its
events with; everything runs on the one machine.

  chprobe.py wait-count --ch URL --table DB.T --until N --t0 MS
             [--interval MS] [--timeout S] [--series FILE]
      Polls SELECT count() FROM DB.T every --interval ms (default 100)
      until it reaches N. Prints one line of key=value pairs (times in ms
      after --t0, an epoch time in ms given by the caller, e.g. just
      before it started the server): first_ms (first non-zero count),
      done_ms, count, polls. --series: "ms count" per poll.

  chprobe.py probe --ch URL --table DB.T --url PIXFLARE_URL
             --image-id ID --seconds S [--rate R] [--poll-ms MS]
             [--settle-ms MS] [--out FILE] [--series FILE]
             [-- LOAD COMMAND ...]
      The delay from a response to its event being queryable in
      ClickHouse. Runs LOAD COMMAND (wrk), if given, for its whole run, and
      meanwhile, from 1 s after it starts until S seconds have passed, sends
      R probes a second (default 10; start times jittered within each
      1/R slot) to PIXFLARE_URL, an image of its own (ID), each with its
      own country in the CF-IPCountry header ("A0", "A1", ... "ZZ"; never
      XX or T1, which the load's requests carry): a key that names exactly
      one event. t_resp: when the whole response had arrived (status 200
      checked). A poller thread asks ClickHouse every --poll-ms (default
      20) for the probes not yet seen:
          SELECT country, min(timestamp) FROM DB.T
          WHERE image_id = 'ID' AND country IN (...) GROUP BY country
      (the table's sort key starts (owner, image_id): ClickHouse skips the
      load's rows by the primary index). A probe's event became queryable
      between the start of the last poll that did not see it (or t_resp,
      if later) and the end of the first poll that did; the delay is taken
      at the midpoint, and the interval's width (the resolution) is
      reported. Every second the poller also reads count() (shipped events
      so far). After the load command ends, count() is polled every
      --poll-ms until it has not changed for --settle-ms (default 3000):
      drain_ms is from the load's end to the last change (how far shipping
      was behind when the load stopped).
      Prints key=value lines: probes, seen, p50_ms, p90_ms, p99_ms, max_ms,
      mean_ms, res_ms (mean interval width), polls, poll_ms_mean (the
      queries' own duration), drain_ms, count_end (count() at the load's
      end), count_final, load_start, load_end (epoch ms), and the load's
      shipping rate: ship_rate (count() growth per second between its
      samples 2 s after the load's start and at its end). --out: one line
      per probe "code t_resp_ms event_ts_ms lo_ms hi_ms delay_ms".
      --series: "epoch_ms count" samples.
"""
import argparse
import http.client
import random
import subprocess
import sys
import threading
import time
import urllib.parse


class CH:
    """One keep-alive connection to ClickHouse's HTTP interface."""

    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port or 8123
        self.conn = None

    def query(self, sql):
        for attempt in range(3):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                self.conn.request("POST", "/", body=sql.encode())
                r = self.conn.getresponse()
                body = r.read().decode()
                if r.status != 200:
                    raise RuntimeError("ClickHouse answered %d: %s" % (r.status, body.strip()[:300]))
                return body
            except (http.client.HTTPException, OSError):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                time.sleep(0.05)


def count(ch, table):
    try:
        return int(ch.query("SELECT count() FROM %s" % table).strip())
    except RuntimeError as e:
        if "doesn't exist" in str(e):
            return 0  # not created yet (the server is starting)
        raise


def now_ms():
    return time.time() * 1000.0


def wait_count(a):
    ch = CH(a.ch)
    first = None
    polls = 0
    series = []
    deadline = time.time() + a.timeout
    while True:
        c = count(ch, a.table)
        t = now_ms() - a.t0
        polls += 1
        series.append((t, c))
        if c > 0 and first is None:
            first = t
        if c >= a.until:
            break
        if time.time() > deadline:
            print("chprobe: count() is %d after %d s, expected %d" % (c, a.timeout, a.until), file=sys.stderr)
            sys.exit(1)
        time.sleep(a.interval / 1000.0)
    if a.series:
        with open(a.series, "w") as f:
            for t, c in series:
                f.write("%.0f %d\n" % (t, c))
    print("first_ms=%.0f done_ms=%.0f count=%d polls=%d" % (first if first is not None else t, t, c, polls))


def codes():
    alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [a + b for a in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" for b in alnum if a + b not in ("XX", "T1")]


def pct(v, p):
    if not v:
        return 0.0
    v = sorted(v)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def probe(a, load):
    u = urllib.parse.urlsplit(a.url)
    n = int(a.rate * a.seconds)
    allc = codes()
    if n > len(allc):
        sys.exit("chprobe: at most %d probes per table (--rate x --seconds)" % len(allc))
    lock = threading.Lock()
    sent = {}  # code -> t_resp (ms)
    lo = {}  # code -> latest start of a poll that did not see it
    seen = {}  # code -> (hi, event ts)
    stop = threading.Event()
    series = []
    polls = [0, 0.0]  # count, summed duration (ms)
    errors = []

    def poller():
        ch = CH(a.ch)
        next_count = 0.0
        while not stop.is_set():
            t = now_ms()
            if t >= next_count:
                series.append((t, count(ch, a.table)))
                next_count = t + 1000
            with lock:
                pending = [c for c in sent if c not in seen]
            if pending:
                q = ("SELECT country, min(timestamp) FROM %s WHERE image_id = '%s' AND country IN (%s) "
                     "GROUP BY country FORMAT TabSeparated" % (a.table, a.image_id, ",".join("'%s'" % c for c in pending)))
                t0 = now_ms()
                try:
                    ans = ch.query(q)
                except Exception as e:  # noqa: BLE001 - reported, the run goes on
                    errors.append(str(e))
                    time.sleep(0.1)
                    continue
                t1 = now_ms()
                polls[0] += 1
                polls[1] += t1 - t0
                got = {}
                for line in ans.splitlines():
                    c, ts = line.split("\t")
                    got[c] = int(ts)
                with lock:
                    for c in pending:
                        if c in got:
                            seen[c] = (t1, got[c])
                        else:
                            lo[c] = max(lo.get(c, 0.0), t0)
            time.sleep(a.poll_ms / 1000.0)

    pt = threading.Thread(target=poller, daemon=True)
    pt.start()
    proc = None
    load_start = now_ms()
    if load:
        proc = subprocess.Popen(load, stdout=open(a.load_out, "w") if a.load_out else subprocess.DEVNULL)
        time.sleep(1.0)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    slot = 1.0 / a.rate
    base = time.time()
    for i in range(n):
        when = base + i * slot + random.uniform(0, slot * 0.8)
        d = when - time.time()
        if d > 0:
            time.sleep(d)
        code = allc[i]
        conn.request("GET", u.path, headers={"CF-IPCountry": code})
        r = conn.getresponse()
        r.read()
        t = now_ms()
        if r.status != 200:
            sys.exit("chprobe: probe %s answered %d" % (code, r.status))
        with lock:
            sent[code] = t
    conn.close()
    if proc is not None:
        rc = proc.wait()
        if rc != 0:
            sys.exit("chprobe: the load command exited with %d" % rc)
    load_end = now_ms()
    # Every probe seen, then count() until it settles.
    deadline = time.time() + 60
    while time.time() < deadline:
        with lock:
            if len(seen) == len(sent):
                break
        time.sleep(0.05)
    stop.set()
    pt.join()
    ch = CH(a.ch)
    count_end = None
    for t, c in series:
        if t <= load_end:
            count_end = c
    last, last_change = count(ch, a.table), now_ms()
    while now_ms() - last_change < a.settle_ms:
        time.sleep(a.poll_ms / 1000.0)
        c = count(ch, a.table)
        if c != last:
            last, last_change = c, now_ms()
    drain = max(0.0, last_change - load_end)
    # the shipping rate under load, from the per-second samples
    s = [(t, c) for t, c in series if load_start + 2000 <= t <= load_end]
    rate = (s[-1][1] - s[0][1]) / ((s[-1][0] - s[0][0]) / 1000.0) if len(s) >= 2 and s[-1][0] > s[0][0] else 0.0
    delays, widths = [], []
    rows = []
    for c in allc[:n]:
        if c not in seen:
            continue
        hi, ts = seen[c]
        l = max(lo.get(c, 0.0), sent[c])
        d = (l + hi) / 2 - sent[c]
        delays.append(d)
        widths.append(hi - l)
        rows.append("%s %.1f %d %.1f %.1f %.1f" % (c, sent[c], ts, l, hi, d))
    if a.out:
        with open(a.out, "w") as f:
            f.write("\n".join(rows) + "\n")
    if a.series:
        with open(a.series, "w") as f:
            for t, c in series:
                f.write("%.0f %d\n" % (t, c))
    print("probes=%d seen=%d p50_ms=%.0f p90_ms=%.0f p99_ms=%.0f max_ms=%.0f mean_ms=%.0f res_ms=%.1f "
          "polls=%d poll_ms_mean=%.2f drain_ms=%.0f count_end=%d count_final=%d load_start=%.0f load_end=%.0f "
          "ship_rate=%.0f poll_errors=%d" % (
              len(sent), len(seen), pct(delays, 50), pct(delays, 90), pct(delays, 99), max(delays or [0]),
              sum(delays) / len(delays) if delays else 0, sum(widths) / len(widths) if widths else 0,
              polls[0], polls[1] / polls[0] if polls[0] else 0, drain, count_end or 0, last,
              load_start, load_end, rate, len(errors)))
    if errors:
        print("chprobe: %d poll(s) failed, first: %s" % (len(errors), errors[0]), file=sys.stderr)


def main():
    argv = sys.argv[1:]
    load = []
    if "--" in argv:
        i = argv.index("--")
        argv, load = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("wait-count")
    w.add_argument("--ch", required=True)
    w.add_argument("--table", required=True)
    w.add_argument("--until", type=int, required=True)
    w.add_argument("--t0", type=float, required=True)
    w.add_argument("--interval", type=float, default=100)
    w.add_argument("--timeout", type=float, default=600)
    w.add_argument("--series")
    pr = sub.add_parser("probe")
    pr.add_argument("--ch", required=True)
    pr.add_argument("--table", required=True)
    pr.add_argument("--url", required=True)
    pr.add_argument("--image-id", required=True)
    pr.add_argument("--seconds", type=float, required=True)
    pr.add_argument("--rate", type=float, default=10)
    pr.add_argument("--poll-ms", type=float, default=20)
    pr.add_argument("--settle-ms", type=float, default=3000)
    pr.add_argument("--out")
    pr.add_argument("--series")
    pr.add_argument("--load-out", help="the load command's stdout")
    a = p.parse_args(argv)
    if a.cmd == "wait-count":
        wait_count(a)
    else:
        probe(a, load)


if __name__ == "__main__":
    main()
