"""The dashboard (/dashboard) end to end in a real browser: a real server with
known CDN traffic, read keys made with `pixflare keys`, and
tests/dashboard/e2e.mjs driving Debian's Chromium through playwright-core
(every check is listed at the top of that script). Run once per viewport
width; screenshots and the downloaded CSV go to
build/test-artifacts/dashboard/<width>/ (or
$PIXFLARE_TEST_ARTIFACTS/<width>/).

test_dashboard_periods_clients_export: issue 20's parts of the page
(hourly charts up to 7 days, deltas against the previous period, unique
clients, clients by class and "Exclude bots", the export download) against
rows written into the tables, by tests/dashboard/e2e_seeded.mjs.

Needs `sh scripts/deps.sh test` (chromium, node, tests/dashboard's npm
packages): without them this test fails rather than skips, so that CI can
never pass without running it."""
import datetime
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import time

import pytest

from pftest import Server, import_tree, make_png

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
E2E = os.path.join(ROOT, "tests", "dashboard", "e2e.mjs")
SEEDED = os.path.join(ROOT, "tests", "dashboard", "e2e_seeded.mjs")
PLAYWRIGHT = os.path.join(ROOT, "tests", "dashboard", "node_modules", "playwright-core")
CHROMIUM = "/usr/bin/chromium"

# owner/album/file -> (width, height, seed)
TREE = {
    "alice/pics/big.png": (600, 400, 1),
    "alice/pics/wide.png": (320, 200, 2),
    "alice/pics/small.png": (100, 80, 3),  # never requested
    "alice/travel/tall.png": (200, 300, 4),
    "alice/travel/beach.png": (600, 400, 5),
    "carol/misc/only.png": (64, 64, 6),  # carol: no traffic at all
}

# (path, variant, country or None for no header, times). big.png is clearly
# the most requested; DE is the top country, then US; no header counts as XX.
TRAFFIC = [
    ("alice/pics/big.png", "", "DE", 4),
    ("alice/pics/big.png", "w256", "DE", 3),
    ("alice/pics/big.png", "w512", "US", 1),
    ("alice/pics/big.png", "thumb", "JP", 1),
    ("alice/pics/big.png", "og-image", "DE", 1),
    ("alice/pics/big.png", "w256", None, 1),
    ("alice/pics/wide.png", "original", "US", 2),
    ("alice/pics/wide.png", "w128", "DE", 1),
    ("alice/travel/tall.png", "", "JP", 1),
    ("alice/travel/tall.png", "thumb", "US", 1),
    ("alice/travel/beach.png", "w256", None, 1),
]
NOT_FOUND = ["/alice/pics/missing.png", "/alice/pics/missing.png", "/alice/travel/nope.png/w256"]
# What e2e.mjs requests itself for the live-refresh check (with CF-IPCountry: FR).
LIVE = "/alice/pics/wide.png/w256"


def prerequisites():
    missing = []
    if shutil.which("node") is None:
        missing.append("the node command")
    if not os.path.isdir(PLAYWRIGHT):
        missing.append(os.path.relpath(PLAYWRIGHT, ROOT))
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(CHROMIUM)
    if missing:
        pytest.fail("the dashboard test needs %s: run `sh scripts/deps.sh test`"
                    % ", ".join(missing), pytrace=False)


def today():
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


def new_key(srv, owner):
    p = srv.cli("keys", "create", "--owner", owner, check=0)
    return p.stdout.strip()


def overview(srv, key):
    st, _, body = srv.request("GET", "/v1/analytics/overview?days=30",
                              {"Authorization": "Bearer " + key})
    assert st == 200, (st, body)
    return json.loads(body)


@pytest.fixture
def world(tmp_path):
    """A running server with alice's traffic flushed; yields (srv, keys)."""
    prerequisites()
    src = tmp_path / "src"
    for rel, (w, h, seed) in TREE.items():
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(make_png(w, h, seed=seed))
    srv = Server(tmp_path / "data", {"ANALYTICS_REALTIME_FLUSH_MS": "100",
                                     "ANALYTICS_BATCH_ENABLED": "false"})
    ids = import_tree(srv, src)
    assert set(ids) == set(TREE)
    keys = {o: new_key(srv, o) for o in ("alice", "carol")}
    srv.start()
    date = today()
    requests = 0
    for rel, variant, country, times in TRAFFIC:
        headers = {"CF-IPCountry": country} if country else {}
        path = "/" + rel + ("/" + variant if variant else "")
        for _ in range(times):
            st, _, body = srv.request("GET", path, headers)
            assert st == 200, (path, st, body)
            requests += 1
    for path in NOT_FOUND:
        st, _, _ = srv.request("GET", path, {"CF-IPCountry": "DE"})
        assert st == 404, path
    # The realtime flush (every 100 ms) makes them visible to the API.
    deadline = time.time() + 20
    while True:
        ov = overview(srv, keys["alice"])
        statuses = {s["status"]: s["requests"] for s in ov["status_codes"]}
        if ov["totals"]["requests"] == requests and statuses.get(404) == len(NOT_FOUND):
            break
        assert time.time() < deadline, ("the API does not show the traffic sent", requests, ov)
        time.sleep(0.25)
    assert ov["top_images"][0]["image_id"] == ids["alice/pics/big.png"], ov["top_images"]
    assert ov["countries"][0]["country"] == "DE", ov["countries"]
    yield srv, keys
    assert srv.stop() == 0
    if today() != date:
        pytest.skip("the UTC day turned during the test")


@pytest.mark.sqlite_only  # the page is the same on both; the API behind it is tested on both
@pytest.mark.parametrize("width", [1280, 390])
def test_dashboard_in_a_browser(world, width):
    srv, keys = world
    base = (os.environ.get("PIXFLARE_TEST_ARTIFACTS")
            or os.path.join(ROOT, "build", "test-artifacts", "dashboard"))
    artifacts = os.path.join(base, str(width))
    os.makedirs(artifacts, exist_ok=True)
    # The last run's screenshots and CSV, file by file: another run in the
    # same tree may be writing into the directory.
    for name in os.listdir(artifacts):
        if name.endswith((".png", ".csv", ".log")):
            try:
                os.remove(os.path.join(artifacts, name))
            except FileNotFoundError:
                pass
    url = "http://127.0.0.1:%d" % srv.port
    env = dict(os.environ,
               PIXFLARE_URL=url,
               PIXFLARE_KEY=keys["alice"],
               PIXFLARE_EMPTY_KEY=keys["carol"],
               PIXFLARE_TRAFFIC_URL=url + LIVE,
               PIXFLARE_VIEWPORT=str(width),
               PIXFLARE_ARTIFACTS=artifacts,
               PIXFLARE_CHROMIUM=CHROMIUM)
    t0 = time.time()
    try:
        p = subprocess.run(["node", E2E], env=env, cwd=ROOT, capture_output=True, text=True,
                           timeout=240)
    except subprocess.TimeoutExpired as e:
        pytest.fail("e2e.mjs did not finish in 240 s:\n%s\n%s" % (e.stdout, e.stderr),
                    pytrace=False)
    out = "%s%s(%.1f s)\n" % (p.stdout, p.stderr, time.time() - t0)
    with open(os.path.join(artifacts, "e2e.log"), "w") as f:
        f.write(out)
    print(out)
    if p.returncode != 0:
        log = srv.log()
        pytest.fail("tests/dashboard/e2e.mjs exited %d at %d px (artifacts in %s):\n%s%s\n"
                    "--- server log (last 3000 chars):\n%s"
                    % (p.returncode, width, artifacts, p.stdout, p.stderr, log[-3000:]),
                    pytrace=False)


# ---- Issue 20: hourly charts, deltas, uniques, clients, bots, export ----
#
# Past days' traffic cannot be sent, so these rows are written into the
# tables before the server starts (as the batch would have left them), and
# tests/dashboard/e2e_seeded.mjs checks the page against numbers worked out
# here from the rows, not from the API. Days are counted back from today:
# the current 7 days hold days 1 and 3, the previous 7 days days 8 and 10.
# (day back, image, variant, country, requests, bytes, bot requests, bot bytes)
SEED_DAILY = [
    (1, "alice/pics/big.png", "original", "DE", 60, 30000, 10, 2000),
    (1, "alice/pics/wide.png", "w256", "US", 20, 10000, 0, 0),
    (3, "alice/pics/big.png", "thumb", "DE", 40, 20000, 5, 1500),
    (3, "alice/pics/wide.png", "original", "FR", 20, 15000, 5, 1500),
    (8, "alice/pics/big.png", "original", "DE", 50, 60000, 4, 1000),
    (10, "alice/pics/wide.png", "w256", "US", 50, 40000, 6, 1000),
]
# The owner's hours (image_id ''): (day back, hour, requests, bytes, bot requests, bot bytes);
# each day's hours add up to its daily rows.
SEED_HOURS = [
    (1, 9, 50, 25000, 10, 2000),
    (1, 17, 30, 15000, 0, 0),
    (3, 12, 60, 35000, 10, 3000),
    (8, 5, 50, 60000, 4, 1000),
    (10, 20, 50, 40000, 6, 1000),
]
# The owner's clients by day: (day back, client, requests, bytes); bot rows
# equal the daily rows' bot columns.
SEED_CLIENTS = [
    (1, "human", 60, 30000), (1, "preview", 10, 8000), (1, "bot", 10, 2000),
    (3, "human", 40, 25000), (3, "preview", 10, 7000), (3, "bot", 10, 3000),
    (8, "human", 40, 52000), (8, "preview", 6, 7000), (8, "bot", 4, 1000),
    (10, "human", 40, 35000), (10, "preview", 4, 4000), (10, "bot", 6, 1000),
]
# Unique clients (the stored daily estimates): (day back, image or '', uniques).
SEED_UNIQUES = [(1, "", 20), (3, "", 15), (1, "alice/pics/big.png", 12), (1, "alice/pics/wide.png", 9),
                (3, "alice/pics/big.png", 10), (3, "alice/pics/wide.png", 6)]


def day_back(base, n):
    return (base - datetime.timedelta(days=n)).isoformat()


def seed_rows(srv, ids, owner_hex, base):
    """Write the SEED_ rows; return the expectations for e2e_seeded.mjs."""
    by_day = {}
    for back, rel, variant, country, req, nbytes, breq, bbytes in SEED_DAILY:
        srv.sql_exec("INSERT INTO analytics_daily (owner, date, image_id, variant, country, requests, "
                     "bandwidth_bytes, bot_requests, bot_bandwidth_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (owner_hex, day_back(base, back), ids[rel], variant, country, req, nbytes, breq, bbytes))
        t = by_day.setdefault(back, [0, 0, 0, 0])
        for i, v in enumerate((req, nbytes, breq, bbytes)):
            t[i] += v
    for back, (req, nbytes, breq, bbytes) in by_day.items():
        srv.sql_exec("INSERT INTO analytics_owner_daily (owner, date, requests, bandwidth_bytes, "
                     "bot_requests, bot_bandwidth_bytes) VALUES (?, ?, ?, ?, ?, ?)",
                     (owner_hex, day_back(base, back), req, nbytes, breq, bbytes))
        srv.sql_exec("INSERT INTO analytics_status_daily (owner, date, status, requests, bot_requests) "
                     "VALUES (?, ?, 200, ?, ?)", (owner_hex, day_back(base, back), req, breq))
    for back, hour, req, nbytes, breq, bbytes in SEED_HOURS:
        day = datetime.datetime.combine(base - datetime.timedelta(days=back), datetime.time(),
                                        datetime.timezone.utc)
        srv.sql_exec("INSERT INTO analytics_hourly (owner, hour, image_id, requests, bandwidth_bytes, "
                     "bot_requests, bot_bandwidth_bytes) VALUES (?, ?, '', ?, ?, ?, ?)",
                     (owner_hex, int(day.timestamp()) // 3600 + hour, req, nbytes, breq, bbytes))
    for back, client, req, nbytes in SEED_CLIENTS:
        srv.sql_exec("INSERT INTO analytics_clients_daily (owner, date, image_id, client, requests, "
                     "bandwidth_bytes) VALUES (?, ?, '', ?, ?, ?)",
                     (owner_hex, day_back(base, back), client, req, nbytes))
    for back, rel, n in SEED_UNIQUES:
        # The estimate is what the API reads; the registers are only merged
        # into by new traffic of that day (there is none).
        srv.sql_exec("INSERT INTO analytics_uniques_daily (owner, date, image_id, uniques, registers) "
                     "VALUES (?, ?, ?, ?, ?)", (owner_hex, day_back(base, back), ids[rel] if rel else "",
                                                n, b""))

    def within(back, days):
        return back < days

    def totals(days, nobots, lo=0):
        req = sum(t[0] - (t[2] if nobots else 0) for b, t in by_day.items() if lo <= b < lo + days)
        nbytes = sum(t[1] - (t[3] if nobots else 0) for b, t in by_day.items() if lo <= b < lo + days)
        uq = sum(n for b, rel, n in SEED_UNIQUES if rel == "" and lo <= b < lo + days)
        return {"requests": req, "bandwidth_bytes": nbytes, "uniques": uq}

    def hours(nobots):
        out = {}
        for back, hour, req, _, breq, _ in SEED_HOURS:
            if within(back, 7) and req - (breq if nobots else 0):
                out["%sT%02d:00:00Z" % (day_back(base, back), hour)] = req - (breq if nobots else 0)
        return out

    def days30(nobots):
        return {day_back(base, b): t[0] - (t[2] if nobots else 0) for b, t in by_day.items() if b < 30}

    def clients(nobots):
        out = {}
        for back, client, req, _ in SEED_CLIENTS:
            if within(back, 7) and not (nobots and client == "bot"):
                out[client] = out.get(client, 0) + req
        return out

    t7, p7 = totals(7, False), totals(7, False, 7)
    t7n, p7n = totals(7, True), totals(7, True, 7)
    # The seeded numbers make round changes: +40% requests, -25% bandwidth,
    # uniques new (none in the previous 7 days); without bots 120 vs 90
    # (+33%) and 70,000 vs 98,000 bytes (-29%).
    assert (t7["requests"], p7["requests"], t7["bandwidth_bytes"], p7["bandwidth_bytes"]) == \
        (140, 100, 75000, 100000)
    assert (t7n["requests"], p7n["requests"], t7n["bandwidth_bytes"], p7n["bandwidth_bytes"]) == \
        (120, 90, 70000, 98000)
    assert p7["uniques"] == 0 and t7["uniques"] == 35
    rows = [{"date": day_back(base, b), "image_id": ids[rel], "variant": v, "country": c,
             "requests": r, "bandwidth_bytes": nb}
            for b, rel, v, c, r, nb, _, _ in SEED_DAILY if b < 7]
    return {
        "today": base.isoformat(),
        "start7": day_back(base, 6),
        "hours7": hours(False), "hours7_nobots": hours(True),
        "totals7": t7, "totals7_nobots": t7n,
        "totals30": totals(30, False), "totals30_nobots": totals(30, True),
        "days30": days30(False), "days30_nobots": days30(True),
        "uniques7": {day_back(base, b): n for b, rel, n in SEED_UNIQUES if rel == "" and b < 7},
        "clients7": clients(False), "clients7_nobots": clients(True),
        "bot_requests7": t7["requests"] - t7n["requests"],
        "bot_requests30": totals(30, False)["requests"] - totals(30, True)["requests"],
        "deltas7": {"requests": ["up", "+40% vs previous 7 days"],
                    "bandwidth": ["down", "\u221225% vs previous 7 days"],
                    "uniques": ["new", "new"]},
        "deltas7_nobots": {"requests": ["up", "+33% vs previous 7 days"],
                           "bandwidth": ["down", "\u221229% vs previous 7 days"],
                           "uniques": ["new", "new"]},
        "deltas30": {"requests": ["new", "new"], "bandwidth": ["new", "new"], "uniques": ["new", "new"]},
        "export_rows": rows,
    }


@pytest.fixture
def seeded(tmp_path):
    """A server whose tables hold SEED_ rows for alice; yields (srv, key, expect)."""
    prerequisites()
    src = tmp_path / "src"
    for rel in ("alice/pics/big.png", "alice/pics/wide.png"):
        w, h, seed = TREE[rel]
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(make_png(w, h, seed=seed))
    srv = Server(tmp_path / "data", {"ANALYTICS_BATCH_ENABLED": "false"})
    ids = import_tree(srv, src)
    key = new_key(srv, "alice")
    with open(os.path.join(srv.data_dir, "secret")) as f:
        secret = f.read().strip()
    owner_hex = hmac.new(secret.encode(), b"alice", hashlib.sha256).digest()[:16].hex()
    base = datetime.datetime.now(datetime.timezone.utc).date()
    expect = seed_rows(srv, ids, owner_hex, base)
    srv.start()
    yield srv, key, expect
    assert srv.stop() == 0
    if today() != base.isoformat():
        pytest.skip("the UTC day turned during the test")


@pytest.mark.sqlite_only  # the rows are written with SQLite's SQL; the API is tested on both
@pytest.mark.parametrize("width", [1280, 390])
def test_dashboard_periods_clients_export(seeded, width):
    srv, key, expect = seeded
    base = (os.environ.get("PIXFLARE_TEST_ARTIFACTS")
            or os.path.join(ROOT, "build", "test-artifacts", "dashboard"))
    artifacts = os.path.join(base, "seeded-%d" % width)
    os.makedirs(artifacts, exist_ok=True)
    for name in os.listdir(artifacts):
        if name.endswith((".png", ".csv", ".log")):
            try:
                os.remove(os.path.join(artifacts, name))
            except FileNotFoundError:
                pass
    env = dict(os.environ, PIXFLARE_URL="http://127.0.0.1:%d" % srv.port, PIXFLARE_KEY=key,
               PIXFLARE_EXPECT=json.dumps(expect), PIXFLARE_VIEWPORT=str(width),
               PIXFLARE_ARTIFACTS=artifacts, PIXFLARE_CHROMIUM=CHROMIUM)
    try:
        p = subprocess.run(["node", SEEDED], env=env, cwd=ROOT, capture_output=True, text=True,
                           timeout=240)
    except subprocess.TimeoutExpired as e:
        pytest.fail("e2e_seeded.mjs did not finish in 240 s:\n%s\n%s" % (e.stdout, e.stderr),
                    pytrace=False)
    print(p.stdout, p.stderr)
    if p.returncode != 0:
        pytest.fail("tests/dashboard/e2e_seeded.mjs exited %d at %d px (artifacts in %s):\n%s%s\n"
                    "--- server log (last 3000 chars):\n%s"
                    % (p.returncode, width, artifacts, p.stdout, p.stderr, srv.log()[-3000:]),
                    pytrace=False)
