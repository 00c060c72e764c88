"""The dashboard's HTTP side against the real binary: the assets embedded from
dashboard/ (bytes equal to the repository's files, types, security headers,
ETag / 304, HEAD, no-cache), refusals (unknown names, traversal, methods),
index.html loading nothing from another origin, the /dashboard/thumb/{id}
thumbnails (the CDN's thumb variant, private caching, Sec-Fetch-Site rule),
and that none of it makes an analytics event (while a CDN request does)."""
import datetime
import html.parser
import json
import os
import re
import sqlite3
import time

import pytest

from pftest import Server, image_size, import_tree, run

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


def test_other_methods_405(server, ids):
    image_id = next(iter(ids.values()))
    for path in ("/dashboard", "/dashboard/", "/dashboard/app.js", "/dashboard/nope.js",
                 "/dashboard/thumb/" + image_id):
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


# ---- thumbnails ----

def test_thumb_is_the_cdn_thumb_variant(server, ids):
    for rel, image_id in ids.items():
        path = "/dashboard/thumb/" + image_id
        # First through the dashboard: it makes the variant.
        status, h, body = server.request("GET", path)
        assert status == 200, (rel, status, body[:200])
        assert image_size(body) == (128, 128), rel
        assert h["cache-control"] == "private, max-age=86400"
        assert int(h["content-length"]) == len(body)
        check_security_headers(h, path)
        s2, h2, cdn = server.request("GET", "/i/%s/thumb" % image_id)
        assert s2 == 200 and cdn == body, rel
        assert h["content-type"] == h2["content-type"] == "image/png"
        assert h["etag"] == h2["etag"] and h["etag"].endswith('-thumb"')
        assert h2["cache-control"] == "public, max-age=31536000, immutable"
        # HEAD, If-None-Match and Range as on the CDN, caching kept private.
        s3, h3, b3 = server.request("HEAD", path)
        assert (s3, b3) == (200, b"") and h3["etag"] == h["etag"]
        assert h3["content-length"] == h["content-length"]
        for inm in (h["etag"], "*"):
            s4, h4, b4 = server.request("GET", path, {"If-None-Match": inm})
            assert (s4, b4) == (304, b""), inm
            assert h4["etag"] == h["etag"]
            assert h4["cache-control"] == "private, max-age=86400"
        s5, h5, b5 = server.request("GET", path, {"If-None-Match": '"other-thumb"'})
        assert s5 == 200 and b5 == body
        s6, h6, b6 = server.request("GET", path, {"Range": "bytes=0-9"})
        assert s6 == 206 and b6 == body[:10]
        assert h6["cache-control"] == "private, max-age=86400"


def test_thumb_bad_ids(server, ids):
    image_id = next(iter(ids.values()))
    bad = {
        "zzzzzz": (404,), "000000": (404,), image_id.upper(): (404,), image_id[:5]: (404,),
        image_id + "a": (404,), "a" * 32: (404,), "a" * 33: (404,), "a" * 64: (404,),
        "a" * 300: (400, 404, 414), image_id + "%2F": (400, 404), "%2F" + image_id: (400, 404),
        image_id + "%2Fthumb": (400, 404), "": (404,), image_id + "/": (404,),
        image_id + "/thumb": (404,), image_id + "/original": (404,), "../" + image_id: (400, 404),
        "..": (400, 404), "%2e%2e": (400, 404), image_id + "%00": (400, 404),
        image_id + "%20": (404,), "%": (400, 404), "i": (404,),
    }
    for bad_id, statuses in bad.items():
        path = "/dashboard/thumb/" + bad_id
        status, h, body = server.request("GET", path)
        check_error(status, h, body, path, statuses)
        assert not body.startswith(b"\x89PNG")


@pytest.mark.parametrize("site,status", [
    (None, 200), ("same-origin", 200), ("none", 200),
    ("cross-site", 403), ("same-site", 403), ("Same-Origin", 403), ("same-origin, none", 403),
    ("", 403), ("whatever", 403),
])
def test_thumb_sec_fetch_site(server, ids, site, status):
    image_id = next(iter(ids.values()))
    headers = {} if site is None else {"Sec-Fetch-Site": site}
    for method in ("GET", "HEAD"):
        st, h, body = server.request(method, "/dashboard/thumb/" + image_id, headers)
        assert st == status, (site, method, st, body[:200])
        check_security_headers(h, site)
        if status == 403 and method == "GET":
            check_error(st, h, body, site, statuses=(403,))
            assert json.loads(body)["error"]["code"] == "FORBIDDEN"
        elif status == 200 and method == "GET":
            assert image_size(body) == (128, 128)
    # Refused before anything else: an unknown id or a revalidation too.
    if status == 403:
        st, _, _ = server.request("GET", "/dashboard/thumb/zzzzzz", headers)
        assert st == 403
        _, h, _ = server.request("GET", "/i/%s/thumb" % image_id)
        st, _, _ = server.request("GET", "/dashboard/thumb/" + image_id,
                                  dict(headers, **{"If-None-Match": h["etag"]}))
        assert st == 403
    # The CDN's own URL is public, whatever the header.
    assert server.request("GET", "/i/%s/thumb" % image_id, headers)[0] == 200


# ---- no analytics events ----

def snapshot(srv, api_key):
    """Everything analytics holds: the day's raw events, the realtime tables,
    and the API's overview of owner alice."""
    p = run(["events", "--date", today()], srv.env, check=0)
    events = [json.loads(line) for line in p.stdout.splitlines()]
    db = sqlite3.connect(os.path.join(srv.data_dir, "pixflare.db"))
    try:
        tables = {t: sorted(db.execute("SELECT * FROM " + t))
                  for t in ("analytics_daily", "analytics_status_daily", "analytics_monthly")}
    finally:
        db.close()
    status, _, body = srv.request("GET", "/v1/analytics/overview?days=1",
                                  {"Authorization": "Bearer " + api_key})
    assert status == 200, body
    overview = json.loads(body)
    overview.pop("freshness", None)
    return events, tables, overview


def dashboard_traffic(srv, ids):
    """Every kind of dashboard request, with the answers each must get."""
    image_id = ids["alice/pics/wide.png"]
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
    # Thumbnails: each image's variant made through the dashboard first.
    etags = {}
    for rel, i in ids.items():
        status, h, _ = srv.request("GET", "/dashboard/thumb/" + i)
        assert status == 200, rel
        etags[i] = h["etag"]
    thumb = "/dashboard/thumb/" + image_id
    assert srv.request("HEAD", thumb)[0] == 200
    assert srv.request("GET", thumb, {"If-None-Match": etags[image_id]})[0] == 304
    assert srv.request("GET", thumb, {"Range": "bytes=0-9"})[0] == 206
    assert srv.request("GET", thumb, {"Sec-Fetch-Site": "cross-site"})[0] == 403
    assert srv.request("GET", thumb, {"Sec-Fetch-Site": "same-origin"})[0] == 200
    assert srv.request("GET", "/dashboard/thumb/zzzzzz")[0] == 404
    assert srv.request("GET", "/dashboard/thumb/" + image_id.upper())[0] == 404
    assert srv.request("GET", "/dashboard/thumb/" + "a" * 40)[0] == 404
    assert srv.request("GET", "/dashboard/thumb/%2F" + image_id)[0] in (400, 404)
    assert srv.request("POST", thumb)[0] == 405


def test_dashboard_makes_no_events(tmp_path, images):
    src, _ = images
    srv = Server(tmp_path / "data", {"ANALYTICS_REALTIME_FLUSH_MS": str(FLUSH_MS),
                                     "PIXFLARE_API_RATE_LIMIT": "0"})
    ids = import_tree(srv, src)
    p = srv.cli("keys", "create", "--owner", "alice", check=0)
    key = p.stdout.strip()
    srv.start()
    try:
        date = today()
        # Some CDN traffic first, so that there is something not to change.
        image_id = ids["alice/pics/wide.png"]
        for path in ("/i/%s" % image_id, "/i/%s/w128" % image_id, "/alice/pics/nope.png"):
            srv.request("GET", path)
        time.sleep(3 * FLUSH_MS / 1000)
        before = snapshot(srv, key)
        assert len(before[0]) == 3 and before[1]["analytics_daily"], before
        assert before[2]["totals"]["requests"] == 2

        dashboard_traffic(srv, ids)
        time.sleep(3 * FLUSH_MS / 1000)
        after = snapshot(srv, key)
        assert after[0] == before[0], "the dashboard made events"
        assert after[1] == before[1], "the dashboard changed the analytics tables"
        assert after[2] == before[2], "the dashboard changed the overview"

        # The same thumbnail through the CDN counts: the check above can fail.
        status, _, body = srv.request("GET", "/i/%s/thumb" % image_id)
        assert status == 200
        time.sleep(3 * FLUSH_MS / 1000)
        cdn = snapshot(srv, key)
        new = [e for e in cdn[0] if e not in before[0]]
        assert [(e["image_id"], e["variant"], e["status"], e["bytes"]) for e in new] == \
            [(image_id, "thumb", 200, len(body))]
        assert cdn[2]["totals"]["requests"] == before[2]["totals"]["requests"] + 1
        assert cdn[1]["analytics_daily"] != before[1]["analytics_daily"]
        if today() != date:
            pytest.skip("the UTC day turned during the test")
    finally:
        assert srv.stop() == 0
