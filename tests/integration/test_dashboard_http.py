"""The dashboard's HTTP side against the real binary: the assets embedded from
dashboard/ (bytes equal to the repository's files, types, security headers,
ETag / 304, HEAD, no-cache), refusals (unknown names, traversal, methods),
index.html loading nothing from another origin; the thumbnails the page
fetches with its API key from /v1/images/{id}/thumb (the CDN's thumb variant,
the key checks, the owner's images only, no parameters, private caching, 304,
no rate limit), the old /dashboard/thumb/{id} route gone; and that none of it
makes an analytics event (while a CDN request does)."""
import concurrent.futures
import datetime
import gzip
import html.parser
import json
import os
import re
import time

import pytest

from pftest import Server, image_size, import_tree, make_png, run

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WEB = os.path.join(ROOT, "dashboard")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
SECURITY = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}
FLUSH_MS = 200
JSON = "application/json"


def assets():
    """{name: bytes} of every file the build embeds (the Makefile's WEB)."""
    out = {}
    for name in sorted(os.listdir(WEB)):
        if os.path.splitext(name)[1] in TYPES:
            with open(os.path.join(WEB, name), "rb") as f:
                out[name] = f.read()
    return out


ASSETS = assets()


def today():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


def check_security_headers(h, what):
    csp = h.get("content-security-policy", "")
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives.get("default-src") == ["'none'"], (what, csp)
    for d in ("script-src", "style-src", "connect-src"):
        assert directives.get(d) == ["'self'"], (what, d, csp)
    assert directives.get("img-src") == ["'self'", "blob:"], (what, csp)
    assert directives.get("frame-ancestors") == ["'none'"], (what, csp)
    assert "http" not in csp and "*" not in csp, (what, csp)
    for k, v in SECURITY.items():
        assert h.get(k) == v, (what, k, h)


def check_error(status, h, body, what, statuses=(400, 404)):
    """A JSON error body of SPEC.md, never a file."""
    assert status in statuses, (what, status, body[:200])
    assert h.get("content-type") == JSON, (what, h)
    assert h.get("cache-control") == "no-store", (what, h)
    assert "etag" not in h, (what, h)
    doc = json.loads(body)
    assert doc["success"] is False, (what, doc)
    assert doc["error"]["code"] and doc["error"]["message"], (what, doc)
    assert body not in ASSETS.values()
    assert b"root:" not in body


@pytest.fixture
def ids(server):
    return {rel: server.ids[rel] for rel in sorted(server.ids)}


# ---- assets ----

def test_every_dashboard_file_is_embedded():
    assert {"index.html", "app.js", "chart.js", "app.css", "favicon.svg"} <= set(ASSETS)


@pytest.mark.parametrize("path",
                         ["/dashboard/" + n for n in ASSETS] + ["/dashboard", "/dashboard/"])
def test_asset_bytes_and_headers(server, path):
    name = path[len("/dashboard/"):] or "index.html"
    data = ASSETS[name]
    status, h, body = server.request("GET", path)
    assert status == 200, (path, status, body[:200])
    assert body == data, path
    assert h["content-type"] == TYPES[os.path.splitext(name)[1]]
    assert int(h["content-length"]) == len(data)
    assert h["cache-control"] == "no-cache"
    assert re.fullmatch(r'"[^"]+"', h["etag"]), h["etag"]  # strong
    assert "set-cookie" not in h
    check_security_headers(h, path)
    # HEAD: the same headers, no body.
    status, h2, body = server.request("HEAD", path)
    assert status == 200 and body == b""
    for k in ("content-type", "content-length", "etag", "cache-control",
              "content-security-policy", "x-content-type-options", "referrer-policy"):
        assert h2.get(k) == h[k], (path, k)


@pytest.mark.parametrize("path", sorted("/dashboard/" + n for n in ASSETS) + ["/dashboard"])
def test_gzip_when_accepted(server, path):
    """Browsers get the gzipped copy, with its own ETag, and the identity
    bytes when gzip is refused (q=0) or not named; caches are told both
    exist (Vary)."""
    name = path[len("/dashboard/"):] or "index.html"
    data = ASSETS[name]
    _, plain_h, _ = server.request("GET", path)
    status, h, body = server.request("GET", path, {"Accept-Encoding": "gzip, deflate, br"})
    assert status == 200
    assert h.get("vary") == "Accept-Encoding", (path, h)
    assert h.get("content-encoding") == "gzip", (path, h)
    assert len(body) * 10 <= len(data) * 9 and int(h["content-length"]) == len(body)
    assert gzip.decompress(body) == data, path
    assert h["etag"] != plain_h["etag"] and h["etag"].endswith('-gz"'), h["etag"]
    check_security_headers(h, path)
    # Each representation revalidates against its own tag only.
    status, h304, body = server.request("GET", path, {"Accept-Encoding": "gzip",
                                                      "If-None-Match": h["etag"]})
    assert status == 304 and body == b"" and h304["etag"] == h["etag"]
    assert h304.get("content-encoding") == "gzip" and h304.get("vary") == "Accept-Encoding"
    status, _, body = server.request("GET", path, {"Accept-Encoding": "gzip",
                                                   "If-None-Match": plain_h["etag"]})
    assert status == 200 and gzip.decompress(body) == data
    status, _, _ = server.request("GET", path, {"If-None-Match": h["etag"]})
    assert status == 200
    for refused in ("gzip;q=0", "identity", "br, deflate", "*;q=0", "gzip;q=0, *", "gzip;q=2"):
        status, h2, body = server.request("GET", path, {"Accept-Encoding": refused})
        assert status == 200 and body == data, (path, refused)
        assert "content-encoding" not in h2 and h2["etag"] == plain_h["etag"], (path, refused)
        assert h2.get("vary") == "Accept-Encoding"
    for accepted in ("GZIP", "x-gzip", "*", "br;q=1, gzip;q=0.001", "*;q=0, gzip"):
        status, h2, body = server.request("GET", path, {"Accept-Encoding": accepted})
        assert status == 200 and h2.get("content-encoding") == "gzip", (path, accepted)
        assert gzip.decompress(body) == data


def test_etags_differ_per_file_and_revalidate(server):
    tags = {}
    for name in ASSETS:
        _, h, _ = server.request("GET", "/dashboard/" + name)
        tags[name] = h["etag"]
    assert len(set(tags.values())) == len(tags), tags
    assert server.request("GET", "/dashboard")[1]["etag"] == tags["index.html"]
    for name, etag in tags.items():
        path = "/dashboard/" + name
        for inm in (etag, "W/" + etag, '"nope", ' + etag, "*", ' "x" ,\t' + etag + " "):
            for method in ("GET", "HEAD"):
                status, h, body = server.request(method, path, {"If-None-Match": inm})
                assert status == 304, (path, method, inm, status)
                assert body == b""
                assert h["etag"] == etag and h["cache-control"] == "no-cache"
                check_security_headers(h, path)
        other = next(t for n, t in tags.items() if n != name)
        for inm in ('"nope"', other, etag[:-2] + '"', etag.strip('"'), '"' + etag + '"'):
            status, _, body = server.request("GET", path, {"If-None-Match": inm})
            assert status == 200 and body == ASSETS[name], (path, inm)


def test_absolute_form_target(server):
    status, h, body = server.raw(b"GET http://127.0.0.1/dashboard/app.css HTTP/1.1\r\n"
                                 b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert status == 200 and body == ASSETS["app.css"]
    assert h["content-type"] == TYPES[".css"]


UNKNOWN = [
    "/dashboard/nope.js", "/dashboard/APP.JS", "/dashboard/app.js/", "/dashboard//app.js",
    "/dashboard/x/app.js", "/dashboard/app", "/dashboard/index", "/dashboard/app.js.map",
    "/dashboard/dash.c", "/dashboard/thumb", "/dashboardapp.js", "/dashboard.html",
    "/dashboard/.", "/dashboard/./app.js", "/dashboard/..", "/dashboard/../etc/passwd",
    "/dashboard/../../../../etc/passwd", "/dashboard/../src/dash.c",
    "/dashboard/../dashboard/app.js", "/dashboard/%2e%2e/%2e%2e/etc/passwd",
    "/dashboard/%2E%2E/%2E%2E/etc/passwd", "/dashboard/..%2f..%2fetc%2fpasswd",
    "/dashboard/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/dashboard/%252e%252e/etc/passwd",
    "/dashboard/..%5c..%5cetc%5cpasswd", "/dashboard/..\\..\\etc\\passwd",
    "/dashboard/app.js%00", "/dashboard/app.js%2f", "/dashboard/%2fetc%2fpasswd",
    "/dashboard/%", "/dashboard/%zz", "/dashboard/" + "a" * 300,
    "/dashboard/thumb/../../etc/passwd", "/dashboard/thumb/%2e%2e/app.js",
]


def test_unknown_and_traversal_paths_are_json_errors(server):
    for path in UNKNOWN:
        status, h, body = server.request("GET", path)
        check_error(status, h, body, path)
        status, h, body = server.request("HEAD", path)
        assert 400 <= status < 500 and body == b"", path


def test_other_methods_405(server):
    for path in ("/dashboard", "/dashboard/", "/dashboard/app.js", "/dashboard/nope.js"):
        for method in ("POST", "PUT", "DELETE", "OPTIONS"):
            status, h, body = server.request(method, path)
            check_error(status, h, body, (method, path), statuses=(405,))
            assert h["allow"] == "GET, HEAD"


class Refs(html.parser.HTMLParser):
    """Every URL-bearing attribute of a page, and its inline event handlers."""
    ATTRS = {"src", "href", "action", "formaction", "srcset", "poster", "data", "manifest",
             "background", "cite", "ping", "xlink:href"}

    def __init__(self):
        super().__init__()
        self.urls = []
        self.handlers = []

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k.startswith("on"):
                self.handlers.append((tag, k))
            if k in self.ATTRS and v is not None:
                self.urls.append((tag, k, v.strip()))
            if k == "style" and v and "url(" in v:
                self.urls.append((tag, k, v))
        if tag == "meta" and dict(attrs).get("http-equiv", "").lower() == "refresh":
            self.urls.append((tag, "refresh", dict(attrs).get("content", "")))

    handle_startendtag = handle_starttag


def test_index_references_only_same_origin(server):
    _, _, page = server.request("GET", "/dashboard")
    text = page.decode("utf-8")
    refs = Refs()
    refs.feed(text)
    assert refs.urls, "no src/href found at all"
    local = set()
    for tag, attr, url in refs.urls:
        low = url.lower()
        assert not re.match(r"^(https?:|//|[a-z][a-z0-9+.-]*:)", low), (tag, attr, url)
        assert attr not in ("style", "refresh"), (tag, attr, url)
        if url.startswith("/"):
            local.add(url)
        else:
            assert url.startswith("#"), (tag, attr, url)  # in-page only
    # No <base>, no inline script or style (the CSP would refuse them anyway).
    assert not re.search(r"<base\b", text, re.I)
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text, re.I)
    assert not re.search(r"<style\b", text, re.I)
    assert refs.handlers == []
    # Every same-origin reference is an embedded asset that the server serves.
    assert {"/dashboard/app.js", "/dashboard/app.css"} <= local, local
    for url in local:
        status, _, body = server.request("GET", url)
        assert status == 200 and body == ASSETS[url[len("/dashboard/"):]], url
    # The stylesheet imports nothing and takes no font or image from elsewhere.
    css = ASSETS["app.css"].decode("utf-8")
    assert not re.search(r"@import|url\(\s*['\"]?\s*(https?:|//)", css, re.I)


# ---- thumbnails: GET /v1/images/{id}/thumb, behind the API key ----

KEY_RE = re.compile(r"pfk_[a-z0-9]{12}_[A-Za-z0-9]{40}")
PRIVATE = "private, max-age=86400"
THUMB_HEADERS = ("content-type", "content-length", "etag", "last-modified", "cache-control")


def new_key(srv, owner, *flags):
    """`keys create`: the key alone on stdout."""
    p = srv.cli("keys", "create", "--owner", owner, *flags, check=0)
    key = p.stdout.strip()
    assert KEY_RE.fullmatch(key), p.stdout
    return key


def bearer(key):
    return {"Authorization": "Bearer " + key}


def thumb_url(image_id):
    return "/v1/images/%s/thumb" % image_id


def no_rate_limit_headers(h, what):
    assert "x-ratelimit-limit" not in h and "x-ratelimit-remaining" not in h, (what, h)
    assert "retry-after" not in h, (what, h)


def check_api_error(status, h, body, want_status, code, what):
    """A JSON error of the API: status, code, no-store, no validators."""
    assert status == want_status, (what, status, body[:200])
    assert h.get("content-type") == JSON, (what, h)
    assert h.get("cache-control") == "no-store", (what, h)
    assert "etag" not in h and "last-modified" not in h, (what, h)
    doc = json.loads(body)
    assert doc["success"] is False and doc["error"]["code"] == code, (what, doc)
    assert doc["error"]["message"], (what, doc)
    assert not body.startswith(b"\x89PNG")
    return doc


@pytest.fixture
def keys(server):
    """API keys made while the server runs: read keys of alice and bob, a
    write-only key and a read,write key of alice's."""
    return {"alice": new_key(server, "alice"), "bob": new_key(server, "bob"),
            "writer": new_key(server, "alice", "--scopes", "write"),
            "both": new_key(server, "alice", "--scopes", "read,write")}


def owner_key(keys, rel):
    return keys[rel.split("/")[0]]


def check_thumbs_equal_cdn(srv, ids, keys):
    """Each image's thumbnail through the API (first: the API thread makes
    the variant), then through the CDN: the same bytes and validators."""
    for rel, image_id in ids.items():
        auth = bearer(owner_key(keys, rel))
        path = thumb_url(image_id)
        status, h, body = srv.request("GET", path, auth)
        assert status == 200, (rel, status, body[:200])
        assert image_size(body) == (128, 128), rel
        assert h["cache-control"] == PRIVATE, (rel, h)
        assert h.get("vary") == "Authorization", (rel, h)  # one key's copy is not another's
        assert int(h["content-length"]) == len(body)
        assert re.fullmatch(r'"[^"]+"', h["etag"]), h  # strong
        assert "set-cookie" not in h and "accept-ranges" not in h
        no_rate_limit_headers(h, rel)
        s2, h2, cdn = srv.request("GET", "/i/%s/thumb" % image_id)
        assert s2 == 200 and cdn == body, rel
        assert h["content-type"] == h2["content-type"] == "image/png", (h, h2)
        assert h["etag"] == h2["etag"] and h["etag"].endswith('-thumb"'), (h, h2)
        assert h["last-modified"] == h2["last-modified"], (h, h2)
        assert h2["cache-control"] == "public, max-age=31536000, immutable"
        # And again through the API, now that the variant exists.
        s3, h3, b3 = srv.request("GET", path, auth)
        assert s3 == 200 and b3 == body
        assert {k: h3.get(k) for k in THUMB_HEADERS} == {k: h.get(k) for k in THUMB_HEADERS}
        # HEAD: the same headers, no body.
        s4, h4, b4 = srv.request("HEAD", path, auth)
        assert (s4, b4) == (200, b""), rel
        assert {k: h4.get(k) for k in THUMB_HEADERS} == {k: h.get(k) for k in THUMB_HEADERS}
        no_rate_limit_headers(h4, rel)


@pytest.mark.parametrize("cache_mb", [None, "0"], ids=["memory", "files"])
def test_api_thumb_is_the_cdn_thumb_variant(tmp_path, images, cache_mb):
    """With the default cache the objects are served from memory; with
    PIXFLARE_CACHE_MB=0 from their files."""
    src, _ = images
    srv = Server(tmp_path / "data", {"PIXFLARE_CACHE_MB": cache_mb} if cache_mb else {})
    ids = import_tree(srv, src)
    keys = {"alice": new_key(srv, "alice"), "bob": new_key(srv, "bob")}
    srv.start()
    try:
        check_thumbs_equal_cdn(srv, ids, keys)
    finally:
        assert srv.stop() == 0


def test_api_thumb_revalidation(server, ids, keys):
    for rel, image_id in ids.items():
        auth = bearer(owner_key(keys, rel))
        path = thumb_url(image_id)
        status, h, body = server.request("GET", path, auth)
        assert status == 200
        etag = h["etag"]
        for inm in (etag, "W/" + etag, "*", '"nope", ' + etag, ' "x" ,\t' + etag + " "):
            for method in ("GET", "HEAD"):
                s, h2, b = server.request(method, path, dict(auth, **{"If-None-Match": inm}))
                assert (s, b) == (304, b""), (rel, method, inm, s)
                assert h2["etag"] == etag and h2["cache-control"] == PRIVATE, h2
                assert h2.get("last-modified") == h["last-modified"]
                no_rate_limit_headers(h2, inm)
        other = '"%s"' % ("0" * 16 + "-thumb")
        for inm in ('"nope"', other, etag.strip('"'), etag[:-2] + '"', '"' + etag + '"'):
            s, h2, b = server.request("GET", path, dict(auth, **{"If-None-Match": inm}))
            assert s == 200 and b == body, (rel, inm, s)
            assert h2["etag"] == etag and h2["cache-control"] == PRIVATE
        # The CDN's validators are the API's: its tag revalidates there too.
        s, _, b = server.request("GET", "/i/%s/thumb" % image_id, {"If-None-Match": etag})
        assert (s, b) == (304, b"")


def test_api_thumb_first_requests_at_once(server, ids, keys):
    """A dashboard page asks for up to ten thumbnails at once: concurrent
    first requests (both API threads making the same variants) all get the
    same bytes, which the CDN then serves too."""
    jobs = [(rel, image_id) for rel, image_id in ids.items() for _ in range(3)]

    def get(job):
        rel, image_id = job
        return rel, server.request("GET", thumb_url(image_id), bearer(owner_key(keys, rel)))

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        answers = list(pool.map(get, jobs))
    seen = {}
    for rel, (status, h, body) in answers:
        assert status == 200, (rel, status, body[:200])
        assert image_size(body) == (128, 128)
        seen.setdefault(rel, set()).add((body, h["etag"]))
    for rel, image_id in ids.items():
        assert len(seen[rel]) == 1, rel
        body, etag = next(iter(seen[rel]))
        s, h, cdn = server.request("GET", "/i/%s/thumb" % image_id)
        assert s == 200 and cdn == body and h["etag"] == etag, rel


def test_api_thumb_needs_a_valid_key(server, ids, keys):
    alice = keys["alice"]
    image_id = ids["alice/pics/wide.png"]
    bobs = ids["bob/art/my photo.png"]
    path = thumb_url(image_id)
    assert server.request("GET", path, bearer(alice))[0] == 200

    def refused(headers, what, message=None):
        bodies = []
        for p in (path, thumb_url("zzzzzz"), thumb_url(bobs)):
            for inm in (None, "*"):
                h = dict(headers)
                if inm:
                    h["If-None-Match"] = inm
                status, hdrs, body = server.request("GET", p, h)
                doc = check_api_error(status, hdrs, body, 401, "UNAUTHORIZED", (what, p))
                no_rate_limit_headers(hdrs, what)
                want = 'Bearer realm="pixflare"'
                if "Authorization" in headers:
                    want += ', error="invalid_token"'
                assert hdrs.get("www-authenticate") == want, (what, hdrs)
                if message:
                    assert message in doc["error"]["message"], (what, doc)
                bodies.append(body)
                status, hdrs, body = server.request("HEAD", p, h)
                assert (status, body) == (401, b""), (what, p)
                assert hdrs.get("www-authenticate") == want
        # Whatever the image (mine, unknown, another owner's): one answer.
        assert len(set(bodies)) == 1, (what, bodies)

    refused({}, "no header", "missing")
    forged = alice[:-1] + ("A" if alice[-1] != "A" else "B")  # alice's id, another secret
    unknown = "pfk_" + "a" * 12 + "_" + "B" * 40
    for value in ("Bearer", "Bearer ", "Bearer nope", "Basic YWxpY2U6c2VjcmV0", "Basic " + alice,
                  "Token " + alice, alice, "Bearer " + alice[:-1], "Bearer " + alice + "x",
                  "Bearer " + unknown, "Bearer " + forged, "Bearer " + alice + " " + alice,
                  "Bearer " + "x" * 300):
        refused({"Authorization": value}, value)

    # 403 for a key without the read scope, before anything about the image;
    # a key with read and write passes.
    for p in (path, thumb_url("zzzzzz"), thumb_url(bobs), thumb_url(image_id) + "?x=1"):
        status, hdrs, body = server.request("GET", p, bearer(keys["writer"]))
        check_api_error(status, hdrs, body, 403, "FORBIDDEN", p)
        no_rate_limit_headers(hdrs, p)
    status, _, body = server.request("GET", path, bearer(keys["both"]))
    assert status == 200 and image_size(body) == (128, 128)

    # Revoked while the server runs: refused from the next call on.
    doomed = new_key(server, "alice")
    assert server.request("GET", path, bearer(doomed))[0] == 200
    server.cli("keys", "revoke", doomed[4:16], check=0)
    refused(bearer(doomed), "revoked", "revoked")
    # Expired (the row says so; each call reads it).
    late = new_key(server, "alice", "--expires-days", "1")
    assert server.request("GET", path, bearer(late))[0] == 200
    server.sql_exec("UPDATE api_keys SET expires_at = '2000-01-01T00:00:00Z' WHERE id = ?",
                    (late[4:16],))
    refused(bearer(late), "expired", "expired")
    # The other keys still work.
    assert server.request("GET", path, bearer(alice))[0] == 200


ENDPOINT_404 = ["/v1/images/ABCDEF/thumb", "/v1/images/abc12/thumb", "/v1/images/abc123/thumbx",
                "/v1/images/abc123", "/v1/images/abc123/thumb/", "/v1/images/abc1234/thumb",
                "/v1/images//thumb", "/v1/images/thumb", "/v1/images", "/v1/images/",
                "/v1/image/abc123/thumb", "/v1/images/abc123/THUMB", "/v1/images/abc123//thumb",
                "/v1//images/abc123/thumb", "/v1/images/abc123/thumb/x",
                "/v1/images/abc123/original", "/v1/images/abc123/w128",
                "/v1/images/abc123%2Fthumb", "/v1/images/%61bc123/thumb",
                "/v1/images/abc123/thumb%00", "/v1/images/abc-23/thumb",
                "/v1/images/abc123/thumb.png", "/v1/images/" + "a" * 300 + "/thumb",
                "/v1/analytics/images/abc123/thumb"]


def test_api_thumb_paths(server, ids, keys):
    alice = bearer(keys["alice"])
    image_id = ids["alice/pics/wide.png"]
    bobs = ids["bob/art/my photo.png"]
    # Paths that are not /v1/images/<6 of [a-z0-9]>/thumb: no such endpoint
    # (also with a real id in place of abc123).
    paths = ENDPOINT_404 + [p.replace("abc123", image_id) for p in ENDPOINT_404
                            if "abc123" in p]
    paths += [thumb_url(image_id.upper()), thumb_url(image_id) + "/"]
    for p in paths:
        status, h, body = server.request("GET", p, alice)
        doc = check_api_error(status, h, body, 404, "NOT_FOUND", p)
        assert doc["error"]["message"] == "no such API endpoint", (p, doc)
        status, h, body = server.request("HEAD", p, alice)
        assert (status, body) == (404, b""), p

    # An unknown image and another owner's image: the same 404, byte for
    # byte, whatever the method or If-None-Match (bob's own tag included).
    _, bob_h, _ = server.request("GET", thumb_url(bobs), bearer(keys["bob"]))
    answers = {}
    for target in ("zzzzzz", "000000", bobs):
        for method in ("GET", "HEAD"):
            for inm in (None, "*", bob_h["etag"]):
                h = dict(alice, **({"If-None-Match": inm} if inm else {}))
                status, hdrs, body = server.request(method, thumb_url(target), h)
                assert status == 404, (target, method, inm, status)
                no_rate_limit_headers(hdrs, target)
                if method == "GET":
                    check_api_error(status, hdrs, body, 404, "NOT_FOUND", target)
                hdrs.pop("date", None)
                answers.setdefault((method, inm), set()).add(
                    (body, tuple(sorted(hdrs.items()))))
    for k, v in answers.items():
        assert len(v) == 1, (k, v)
    # Bob's key gets bob's image, and alice's images are a 404 to bob.
    assert server.request("GET", thumb_url(bobs), bearer(keys["bob"]))[0] == 200
    s, _, body = server.request("GET", thumb_url(image_id), bearer(keys["bob"]))
    assert s == 404 and body == server.request("GET", thumb_url("zzzzzz"), alice)[2]

    # Only GET and HEAD.
    for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
        status, h, body = server.request(method, thumb_url(image_id), alice)
        check_error(status, h, body, (method,), statuses=(405,))
        assert h["allow"] == "GET, HEAD"

    # The dashboard's old route is gone: a JSON 404, key or not.
    for headers in ({}, alice, {"Sec-Fetch-Site": "same-origin"}):
        for p in ("/dashboard/thumb/" + image_id, "/dashboard/thumb/" + bobs,
                  "/dashboard/thumb/zzzzzz", "/dashboard/thumb/"):
            status, h, body = server.request("GET", p, headers)
            check_error(status, h, body, p, statuses=(404,))
            assert json.loads(body)["error"]["code"] == "NOT_FOUND"
            assert not body.startswith(b"\x89PNG")
            check_security_headers(h, p)
            status, h, body = server.request("HEAD", p, headers)
            assert (status, body) == (404, b""), p


def test_api_thumb_takes_no_parameters(server, ids, keys):
    alice = bearer(keys["alice"])
    image_id = ids["alice/pics/wide.png"]
    bobs = ids["bob/art/my photo.png"]
    cases = {"?x=1": "x", "?x": "x", "?x=": "x", "?days=7": "days", "?format=csv": "format",
             "?limit=1": "limit", "?a=1&b=2": "a", "?x=%zz": "x", "?x=1&x=1": "x",
             "?%41=1": "A"}
    for target in (image_id, "zzzzzz", bobs):  # checked before the image is looked up
        for query, name in cases.items():
            p = thumb_url(target) + query
            for method in ("GET", "HEAD"):
                status, h, body = server.request(method, p, alice)
                no_rate_limit_headers(h, p)
                if method == "HEAD":
                    assert (status, body) == (400, b""), p
                    continue
                doc = check_api_error(status, h, body, 400, "INVALID_PARAMETER", p)
                assert doc["error"].get("parameter") == name, (p, doc)
    # An empty query string is no parameter.
    status, _, body = server.request("GET", thumb_url(image_id) + "?", alice)
    assert status == 200 and image_size(body) == (128, 128)


def test_api_thumb_is_not_rate_limited(tmp_path, images):
    src, _ = images
    srv = Server(tmp_path / "data", {"PIXFLARE_API_RATE_LIMIT": "3"})
    ids = import_tree(srv, src)
    key = new_key(srv, "alice")
    srv.start()
    try:
        auth = bearer(key)
        mine = [i for rel, i in ids.items() if rel.startswith("alice/")]
        bobs = ids["bob/art/my photo.png"]
        etag = None
        for n in range(10):
            status, h, body = srv.request("GET", thumb_url(mine[n % len(mine)]), auth)
            assert status == 200 and image_size(body) == (128, 128), (n, status, body[:200])
            no_rate_limit_headers(h, n)
            if n == 0:
                etag = h["etag"]
        # Nor do the thumbnail calls that fail after the key check.
        for method, p, headers, want in (
                ("HEAD", thumb_url(mine[0]), {}, 200),
                ("GET", thumb_url(mine[0]), {"If-None-Match": etag}, 304),
                ("GET", thumb_url("zzzzzz"), {}, 404),
                ("GET", thumb_url(bobs), {}, 404),
                ("GET", thumb_url(mine[0]) + "?x=1", {}, 400)):
            status, h, _ = srv.request(method, p, dict(auth, **headers))
            assert status == want, (method, p, status)
            no_rate_limit_headers(h, p)
        # The analytics budget is whole: 3, and this call takes one.
        status, h, body = srv.request("GET", "/v1/analytics/overview?days=1", auth)
        assert status == 200, body
        assert h.get("x-ratelimit-limit") == "3" and h.get("x-ratelimit-remaining") == "2", h
        for left in ("1", "0"):
            status, h, _ = srv.request("GET", "/v1/analytics/overview?days=1", auth)
            assert status == 200 and h["x-ratelimit-remaining"] == left, h
        status, h, body = srv.request("GET", "/v1/analytics/overview?days=1", auth)
        check_api_error(status, h, body, 429, "RATE_LIMITED", "4th")
        # With the budget spent, thumbnails still come.
        for i in mine:
            status, h, body = srv.request("GET", thumb_url(i), auth)
            assert status == 200 and image_size(body) == (128, 128)
            no_rate_limit_headers(h, i)
        # A path that is not the thumbnail endpoint is an analytics call
        # (docs/API.md's order: the rate before the path).
        status, h, body = srv.request("GET", "/v1/images/%s/thumb/" % mine[0], auth)
        check_api_error(status, h, body, 429, "RATE_LIMITED", "not a thumb path")
    finally:
        assert srv.stop() == 0


def test_api_thumb_of_an_image_imported_while_running(server, tmp_path, keys):
    """An id the server has not seen yet: the catalog is read again."""
    src = tmp_path / "later"
    (src / "alice" / "new").mkdir(parents=True)
    (src / "alice" / "new" / "late.png").write_bytes(make_png(200, 300, seed=9))
    image_id = import_tree(server, src)["alice/new/late.png"]
    deadline = time.time() + 5
    while True:  # the catalog is read at most every 200 ms
        status, h, body = server.request("GET", thumb_url(image_id), bearer(keys["alice"]))
        if status == 200 or time.time() > deadline:
            break
        time.sleep(0.05)
    assert status == 200 and image_size(body) == (128, 128), (status, body[:200])
    s, h2, cdn = server.request("GET", "/i/%s/thumb" % image_id)
    assert s == 200 and cdn == body and h2["etag"] == h["etag"]
    # Still alice's only.
    s, _, body = server.request("GET", thumb_url(image_id), bearer(keys["bob"]))
    assert s == 404 and json.loads(body)["error"]["code"] == "NOT_FOUND"


def test_api_thumb_of_a_damaged_original(tmp_path, images):
    """A variant that cannot be made: a JSON 500, and no event (the CDN's
    own request for it makes one)."""
    src, _ = images
    srv = Server(tmp_path / "data", {"ANALYTICS_REALTIME_FLUSH_MS": str(FLUSH_MS)})
    ids = import_tree(srv, src)
    key = new_key(srv, "alice")
    image_id = ids["alice/pics/wide.png"]
    damaged = 0
    for root, _, files in os.walk(os.path.join(srv.data_dir, "images")):
        for f in files:
            if image_id in root and f.startswith("original"):
                with open(os.path.join(root, f), "wb") as fh:
                    fh.write(b"not an image" * 10)
                damaged += 1
    assert damaged == 1
    srv.start()
    date = today()
    try:
        for method in ("GET", "HEAD", "GET"):
            status, h, body = srv.request(method, thumb_url(image_id), bearer(key))
            assert status == 500, (method, status, body[:200])
            assert h.get("cache-control") == "no-store" and "etag" not in h, h
            no_rate_limit_headers(h, method)
            if method == "GET":
                check_api_error(status, h, body, 500, "INTERNAL", method)
        # Another image of alice's is not affected.
        other = ids["alice/travel/tall.png"]
        assert srv.request("GET", thumb_url(other), bearer(key))[0] == 200
        time.sleep(3 * FLUSH_MS / 1000)
        assert run(["events", "--date", today()], srv.env, check=0).stdout == ""
        assert srv.request("GET", "/i/%s/thumb" % image_id)[0] == 500
        time.sleep(3 * FLUSH_MS / 1000)
        events = [json.loads(line) for line in
                  run(["events", "--date", today()], srv.env, check=0).stdout.splitlines()]
        if today() != date:
            pytest.skip("the UTC day turned during the test")
        assert [(e["image_id"], e["variant"], e["status"]) for e in events] == \
            [(image_id, "thumb", 500)], events
    finally:
        assert srv.stop() == 0


# ---- no analytics events ----

def snapshot(srv, api_key):
    """Everything analytics holds: the day's raw events, the realtime tables,
    and the API's overview of owner alice."""
    p = run(["events", "--date", today()], srv.env, check=0)
    events = [json.loads(line) for line in p.stdout.splitlines()]
    tables = {t: sorted(srv.sql("SELECT * FROM " + t))
              for t in ("analytics_daily", "analytics_status_daily", "analytics_monthly",
                        "analytics_owner_daily")}
    status, _, body = srv.request("GET", "/v1/analytics/overview?days=1",
                                  {"Authorization": "Bearer " + api_key})
    assert status == 200, body
    overview = json.loads(body)
    overview.pop("freshness", None)
    return events, tables, overview


def dashboard_traffic(srv):
    """Every kind of dashboard request, with the answers each must get."""
    tags = {}
    for name in ASSETS:
        status, h, _ = srv.request("GET", "/dashboard/" + name)
        assert status == 200
        tags[name] = h["etag"]
        assert srv.request("HEAD", "/dashboard/" + name)[0] == 200
        assert srv.request("GET", "/dashboard/" + name, {"If-None-Match": h["etag"]})[0] == 304
    assert srv.request("GET", "/dashboard")[0] == 200
    srv.request("GET", "/dashboard/")  # its answer is another test's business
    for path in UNKNOWN:
        if path.startswith("/dashboard/"):  # /dashboard.html is a CDN path
            assert 400 <= srv.request("GET", path)[0] < 500, path
    assert srv.request("POST", "/dashboard")[0] == 405


def thumb_traffic(srv, ids, keys):
    """Every kind of thumbnail call, with the answers each must get: each
    image's variant made through the API first."""
    alice = bearer(keys["alice"])
    image_id = ids["alice/pics/wide.png"]
    bobs = ids["bob/art/my photo.png"]
    etags = {}
    for rel, i in ids.items():
        status, h, _ = srv.request("GET", thumb_url(i), bearer(owner_key(keys, rel)))
        assert status == 200, rel
        etags[i] = h["etag"]
    path = thumb_url(image_id)
    assert srv.request("GET", path, alice)[0] == 200
    assert srv.request("HEAD", path, alice)[0] == 200
    assert srv.request("GET", path, dict(alice, **{"If-None-Match": etags[image_id]}))[0] == 304
    assert srv.request("HEAD", path, dict(alice, **{"If-None-Match": "*"}))[0] == 304
    assert srv.request("GET", path, dict(alice, Range="bytes=0-9"))[0] in (200, 206)
    assert srv.request("GET", path + "?x=1", alice)[0] == 400
    assert srv.request("GET", thumb_url("zzzzzz"), alice)[0] == 404
    assert srv.request("GET", thumb_url(bobs), alice)[0] == 404
    assert srv.request("GET", thumb_url(image_id.upper()), alice)[0] == 404
    assert srv.request("GET", path + "/", alice)[0] == 404
    assert srv.request("GET", path)[0] == 401
    assert srv.request("GET", path, {"Authorization": "Bearer nope"})[0] == 401
    assert srv.request("GET", path, bearer(keys["writer"]))[0] == 403
    assert srv.request("POST", path, alice)[0] == 405
    assert srv.request("GET", "/dashboard/thumb/" + image_id)[0] == 404


def test_dashboard_and_thumbnails_make_no_events(tmp_path, images):
    src, _ = images
    srv = Server(tmp_path / "data", {"ANALYTICS_REALTIME_FLUSH_MS": str(FLUSH_MS),
                                     "PIXFLARE_API_RATE_LIMIT": "0"})
    ids = import_tree(srv, src)
    keys = {"alice": new_key(srv, "alice"), "bob": new_key(srv, "bob"),
            "writer": new_key(srv, "alice", "--scopes", "write")}
    key = keys["alice"]
    srv.start()
    try:
        date = today()
        # Some CDN traffic first, so that there is something not to change
        # (none of it makes a thumb variant: the API makes them below).
        image_id = ids["alice/pics/wide.png"]
        for path in ("/i/%s" % image_id, "/i/%s/w128" % image_id, "/alice/pics/nope.png"):
            srv.request("GET", path)
        time.sleep(3 * FLUSH_MS / 1000)
        before = snapshot(srv, key)
        assert len(before[0]) == 3 and before[1]["analytics_daily"], before
        assert before[2]["totals"]["requests"] == 2

        dashboard_traffic(srv)
        thumb_traffic(srv, ids, keys)
        time.sleep(3 * FLUSH_MS / 1000)
        after = snapshot(srv, key)
        assert after[0] == before[0], "the dashboard or a thumbnail call made events"
        assert after[1] == before[1], "the dashboard or a thumbnail call changed the tables"
        assert after[2] == before[2], "the dashboard or a thumbnail call changed the overview"

        # The same thumbnail through the CDN counts: the check above can fail.
        status, _, body = srv.request("GET", "/i/%s/thumb" % image_id)
        assert status == 200
        time.sleep(3 * FLUSH_MS / 1000)
        cdn = snapshot(srv, key)
        new = [e for e in cdn[0] if e not in before[0]]
        assert [(e["image_id"], e["variant"], e["status"], e["bytes"]) for e in new] == \
            [(image_id, "thumb", 200, len(body))]
        assert len(cdn[0]) == len(before[0]) + 1
        assert cdn[2]["totals"]["requests"] == before[2]["totals"]["requests"] + 1
        assert cdn[1]["analytics_daily"] != before[1]["analytics_daily"]
        if today() != date:
            pytest.skip("the UTC day turned during the test")
    finally:
        assert srv.stop() == 0
