"""The dashboard (/dashboard) end to end in a real browser: a real server with
known CDN traffic, read keys made with `pixflare keys`, and
tests/dashboard/e2e.mjs driving Debian's Chromium through playwright-core
(every check is listed at the top of that script). Run once per viewport
width; screenshots and the downloaded CSV go to
build/test-artifacts/dashboard/<width>/ (or
$PIXFLARE_TEST_ARTIFACTS/<width>/).

Needs `sh scripts/deps.sh test` (chromium, node, tests/dashboard's npm
packages): without them this test fails rather than skips, so that CI can
never pass without running it."""
import datetime
import json
import os
import shutil
import subprocess
import time

import pytest

from pftest import Server, import_tree, make_png

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
E2E = os.path.join(ROOT, "tests", "dashboard", "e2e.mjs")
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
