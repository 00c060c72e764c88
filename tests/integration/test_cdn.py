"""The CDN route over HTTP against the real binary: originals, variants,
caching headers, conditional and range requests, both URL forms."""
import concurrent.futures
import os
import urllib.parse

from pftest import image_size


def q(rel, variant=None):
    path = "/" + urllib.parse.quote(rel)
    return path + ("/" + variant if variant else "")


def test_original_bytes_and_headers(server):
    for rel, data in server.files.items():
        status, h, body = server.request("GET", q(rel))
        assert status == 200, rel
        assert body == data
        assert h["content-type"] == "image/png"
        assert int(h["content-length"]) == len(data)
        assert h["cache-control"] == "public, max-age=31536000, immutable"
        assert h["etag"].startswith('"') and h["etag"].endswith('-original"')
        assert h["last-modified"].endswith(" GMT")
        assert h["accept-ranges"] == "bytes"


def test_by_id_matches_by_name(server):
    for rel, image_id in server.ids.items():
        s1, h1, b1 = server.request("GET", q(rel, "w128"))
        s2, h2, b2 = server.request("GET", "/i/%s/w128" % image_id)
        assert (s1, s2) == (200, 200)
        assert b1 == b2 and h1["etag"] == h2["etag"]
        s3, _, b3 = server.request("GET", "/i/%s" % image_id)
        assert s3 == 200 and b3 == server.files[rel]


def test_width_variants_never_upscale(server):
    # wide.png is 300x200
    expect = {"w128": (128, 85), "w256": (256, 171), "w512": (300, 200), "w1024": (300, 200),
              "w1536": (300, 200), "w2048": (300, 200)}
    for variant, size in expect.items():
        status, h, body = server.request("GET", q("alice/pics/wide.png", variant))
        assert status == 200, variant
        assert h["content-type"] == "image/png"
        assert image_size(body) == size, variant
        assert h["etag"].endswith('-%s"' % variant)


def test_cover_variants_exact_size(server):
    for rel in server.files:
        status, _, body = server.request("GET", q(rel, "thumb"))
        assert status == 200 and image_size(body) == (128, 128), rel
        status, _, body = server.request("GET", q(rel, "og-image"))
        assert status == 200 and image_size(body) == (1200, 630), rel


def test_variant_cached_in_storage(server):
    image_id = server.ids["alice/travel/tall.png"]
    path = os.path.join(server.data_dir, "images", image_id[:2], image_id, "w128.png")
    assert not os.path.exists(path)
    status, _, body = server.request("GET", q("alice/travel/tall.png", "w128"))
    assert status == 200
    with open(path, "rb") as f:
        assert f.read() == body
    assert image_size(body) == (90, 160)  # narrower than 128: untouched size
    # no stray temporary files left beside it
    assert sorted(os.listdir(os.path.dirname(path))) == ["original.png", "w128.png"]


def test_concurrent_first_requests_get_whole_variant(server):
    url = q("alice/pics/noise.png", "og-image")

    def fetch(_):
        return server.request("GET", url)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(fetch, range(32)))
    bodies = {r[2] for r in results}
    assert all(r[0] == 200 for r in results)
    assert len(bodies) == 1
    body = bodies.pop()
    assert image_size(body) == (1200, 630)
    assert all(int(r[1]["content-length"]) == len(body) for r in results)


def test_head_matches_get(server):
    url = q("alice/pics/wide.png", "w256")
    s1, h1, b1 = server.request("GET", url)
    s2, h2, b2 = server.request("HEAD", url)
    assert (s1, s2) == (200, 200)
    assert b2 == b""
    for k in ("content-type", "content-length", "etag", "last-modified", "cache-control"):
        assert h1[k] == h2[k], k


def test_if_none_match_304(server):
    url = q("alice/pics/wide.png")
    _, h, _ = server.request("GET", url)
    etag = h["etag"]
    for inm in (etag, "W/" + etag, '"nope", ' + etag, "*"):
        status, h2, body = server.request("GET", url, {"If-None-Match": inm})
        assert status == 304, inm
        assert body == b""
        assert h2["etag"] == etag
        assert h2["cache-control"] == "public, max-age=31536000, immutable"
    status, _, body = server.request("GET", url, {"If-None-Match": '"other"'})
    assert status == 200 and body == server.files["alice/pics/wide.png"]
    # another variant's tag does not match
    status, _, _ = server.request("GET", q("alice/pics/wide.png", "w128"), {"If-None-Match": etag})
    assert status == 200
    status, _, body = server.request("HEAD", url, {"If-None-Match": etag})
    assert status == 304


def test_if_modified_since(server):
    url = q("alice/pics/wide.png")
    _, h, _ = server.request("GET", url)
    status, _, _ = server.request("GET", url, {"If-Modified-Since": h["last-modified"]})
    assert status == 304
    status, _, _ = server.request("GET", url, {"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"})
    assert status == 200
    # If-None-Match takes precedence over If-Modified-Since
    status, _, _ = server.request("GET", url, {"If-None-Match": '"x"',
                                               "If-Modified-Since": h["last-modified"]})
    assert status == 200


def test_ranges(server):
    url = q("alice/pics/noise.png")
    data = server.files["alice/pics/noise.png"]
    n = len(data)
    cases = {"bytes=0-99": (0, 99), "bytes=100-": (100, n - 1), "bytes=-50": (n - 50, n - 1),
             "bytes=10-10": (10, 10), "bytes=%d-%d" % (n - 5, n + 1000): (n - 5, n - 1),
             "bytes=-%d" % (n * 2): (0, n - 1)}
    for rng, (a, b) in cases.items():
        status, h, body = server.request("GET", url, {"Range": rng})
        assert status == 206, rng
        assert body == data[a:b + 1], rng
        assert h["content-range"] == "bytes %d-%d/%d" % (a, b, n)
        assert int(h["content-length"]) == b - a + 1
    for rng in ("bytes=%d-" % n, "bytes=5-1", "bytes=-0", "bytes=x-y", "bytes=1-2-3"):
        status, h, body = server.request("GET", url, {"Range": rng})
        assert status == 416, rng
        assert h["content-range"] == "bytes */%d" % n
        assert h["content-type"] == "application/json"
        assert b'"success":false' in body
    # multiple ranges and unknown units: the whole image
    for rng in ("bytes=0-1,5-6", "pages=1-2"):
        status, _, body = server.request("GET", url, {"Range": rng})
        assert status == 200 and body == data, rng


def test_if_range(server):
    url = q("alice/pics/noise.png")
    data = server.files["alice/pics/noise.png"]
    _, h, _ = server.request("GET", url)
    status, _, body = server.request("GET", url, {"Range": "bytes=0-9", "If-Range": h["etag"]})
    assert status == 206 and body == data[:10]
    status, _, body = server.request("GET", url, {"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert status == 200 and body == data


def test_range_on_variant(server):
    url = q("alice/pics/wide.png", "w128")
    _, _, full = server.request("GET", url)
    status, _, body = server.request("GET", url, {"Range": "bytes=8-23"})
    assert status == 206 and body == full[8:24]


def test_percent_encoded_names(server):
    status, _, body = server.request("GET", "/bob/art/my%20photo.png")
    assert status == 200 and body == server.files["bob/art/my photo.png"]
    status, _, _ = server.request("GET", "/%61lice/pics/wide.png")
    assert status == 200


def test_query_string_ignored(server):
    status, _, body = server.request("GET", q("alice/pics/wide.png") + "?utm_source=x&v=2")
    assert status == 200 and body == server.files["alice/pics/wide.png"]


def test_unknown_images_404(server):
    for path in ("/alice/pics/missing.png", "/alice/nope/wide.png", "/carol/pics/wide.png",
                 "/i/zzzzzz", "/i/zzzzzz/w128", "/alice/pics/missing.png/w128"):
        status, h, body = server.request("GET", path)
        assert status == 404, path
        assert h["content-type"] == "application/json"
        assert body == b'{"success":false,"error":{"code":"NOT_FOUND","message":"image not found"}}'


def test_new_import_visible_without_restart(server, tmp_path):
    from pftest import make_png
    extra = tmp_path / "more"
    (extra / "carol" / "new").mkdir(parents=True)
    data = make_png(40, 30, seed=9)
    (extra / "carol" / "new" / "fresh.png").write_bytes(data)
    server.cli("import", str(extra), check=0)
    import time
    deadline = time.time() + 5
    status = None
    while time.time() < deadline:
        status, _, body = server.request("GET", "/carol/new/fresh.png")
        if status == 200:
            break
        time.sleep(0.1)
    assert status == 200 and body == data


import pytest


@pytest.mark.parametrize("imported_while_serving", [False, True])
def test_generation_does_not_stall_other_requests(tmp_path, imported_while_serving):
    """With one event-loop thread, a hot image is served while a slow variant
    is being generated: generation runs off the event loop, also for an image
    imported after the server started (found by a deferred catalog refresh,
    then deferred again for its variant)."""
    import threading
    import time
    from pftest import Server, make_png
    src = tmp_path / "src"
    (src / "gina" / "a").mkdir(parents=True)
    (src / "gina" / "a" / "small.png").write_bytes(make_png(32, 32, seed=8))
    huge = tmp_path / "later" / "gina" / "a" / "huge.png"
    huge.parent.mkdir(parents=True)
    huge.write_bytes(make_png(3000, 3000, seed=7, noise=True))
    srv = Server(tmp_path / "data", {"PIXFLARE_THREADS": "1"})
    srv.cli("import", str(src), check=0)
    if not imported_while_serving:
        srv.cli("import", str(tmp_path / "later"), check=0)
    srv.start()
    if imported_while_serving:
        srv.cli("import", str(tmp_path / "later"), check=0)
        time.sleep(0.3)  # let a catalog refresh fall due
    try:
        assert srv.request("GET", "/gina/a/small.png")[0] == 200  # now hot
        done = {}

        def slow():
            c = srv.connect()
            c.request("GET", "/gina/a/huge.png/og-image")
            r = c.getresponse()  # returns once the headers are in
            done["slow"] = (time.monotonic(), r.status, r.read())
            c.close()

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.05)
        status, _, _ = srv.request("GET", "/gina/a/small.png")
        fast_at = time.monotonic()
        t.join(60)
        assert status == 200
        assert done["slow"][1] == 200
        assert image_size(done["slow"][2]) == (1200, 630)
        # Served inline, the hot image would be answered only after the
        # generation, so after the slow response's headers.
        assert fast_at < done["slow"][0], "the hot image waited for the generation"
    finally:
        assert srv.stop() == 0
