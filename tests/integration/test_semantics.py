"""HTTP semantics found in review: preconditions (RFC 9110 13), what errors
carry, 304 lengths, obsolete date forms, absolute-form targets, remembered
generation failures, and shutdown under load."""
import os
import signal
import threading
import time

from pftest import Server, make_png

GOOD = "/alice/pics/wide.png"


def test_errors_are_not_cacheable(server):
    for path, headers in (("/alice/pics/missing.png", {}), (GOOD, {"Range": "bytes=x"}),
                          (GOOD + "/w9", {}), (GOOD, {"If-Match": '"other"'})):
        status, h, _ = server.request("GET", path, headers)
        assert status >= 400, path
        assert h["cache-control"] == "no-store", (path, headers)
        assert "etag" not in h and "last-modified" not in h, (path, headers)


def test_304_keeps_the_full_length(server):
    _, h, body = server.request("GET", GOOD)
    status, h2, body2 = server.request("GET", GOOD, {"If-None-Match": h["etag"]})
    assert status == 304 and body2 == b""
    assert h2.get("content-length", str(len(body))) == str(len(body))


def test_if_match_and_if_unmodified_since(server):
    _, h, body = server.request("GET", GOOD)
    assert server.request("GET", GOOD, {"If-Match": h["etag"]})[0] == 200
    assert server.request("GET", GOOD, {"If-Match": "*"})[0] == 200
    status, _, err = server.request("GET", GOOD, {"If-Match": '"nope"'})
    assert status == 412 and b"PRECONDITION_FAILED" in err
    assert server.request("GET", GOOD, {"If-Match": "W/" + h["etag"]})[0] == 412  # strong only
    assert server.request("GET", GOOD, {"If-Match": 'W/"x", ' + h["etag"]})[0] == 200
    old = "Sat, 01 Jan 2000 00:00:00 GMT"
    assert server.request("GET", GOOD, {"If-Unmodified-Since": old})[0] == 412
    assert server.request("GET", GOOD, {"If-Unmodified-Since": h["last-modified"]})[0] == 200
    # If-Match wins over If-Unmodified-Since
    assert server.request("GET", GOOD, {"If-Match": h["etag"], "If-Unmodified-Since": old})[0] == 200


def test_obsolete_date_forms(server):
    _, h, _ = server.request("GET", GOOD)
    t = time.strptime(h["last-modified"], "%a, %d %b %Y %H:%M:%S GMT")
    rfc850 = time.strftime("%A, %d-%b-%y %H:%M:%S GMT", t)
    asctime = time.strftime("%a %b %e %H:%M:%S %Y", t)
    for date in (rfc850, asctime):
        assert server.request("GET", GOOD, {"If-Modified-Since": date})[0] == 304, date


def test_absolute_form_target(server):
    req = b"GET http://cdn.example" + GOOD.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    status, _, body = server.raw(req)
    assert status == 200 and body == server.files["alice/pics/wide.png"]


def test_failed_generation_is_remembered(server):
    image_id = server.ids["alice/pics/noise.png"]
    path = os.path.join(server.data_dir, "images", image_id[:2], image_id, "original.png")
    with open(path, "r+b") as f:
        f.truncate(200)  # damaged after import
    for _ in range(10):
        status, h, body = server.request("GET", "/alice/pics/noise.png/w128")
        assert status == 500 and b'"INTERNAL"' in body
        assert h["cache-control"] == "no-store"
    log = server.log()
    assert log.count("cannot make variant w128 of image " + image_id) == 1, log
    # other images are unaffected
    assert server.request("GET", "/alice/pics/wide.png/w128")[0] == 200


def test_secret_from_environment_on_a_fresh_data_dir(tmp_path, images):
    src, files = images
    srv = Server(tmp_path / "new" / "data", {"PIXFLARE_SECRET": "0123456789abcdef0123"})
    p = srv.cli("import", str(src), check=0)
    assert len(p.stdout.splitlines()) == len(files)
    assert not os.path.exists(os.path.join(srv.data_dir, "secret"))


def test_shutdown_while_clients_keep_asking_for_new_variants(tmp_path):
    src = tmp_path / "src"
    for i in range(40):
        p = src / "hana" / "a" / ("%02d.png" % i)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(make_png(200, 150, seed=i))
    srv = Server(tmp_path / "data", {"PIXFLARE_THREADS": "2"})
    srv.cli("import", str(src), check=0)
    srv.start()
    stop = threading.Event()
    statuses = []

    def client(k):
        names = ["w128", "w256", "thumb", "og-image", "w512"]
        n = 0
        while not stop.is_set():
            try:
                c = srv.connect(timeout=10)
                for _ in range(20):
                    c.request("GET", "/hana/a/%02d.png/%s" % ((n * 7 + k) % 40, names[n % 5]))
                    r = c.getresponse()
                    r.read()
                    statuses.append(r.status)
                    n += 1
                    if r.getheader("Connection", "").lower() == "close":
                        break
                c.close()
            except (OSError, Exception):
                time.sleep(0.01)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    started = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    rc = srv.proc.wait(timeout=60)
    took = time.monotonic() - started
    stop.set()
    for t in threads:
        t.join(30)
    srv.proc = None
    srv.stderr_file.close()
    from pftest import sanitizer_clean
    sanitizer_clean(srv.log())
    assert rc == 0, srv.log()
    assert took < 30, took
    assert statuses and set(statuses) <= {200}
    assert "stopped" in srv.log()
