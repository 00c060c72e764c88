"""The analytics API's parameters and fields of issue 20 (interval=hour,
compare=previous, exclude_bots, uniques, clients), against rows this test
writes straight into the database's tables (SQLite or PostgreSQL), so that
every number expected is computed here from the rows seeded, not from the
capture path: analytics_daily, analytics_owner_daily and
analytics_status_daily with their bot_ columns, analytics_hourly (the
owner's totals as image_id '' and per image), analytics_clients_daily and
analytics_uniques_daily (the estimates; the API never reads the
registers)."""
import collections
import datetime
import hashlib
import hmac
import random

import pytest

from pftest import import_tree
from test_api import Api, assert_error, csv_sections, make_tree, new_key, new_server

SECRET = "api-more-test-secret-0001"
TREE = {"alice/pics/a.png": (40, 30, 1), "alice/pics/b.png": (50, 20, 2),
        "alice/pics/c.png": (30, 30, 3), "bob/art/x.png": (33, 33, 4)}
VARIANTS = ["original", "thumb", "w512"]
COUNTRIES = ["US", "DE", "XX"]
SPAN = 16  # seeded dates: today and the 15 before
HOURS = 10 * 24  # seeded hours: those of the last 10 dates, with gaps


def owner_hash(name):
    return hmac.new(SECRET.encode(), name.encode(), hashlib.sha256).digest()[:16].hex()


def day(offset):
    d = datetime.datetime.now(datetime.timezone.utc).date() + datetime.timedelta(days=offset)
    return d.isoformat()


def dates(start, days):
    s = datetime.date.fromisoformat(start)
    return [(s + datetime.timedelta(days=i)).isoformat() for i in range(days)]


def epoch(date):
    return int(datetime.datetime.fromisoformat(date + "T00:00:00+00:00").timestamp())


def hour_text(h):
    return datetime.datetime.fromtimestamp(h * 3600, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:00:00Z")


def insert(srv, table, cols, rows, chunk=200):
    """Rows into a table, many per statement (one statement, one commit:
    thousands of single-row commits would take long)."""
    for i in range(0, len(rows), chunk):
        part = rows[i:i + chunk]
        one = "(" + ", ".join("?" * len(part[0])) + ")"
        srv.sql_exec("INSERT INTO %s (%s) VALUES %s" % (table, cols, ", ".join([one] * len(part))),
                     [v for row in part for v in row])


class Seed:
    """The rows written, kept to compute the answers."""

    def __init__(self, srv, ids, rnd):
        self.ids = ids
        self.daily = []  # (owner, date, image, variant, country, req, bytes, bot_req, bot_bytes)
        self.status = []  # (owner, date, status, req, bot_req)
        self.hourly = []  # (owner, hour, image, req, bytes, bot_req, bot_bytes)
        self.clients = []  # (owner, date, image, client, req, bytes)
        self.uniques = []  # (owner, date, image, uniques)
        for name in ("alice", "bob"):
            h = owner_hash(name)
            images = sorted(v for k, v in ids.items() if k.startswith(name + "/"))
            for d in dates(day(-(SPAN - 1)), SPAN):
                if rnd.random() < 0.15:
                    continue  # a date without traffic
                for im in images:
                    for v in VARIANTS:
                        for c in COUNTRIES:
                            if rnd.random() < 0.4:
                                continue
                            req = rnd.randrange(1, 500)
                            byt = req * rnd.randrange(100, 5000)
                            # some rows all bots, most partly, some none
                            bot = rnd.choice([0, 0, req // 3, req // 7, req])
                            bbyt = byt * bot // req
                            self.daily.append((h, d, im, v, c, req, byt, bot, bbyt))
                    for client in ("human", "bot", "preview"):
                        if rnd.random() < 0.2:
                            continue
                        self.clients.append((h, d, im, client, rnd.randrange(1, 900),
                                             rnd.randrange(1000, 900000)))
                    if rnd.random() < 0.8:
                        self.uniques.append((h, d, im, rnd.randrange(1, 300)))
                for client in ("human", "bot", "preview"):
                    if rnd.random() < 0.9:
                        self.clients.append((h, d, "", client, rnd.randrange(1, 5000),
                                             rnd.randrange(1000, 9000000)))
                if rnd.random() < 0.9:
                    self.uniques.append((h, d, "", rnd.randrange(1, 2000)))
                for s in (200, 304, 404, 500):
                    if rnd.random() < 0.8:
                        req = rnd.randrange(1, 1000)
                        self.status.append((h, d, s, req, rnd.choice([0, req // 4, req])))
            first = epoch(day(-9)) // 3600
            for hr in range(first, first + HOURS):
                tot = [0, 0, 0, 0]
                for im in images:
                    if rnd.random() < 0.5:
                        continue  # an hour without the image
                    req = rnd.randrange(1, 300)
                    byt = req * rnd.randrange(100, 5000)
                    bot = rnd.choice([0, req // 2, req])
                    row = [req, byt, bot, byt * bot // req]
                    self.hourly.append((h, hr, im, *row))
                    tot = [a + b for a, b in zip(tot, row)]
                if tot[0]:
                    self.hourly.append((h, hr, "", *tot))
        self.write(srv)

    def write(self, srv):
        owner_days = collections.defaultdict(lambda: [0, 0, 0, 0])
        for o, d, im, v, c, req, byt, bot, bbyt in self.daily:
            t = owner_days[(o, d)]
            for i, x in enumerate((req, byt, bot, bbyt)):
                t[i] += x
        # The API never reads a sketch's registers, only its estimate: any
        # bytes do.
        for table, cols, rows in [
                ("analytics_daily", "owner, date, image_id, variant, country, requests, "
                 "bandwidth_bytes, bot_requests, bot_bandwidth_bytes", self.daily),
                ("analytics_owner_daily", "owner, date, requests, bandwidth_bytes, bot_requests, "
                 "bot_bandwidth_bytes", [(o, d, *t) for (o, d), t in sorted(owner_days.items())]),
                ("analytics_status_daily", "owner, date, status, requests, bot_requests",
                 self.status),
                ("analytics_hourly", "owner, hour, image_id, requests, bandwidth_bytes, "
                 "bot_requests, bot_bandwidth_bytes", self.hourly),
                ("analytics_clients_daily", "owner, date, image_id, client, requests, "
                 "bandwidth_bytes", self.clients),
                ("analytics_uniques_daily", "owner, date, image_id, uniques, registers",
                 [(*r, b"\x00") for r in self.uniques])]:
            insert(srv, table, cols, rows)

    # ---- the answers, from the rows ----

    def _net(self, req, byt, bot, bbyt, ex):
        return (req - bot, byt - bbyt) if ex else (req, byt)

    def day_series(self, owner, start, days, image=None, ex=False):
        """{date: [requests, bytes, uniques]} and the totals."""
        h = owner_hash(owner)
        ds = dates(start, days)
        out = {d: [0, 0, 0] for d in ds}
        for o, d, im, v, c, req, byt, bot, bbyt in self.daily:
            if o == h and d in out and (image is None or im == image):
                r, b = self._net(req, byt, bot, bbyt, ex)
                out[d][0] += r
                out[d][1] += b
        for o, d, im, u in self.uniques:
            if o == h and d in out and im == (image or ""):
                out[d][2] += u
        series = [{"date": d, "requests": out[d][0], "bandwidth_bytes": out[d][1],
                   "uniques": out[d][2]} for d in ds]
        totals = {k: sum(x[k] for x in series) for k in ("requests", "bandwidth_bytes", "uniques")}
        return series, totals

    def hour_series(self, owner, start, days, image=None, ex=False):
        h = owner_hash(owner)
        first = epoch(start) // 3600
        out = [[0, 0] for _ in range(days * 24)]
        for o, hr, im, req, byt, bot, bbyt in self.hourly:
            if o == h and im == (image or "") and first <= hr < first + days * 24:
                r, b = self._net(req, byt, bot, bbyt, ex)
                out[hr - first][0] += r
                out[hr - first][1] += b
        return [{"hour": hour_text(first + i), "requests": r, "bandwidth_bytes": b}
                for i, (r, b) in enumerate(out)]

    def period(self, owner, start, days, image=None, ex=False, hourly=False):
        series, totals = self.day_series(owner, start, days, image, ex)
        if hourly:
            series = self.hour_series(owner, start, days, image, ex)
        end = dates(start, days)[-1]
        return {"range": {"start": start, "end": end, "days": days,
                          "interval": "hour" if hourly else "day"},
                "totals": totals, "timeseries": series}

    def lists(self, owner, start, days, image=None, ex=False):
        h = owner_hash(owner)
        ds = set(dates(start, days))
        groups = {"image_id": collections.defaultdict(lambda: [0, 0]),
                  "country": collections.defaultdict(lambda: [0, 0]),
                  "variant": collections.defaultdict(lambda: [0, 0])}
        for o, d, im, v, c, req, byt, bot, bbyt in self.daily:
            if o != h or d not in ds or (image is not None and im != image):
                continue
            r, b = self._net(req, byt, bot, bbyt, ex)
            for key, name in (("image_id", im), ("country", c), ("variant", v)):
                groups[key][name][0] += r
                groups[key][name][1] += b
        out = {}
        for key, g in groups.items():
            items = [{key: k, "requests": r, "bandwidth_bytes": b} for k, (r, b) in g.items()
                     if r or b]
            out[key] = sorted(items, key=lambda x: (-x["requests"], -x["bandwidth_bytes"], x[key]))
        uniq = collections.Counter()
        for o, d, im, u in self.uniques:
            if o == h and d in ds and im:
                uniq[im] += u
        for t in out["image_id"]:
            t["uniques"] = uniq[t["image_id"]]
        st = collections.Counter()
        for o, d, s, req, bot in self.status:
            if o == h and d in ds:
                st[s] += req - (bot if ex else 0)
        out["status"] = [{"status": s, "requests": n}
                         for s, n in sorted(st.items(), key=lambda x: (-x[1], x[0])) if n or not ex]
        cl = {c: [0, 0] for c in ("human", "preview", "bot")}
        for o, d, im, c, req, byt in self.clients:
            if o == h and d in ds and im == (image or ""):
                cl[c][0] += req
                cl[c][1] += byt
        out["clients"] = [{"client": c, "requests": cl[c][0], "bandwidth_bytes": cl[c][1]}
                          for c in ("human", "preview", "bot") if not (ex and c == "bot")]
        return out


@pytest.fixture
def seeded(tmp_path):
    """A server (no realtime counting, no batch: the rows are the seed's
    alone), its images, alice's key, and the seeded rows."""
    srv = new_server(tmp_path, {"PIXFLARE_SECRET": SECRET, "ANALYTICS_REALTIME_ENABLED": "false"})
    srv.start()
    ids = import_tree(srv, make_tree(tmp_path, TREE))
    api = Api(srv, new_key(srv, "alice"))
    # Written before the first API call, so no date's segment is cached yet.
    seed = Seed(srv, ids, random.Random(20))
    yield srv, ids, api, seed
    srv.stop()


def overview(api, q):
    """The raw answer (test_api's Api.overview leaves issue 20's fields out)."""
    return api.get("/v1/analytics/overview?" + q)[0]


def image(api, image_id, q):
    return api.get("/v1/analytics/images/%s?%s" % (image_id, q))[0]


def names(ids, image_id):
    rel = [k for k, v in ids.items() if v == image_id][0]
    _, album, filename = rel.split("/", 2)
    return album, filename


def expected_overview(seed, ids, start, days, ex=False, hourly=False, compare=False, limit=10):
    p = seed.period("alice", start, days, ex=ex, hourly=hourly)
    lists = seed.lists("alice", start, days, ex=ex)
    top = lists["image_id"][:limit]
    for t in top:
        t["album"], t["filename"] = names(ids, t["image_id"])
    want = {"owner": "alice", "range": p["range"], "totals": p["totals"],
            "timeseries": p["timeseries"],
            "top_images": [{k: t[k] for k in ("image_id", "album", "filename", "requests",
                                              "bandwidth_bytes", "uniques")} for t in top],
            "countries": lists["country"], "variants": lists["variant"],
            "status_codes": lists["status"], "exclude_bots": ex, "clients": lists["clients"],
            "freshness": {"realtime": False, "last_aggregation_date": None}}
    if compare:
        before = dates(start, 1)[0]
        prev_start = (datetime.date.fromisoformat(before) - datetime.timedelta(days=days)).isoformat()
        want["previous"] = seed.period("alice", prev_start, days, ex=ex, hourly=hourly)
    return want


def expected_image(seed, ids, image_id, start, days, ex=False, hourly=False, compare=False):
    p = seed.period("alice", start, days, image=image_id, ex=ex, hourly=hourly)
    lists = seed.lists("alice", start, days, image=image_id, ex=ex)
    album, filename = names(ids, image_id)
    want = {"image_id": image_id, "owner": "alice", "album": album, "filename": filename,
            "range": p["range"], "totals": p["totals"], "variants": lists["variant"],
            "countries": lists["country"], "timeseries": p["timeseries"],
            "freshness": {"realtime": False, "last_aggregation_date": None},
            "exclude_bots": ex, "clients": lists["clients"]}
    if compare:
        prev_start = (datetime.date.fromisoformat(start) - datetime.timedelta(days=days)).isoformat()
        want["previous"] = seed.period("alice", prev_start, days, image=image_id, ex=ex,
                                       hourly=hourly)
    return want


def query(start, days, ex=False, hourly=False, compare=False):
    q = "start=%s&end=%s" % (start, dates(start, days)[-1])
    if hourly:
        q += "&interval=hour"
    if compare:
        q += "&compare=previous"
    if ex:
        q += "&exclude_bots=true"
    return q


CASES = [  # (start offset, days, exclude_bots, hourly, compare)
    (-6, 7, False, False, False),
    (-6, 7, True, False, False),
    (-6, 7, False, True, False),
    (-6, 7, True, True, True),
    (-2, 3, False, False, True),
    (-2, 3, True, False, True),
    (-9, 1, False, True, True),
    (-15, 16, True, False, True),
    (-1, 2, False, True, True),
]


def test_answers_equal_the_seeded_rows(seeded):
    """Every field of both endpoints, for day and hour series, with and
    without exclude_bots and compare=previous, equals sums over the rows."""
    srv, ids, api, seed = seeded
    alice_images = sorted(v for k, v in ids.items() if k.startswith("alice/"))
    for off, days, ex, hourly, compare in CASES:
        start = day(off)
        q = query(start, days, ex, hourly, compare)
        got = overview(api, q)
        want = expected_overview(seed, ids, start, days, ex, hourly, compare)
        assert got == want, q
        for image_id in alice_images:
            got = image(api, image_id, q)
            assert got == expected_image(seed, ids, image_id, start, days, ex, hourly,
                                         compare), (image_id, q)


def test_hour_series_has_every_hour_with_zeros(seeded):
    srv, ids, api, seed = seeded
    j = overview(api, "days=7&interval=hour")
    assert j["range"]["interval"] == "hour"
    hours = [e["hour"] for e in j["timeseries"]]
    first = epoch(day(-6)) // 3600
    assert hours == [hour_text(first + i) for i in range(7 * 24)]
    assert all(set(e) == {"hour", "requests", "bandwidth_bytes"} for e in j["timeseries"])
    zeros = [e for e in j["timeseries"] if e["requests"] == 0]
    assert zeros, "the seed leaves hours out: they must be there as zeros"
    # exclude_bots subtracts exactly the bot columns, hour by hour
    k = overview(api, "days=7&interval=hour&exclude_bots=true")
    h = owner_hash("alice")
    bots = {hr: (br, bb) for o, hr, im, r, b, br, bb in seed.hourly if o == h and im == ""}
    for a, b, i in zip(j["timeseries"], k["timeseries"], range(7 * 24)):
        br, bb = bots.get(first + i, (0, 0))
        assert (a["requests"] - b["requests"], a["bandwidth_bytes"] - b["bandwidth_bytes"]) == \
            (br, bb), a["hour"]
    # one day: 24 entries
    assert len(overview(api, "days=1&interval=hour")["timeseries"]) == 24


def test_previous_is_the_period_just_before(seeded):
    srv, ids, api, seed = seeded
    j = overview(api, "start=%s&end=%s&compare=previous" % (day(-4), day(-2)))
    assert j["previous"]["range"] == {"start": day(-7), "end": day(-5), "days": 3,
                                      "interval": "day"}
    assert [e["date"] for e in j["previous"]["timeseries"]] == [day(-7), day(-6), day(-5)]
    h = owner_hash("alice")
    want = sum(r[5] for r in seed.daily if r[0] == h and day(-7) <= r[1] <= day(-5))
    assert j["previous"]["totals"]["requests"] == want
    assert "previous" not in overview(api, "days=3")
    # days=N: the N days before
    j = overview(api, "days=5&compare=previous&interval=hour")
    assert j["previous"]["range"] == {"start": day(-9), "end": day(-5), "days": 5,
                                      "interval": "hour"}
    assert len(j["previous"]["timeseries"]) == 5 * 24
    assert j["previous"]["timeseries"][0]["hour"] == day(-9) + "T00:00:00Z"
    assert j["previous"]["timeseries"][-1]["hour"] == day(-5) + "T23:00:00Z"


def test_exclude_bots_subtracts_exactly(seeded):
    srv, ids, api, seed = seeded
    a = overview(api, "days=14")
    b = overview(api, "days=14&exclude_bots=true")
    h = owner_hash("alice")
    rows = [r for r in seed.daily if r[0] == h and r[1] >= day(-13)]
    assert a["totals"]["requests"] - b["totals"]["requests"] == sum(r[7] for r in rows)
    assert a["totals"]["bandwidth_bytes"] - b["totals"]["bandwidth_bytes"] == \
        sum(r[8] for r in rows)
    assert a["totals"]["uniques"] == b["totals"]["uniques"]  # bots are never in uniques
    assert a["exclude_bots"] is False and b["exclude_bots"] is True
    assert [c["client"] for c in a["clients"]] == ["human", "preview", "bot"]
    assert [c["client"] for c in b["clients"]] == ["human", "preview"]
    assert a["clients"][:2] == b["clients"]
    st = collections.Counter()
    for o, d, s, req, bot in seed.status:
        if o == h and d >= day(-13):
            st[s] += bot
    sa = {x["status"]: x["requests"] for x in a["status_codes"]}
    sb = {x["status"]: x["requests"] for x in b["status_codes"]}
    for s, n in sa.items():
        assert n - sb.get(s, 0) == st[s], s


def test_uniques_and_clients_fields(seeded):
    srv, ids, api, seed = seeded
    h = owner_hash("alice")
    j = overview(api, "days=7")
    assert j["totals"]["uniques"] == sum(u for o, d, im, u in seed.uniques
                                         if o == h and im == "" and d >= day(-6))
    assert all("uniques" in e for e in j["timeseries"])
    assert all("uniques" in t for t in j["top_images"])
    assert [c["client"] for c in j["clients"]] == ["human", "preview", "bot"]
    # an owner with no rows at all: zeros, the three classes all the same
    bob = Api(srv, new_key(srv, "carol"))
    j = overview(bob, "days=7&compare=previous")
    assert j["totals"] == {"requests": 0, "bandwidth_bytes": 0, "uniques": 0}
    assert j["clients"] == [{"client": c, "requests": 0, "bandwidth_bytes": 0}
                            for c in ("human", "preview", "bot")]
    assert j["previous"]["totals"] == {"requests": 0, "bandwidth_bytes": 0, "uniques": 0}


BAD = [
    ("interval", ["week", "Hour", "", "hours", "day,hour"], "interval must be day or hour"),
    ("compare", ["last", "", "Previous", "true"], "compare must be previous"),
    ("exclude_bots", ["1", "yes", "", "TRUE", "False"], "exclude_bots must be true or false"),
]


@pytest.mark.parametrize("endpoint", ["overview", "image"])
def test_bad_values_name_the_parameter(seeded, endpoint):
    srv, ids, api, seed = seeded
    path = ("/v1/analytics/overview" if endpoint == "overview"
            else "/v1/analytics/images/" + ids["alice/pics/a.png"])
    for name, values, message in BAD:
        for v in values:
            st, hdrs, body = api.call("%s?days=7&%s=%s" % (path, name, v))
            j = assert_error(st, hdrs, body, 400, "INVALID_PARAMETER", name)
            assert j["error"]["message"] == message, (name, v)
        # given twice
        st, hdrs, body = api.call("%s?%s=%s&%s=%s" % (path, name, values[0], name, values[0]))
        assert_error(st, hdrs, body, 400, "INVALID_PARAMETER", name)
    for q in ("interval=hour", "interval=hour&days=8", "interval=hour&start=%s" % day(-7),
              "interval=hour&end=%s" % day(-1)):
        st, hdrs, body = api.call("%s?%s" % (path, q))
        j = assert_error(st, hdrs, body, 400, "INVALID_PARAMETER", "interval")
        assert j["error"]["message"] == "interval=hour allows a range of at most 7 days", q
    st, hdrs, body = api.call(path + "?exclude_bot=true")
    j = assert_error(st, hdrs, body, 400, "INVALID_PARAMETER", "exclude_bot")
    assert "interval, compare, exclude_bots)" in j["error"]["message"]


def test_csv_sections(seeded):
    srv, ids, api, seed = seeded
    q = "days=3&compare=previous&exclude_bots=true"
    j = overview(api, q)
    text, hdrs = api.get("/v1/analytics/overview?format=csv&" + q)
    s = csv_sections(text)
    assert [sec[0] for sec in s] == [
        ["owner", "start", "end", "days", "requests", "bandwidth_bytes", "realtime",
         "last_aggregation_date", "uniques", "interval", "exclude_bots"],
        ["date", "requests", "bandwidth_bytes", "uniques"],
        ["image_id", "album", "filename", "requests", "bandwidth_bytes", "uniques"],
        ["country", "requests", "bandwidth_bytes"],
        ["variant", "requests", "bandwidth_bytes"],
        ["status", "requests"],
        ["client", "requests", "bandwidth_bytes"],
        ["previous_start", "previous_end", "previous_days", "requests", "bandwidth_bytes",
         "uniques"],
        ["previous_date", "requests", "bandwidth_bytes", "uniques"]]
    t = j["totals"]
    assert s[0][1] == ["alice", j["range"]["start"], j["range"]["end"], "3", str(t["requests"]),
                       str(t["bandwidth_bytes"]), "false", "", str(t["uniques"]), "day", "true"]
    assert [[x["date"], str(x["requests"]), str(x["bandwidth_bytes"]), str(x["uniques"])]
            for x in j["timeseries"]] == s[1][1:]
    assert [[x["image_id"], x["album"], x["filename"], str(x["requests"]),
             str(x["bandwidth_bytes"]), str(x["uniques"])] for x in j["top_images"]] == s[2][1:]
    assert [[c["client"], str(c["requests"]), str(c["bandwidth_bytes"])]
            for c in j["clients"]] == s[6][1:]
    p = j["previous"]
    assert s[7][1:] == [[p["range"]["start"], p["range"]["end"], "3",
                         str(p["totals"]["requests"]), str(p["totals"]["bandwidth_bytes"]),
                         str(p["totals"]["uniques"])]]
    assert [[x["date"], str(x["requests"]), str(x["bandwidth_bytes"]), str(x["uniques"])]
            for x in p["timeseries"]] == s[8][1:]
    # hourly: `hour` rows without uniques, the image endpoint likewise
    image_id = ids["alice/pics/b.png"]
    q = "days=2&interval=hour&compare=previous"
    j = image(api, image_id, q)
    text, _ = api.get("/v1/analytics/images/%s?format=csv&%s" % (image_id, q))
    s = csv_sections(text)
    assert [sec[0] for sec in s][1:] == [
        ["hour", "requests", "bandwidth_bytes"],
        ["variant", "requests", "bandwidth_bytes"],
        ["country", "requests", "bandwidth_bytes"],
        ["client", "requests", "bandwidth_bytes"],
        ["previous_start", "previous_end", "previous_days", "requests", "bandwidth_bytes",
         "uniques"],
        ["previous_hour", "requests", "bandwidth_bytes"]]
    assert s[0][1][-3:] == [str(j["totals"]["uniques"]), "hour", "false"]
    assert [[x["hour"], str(x["requests"]), str(x["bandwidth_bytes"])]
            for x in j["timeseries"]] == s[1][1:]
    assert [[x["hour"], str(x["requests"]), str(x["bandwidth_bytes"])]
            for x in j["previous"]["timeseries"]] == s[6][1:]
    assert len(s[6]) == 1 + 48
