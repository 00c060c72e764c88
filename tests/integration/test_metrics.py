"""Operations: /metrics on PIXFLARE_METRICS_LISTEN (checked by promtool and
scraped by a real Prometheus server), /healthz and /readyz, and `pixflare
health`.

The request counter must equal the requests sent, as Prometheus stores it;
no label or value may carry an owner, image id, key hash or path. /readyz
turns 503 when the data directory's filesystem is full (a real tmpfs
filled to the last byte) and back when room is made."""
import http.client
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import pytest

from pftest import BIN, Server, clean_env, free_port, import_tree, run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def get(port, path, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def scrape(srv):
    status, headers, body = get(srv.metrics_port, "/metrics")
    assert status == 200, body
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    return body.decode()


def samples(text):
    """{'name{labels}': value} of every sample line."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def wait_for(fn, timeout=20, what="condition"):
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.1)


@pytest.fixture
def msrv(tmp_path, images, backend):
    """A server with a metrics listener over the `images` tree."""
    src, files = images
    port = free_port()
    srv = Server(tmp_path / "data", {"PIXFLARE_METRICS_LISTEN": "127.0.0.1:%d" % port,
                                     "PIXFLARE_API_RATE_LIMIT": "3"})
    srv.metrics_port = port
    srv.ids = import_tree(srv, src)
    srv.start()
    yield srv
    assert srv.stop() in (0, None)


def send_traffic(srv):
    """A known mix of CDN requests. Returns {(route, status): count}."""
    sent = {}
    ids = list(srv.ids.values())
    paths = [("/i/%s" % ids[0], 200), ("/i/%s/w128" % ids[1], 200), ("/i/%s/thumb" % ids[2], 200),
             ("/i/zzzzzz", 404), ("/i/%s/w99" % ids[0], 400), ("/alice/pics/wide.png", 200)]
    for i in range(37):
        path, status = paths[i % len(paths)]
        st, _, _ = srv.request("GET", path)
        assert st == status, path
        sent[("cdn", status)] = sent.get(("cdn", status), 0) + 1
    return sent


def test_metrics_are_valid_exposition_and_count_every_request(msrv):
    sent = send_traffic(msrv)
    key = msrv.cli("keys", "create", "--owner", "alice", check=0).stdout.strip()
    for i in range(5):  # 3 allowed, then the rate limit refuses 2
        msrv.request("GET", "/v1/analytics/overview", {"Authorization": "Bearer " + key})
    st, _, _ = msrv.request("GET", "/dashboard/")
    assert st == 200
    text = scrape(msrv)

    # promtool (Debian's prometheus package) accepts the exposition.
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stdout + p.stderr

    s = samples(text)
    for (route, status), n in sent.items():
        assert s['pixflare_http_requests_total{route="%s",status="%d"}' % (route, status)] == n
    assert s['pixflare_http_requests_total{route="api",status="200"}'] == 3
    assert s['pixflare_http_requests_total{route="api",status="429"}'] == 2
    assert s["pixflare_api_rate_limited_total"] == 2
    assert s['pixflare_http_requests_total{route="dashboard",status="200"}'] >= 1
    # the start-up probe of the test harness: /healthz, route "other"
    assert s['pixflare_http_requests_total{route="other",status="200"}'] >= 1
    total_cdn = sum(n for (r, _), n in sent.items() if r == "cdn")
    assert s['pixflare_http_request_duration_seconds_count{route="cdn"}'] == total_cdn
    assert s['pixflare_http_request_duration_seconds_bucket{route="cdn",le="+Inf"}'] == total_cdn
    assert s['pixflare_http_response_bytes_total{route="cdn"}'] > 0
    assert s["pixflare_http_requests_in_flight"] >= 0

    with open(os.path.join(ROOT, "VERSION")) as f:
        version = f.read().strip()
    assert s['pixflare_build_info{version="%s"}' % version] == 1

    # The parts: cache, variants, event log, realtime, jobs.
    assert s["pixflare_variant_generations_total"] >= 2  # w128 and thumb
    assert s["pixflare_variant_failures_total"] == 0
    assert s["pixflare_variant_generation_duration_seconds_count"] >= 2
    assert s["pixflare_cache_hits_total"] + s["pixflare_cache_misses_total"] >= 25
    assert s["pixflare_cache_objects"] >= 3 and s["pixflare_cache_bytes"] > 0
    assert s["pixflare_cache_evictions_total"] == 0
    # every CDN answer is one event (the 400 and 404 included)
    assert s["pixflare_events_appended_total"] == total_cdn
    assert s["pixflare_events_dropped_total"] == 0
    assert s["pixflare_event_log_bytes"] > 0
    assert s['pixflare_database_errors_total{reason="error"}'] == 0
    for job in ("aggregation", "cleanup"):
        assert s['pixflare_job_next_run_timestamp_seconds{job="%s"}' % job] > time.time()
    assert s['pixflare_job_last_success_timestamp_seconds{job="cleanup"}'] > 0

    def flushed():
        v = samples(scrape(msrv))
        return v["pixflare_realtime_flush_rows_total"] > 0 and v
    v = wait_for(flushed, what="a realtime flush")
    assert v["pixflare_realtime_flush_duration_seconds_count"] >= 1
    assert v["pixflare_realtime_pending_keys"] >= 0

    # Privacy and cardinality: nothing of an owner, an image or a path.
    owner_hashes = [r[0] for r in msrv.sql("SELECT DISTINCT owner FROM analytics_daily")]
    assert owner_hashes
    for word in list(msrv.ids.values()) + owner_hashes + ["alice", "bob", "wide.png", "pics",
                                                          "127.0.0.1", key]:
        assert word not in text, word
    labels = set(re.findall(r'(\w+)="', text))
    assert labels <= {"route", "status", "le", "version", "job", "reason"}, labels


def test_metrics_only_on_the_metrics_listener(msrv):
    st, _, body = msrv.request("GET", "/metrics")
    assert st == 404, body  # /metrics is a reserved owner on the main listener
    for path in ("/healthz", "/readyz"):
        assert get(msrv.metrics_port, path)[0] == 200
    assert get(msrv.metrics_port, "/i/%s" % list(msrv.ids.values())[0])[0] == 404
    assert get(msrv.metrics_port, "/metrics/x")[0] == 404


def test_readyz_names_its_checks(msrv):
    st, headers, body = msrv.request("GET", "/readyz")
    assert st == 200
    assert headers["cache-control"] == "no-store"
    assert json.loads(body) == {"status": "ready", "checks": {
        "database": "ok", "event_store": "ok", "disk": "ok"}}
    st, _, body = msrv.request("GET", "/readyz/x")
    assert st == 404


@pytest.mark.sqlite_only
def test_prometheus_stores_the_request_count(tmp_path, msrv):
    """A real Prometheus server scrapes every second; its stored counter
    equals the CDN requests sent."""
    prom_port = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                   "scrape_configs:\n  - job_name: pixflare\n    static_configs:\n"
                   "      - targets: ['127.0.0.1:%d']\n" % msrv.metrics_port)
    log = open(tmp_path / "prometheus.log", "w")
    prom = subprocess.Popen(["prometheus", "--config.file=%s" % cfg,
                             "--storage.tsdb.path=%s" % (tmp_path / "tsdb"),
                             "--web.listen-address=127.0.0.1:%d" % prom_port],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        def query(q):
            url = "http://127.0.0.1:%d/api/v1/query?%s" % (prom_port,
                                                            urllib.parse.urlencode({"query": q}))
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    res = json.load(r)["data"]["result"]
            except OSError:
                return None
            return res
        wait_for(lambda: query("up") == [] or query("up"), 30, "Prometheus to answer")
        sent = send_traffic(msrv)
        n = sum(sent.values())

        def stored():
            res = query('sum(pixflare_http_requests_total{route="cdn"})')
            return res and float(res[0]["value"][1]) == n
        wait_for(stored, 30, "Prometheus to store %d CDN requests" % n)
        up = query('up{job="pixflare"}')
        assert up and up[0]["value"][1] == "1"
        res = query('pixflare_http_requests_total{route="cdn",status="404"}')
        assert float(res[0]["value"][1]) == sent[("cdn", 404)]
    finally:
        prom.terminate()
        prom.wait(timeout=30)
        log.close()


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", str(path)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (root needed): " + p.stderr.strip())


def fill(path):
    """Write zeros to a file in `path` until the filesystem refuses more."""
    filler = os.path.join(path, "filler")
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


@pytest.mark.sqlite_only
def test_readyz_503_when_the_disk_is_full_and_back(tmp_path, images):
    mnt = tmp_path / "mnt"
    mount_tmpfs(mnt, "24m")
    try:
        src, _ = images
        srv = Server(mnt / "data", {"PIXFLARE_MIN_FREE_MB": "1"})
        import_tree(srv, src)
        srv.start()
        try:
            assert srv.request("GET", "/readyz")[0] == 200
            assert srv.cli("health", check=0).stdout.startswith("ready: ")
            filler = fill(str(mnt))
            st, _, body = srv.request("GET", "/readyz")
            assert st == 503, body
            doc = json.loads(body)
            assert doc["success"] is False and doc["error"]["code"] == "NOT_READY"
            assert "below PIXFLARE_MIN_FREE_MB=1" in doc["checks"]["disk"], doc
            assert doc["checks"]["database"] == "ok"
            assert doc["checks"]["event_store"] != "ok", doc  # not one byte more fits
            p = srv.cli("health", check=1)
            assert p.stdout.startswith("not ready (HTTP 503): not ready: "), p.stdout
            # /healthz: alive all the same
            assert srv.request("GET", "/healthz")[0] == 200
            os.unlink(filler)
            st, _, body = srv.request("GET", "/readyz")
            assert st == 200, body
            srv.cli("health", check=0)
        finally:
            srv.stop()
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


@pytest.mark.no_db
def test_health_exit_codes(tmp_path, images):
    src, _ = images
    srv = Server(tmp_path / "data")
    import_tree(srv, src)
    # Nothing listening: 1, one line naming the URL.
    p = srv.cli("health", "--timeout-ms", "2000", check=1)
    assert p.stdout.startswith("unreachable: http://127.0.0.1:%d/readyz" % srv.port), p.stdout
    assert len(p.stdout.splitlines()) == 1
    # --wait-ms: started before the server, ready once it is.
    waiting = subprocess.Popen([BIN, "health", "--wait-ms", "30000"], env=srv.env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    srv.start()
    try:
        out, err = waiting.communicate(timeout=60)
        assert waiting.returncode == 0, out + err
        assert out.startswith("ready: ")
        srv.cli("health", check=0)
        # Bad usage: 2 with a reason.
        assert "--timeout-ms" in srv.cli("health", "--timeout-ms", "x", check=2).stderr
        srv.cli("health", "--bogus", check=2)
    finally:
        srv.stop()
    # Not ready: the server's own threshold (PIXFLARE_MIN_FREE_MB) above
    # what any disk here has.
    srv2 = Server(tmp_path / "data", {"PIXFLARE_MIN_FREE_MB": "1048576"})
    srv2.start()
    try:
        p = srv2.cli("health", check=1)
        assert "disk" in p.stdout and "PIXFLARE_MIN_FREE_MB=1048576" in p.stdout
    finally:
        srv2.stop()


@pytest.mark.no_db
def test_metrics_listener_that_cannot_listen_is_one_line(tmp_path):
    busy = Server(tmp_path / "a")
    busy.start()
    try:
        env = clean_env({"PIXFLARE_DATA_DIR": str(tmp_path / "b"),
                         "PIXFLARE_LISTEN": "127.0.0.1:%d" % free_port(),
                         "PIXFLARE_METRICS_LISTEN": "127.0.0.1:%d" % busy.port})
        p = run(["serve"], env, check=1)
        assert "PIXFLARE_METRICS_LISTEN" in p.stderr and "cannot listen" in p.stderr, p.stderr
        bad = dict(env, PIXFLARE_METRICS_LISTEN="localhost")
        p = run(["serve"], bad, check=2)
        assert "PIXFLARE_METRICS_LISTEN='localhost'" in p.stderr
    finally:
        busy.stop()
