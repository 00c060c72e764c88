"""The analytics REST API (/v1/analytics/overview and /v1/analytics/images/{id})
end to end: real servers on 127.0.0.1, API keys made with `pixflare keys`,
CDN traffic this test sends itself, and every number of the answers checked
against counts computed here from the responses received (bytes are response
body bytes, 0 for HEAD and 304; totals, lists and series count 200, 206 and
304; status_codes counts every status of the owner). Past dates get their
traffic from servers whose clock libfaketime sets back (as in test_batch.py)."""
import collections
import copy
import csv
import datetime
import io
import json
import os
import re
import subprocess
import threading
import time

import pytest

from pftest import BIN, Server, clean_env, db_text, import_tree, make_png, run
from test_batch import day, faked

FLUSH_MS = 100
KEY_RE = re.compile(r"pfk_[a-z0-9]{12}_[A-Za-z0-9]{40}")
OVERVIEW_KEYS = {"owner", "range", "totals", "timeseries", "top_images", "countries", "variants",
                 "status_codes", "freshness"}
IMAGE_KEYS = {"image_id", "owner", "album", "filename", "range", "totals", "variants",
              "countries", "timeseries"}
GOOD = (200, 206, 304)  # the statuses analytics_daily counts

# The images of the tests: owner/album/file -> (width, height, seed). Names
# with a comma and quotes, and one a spreadsheet would take for a formula.
TREE = {
    "alice/pics/wide.png": (300, 200, 1),
    "alice/pics/noise.png": (120, 90, 2),
    "alice/travel/tall.png": (90, 160, 3),
    'alice/pics/a,"b".png': (40, 30, 4),
    "alice/pics/=sum(1).png": (50, 20, 5),
    "alice/pics/idle.png": (30, 30, 6),  # never requested
    "bob/art/my photo.png": (64, 48, 7),
    "bob/art/x1.png": (33, 33, 8),
    "bob/art/x2.png": (34, 34, 9),
}


def today():
    return day(0)


def make_tree(tmp_path, tree=TREE):
    src = tmp_path / "src"
    for rel, (w, h, seed) in tree.items():
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(make_png(w, h, seed=seed, noise=(seed == 2)))
    return src


def new_server(tmp_path, extra=None, name="data"):
    env = {"ANALYTICS_REALTIME_FLUSH_MS": str(FLUSH_MS), "ANALYTICS_BATCH_ENABLED": "false",
           "PIXFLARE_API_RATE_LIMIT": "0"}
    env.update(extra or {})
    return Server(tmp_path / name, env)


def new_key(srv, owner, *flags, env=None):
    """`keys create`: the key alone on stdout, once."""
    p = run(["keys", "create", "--owner", owner] + list(flags), env or srv.env, check=0)
    key = p.stdout[:-1]
    assert p.stdout == key + "\n" and KEY_RE.fullmatch(key), p.stdout
    assert key not in p.stderr
    return key


def key_id(key):
    return key[4:16]


def url_of(rel):
    return "/" + "/".join(
        "".join(c if c.isalnum() or c in "._-" else "%%%02X" % ord(c) for c in seg)
        for seg in rel.split("/"))


class Api:
    """Calls to /v1/ with a key (or none)."""

    def __init__(self, srv, key=None):
        self.srv = srv
        self.key = key

    def call(self, path, method="GET", key=None, headers=None):
        h = dict(headers or {})
        k = key if key is not None else self.key
        if k is not None and "Authorization" not in h:
            h["Authorization"] = "Bearer " + k
        return self.srv.request(method, path, h)

    def get(self, path, status=200, **kw):
        st, hdrs, body = self.call(path, **kw)
        assert st == status, (path, st, body)
        assert hdrs.get("cache-control") == "no-store", (path, hdrs)
        if hdrs.get("content-type", "").startswith("application/json"):
            return json.loads(body), hdrs
        return body.decode("utf-8"), hdrs

    def overview(self, query=""):
        return legacy(self.get("/v1/analytics/overview" + ("?" + query if query else ""))[0])

    def image(self, image_id, query=""):
        return legacy(self.get("/v1/analytics/images/%s%s" % (image_id,
                                                              "?" + query if query else ""))[0])


def legacy(j):
    """An answer without the fields of issue 20 (interval, uniques,
    exclude_bots, clients: test_api_more.py checks their numbers), once
    their presence and shape are checked, so that the comparisons here stay
    on the counts they test."""
    j = copy.deepcopy(j)
    assert j.pop("exclude_bots") is False, j
    assert [c["client"] for c in j.pop("clients")] == ["human", "preview", "bot"], j
    assert "previous" not in j, j
    assert j["range"].pop("interval") == "day", j
    assert isinstance(j["totals"].pop("uniques"), int), j
    for e in j["timeseries"] + j.get("top_images", []):
        assert isinstance(e.pop("uniques"), int), e
    return j


def assert_error(st, hdrs, body, status, code, parameter=None):
    assert st == status, (st, body)
    j = json.loads(body)
    assert j["success"] is False and j["error"]["code"] == code, j
    assert isinstance(j["error"]["message"], str) and j["error"]["message"], j
    if parameter is not None:
        assert j["error"].get("parameter") == parameter, j
    assert hdrs.get("cache-control") == "no-store", hdrs
    assert hdrs.get("content-type", "").startswith("application/json"), hdrs
    return j


# ---- Expected answers, computed from the responses received ----

Hit = collections.namedtuple("Hit", "owner image_id variant status country bytes date")


class Traffic:
    """Sends CDN requests one by one and keeps what each response counts as."""

    def __init__(self, srv, ids):
        self.srv = srv
        self.ids = ids
        self.hits = []
        self.etags = {}

    def send(self, method, rel=None, variant="", via_id=False, country=None, headers=None,
             path=None, owner=None, image_id=None, expect=None):
        """One request of `rel` (owner/album/file) or of a raw `path` (then
        `owner`/`image_id` say whom it is charged to, or None)."""
        h = dict(headers or {})
        if country is not None:
            h["CF-IPCountry"] = country
        if path is None:
            image_id = self.ids[rel]
            owner = rel.split("/")[0]
            base = "/i/" + image_id if via_id else url_of(rel)
            path = base + ("/" + variant if variant else "")
        if h.get("If-None-Match") == "ETAG":
            h["If-None-Match"] = self.etags[image_id, variant or "original"]
        st, hdrs, body = self.srv.request(method, path, h)
        if expect is not None:
            assert st == expect, (method, path, h, st, body)
        if st == 200 and method == "GET" and image_id:
            self.etags[image_id, variant or "original"] = hdrs["etag"]
        c = h.get("CF-IPCountry")
        cc = c if c is not None and re.fullmatch(r"[A-Z][A-Z0-9]", c) else "XX"
        nbytes = 0 if method == "HEAD" or st == 304 else len(body)
        if st == 206:
            assert nbytes == 10
        self.hits.append(Hit(owner if st != 400 else None, image_id if st != 400 else "",
                             variant or "original", st, cc, nbytes, today()))
        return st


def ranked(groups, key):
    """SPEC order: requests desc, bytes desc, name asc."""
    items = [{key: k, "requests": v[0], "bandwidth_bytes": v[1]} for k, v in groups.items()]
    return sorted(items, key=lambda x: (-x["requests"], -x["bandwidth_bytes"], x[key]))


def group(hits, field):
    g = collections.defaultdict(lambda: [0, 0])
    for h in hits:
        g[getattr(h, field)][0] += 1
        g[getattr(h, field)][1] += h.bytes
    return g


def series(hits, start, days):
    by_date = group(hits, "date")
    out = []
    for i in range(days):
        d = (datetime.date.fromisoformat(start) + datetime.timedelta(days=i)).isoformat()
        r, b = by_date.get(d, (0, 0))
        out.append({"date": d, "requests": r, "bandwidth_bytes": b})
    return out


def expected_overview(hits, owner, names, start, days, limit=10, last_agg=None, realtime=True):
    mine = [h for h in hits if h.owner == owner]
    good = [h for h in mine if h.status in GOOD]
    end = (datetime.date.fromisoformat(start) + datetime.timedelta(days=days - 1)).isoformat()
    good = [h for h in good if start <= h.date <= end]
    mine = [h for h in mine if start <= h.date <= end]
    top = ranked(group(good, "image_id"), "image_id")[:limit]
    for t in top:
        album, filename = names[t["image_id"]]
        t.update(album=album, filename=filename)
    statuses = collections.Counter(h.status for h in mine)
    return {
        "owner": owner,
        "range": {"start": start, "end": end, "days": days},
        "totals": {"requests": len(good), "bandwidth_bytes": sum(h.bytes for h in good)},
        "timeseries": series(good, start, days),
        "top_images": [{k: t[k] for k in ("image_id", "album", "filename", "requests",
                                          "bandwidth_bytes")} for t in top],
        "countries": ranked(group(good, "country"), "country"),
        "variants": ranked(group(good, "variant"), "variant"),
        "status_codes": [{"status": s, "requests": n} for s, n in
                         sorted(statuses.items(), key=lambda x: (-x[1], x[0]))],
        "freshness": {"realtime": realtime, "last_aggregation_date": last_agg},
    }


def expected_image(hits, owner, image_id, names, start, days, last_agg=None):
    good = [h for h in hits if h.owner == owner and h.image_id == image_id and h.status in GOOD]
    end = (datetime.date.fromisoformat(start) + datetime.timedelta(days=days - 1)).isoformat()
    good = [h for h in good if start <= h.date <= end]
    album, filename = names[image_id]
    return {
        "image_id": image_id, "owner": owner, "album": album, "filename": filename,
        "range": {"start": start, "end": end, "days": days},
        "totals": {"requests": len(good), "bandwidth_bytes": sum(h.bytes for h in good)},
        "variants": ranked(group(good, "variant"), "variant"),
        "countries": ranked(group(good, "country"), "country"),
        "timeseries": series(good, start, days),
        "freshness": {"realtime": True, "last_aggregation_date": last_agg},
    }


def names_of(ids):
    out = {}
    for rel, image_id in ids.items():
        _, album, filename = rel.split("/", 2)
        out[image_id] = (album, filename)
    return out


def wait_for(fn, timeout=20, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        ok, last = fn()
        if ok:
            return last
        time.sleep(FLUSH_MS / 1000 / 2)
    raise AssertionError("timed out waiting for %s; last: %r" % (what, last))


def wait_totals(api, want_totals, query="days=7", what="the realtime flush"):
    """Poll the overview until its totals (and status codes) are `want`."""
    def check():
        ov = api.overview(query)
        return (ov["totals"], ov["status_codes"]) == want_totals, ov
    return wait_for(check, what=what)


def send_mix(t):
    """The known set of CDN requests for two owners (alice, bob)."""
    ok = t.send
    ok("GET", "alice/pics/wide.png", country="US", expect=200)
    ok("GET", "alice/pics/wide.png", country="US", expect=200)
    ok("GET", "alice/pics/wide.png", variant="original", country="DE", expect=200)
    ok("GET", "alice/pics/wide.png", variant="w128", country="US", expect=200)
    ok("GET", "alice/pics/wide.png", variant="w128", expect=200)  # no header: XX
    ok("GET", "alice/pics/wide.png", variant="thumb", via_id=True, country="T1", expect=200)
    ok("HEAD", "alice/pics/wide.png", country="FR", expect=200)  # 0 bytes
    ok("GET", "alice/pics/wide.png", country="US", headers={"If-None-Match": "ETAG"},
       expect=304)
    ok("GET", "alice/pics/wide.png", via_id=True, country="US",
       headers={"If-None-Match": "ETAG"}, expect=304)
    ok("GET", "alice/pics/wide.png", country="DE", headers={"Range": "bytes=0-9"}, expect=206)
    ok("GET", "alice/pics/noise.png", country="us", expect=200)  # not [A-Z][A-Z0-9]: XX
    ok("GET", "alice/pics/noise.png", variant="w256", country="USA", expect=200)
    ok("GET", "alice/travel/tall.png", variant="thumb", country="JP", expect=200)
    ok("GET", 'alice/pics/a,"b".png', country="JP", expect=200)
    ok("GET", "alice/pics/=sum(1).png", country="DE", expect=200)
    ok("GET", "alice/pics/wide.png", headers={"Range": "bytes=99999999-"}, expect=416)
    ok("GET", "alice/pics/wide.png", headers={"If-Match": '"nope"'}, expect=412)
    ok("POST", "alice/pics/wide.png", expect=405)
    ok("GET", path="/alice/pics/missing.png", owner="alice", image_id="", expect=404)
    ok("GET", path="/alice/pics/missing.png/w128", owner="alice", image_id="", expect=404)
    ok("GET", path="/alice/nope/missing.png", owner="alice", image_id="", expect=404)
    ok("GET", path="/alice/pics/wide.png/w999", expect=400)  # unknown variant: no owner
    ok("GET", "bob/art/my photo.png", country="GB", expect=200)
    ok("GET", "bob/art/my photo.png", via_id=True, country="GB", expect=200)
    ok("GET", "bob/art/my photo.png", variant="w128", via_id=True, country="US", expect=200)
    for rel in ("bob/art/x2.png", "bob/art/x1.png", "bob/art/x2.png", "bob/art/x1.png"):
        ok("HEAD", rel, country="CA", expect=200)  # x1 and x2 tie on (2, 0): id order
    ok("GET", path="/bob/art/none.png", owner="bob", image_id="", expect=404)
    ok("GET", path="/i/zzzzzz", expect=404)  # unknown id: no owner
    ok("GET", path="/carol/x/y.png", expect=404)  # unknown owner


@pytest.fixture
def world(tmp_path):
    """A server with two owners' images, read keys for both, and the mix sent
    and flushed. Yields (srv, ids, traffic, {owner: Api})."""
    srv = new_server(tmp_path)
    ids = import_tree(srv, make_tree(tmp_path))
    assert len(ids) == len(TREE)
    keys = {o: new_key(srv, o) for o in ("alice", "bob")}
    srv.start()
    date = today()
    t = Traffic(srv, ids)
    send_mix(t)
    apis = {o: Api(srv, k) for o, k in keys.items()}
    names = names_of(ids)
    for o in ("alice", "bob"):
        want = expected_overview(t.hits, o, names, day(-6), 7)
        wait_totals(apis[o], (want["totals"], want["status_codes"]))
    yield srv, ids, t, apis
    assert srv.stop() == 0
    if today() != date:
        pytest.skip("the UTC day turned during the test")


# ---- 1. Values ----

def test_overview_and_image_numbers_match_the_requests_sent(world):
    srv, ids, t, apis = world
    names = names_of(ids)
    statuses = {h.status for h in t.hits}
    assert {200, 206, 304, 400, 404, 405, 412, 416} <= statuses, statuses
    for owner in ("alice", "bob"):
        api = apis[owner]
        ov = api.overview("days=7")
        assert set(ov) == OVERVIEW_KEYS, sorted(ov)
        assert ov == expected_overview(t.hits, owner, names, day(-6), 7)
        # The default range: 30 days ending today, limit 10.
        assert api.overview() == expected_overview(t.hits, owner, names, day(-29), 30)
        # The range forms: start and end, end alone (30 days ending there).
        assert api.overview("start=%s&end=%s" % (day(-2), day(0))) == \
            expected_overview(t.hits, owner, names, day(-2), 3)
        past = api.overview("end=" + day(-1))
        assert past == expected_overview(t.hits, owner, names, day(-30), 30)
        assert past["totals"] == {"requests": 0, "bandwidth_bytes": 0}
        assert past["top_images"] == [] and past["status_codes"] == []
        assert len(past["timeseries"]) == 30 and past["timeseries"][-1]["date"] == day(-1)
        # Every image of the owner, requested or not.
        for rel, image_id in ids.items():
            if rel.split("/")[0] != owner:
                continue
            im = api.image(image_id, "days=7")
            assert IMAGE_KEYS <= set(im), sorted(im)
            assert im == expected_image(t.hits, owner, image_id, names, day(-6), 7), rel
            assert api.image(image_id) == expected_image(t.hits, owner, image_id, names,
                                                         day(-29), 30)

    # A few things the generic comparison would also catch, spelt out.
    ov = apis["alice"].overview("days=7")
    wide = ids["alice/pics/wide.png"]
    assert ov["top_images"][0]["image_id"] == wide
    assert ov["top_images"][0]["requests"] == 10  # 200 x7, HEAD, 304 x2, 206; not 412/416/405
    assert {"status": 404, "requests": 3} in ov["status_codes"]
    assert {"status": 405, "requests": 1} in ov["status_codes"]
    assert all(s["status"] != 400 for s in ov["status_codes"])
    assert [c["country"] for c in ov["countries"]][0] == "US"
    assert ids["alice/pics/idle.png"] not in {x["image_id"] for x in ov["top_images"]}
    assert [d["date"] for d in ov["timeseries"]] == [day(i) for i in range(-6, 1)]
    assert ov["timeseries"][-1] == {"date": day(0), **ov["totals"]}
    assert ov["freshness"] == {"realtime": True, "last_aggregation_date": None}
    bob = apis["bob"].overview("days=7")
    x1, x2 = ids["bob/art/x1.png"], ids["bob/art/x2.png"]
    assert [x["image_id"] for x in bob["top_images"]] == \
        [ids["bob/art/my photo.png"]] + sorted([x1, x2])  # the tie: id ascending
    assert bob["top_images"][1]["bandwidth_bytes"] == 0  # HEAD

    # limit: the first N of the same order.
    full = apis["alice"].overview("days=7&limit=100")["top_images"]
    assert len(full) == 5
    assert apis["alice"].overview("days=7&limit=2")["top_images"] == full[:2]
    assert apis["alice"].overview("days=7&limit=1")["top_images"] == full[:1]
    # Three images with one request each: ordered by bytes.
    ones = [x for x in full if x["requests"] == 1]
    assert len(ones) == 3
    assert [x["bandwidth_bytes"] for x in ones] == sorted((x["bandwidth_bytes"] for x in ones),
                                                          reverse=True)


def test_isolation_between_owners(world):
    srv, ids, t, apis = world
    alice, bob = apis["alice"], apis["bob"]
    unknown = alice.call("/v1/analytics/images/zzzzzz")
    assert unknown[0] == 404
    assert_error(*unknown, 404, "NOT_FOUND")
    for api, others in ((alice, "bob/"), (bob, "alice/")):
        for rel, image_id in ids.items():
            if rel.startswith(others):
                for q in ("", "?days=7", "?format=csv"):
                    st, hdrs, body = api.call("/v1/analytics/images/" + image_id + q)
                    assert (st, body) == (unknown[0], unknown[2]), (rel, st, body)
    theirs = {o: {i for r, i in ids.items() if r.startswith(o + "/")} for o in ("alice", "bob")}
    for me, other in (("alice", "bob"), ("bob", "alice")):
        ov = apis[me].overview("days=90&limit=100")
        assert ov["owner"] == me
        got = {x["image_id"] for x in ov["top_images"]}
        assert got and got <= theirs[me] and not got & theirs[other]
        mine = [h for h in t.hits if h.owner == me and h.status in GOOD]
        assert ov["totals"]["requests"] == len(mine)
        assert sum(s["requests"] for s in ov["status_codes"]) == \
            len([h for h in t.hits if h.owner == me])


def test_answers_are_one_snapshot_under_concurrent_traffic(tmp_path):
    """While CDN traffic flows (and flushes land every millisecond), every
    overview adds up: its lists, series and totals come from one snapshot."""
    srv = new_server(tmp_path, {"ANALYTICS_REALTIME_FLUSH_MS": "2"})
    ids = import_tree(srv, make_tree(tmp_path))
    key = new_key(srv, "alice")
    bob = new_key(srv, "bob")
    srv.start()
    date = today()
    names = names_of(ids)
    rels = [r for r in sorted(ids) if r.startswith("alice/") and "idle" not in r]
    stop = threading.Event()
    senders, answers, failures = [], [], []

    def send(n, seed):
        tr = Traffic(srv, ids)
        senders.append(tr)
        for i in range(n):
            rel = rels[(i * 7 + seed) % len(rels)]
            tr.send("GET", rel, variant=("", "w128", "thumb")[(i + seed) % 3],
                    country=("US", "DE", "JP", None)[i % 4], expect=200)
            if stop.is_set():
                break

    def ask():
        api = Api(srv, key)
        while not stop.is_set() or len(answers) < 5:
            ov = api.overview("days=7&limit=100")
            total = ov["totals"]["requests"]
            for part in ("timeseries", "top_images", "countries", "variants"):
                if sum(x["requests"] for x in ov[part]) != total or \
                        sum(x["bandwidth_bytes"] for x in ov[part]) != \
                        ov["totals"]["bandwidth_bytes"]:
                    failures.append((part, ov))
            answers.append(total)

    senders_t = [threading.Thread(target=send, args=(400, s)) for s in range(4)]
    askers = [threading.Thread(target=ask) for _ in range(2)]
    for th in senders_t + askers:
        th.start()
    try:
        for th in senders_t:
            th.join()
    finally:
        stop.set()
        for th in senders_t + askers:
            th.join()
    assert not failures, failures[0]
    assert len(answers) >= 5 and len(set(answers)) > 2, answers
    hits = [h for tr in senders for h in tr.hits]
    want = expected_overview(hits, "alice", names, day(-6), 7, 100)
    wait_for(lambda: (Api(srv, key).overview("days=7&limit=100") == want, None),
             what="the last flush")
    assert Api(srv, bob).overview("days=7")["totals"] == {"requests": 0, "bandwidth_bytes": 0}
    assert srv.stop() == 0
    if today() != date:
        pytest.skip("the UTC day turned during the test")


# ---- 5. CSV ----

def csv_sections(text):
    assert text.endswith("\r\n")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    sections, cur = [], []
    for row in rows:
        if row == []:
            sections.append(cur)
            cur = []
        else:
            cur.append(row)
    sections.append(cur)
    assert all(sections), "an empty section (two blank lines in a row?)"
    return sections


def guard(s):
    """The documented formula-injection guard (api.c): a leading = + - @ tab
    or CR gets a ' before it."""
    return "'" + s if s and s[0] in "=+-@\t\r" else s


def listed(rows, key):
    return [{key: r[0], "requests": int(r[1]), "bandwidth_bytes": int(r[2])} for r in rows]


def test_csv_has_the_json_numbers(world):
    srv, ids, t, apis = world
    alice = apis["alice"]
    j = alice.get("/v1/analytics/overview?days=7&limit=100")[0]
    text, hdrs = alice.get("/v1/analytics/overview?days=7&limit=100&format=csv")
    assert hdrs["content-type"].startswith("text/csv"), hdrs
    assert "attachment" in hdrs.get("content-disposition", ""), hdrs
    s = csv_sections(text)
    assert [sec[0] for sec in s] == [
        ["owner", "start", "end", "days", "requests", "bandwidth_bytes", "realtime",
         "last_aggregation_date", "uniques", "interval", "exclude_bots"],
        ["date", "requests", "bandwidth_bytes", "uniques"],
        ["image_id", "album", "filename", "requests", "bandwidth_bytes", "uniques"],
        ["country", "requests", "bandwidth_bytes"],
        ["variant", "requests", "bandwidth_bytes"],
        ["status", "requests"],
        ["client", "requests", "bandwidth_bytes"]]
    assert s[0][1:] == [["alice", j["range"]["start"], j["range"]["end"], "7",
                         str(j["totals"]["requests"]), str(j["totals"]["bandwidth_bytes"]),
                         "true", "", str(j["totals"]["uniques"]), "day", "false"]]
    assert [r[:3] + [int(r[3])] for r in s[1][1:]] == \
        [[x["date"], str(x["requests"]), str(x["bandwidth_bytes"]), x["uniques"]]
         for x in j["timeseries"]]
    assert [[r[0], r[1], r[2], int(r[3]), int(r[4]), int(r[5])] for r in s[2][1:]] == \
        [[x["image_id"], guard(x["album"]), guard(x["filename"]), x["requests"],
          x["bandwidth_bytes"], x["uniques"]] for x in j["top_images"]]
    assert listed(s[3][1:], "country") == j["countries"]
    assert listed(s[4][1:], "variant") == j["variants"]
    assert [{"status": int(a), "requests": int(b)} for a, b in s[5][1:]] == j["status_codes"]
    assert listed(s[6][1:], "client") == j["clients"]
    # The awkward names: a comma and quotes come back as they are; '=' gets a '.
    by_id = {r[0]: r[2] for r in s[2][1:]}
    assert by_id[ids['alice/pics/a,"b".png']] == 'a,"b".png'
    assert by_id[ids["alice/pics/=sum(1).png"]] == "'=sum(1).png"
    assert ",=sum" not in text and '"=sum' not in text  # never unguarded

    # The image endpoint, for the names that need quoting or the guard.
    for rel in ('alice/pics/a,"b".png', "alice/pics/=sum(1).png", "alice/pics/wide.png"):
        image_id = ids[rel]
        j = alice.get("/v1/analytics/images/%s?days=7" % image_id)[0]
        text, hdrs = alice.get("/v1/analytics/images/%s?days=7&format=csv" % image_id)
        assert hdrs["content-type"].startswith("text/csv")
        s = csv_sections(text)
        assert [sec[0] for sec in s] == [
            ["image_id", "album", "filename", "owner", "start", "end", "days", "requests",
             "bandwidth_bytes", "realtime", "last_aggregation_date", "uniques", "interval",
             "exclude_bots"],
            ["date", "requests", "bandwidth_bytes", "uniques"],
            ["variant", "requests", "bandwidth_bytes"],
            ["country", "requests", "bandwidth_bytes"],
            ["client", "requests", "bandwidth_bytes"]]
        _, album, filename = rel.split("/", 2)
        assert s[0][1:] == [[image_id, album, guard(filename), "alice", j["range"]["start"],
                             j["range"]["end"], "7", str(j["totals"]["requests"]),
                             str(j["totals"]["bandwidth_bytes"]), "true", "",
                             str(j["totals"]["uniques"]), "day", "false"]]
        assert [r[:3] + [int(r[3])] for r in s[1][1:]] == \
            [[x["date"], str(x["requests"]), str(x["bandwidth_bytes"]), x["uniques"]]
             for x in j["timeseries"]]
        assert listed(s[2][1:], "variant") == j["variants"]
        assert listed(s[3][1:], "country") == j["countries"]
        assert listed(s[4][1:], "client") == j["clients"]
        assert j["totals"]["requests"] > 0


# ---- 2. Parameters ----

def test_parameter_errors_name_the_parameter(tmp_path):
    srv = new_server(tmp_path)
    ids = import_tree(srv, make_tree(tmp_path, {"alice/pics/a.png": (20, 20, 1)}))
    key = new_key(srv, "alice")
    srv.start()
    api = Api(srv, key)
    img = "/v1/analytics/images/" + ids["alice/pics/a.png"]
    ov = "/v1/analytics/overview"
    date = today()
    t = datetime.date.fromisoformat(date)

    def d(n):
        return (t + datetime.timedelta(days=n)).isoformat()

    bad = [
        ("days=abc", "days"), ("days=0", "days"), ("days=-1", "days"), ("days=91", "days"),
        ("days=7.5", "days"), ("days=%207", "days"), ("days=+7", "days"), ("days=", "days"),
        ("days", "days"), ("days=1e1", "days"), ("days=0x7", "days"),
        ("days=99999999999999999999", "days"),
        ("start=2026-02-30", "start"), ("start=2026-13-01", "start"), ("start=2026-2-3", "start"),
        ("end=2026-02-30", "end"), ("end=2026-13-01", "end"), ("end=2026-2-3", "end"),
        ("start=2025-02-29", "start"), ("end=%s" % d(0)[:8] + "00", "end"),
        ("end=" + d(1), "end"), ("start=" + d(1), "start"),
        ("start=%s&end=%s" % (d(-1), d(-2)), "start"),
        ("start=" + d(-90), "start"),  # alone: to today, 91 days
        ("start=%s&end=%s" % (d(-100), d(-10)), "start"),  # 91 days
        ("days=7&start=" + d(-3), "days"), ("days=7&end=" + d(-3), "days"),
        ("limit=0", "limit"), ("limit=101", "limit"), ("limit=abc", "limit"),
        ("limit=", "limit"), ("format=xml", "format"), ("format=CSV", "format"),
        ("format=", "format"), ("day=7", "day"), ("Days=7", "Days"), ("days=7&foo=1", "foo"),
        ("days=7&days=7", "days"), ("days=7&days=8", "days"), ("limit=5&limit=5", "limit"),
        ("days=%zz", "days"), ("days=%3", "days"), ("days=7%", "days"), ("days=%00", "days"),
    ]
    for q, param in bad:
        for path in ((ov,) if param == "limit" else (ov, img)):
            st, hdrs, body = api.call(path + "?" + q)
            assert_error(st, hdrs, body, 400, "INVALID_PARAMETER", param)
    # limit is the overview's only.
    assert_error(*api.call(img + "?limit=5"), 400, "INVALID_PARAMETER", "limit")
    assert_error(*api.call(img + "?days=7&limit=10"), 400, "INVALID_PARAMETER", "limit")
    # A bad escape in a name: still a 400 of the same shape.
    assert_error(*api.call(ov + "?d%zzays=7"), 400, "INVALID_PARAMETER")

    # The valid forms.
    def rng(path, q):
        j, _ = api.get(path + ("?" + q if q else ""))
        assert len(j["timeseries"]) == j["range"]["days"]
        assert [x["date"] for x in j["timeseries"]][0] == j["range"]["start"]
        assert [x["date"] for x in j["timeseries"]][-1] == j["range"]["end"]
        return legacy(j)["range"]

    for path in (ov, img):
        assert rng(path, "") == {"start": d(-29), "end": d(0), "days": 30}
        assert rng(path, "days=%37") == {"start": d(-6), "end": d(0), "days": 7}
        assert rng(path, "%64ays=7") == {"start": d(-6), "end": d(0), "days": 7}
        assert rng(path, "days=1") == {"start": d(0), "end": d(0), "days": 1}
        assert rng(path, "days=90") == {"start": d(-89), "end": d(0), "days": 90}
        assert rng(path, "end=" + d(-5)) == {"start": d(-34), "end": d(-5), "days": 30}
        assert rng(path, "start=" + d(-10)) == {"start": d(-10), "end": d(0), "days": 11}
        assert rng(path, "start=" + d(-89)) == {"start": d(-89), "end": d(0), "days": 90}
        assert rng(path, "start=%s&end=%s" % (d(-100), d(-11))) == \
            {"start": d(-100), "end": d(-11), "days": 90}
        assert rng(path, "start=%s&end=%s" % (d(-3), d(-3))) == \
            {"start": d(-3), "end": d(-3), "days": 1}
        assert rng(path, "end=%s&start=%s" % (d(0), d(-1))) == \
            {"start": d(-1), "end": d(0), "days": 2}
        assert rng(path, "days=7&format=json") == {"start": d(-6), "end": d(0), "days": 7}
        text, hdrs = api.get(path + "?days=3&format=csv")
        assert hdrs["content-type"].startswith("text/csv") and d(-2) in text
        text, hdrs = api.get(path + "?days=3&format=%63sv")
        assert hdrs["content-type"].startswith("text/csv")
    assert len(api.get(ov + "?limit=1")[0]["top_images"]) <= 1
    assert api.get(ov + "?limit=100&days=90")[0]["range"]["days"] == 90
    assert srv.stop() == 0
    if today() != date:
        pytest.skip("the UTC day turned during the test")


# ---- 3. Keys and authentication ----

def all_bytes(directory):
    for root, _, files in os.walk(directory):
        for f in files:
            p = os.path.join(root, f)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as fh:
                    yield p, fh.read()


def test_authentication_and_keys(tmp_path):
    srv = new_server(tmp_path)
    import_tree(srv, make_tree(tmp_path, {"alice/pics/a.png": (20, 20, 1)}))
    good = new_key(srv, "alice")
    other = new_key(srv, "alice", "--scopes", "read,write")
    writer = new_key(srv, "alice", "--scopes", "write")
    doomed = new_key(srv, "alice", "--expires-days", "30")
    srv.start()
    api = Api(srv)
    ov = "/v1/analytics/overview"

    st, hdrs, body = api.call(ov)  # no Authorization at all
    assert_error(st, hdrs, body, 401, "UNAUTHORIZED")
    assert hdrs.get("www-authenticate", "").startswith("Bearer"), hdrs
    assert "x-ratelimit-remaining" not in hdrs
    forged = good[:-8] + ("A" if good[-8] != "A" else "B") + good[-7:]  # same id, other secret
    assert key_id(forged) == key_id(good) and forged != good
    unknown = "pfk_" + "a" * 12 + "_" + "B" * 40
    for value in ("Basic YWxpY2U6c2VjcmV0", "Basic " + good, "Bearer", "Bearer ",
                  "Bearer garbage", "Bearer " + good[:-1], "Bearer " + good + "x",
                  "Bearer " + good.upper(), "Token " + good, good,
                  "Bearer " + unknown, "Bearer " + forged, "Bearer " + good + " " + good):
        st, hdrs, body = api.call(ov, headers={"Authorization": value})
        assert_error(st, hdrs, body, 401, "UNAUTHORIZED")
        assert hdrs.get("www-authenticate", "").startswith("Bearer"), (value, hdrs)
    # Each failure looks the same whatever the key's id: an unknown id and a
    # known id with a wrong secret give one answer.
    b1 = api.call(ov, headers={"Authorization": "Bearer " + unknown})[2]
    b2 = api.call(ov, headers={"Authorization": "Bearer " + forged})[2]
    assert b1 == b2

    # Good keys: any case of the scheme, spaces around.
    for value in ("Bearer " + good, "bearer " + good, "BEARER  " + good + " ",
                  "Bearer " + other):
        st, hdrs, body = api.call(ov, headers={"Authorization": value})
        assert st == 200, (value, st, body)
    # A key without the read scope: 403 (on any /v1 path).
    for path in (ov, "/v1/analytics/images/zzzzzz", "/v1/nothing"):
        assert_error(*api.call(path, key=writer), 403, "FORBIDDEN")

    # Revoked while the server runs: refused from the next request on.
    assert api.call(ov, key=doomed)[0] == 200
    p = srv.cli("keys", "revoke", key_id(doomed), check=0)
    assert p.stdout == ""
    st, hdrs, body = api.call(ov, key=doomed)
    j = assert_error(st, hdrs, body, 401, "UNAUTHORIZED")
    assert "revoked" in j["error"]["message"]
    assert api.call(ov, key=good)[0] == 200  # the others still work
    srv.cli("keys", "revoke", key_id(doomed), check=0)  # again: says so, exit 0
    srv.cli("keys", "revoke", writer, check=0)  # the whole key names its id too
    assert_error(*api.call(ov, key=writer), 401, "UNAUTHORIZED")

    # keys list: id, owner, scopes, status; never a secret.
    p = srv.cli("keys", "list", check=0)
    out = p.stdout + p.stderr
    rows = {}
    for line in p.stdout.splitlines()[1:]:
        cols = line.split()
        rows[cols[0]] = cols
    assert set(rows) == {key_id(k) for k in (good, other, writer, doomed)}, p.stdout
    for k, scopes, status in ((good, "read", "active"), (other, "read,write", "active"),
                              (writer, "write", "revoked"), (doomed, "read", "revoked")):
        cols = rows[key_id(k)]
        assert cols[1] == "alice" and cols[2] == scopes and cols[-1] == status, cols
        assert k[17:] not in out and k not in out
    assert rows[key_id(good)][-2].startswith(today()), rows  # last used: just now

    # No key is stored in clear, nor logged.
    assert srv.stop() == 0
    srv.log_text = srv.log()
    for k in (good, other, writer, doomed):
        secret = k[17:].encode()
        assert len(secret) == 40
        for path, data in all_bytes(srv.data_dir):
            assert secret not in data, path
        assert secret not in db_text(srv.database)
        assert k[17:] not in srv.log_text


def test_expired_key_under_faketime(tmp_path):
    srv = new_server(tmp_path)
    import_tree(srv, make_tree(tmp_path, {"alice/pics/a.png": (20, 20, 1)}))
    short = new_key(srv, "alice", "--expires-days", "1")
    forever = new_key(srv, "alice")
    srv.start()
    api = Api(srv)
    assert api.call("/v1/analytics/overview", key=short)[0] == 200
    assert srv.stop() == 0
    later = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2))
    env = {"ANALYTICS_REALTIME_FLUSH_MS": str(FLUSH_MS), "ANALYTICS_BATCH_ENABLED": "false",
           "ANALYTICS_REALTIME_ENABLED": "false"}
    env.update(faked(later.strftime("%Y-%m-%d %H:%M:%S"), env))
    fake = Server(tmp_path / "data", env).start()
    try:
        api = Api(fake)
        st, hdrs, body = api.call("/v1/analytics/overview", key=short)
        j = assert_error(st, hdrs, body, 401, "UNAUTHORIZED")
        assert "expired" in j["error"]["message"], j
        assert 'error="invalid_token"' in hdrs.get("www-authenticate", ""), hdrs
        j, _ = api.get("/v1/analytics/overview", key=forever)
        # The server's today is the faked one; realtime is off there.
        assert j["range"]["end"] == later.date().isoformat()
        assert j["freshness"] == {"realtime": False, "last_aggregation_date": None}
        p = fake.cli("keys", "list", check=0)
        status = {line.split()[0]: line.split()[-1] for line in p.stdout.splitlines()[1:]}
        assert status == {key_id(short): "expired", key_id(forever): "active"}, p.stdout
    finally:
        assert fake.stop() == 0


def test_keys_command_usage_errors(tmp_path):
    (tmp_path / "data").mkdir()  # keys never makes a data directory (test_cli.py)
    env = clean_env({"PIXFLARE_DATA_DIR": str(tmp_path / "data")})
    bad = [
        ["keys"], ["keys", "make"], ["keys", "create"], ["keys", "create", "--owner"],
        ["keys", "create", "--owner", "bad owner"], ["keys", "create", "--owner", "a/b"],
        ["keys", "create", "--owner", "al!ce"], ["keys", "create", "--owner", ""],
        ["keys", "create", "--owner", "v1"], ["keys", "create", "--owner", "i"],
        ["keys", "create", "--owner", "healthz"], ["keys", "create", "--owner", "_x"],
        ["keys", "create", "--owner", ".x"], ["keys", "create", "--owner", "x" * 65],
        ["keys", "create", "--owner", "alice", "--expires-days", "0"],
        ["keys", "create", "--owner", "alice", "--expires-days", "-1"],
        ["keys", "create", "--owner", "alice", "--expires-days", "1.5"],
        ["keys", "create", "--owner", "alice", "--expires-days", "x"],
        ["keys", "create", "--owner", "alice", "--expires-days", "36501"],
        ["keys", "create", "--owner", "alice", "--scopes", "admin"],
        ["keys", "create", "--owner", "alice", "--scopes", ""],
        ["keys", "create", "--owner", "alice", "--scopes", "read,admin"],
        ["keys", "create", "--owner", "alice", "--scopes", "read,"],
        ["keys", "create", "--owner", "alice", "--bogus", "1"],
        ["keys", "list", "extra"],
        ["keys", "revoke"], ["keys", "revoke", "a", "b"], ["keys", "revoke", "BADID"],
        ["keys", "revoke", "aaaaaaaaaaaa"],  # well-formed, unknown
        ["keys", "revoke", "pfk_" + "a" * 12 + "_" + "B" * 40],
    ]
    for args in bad:
        p = run(args, env)
        assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)
        assert p.stderr.strip() and not KEY_RE.search(p.stdout), (args, p.stdout, p.stderr)
    # None of them made a key.
    p = run(["keys", "list"], env, check=0)
    assert p.stdout.splitlines()[1:] == [], p.stdout
    # The good forms, for contrast.
    k = run(["keys", "create", "--owner", "a-b.c_d", "--scopes", "write,read",
             "--expires-days", "36500"], env, check=0).stdout.strip()
    assert KEY_RE.fullmatch(k)
    p = run(["keys", "list"], env, check=0)
    [row] = p.stdout.splitlines()[1:]
    assert row.split()[:3] == [key_id(k), "a-b.c_d", "read,write"], row


# ---- 6. Rate limit ----

def test_rate_limit_per_owner(tmp_path):
    srv = new_server(tmp_path, {"PIXFLARE_API_RATE_LIMIT": "5"})
    import_tree(srv, make_tree(tmp_path, {"alice/pics/a.png": (20, 20, 1),
                                         "bob/pics/b.png": (20, 20, 2)}))
    alice, bob = new_key(srv, "alice"), new_key(srv, "bob")
    srv.start()
    api = Api(srv)
    ov = "/v1/analytics/overview"
    # Calls without a valid key spend nobody's budget, not even a wrong
    # secret part under alice's key id.
    forged = alice[:-1] + ("Z" if alice[-1] != "Z" else "Y")
    for value in (None, "Bearer nope", "Bearer pfk_" + "a" * 12 + "_" + "B" * 40,
                  "Bearer " + forged):
        for _ in range(3):
            h = {"Authorization": value} if value else {}
            st, hdrs, _ = srv.request("GET", ov, h)
            assert st == 401 and "x-ratelimit-remaining" not in hdrs
    # Five calls of alice's pass (errors count too), counting down.
    paths = [ov, ov + "?days=0", "/v1/nothing", ov + "?format=csv", ov]
    t0 = time.monotonic()
    for i, path in enumerate(paths):
        st, hdrs, body = api.call(path, key=alice)
        assert st in (200, 400, 404), (path, st, body)
        assert hdrs["x-ratelimit-limit"] == "5", hdrs
        assert hdrs["x-ratelimit-remaining"] == str(4 - i), (i, hdrs)
    # The sixth within the minute: 429.
    for _ in range(2):
        st, hdrs, body = api.call(ov, key=alice)
        assert_error(st, hdrs, body, 429, "RATE_LIMITED")
        assert re.fullmatch(r"[0-9]+", hdrs.get("retry-after", "")), hdrs
        # When the next call passes (docs/API.md, "Rate limit"): the first call counts for its
        # second and the 60 after it, so 1-61 s from now, and not before a
        # minute after the first call has gone by.
        waited = time.monotonic() - t0
        assert 1 <= int(hdrs["retry-after"]) <= 61, hdrs
        assert int(hdrs["retry-after"]) >= 60 - waited - 1, (hdrs, waited)
        assert hdrs.get("x-ratelimit-remaining") == "0", hdrs
    # Even a bad request of alice's is refused before it is looked at.
    assert api.call(ov + "?days=0", key=alice)[0] == 429
    # Another owner has a budget of their own.
    st, hdrs, _ = api.call(ov, key=bob)
    assert st == 200 and hdrs["x-ratelimit-remaining"] == "4", hdrs
    # A second key of alice's shares alice's budget.
    alice2 = new_key(srv, "alice")
    assert api.call(ov, key=alice2)[0] == 429
    assert srv.stop() == 0


# ---- 7. The in-memory cache follows every writer ----

def test_overview_follows_realtime_batch_and_cleanup(tmp_path):
    src = make_tree(tmp_path, {
        "alice/pics/old.png": (40, 40, 11),      # day -3 only (then purged)
        "alice/pics/rt.png": (41, 41, 12),       # yesterday, counted in realtime
        "alice/pics/batch.png": (42, 42, 13),    # yesterday, events only
        "alice/pics/today.png": (43, 43, 14),
        "bob/pics/b.png": (44, 44, 15),
    })
    base = new_server(tmp_path)
    ids = import_tree(base, src)
    names = names_of(ids)
    quiet = {"ANALYTICS_BATCH_ENABLED": "false", "ANALYTICS_REALTIME_FLUSH_MS": str(FLUSH_MS)}
    hits = []

    def past(date, time_of_day, realtime, plan):
        env = dict(quiet, ANALYTICS_REALTIME_ENABLED="true" if realtime else "false")
        env = dict(env, **faked(date + " " + time_of_day, env))
        srv = Server(tmp_path / "data", env).start()
        try:
            t = Traffic(srv, ids)
            for args, kw in plan:
                t.send(*args, **kw)
        finally:
            assert srv.stop() == 0
        mine = [h._replace(date=date) for h in t.hits]
        hits.extend(mine)
        return mine

    d3, d1 = day(-3), day(-1)
    past(d3, "12:00:00", True, [
        (("GET", "alice/pics/old.png"), {"variant": "w256", "country": "NZ", "expect": 200}),
        (("GET", "alice/pics/old.png"), {"variant": "w256", "country": "NZ", "expect": 200}),
        (("GET",), {"path": "/alice/pics/gone.png", "owner": "alice", "image_id": "",
                    "expect": 404}),
    ])
    past(d1, "12:00:00", True, [
        (("GET", "alice/pics/rt.png"), {"country": "CA", "expect": 200}),
        (("GET", "alice/pics/rt.png"), {"country": "CA", "expect": 200}),
    ])
    events_only = past(d1, "13:00:00", False, [
        (("GET", "alice/pics/batch.png"), {"variant": "thumb", "country": "BR", "expect": 200}),
        (("GET", "alice/pics/batch.png"), {"variant": "thumb", "country": "BR", "expect": 200}),
        (("GET", "alice/pics/batch.png"), {"variant": "thumb", "country": "BR", "expect": 200}),
    ])

    srv = Server(tmp_path / "data", dict(quiet, PIXFLARE_API_RATE_LIMIT="0"))
    key = new_key(srv, "alice")
    srv.start()
    date = today()
    api = Api(srv, key)
    counted = [h for h in hits if not any(h is e for e in events_only)]

    def check(expect_hits, last_agg=None):
        ov = api.overview("days=7&limit=100")
        want = expected_overview(expect_hits, "alice", names, day(-6), 7, 100, last_agg)
        return ov == want, (ov, want)

    # Before: realtime's counts only (the events-only requests are not in).
    ov, want = check(counted)[1]
    assert ov == want
    assert ids["alice/pics/batch.png"] not in {x["image_id"] for x in ov["top_images"]}
    assert {"NZ", "CA"} == {c["country"] for c in ov["countries"]}

    # More traffic today: the flush lands and the overview shows it.
    t = Traffic(srv, ids)
    t.send("GET", "alice/pics/today.png", country="US", expect=200)
    t.send("GET", "alice/pics/rt.png", country="CA", expect=200)
    t.send("GET", "bob/pics/b.png", country="US", expect=200)
    hits.extend(t.hits)
    counted.extend(t.hits)
    wait_for(lambda: check(counted), what="today's traffic in the overview")
    # And again (today's segment is reloaded, not kept).
    t2 = Traffic(srv, ids)
    t2.etags = t.etags
    t2.send("GET", "alice/pics/today.png", country="DE", expect=200)
    t2.send("HEAD", "alice/pics/old.png", country="NZ", expect=200)
    hits.extend(t2.hits)
    counted.extend(t2.hits)
    wait_for(lambda: check(counted), what="more of today's traffic in the overview")

    # The batch, as a separate process: yesterday becomes what the events say.
    p = run(["aggregate", "--date", d1], srv.env, check=0)
    assert p.stdout.startswith(d1 + " events=5 "), p.stdout
    ov, want = check(hits, last_agg=d1)[1]
    assert ov == want
    assert ov["timeseries"][-2] == {"date": d1, "requests": 5,
                                    "bandwidth_bytes": sum(h.bytes for h in hits
                                                           if h.date == d1)}
    assert ids["alice/pics/batch.png"] in {x["image_id"] for x in ov["top_images"]}
    assert "BR" in {c["country"] for c in ov["countries"]}
    assert "thumb" in {v["variant"] for v in ov["variants"]}
    assert api.image(ids["alice/pics/batch.png"], "days=7") == dict(
        expected_image(hits, "alice", ids["alice/pics/batch.png"], names, day(-6), 7, d1))

    # The retention, as a separate process: day -3 goes from the lists.
    p = run(["cleanup"], dict(srv.env, ANALYTICS_RETENTION_DAYS="2"), check=0)
    ov = api.overview("days=7&limit=100")
    kept = [h for h in hits if h.date >= d1]
    want = expected_overview(kept, "alice", names, day(-6), 7, 100, d1)
    old = ids["alice/pics/old.png"]
    assert "NZ" in {c["country"] for c in ov["countries"]}  # today's HEAD is from NZ too
    assert ov["top_images"] == want["top_images"], ov["top_images"]
    assert ov["countries"] == want["countries"]
    assert ov["variants"] == want["variants"]
    assert "w256" not in {v["variant"] for v in ov["variants"]}
    assert [x for x in ov["top_images"] if x["image_id"] == old] == \
        [x for x in want["top_images"] if x["image_id"] == old]  # today's HEAD only
    assert ov["status_codes"] == want["status_codes"]  # the 404 of day -3 is gone
    assert all(s["status"] != 404 for s in ov["status_codes"])
    # The totals and series come from the owner's day totals, which the
    # retention keeps (like analytics_monthly): they still count day -3
    # (docs/API.md).
    everything = expected_overview(hits, "alice", names, day(-6), 7, 100, d1)
    assert ov["totals"] == everything["totals"]
    assert ov["timeseries"] == everything["timeseries"]
    assert ov["timeseries"][3]["requests"] == 2  # day -3's two GETs (not its 404)
    assert ov["freshness"] == {"realtime": True, "last_aggregation_date": d1}
    assert srv.stop() == 0
    if today() != date:
        pytest.skip("the UTC day turned during the test")


# ---- 8. Routes, methods, HEAD, headers, and no CDN events ----

def test_routes_methods_head_and_no_cdn_events(world):
    srv, ids, t, apis = world
    alice = apis["alice"]
    before_events = srv.cli("events", "--date", today(), check=0).stdout
    before = alice.overview("days=7")
    assert before_events.count("\n") == len(t.hits)

    for path in ("/v1", "/v1/", "/v1/analytics", "/v1/analytics/", "/v1/analytics/overview/",
                 "/v1/analytics/images", "/v1/analytics/images/", "/v1/analytics/images/BADID",
                 "/v1/analytics/images/abc", "/v1/analytics/images/abcdefg",
                 "/v1/analytics/images/%s/x" % ids["alice/pics/wide.png"], "/v1/keys",
                 "/v1/analytics/Overview", "/v1//analytics/overview"):
        assert_error(*alice.call(path), 404, "NOT_FOUND")
    assert_error(*alice.call("/v1/analytics/images/zzzzzz"), 404, "NOT_FOUND")
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        st, hdrs, body = alice.call("/v1/analytics/overview", method=method)
        assert_error(st, hdrs, body, 405, "METHOD_NOT_ALLOWED")
        assert hdrs.get("allow") == "GET, HEAD"

    # HEAD: the GET's headers, no body.
    for path in ("/v1/analytics/overview?days=7", "/v1/analytics/overview?days=7&format=csv",
                 "/v1/analytics/images/%s?days=7" % ids["alice/pics/wide.png"],
                 "/v1/analytics/overview?days=0", "/v1/analytics/images/zzzzzz"):
        gst, ghdrs, gbody = alice.call(path)
        st, hdrs, body = alice.call(path, method="HEAD")
        assert (st, body) == (gst, b""), (path, st, body)
        assert hdrs["content-length"] == str(len(gbody)) == ghdrs["content-length"], path
        assert hdrs["content-type"] == ghdrs["content-type"]
        assert hdrs["cache-control"] == "no-store"
    st, hdrs, body = srv.request("HEAD", "/v1/analytics/overview")
    assert (st, body) == (401, b"") and hdrs["cache-control"] == "no-store"

    # None of these API calls made a CDN event or a count.
    time.sleep(3 * FLUSH_MS / 1000)
    after_events = srv.cli("events", "--date", today(), check=0).stdout
    assert after_events == before_events
    assert alice.overview("days=7") == before


# ---- Names that are not UTF-8 ----

@pytest.mark.sqlite_only  # a PostgreSQL UTF8 database refuses such text outright
def test_non_utf8_names_are_refused_or_shown_as_utf8(tmp_path):
    """A file name that is not UTF-8 cannot go into JSON as it is. `import`
    refuses such names; a name already in the catalog (from an older
    import) is shown with U+FFFD for each bad byte: the image endpoint
    answers 200, the overview lists it in JSON and CSV alike, and the CSV
    is the UTF-8 it says it is. (Found with the first API build: there the
    image endpoint answered 500 "cannot build the answer", the JSON
    overview silently left the image out of top_images, and the CSV held
    the raw byte.)"""
    srv = new_server(tmp_path)
    src = make_tree(tmp_path, {"alice/pics/ok.png": (20, 20, 1),
                               "alice/pics/later.png": (21, 20, 2)})
    (src / "alice" / "pics").joinpath(os.fsdecode(b"caf\xe9.png")).write_bytes(
        make_png(22, 20, seed=3))
    p = subprocess.run([BIN, "import", str(src)], env=srv.env, capture_output=True)
    out = p.stdout.decode("utf-8", "surrogateescape")
    err = p.stderr.decode("utf-8", "surrogateescape")
    assert p.returncode == 2 and "caf" in err, (p.returncode, out, err)
    ids = dict(reversed(line.split("\t")) for line in out.splitlines())
    assert set(ids) == {"alice/pics/ok.png", "alice/pics/later.png"}, out
    # An older import's name: written into the catalog as raw bytes.
    bad = ids["alice/pics/later.png"]
    srv.sql_exec("UPDATE images SET filename = CAST(? AS TEXT), album = CAST(? AS TEXT) "
                 "WHERE id = ?", (b"caf\xe9.png", b"p\xffx", bad))
    key = new_key(srv, "alice")
    srv.start()
    assert srv.request("GET", "/i/" + bad)[0] == 200
    assert srv.request("GET", "/i/" + bad)[0] == 200
    assert srv.request("GET", "/alice/pics/ok.png")[0] == 200
    api = Api(srv, key)
    wait_for(lambda: (api.overview("days=1")["totals"]["requests"] == 3, None),
             what="the flush")
    st, hdrs, body = api.call("/v1/analytics/images/" + bad)
    ov = api.overview("days=1")
    cst, chdrs, raw = api.call("/v1/analytics/overview?days=1&format=csv")
    ist, _, iraw = api.call("/v1/analytics/images/%s?format=csv" % bad)
    assert srv.stop() == 0
    assert st == 200, (st, body)
    j = json.loads(body)
    assert (j["album"], j["filename"]) == ("p\ufffdx", "caf\ufffd.png"), j
    assert j["totals"]["requests"] == 2
    assert [(x["image_id"], x["album"], x["filename"]) for x in ov["top_images"]] == \
        [(bad, "p\ufffdx", "caf\ufffd.png"), (ids["alice/pics/ok.png"], "pics", "ok.png")]
    assert cst == 200 and ist == 200
    text = raw.decode("utf-8")  # strict: the CSV is UTF-8
    assert [r[:3] for r in csv_sections(text)[2][1:]] == \
        [[x["image_id"], x["album"], x["filename"]] for x in ov["top_images"]]
    assert csv_sections(iraw.decode("utf-8"))[0][1][:3] == [bad, "p\ufffdx", "caf\ufffd.png"]


# ---- A server bug found while writing these tests ----

def test_bug_empty_overview_passes_null_to_qsort(tmp_path):
    """An overview with no status rows in its range (a new owner, or a
    range in the past) must be an ordinary empty answer. aq_overview()
    sorts its status list with qsort(NULL, 0, ...): undefined behaviour,
    which the UBSan build (CI's sanitizer step) reports as "src/aq.c:405:11:
    runtime error: null pointer passed as argument 1, which is declared to
    never be null", aborting the server (halt_on_error=1). In the plain
    build this test passes; under SAN=1 it fails (the server dies, or its
    log fails the sanitizer check at stop)."""
    srv = new_server(tmp_path)
    import_tree(srv, make_tree(tmp_path, {"alice/pics/a.png": (20, 20, 1)}))
    key = new_key(srv, "alice")
    srv.start()
    api = Api(srv, key)
    ov = api.overview("days=3")
    assert ov["totals"] == {"requests": 0, "bandwidth_bytes": 0}
    assert ov["timeseries"] == [{"date": day(i), "requests": 0, "bandwidth_bytes": 0}
                                for i in (-2, -1, 0)]
    assert (ov["top_images"], ov["countries"], ov["variants"], ov["status_codes"]) == \
        ([], [], [], [])
    text, _ = api.get("/v1/analytics/overview?days=3&format=csv")
    assert [sec[0][0] for sec in csv_sections(text)] == \
        ["owner", "date", "image_id", "country", "variant", "status", "client"]
    assert srv.stop() == 0
