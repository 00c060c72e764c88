"""Malformed and hostile requests: each gets the right 4xx with the JSON error
body, and the server keeps serving afterwards."""
import json

import pytest

# HTTP parsing and refusals happen before any database is read: on SQLite
# only (the [pg] runs of the API and CDN tests cover the backend).
pytestmark = pytest.mark.sqlite_only

GOOD = "/alice/pics/wide.png"

# (raw request target, expected status, expected error code)
BAD_PATHS = [
    ("/alice/../etc/passwd", 400, "INVALID_PARAMETER"),
    ("/../../../../etc/passwd", 400, "INVALID_PARAMETER"),
    ("/alice/pics/..", 400, "INVALID_PARAMETER"),
    ("/alice/pics/../pics/wide.png", 400, "INVALID_PARAMETER"),
    ("/alice/%2e%2e/%2e%2e/etc/passwd", 400, "INVALID_PARAMETER"),
    ("/alice/%2E%2E/x/y", 400, "INVALID_PARAMETER"),
    ("/alice/.%2e/x/y", 400, "INVALID_PARAMETER"),
    ("/alice/pics/%2e", 400, "INVALID_PARAMETER"),
    ("/alice/pics/..%2fsecret", 400, "INVALID_PARAMETER"),
    ("/alice/pics/..%2Fsecret", 400, "INVALID_PARAMETER"),
    ("/alice/pics/..%5c..%5csecret", 400, "INVALID_PARAMETER"),
    ("/alice/pics/..\\..\\secret", 400, "INVALID_PARAMETER"),
    ("/alice/pics/wide.png%00.jpg", 400, "INVALID_PARAMETER"),
    ("/alice/pics/wide.png%00", 400, "INVALID_PARAMETER"),
    ("/alice/pics/wide%0d%0aX-Injected:%201.png", 400, "INVALID_PARAMETER"),
    ("/alice/pics/wide.png%", 400, "INVALID_PARAMETER"),
    ("/alice/pics/wide.png%g1", 400, "INVALID_PARAMETER"),
    ("/alice/pics/wide.png%2", 400, "INVALID_PARAMETER"),
    ("/alice/pics/" + "a" * 256, 400, "INVALID_PARAMETER"),
    ("/alice/pics/wide.png/w9999", 400, "INVALID_PARAMETER"),
    ("/alice/pics/wide.png/W128", 400, "INVALID_PARAMETER"),
    ("/alice/pics/wide.png/thumb%00", 400, "INVALID_PARAMETER"),
    ("/alice/pics/wide.png/..", 400, "INVALID_PARAMETER"),
    ("/i/abc123/huge", 400, "INVALID_PARAMETER"),
    ("/" + "a/" * 1100, 414, "URI_TOO_LONG"),
    ("/alice/pics/wide.png?" + "x" * 9000, 414, "URI_TOO_LONG"),
    ("/alice/pics", 404, "NOT_FOUND"),
    ("/alice/pics/wide.png/w128/extra", 404, "NOT_FOUND"),
    ("/alice//wide.png", 404, "NOT_FOUND"),
    ("/alice/pics/wide.png/", 404, "NOT_FOUND"),
    ("/i/../../etc", 400, "INVALID_PARAMETER"),
    ("/i/ABCDEF", 404, "NOT_FOUND"),
    ("/i/abc", 404, "NOT_FOUND"),
    ("/_internal/x/y", 404, "NOT_FOUND"),
    ("/.git/config/x", 404, "NOT_FOUND"),
    ("/dashboard/x/y", 404, "NOT_FOUND"),
]


def check_error(status, headers, body, want_status, want_code):
    assert status == want_status, body
    assert headers.get("content-type") == "application/json"
    doc = json.loads(body)
    assert doc["success"] is False
    assert doc["error"]["code"] == want_code
    assert isinstance(doc["error"]["message"], str) and doc["error"]["message"]


@pytest.mark.parametrize("target,status,code", BAD_PATHS, ids=[p[0][:40] for p in BAD_PATHS])
def test_bad_paths(server, target, status, code):
    req = b"GET " + target.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    check_error(*server.raw(req), status, code)
    s, _, body = server.request("GET", GOOD)
    assert s == 200 and body == server.files["alice/pics/wide.png"]


BAD_HEADERS = [
    ({"Range": "bytes=999999-"}, 416, "RANGE_NOT_SATISFIABLE"),
    ({"Range": "bytes=abc-def"}, 416, "RANGE_NOT_SATISFIABLE"),
    ({"Range": "bytes=-0"}, 416, "RANGE_NOT_SATISFIABLE"),
    ({"Range": "bytes=10-5"}, 416, "RANGE_NOT_SATISFIABLE"),
    ({"Range": "bytes=99999999999999999999999999-"}, 416, "RANGE_NOT_SATISFIABLE"),
    ({"Range": "bytes=1-2;3"}, 416, "RANGE_NOT_SATISFIABLE"),
    ({"X-Big": "v" * 9000}, 431, "HEADERS_TOO_LARGE"),
    ({"X-Big": "v" * 15000}, 431, "HEADERS_TOO_LARGE"),
    ({"X-A%d" % i: "v" * 200 for i in range(45)}, 431, "HEADERS_TOO_LARGE"),
]


@pytest.mark.parametrize("headers,status,code", BAD_HEADERS,
                         ids=["%s" % list(h)[0] + ":" + list(h.values())[0][:20] for h, _, _ in BAD_HEADERS])
def test_bad_headers(server, headers, status, code):
    lines = "".join("%s: %s\r\n" % kv for kv in headers.items())
    req = ("GET %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n" % (GOOD, lines)).encode()
    check_error(*server.raw(req), status, code)
    assert server.request("GET", GOOD)[0] == 200


def test_largest_accepted_request(server):
    """A target and headers just under both caps together are still served."""
    target = GOOD + "?" + "q" * (8192 - len(GOOD) - 1)
    headers = "".join("X-Pad-%02d: %s\r\n" % (i, "p" * 180) for i in range(40))
    req = ("GET %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n" % (target, headers)).encode()
    status, _, body = server.raw(req)
    assert status == 200 and body == server.files["alice/pics/wide.png"]


def test_beyond_the_connection_pool_is_refused(server):
    """Requests too big for libmicrohttpd's per-connection pool get its own
    4xx (not our JSON: it answers before Pixflare sees the request)."""
    req = ("GET %s HTTP/1.1\r\nHost: x\r\nX-Huge: %s\r\n\r\n" % (GOOD, "h" * 40000)).encode()
    status, _, _ = server.raw(req)
    assert status in (413, 414, 431)
    assert server.request("GET", GOOD)[0] == 200


def test_harmless_junk_headers_are_ignored(server):
    for headers in ({"If-None-Match": "garbage"}, {"If-Modified-Since": "yesterday"},
                    {"If-Range": "nonsense", "Range": "bytes=0-1"}, {"Range": "lines=1-2"}):
        status, _, body = server.request("GET", GOOD, headers)
        assert status == 200 and body == server.files["alice/pics/wide.png"], headers


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"])
def test_other_methods_405(server, method):
    req = ("%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
           % (method, GOOD)).encode()
    status, headers, body = server.raw(req)
    check_error(status, headers, body, 405, "METHOD_NOT_ALLOWED")
    assert headers["allow"] == "GET, HEAD"


def test_garbage_and_truncated_requests_do_not_hurt(server):
    junk = [b"\x00\x01\x02\xff" * 100 + b"\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
            b"GET /alice/pics/wide.png HTTP/1.1\r\nHost: x\r\n",  # never finished
            b"GET /alice/pics/wide.png HTTP/1.1\r\nBad Header Line\r\n\r\n",
            b"\r\n" * 1000, b"G" * 70000]
    for data in junk:
        try:
            server.raw(data, timeout=2)
        except OSError:
            pass
    status, _, body = server.request("GET", GOOD)
    assert status == 200 and body == server.files["alice/pics/wide.png"]


def test_pipelined_requests(server):
    req = b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % p.encode()
                   for p in (GOOD, "/nope/x/y", GOOD))
    import socket
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(req + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        buf = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            buf += b
    assert buf.count(b"HTTP/1.1 200") == 3
    assert buf.count(b"HTTP/1.1 404") == 1
