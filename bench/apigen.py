#!/usr/bin/python3
"""bench/apigen.py - dataset, answer checks and peer timing for bench/api.sh.

Standard library only. Subcommands:

  gen     writes the analytics dataset into a pixflare database (whose schema
          `pixflare keys ...` created), the same analytics_daily and
          analytics_status_daily rows as TSV for ClickHouse, and the expected
          API answers, computed from the generated values alone (never read
          back from SQLite), as JSON.
  check   compares one API response (JSON on stdin) with the expected answer,
          from gen's JSON or (--db) from SQL over the database as it is now.
  peer    client-side round trips, alternating: pixflare's overview / image
          endpoint and ClickHouse's equivalent queries over HTTP.
  pct     p50/p95/p99 of numbers on stdin.

The dataset (gen). Dates: the --days (90) dates ending --today. Owners:
"bench" and five small ones ("carol", "dave", "erin", "frank", "grace"), each
with its own images; everything below is per owner, "bench"'s numbers first
and the small owners' in brackets.

- images: --images (4000) [40-150] ids of 6 characters [a-z0-9] (not among
  the ids already in the database), in 12 albums, popularity by Zipf: image
  of rank r has a base of L / r^1.1 requests a day, L = 20000 [300-2000].
  25% were created inside the date range and are served from their creation
  date on; the rest before it.
- what an image is served as: its two favourite variants take 65% and 25%
  of its weight, the 9 variants' overall mix the other 10%; countries from a
  weighted list of 61 codes plus XX (US 20%, DE 7%, GB 6%, IN 6%, ...), with
  one "home" country of the image weighted 3x. The image's (variant,
  country) pairs (9 x 62 = 558) are put in a fixed order for the image by
  weighted sampling without replacement (an exponential race on the
  weights), so that its popular pairs come first.
- each date: a day factor (0.85 at the start of the range to 1.15 at its
  end, weekends x0.85, x0.95-1.05 noise); an image is served on a date with
  probability 1 - exp(-base) (popular images every day, the rarest about
  9 days in 10); its day's requests lam = base x day factor x 0.8-1.25; it is
  served as the first k of its pairs, k = c x base^0.75 x 0.8-1.2, at least 1,
  at most lam and 558, where c is solved (by bisection on the expected row
  count) so that the owner gets about --rows (1,100,000) [2,000-20,000]
  analytics_daily rows; each row gets lam x its pair's weight / the k pairs'
  weights x 0.6-1.4 requests (at least 1), and requests x the variant's
  size for the image x 0.85-1.0 bytes (304s and HEADs send none). Variant
  sizes: the original ~0.25-4 MB, w128 6 KB ... og-image 120 KB times a
  per-image factor 0.4-2.5, never larger than the original.
- analytics_owner_daily and analytics_monthly: the sums of those rows per
  date and per month; analytics_status_daily: each date's requests split
  9% 304, 1% 206, the rest 200, plus 3% more as 404 and 0.4% as 400 (which
  analytics_daily does not count); analytics_batch_days: every date but the
  last, as a server whose batch aggregation ran would have.

At the defaults (seed 1, --today 2026-11-25; other dates shift the weekday
pattern, so the counts move by a few hundred) "bench" gets 1,090,922
analytics_daily rows, 305,655 distinct (image, date) of the 360,000
possible, 4,000 images, 10,346,603 requests and 2.90 TB; its top image
1,781,371 requests in 50,220 rows; the image ranked 401st 433 rows; the five
small owners 47,747 rows. Generating and inserting all of it takes ~7 s.

All rows are inserted in primary-key order in one transaction. The expected
answers follow SPEC.md: lists by requests descending, then bandwidth
descending, then name ascending; timeseries one entry per date.
"""
import argparse
import datetime
import hashlib
import hmac
import http.client
import json
import math
import random
import sqlite3
import sys
import time
import urllib.parse
import zlib

VARIANTS = ["original", "w128", "w256", "w512", "w1024", "w1536", "w2048", "thumb", "og-image"]
VARIANT_MIX = [0.20, 0.08, 0.12, 0.20, 0.18, 0.06, 0.04, 0.08, 0.04]
# Typical bytes of each variant before the image's factor (original: its own size).
VARIANT_BYTES = [None, 6000, 18000, 60000, 200000, 400000, 650000, 8000, 120000]
COUNTRIES = [
    ("US", 20), ("DE", 7), ("GB", 6), ("IN", 6), ("BR", 5), ("FR", 4.5), ("JP", 4),
    ("CA", 3.5), ("RU", 3), ("IT", 3), ("ES", 3), ("NL", 2.5), ("AU", 2.5), ("KR", 2),
    ("MX", 2), ("PL", 2), ("ID", 2), ("TR", 1.8), ("SE", 1.5), ("CH", 1.3), ("BE", 1.2),
    ("AT", 1), ("UA", 1), ("AR", 1), ("VN", 1), ("PH", 1), ("TH", 1), ("SG", 0.9),
    ("HK", 0.8), ("TW", 0.8), ("ZA", 0.8), ("NO", 0.8), ("DK", 0.8), ("FI", 0.7),
    ("IE", 0.7), ("PT", 0.7), ("CZ", 0.7), ("RO", 0.6), ("IL", 0.6), ("NZ", 0.5),
    ("MY", 0.5), ("CL", 0.5), ("CO", 0.5), ("GR", 0.5), ("HU", 0.4), ("EG", 0.4),
    ("SA", 0.4), ("AE", 0.4), ("PK", 0.4), ("NG", 0.4), ("BD", 0.3), ("PE", 0.3),
    ("KE", 0.2), ("MA", 0.2), ("SK", 0.2), ("BG", 0.2), ("HR", 0.2), ("RS", 0.2),
    ("LT", 0.15), ("EE", 0.1), ("T1", 0.1), ("XX", 1.0),
]
ALBUMS = ["travel", "products", "blog", "team", "events", "press", "archive", "landing",
          "docs", "social", "catalog", "misc"]
ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"
# The (variant, country) pairs in primary-key (text) order: a sorted list of
# pair indexes is a sorted list of rows.
PAIRS = sorted((v, c) for v in range(len(VARIANTS)) for c in range(len(COUNTRIES)))
PAIRS.sort(key=lambda p: (VARIANTS[p[0]], COUNTRIES[p[1]][0]))
NPAIRS = len(PAIRS)
SMALL_OWNERS = [("carol", 40, 300, 2000), ("dave", 150, 2000, 20000), ("erin", 80, 800, 8000),
                ("frank", 60, 500, 5000), ("grace", 120, 1200, 12000)]


def owner_hash(secret, name):
    return hmac.new(secret.encode(), name.encode(), hashlib.sha256).hexdigest()[:32]


def order_key(item):
    """SPEC.md's list order: requests desc, bandwidth desc, name asc."""
    name, req, byt = item
    return (-req, -byt, name)


def ranked(d, key_name):
    """{name: [req, bytes]} -> SPEC-ordered list of dicts."""
    items = sorted(((k, v[0], v[1]) for k, v in d.items()), key=order_key)
    return [{key_name: k, "requests": r, "bandwidth_bytes": b} for k, r, b in items]


class Owner:
    pass


def plan_owner(rnd, name, n_images, top, target_rows, dates, taken, created_now):
    """Images and their per-image parameters; c solved for target_rows."""
    o = Owner()
    o.name = name
    o.images = []
    ndates = len(dates)
    first = datetime.date.fromisoformat(dates[0])
    cweights = [w for _, w in COUNTRIES]
    for rank in range(1, n_images + 1):
        while True:
            iid = "".join(rnd.choice(ID_CHARS) for _ in range(6))
            if iid not in taken:
                break
        taken.add(iid)
        im = Owner()
        im.id = iid
        im.rank = rank
        im.base = top / rank ** 1.1
        im.p = 1.0 - math.exp(-im.base)
        im.album = ALBUMS[rnd.randrange(len(ALBUMS))]
        im.filename = "IMG_%05d.jpg" % rank
        if rnd.random() < 0.25:
            im.start = rnd.randrange(ndates)  # created inside the range
            cday = first + datetime.timedelta(days=im.start)
        else:
            im.start = 0
            cday = first - datetime.timedelta(days=rnd.randrange(1, 730))
        im.created_at = "%sT%02d:%02d:%02dZ" % (cday.isoformat(), rnd.randrange(24),
                                                 rnd.randrange(60), rnd.randrange(60))
        if cday.isoformat() == created_now[:10]:
            im.created_at = min(im.created_at, created_now)
        factor = math.exp(rnd.uniform(math.log(0.4), math.log(2.5)))
        im.size = int(900000 * math.exp(rnd.gauss(0, 0.7)))
        im.size = max(20000, min(im.size, 12000000))
        im.width = rnd.choice([1600, 2048, 3000, 4000, 1200, 800])
        im.height = im.width * rnd.choice([2, 3, 9, 10]) // rnd.choice([3, 4, 16, 10])
        im.sha = "".join(rnd.choice("0123456789abcdef") for _ in range(64))
        im.vbytes = [im.size] + [min(im.size, int(b * factor)) for b in VARIANT_BYTES[1:]]
        fav = rnd.choices(range(len(VARIANTS)), weights=VARIANT_MIX, k=1)[0]
        fav2 = fav
        while fav2 == fav:
            fav2 = rnd.choices(range(len(VARIANTS)), weights=VARIANT_MIX, k=1)[0]
        vw = [0.10 * m for m in VARIANT_MIX]
        vw[fav] += 0.65
        vw[fav2] += 0.25
        home = rnd.choices(range(len(COUNTRIES)), weights=cweights, k=1)[0]
        cw = list(cweights)
        cw[home] *= 3
        # exponential race: smallest -log(u)/w first = weighted sampling
        # without replacement
        race = []
        for idx, (v, c) in enumerate(PAIRS):
            w = vw[v] * cw[c]
            race.append((-math.log(1.0 - rnd.random()) / w, idx, w))
        race.sort()
        im.order = [idx for _, idx, _ in race]
        im.weight = [0.0] * NPAIRS
        for _, idx, w in race:
            im.weight[idx] = w
        o.images.append(im)

    # c such that the expected rows are target_rows (the day factor averages ~1)
    def expected(c):
        total = 0.0
        for im in o.images:
            k = min(max(1.0, c * im.base ** 0.75), NPAIRS, max(1.0, im.base))
            total += (ndates - im.start) * im.p * k
        return total

    lo, hi = 1e-4, 100.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if expected(mid) < target_rows:
            lo = mid
        else:
            hi = mid
    o.c = (lo + hi) / 2
    return o


# The share of an image's day rows in the hour of day (UTC), before noise.
DIURNAL = [0.45, 0.38, 0.33, 0.30, 0.30, 0.34, 0.45, 0.62, 0.80, 0.95, 1.05, 1.12, 1.18, 1.20,
           1.18, 1.15, 1.12, 1.10, 1.08, 1.05, 0.98, 0.85, 0.70, 0.55]


def bot_share(image_id):
    """The percentage of an image's requests and bytes that bots make
    (0-15, fixed per image)."""
    return zlib.crc32(image_id.encode()) % 16


def epoch(date):
    return int(datetime.datetime.fromisoformat(date + "T00:00:00+00:00").timestamp())


def more_rows(conn, o, img_day, dates, rnd):
    """analytics_clients_daily and analytics_uniques_daily as the capture
    path keeps them: per image and date served (and the owner's totals as
    image_id ''), the clients split into bot (the image's bot_share), preview
    (5% of the rest) and human; an estimate of unique clients of 30-70% of
    the requests, with a stand-in sketch of the size a real one would have
    (4 bytes a client, at most 12 KiB: the reads never decode it). No
    sketch for the last date: live traffic merges into today's, which must
    be real."""
    ndates = len(dates)
    clients, uniques = [], []
    o.day_uniques = [0] * ndates
    for di, d in enumerate(dates):
        tot = {}
        day_u = 0
        for iid in sorted(img_day):
            r, b = img_day[iid][0][di], img_day[iid][1][di]
            if r == 0:
                continue
            share = bot_share(iid)
            br, bb = r * share // 100, b * share // 100
            pr, pb = (r - br) // 20, (b - bb) // 20
            for c, cr, cb in (("bot", br, bb), ("human", r - br - pr, b - bb - pb),
                              ("preview", pr, pb)):
                if cr:
                    clients.append((o.hash, d, iid, c, cr, cb))
                    t = tot.setdefault(c, [0, 0])
                    t[0] += cr
                    t[1] += cb
            u = max(1, int((r - br) * rnd.uniform(0.3, 0.7)))
            day_u += u
            if di < ndates - 1:
                uniques.append((o.hash, d, iid, u, bytes(min(12288, 4 * u))))
        for c in sorted(tot):
            clients.append((o.hash, d, "", c, tot[c][0], tot[c][1]))
        if day_u and di < ndates - 1:
            o.day_uniques[di] = day_u * 4 // 5
            uniques.append((o.hash, d, "", o.day_uniques[di], bytes(12288)))
    conn.executemany("INSERT INTO analytics_clients_daily (owner, date, image_id, client, requests, "
                     "bandwidth_bytes) VALUES (?, ?, ?, ?, ?, ?)", sorted(clients))
    conn.executemany("INSERT INTO analytics_uniques_daily (owner, date, image_id, uniques, "
                     "registers) VALUES (?, ?, ?, ?, ?)", sorted(uniques))
    o.more = (len(clients), len(uniques))


def hourly_rows(o, img_day, dates, hdays, now_hour, rnd):
    """analytics_hourly for the last `hdays` dates (no hour after now): each
    image's day split over the hours (min(requests, 48) draws weighted by
    DIURNAL, the requests shared by the draws' counts), and the owner's
    total of each hour as image_id ''. In key order (owner, image_id, hour)."""
    ndates = len(dates)
    per = {}  # image -> {hour: [r, b, br, bb]}
    for di in range(max(0, ndates - hdays), ndates):
        h0 = epoch(dates[di]) // 3600
        hours = [h for h in range(24) if h0 + h <= now_hour]
        if not hours:
            continue
        w = [DIURNAL[h] for h in hours]
        for iid, (rq, bt) in img_day.items():
            r, b = rq[di], bt[di]
            if r == 0:
                continue
            counts = {}
            for h in rnd.choices(hours, weights=w, k=min(r, 48)):
                counts[h] = counts.get(h, 0) + 1
            n = sum(counts.values())
            share = bot_share(iid)
            left_r, left_b = r, b
            items = sorted(counts.items())
            dst = per.setdefault(iid, {})
            for j, (h, c) in enumerate(items):
                hr = r * c // n if j < len(items) - 1 else left_r
                hb = b * hr // r if j < len(items) - 1 else left_b
                left_r -= hr
                left_b -= hb
                if hr:
                    dst[h0 + h] = [hr, hb, hr * share // 100, hb * share // 100]
    total = {}
    for iid, hrs in per.items():
        for h, v in hrs.items():
            t = total.setdefault(h, [0, 0, 0, 0])
            for k in range(4):
                t[k] += v[k]
    rows = [(o.hash, h, "", *total[h]) for h in sorted(total)]
    for iid in sorted(per):
        rows.extend((o.hash, h, iid, *per[iid][h]) for h in sorted(per[iid]))
    return rows


def gen(args):
    today = datetime.date.fromisoformat(args.today)
    dates = [(today - datetime.timedelta(days=args.days - 1 - i)).isoformat() for i in range(args.days)]
    rnd = random.Random(args.seed)
    conn = sqlite3.connect(args.db, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 10000")
    taken = {r[0] for r in conn.execute("SELECT id FROM images")}
    created_now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    t0 = time.time()

    specs = [("bench", args.images, args.top, args.rows)] + SMALL_OWNERS
    owners = []
    for name, n, top, rows in specs:
        o = plan_owner(rnd, name, n, top, rows, dates, taken, created_now)
        o.hash = owner_hash(args.secret, name)
        owners.append(o)
    owners.sort(key=lambda o: o.hash)

    ndates = len(dates)
    day_factor = []
    for i, d in enumerate(dates):
        f = 0.85 + 0.30 * i / max(1, ndates - 1)
        if datetime.date.fromisoformat(d).weekday() >= 5:
            f *= 0.85
        day_factor.append(f * rnd.uniform(0.95, 1.05))

    tsv = open(args.tsv, "w")
    stsv = open(args.status_tsv, "w")
    vnames = VARIANTS
    cnames = [c for c, _ in COUNTRIES]
    pair_v = [vnames[v] for v, _ in PAIRS]
    pair_c = [cnames[c] for _, c in PAIRS]
    pair_vi = [v for v, _ in PAIRS]
    expect = {"owner": "bench", "today": args.today, "days": args.days, "seed": args.seed}
    conn.execute("BEGIN")
    ins_daily = ("INSERT INTO analytics_daily (owner, date, image_id, variant, country, "
                 "requests, bandwidth_bytes, bot_requests, bot_bandwidth_bytes) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
    hrnd = random.Random(args.seed * 7919 + 20)  # the hours: not the rows' generator
    now_hour = int(time.time()) // 3600
    totals_all = {}
    for o in owners:
        images = sorted(o.images, key=lambda im: im.id)
        is_bench = o.name == "bench"
        day_req = [0] * ndates
        day_bytes = [0] * ndates
        day_bot = [0] * ndates
        day_bot_bytes = [0] * ndates
        # per date: per pair index, requests and bytes (countries, variants)
        pair_req = [[0] * NPAIRS for _ in range(ndates)] if is_bench else None
        pair_bytes = [[0] * NPAIRS for _ in range(ndates)] if is_bench else None
        img_day = {}  # image id -> [per date req], [per date bytes]
        nrows = 0
        image_days = 0
        for di, d in enumerate(dates):
            rows = []
            dfac = day_factor[di]
            preq = pair_req[di] if is_bench else None
            pbyt = pair_bytes[di] if is_bench else None
            for im in images:
                if di < im.start or rnd.random() >= im.p:
                    continue
                lam = im.base * dfac * rnd.uniform(0.8, 1.25)
                k = int(o.c * im.base ** 0.75 * rnd.uniform(0.8, 1.2) + 0.5)
                k = max(1, min(k, NPAIRS, int(lam)))
                chosen = sorted(im.order[:k])
                wsum = 0.0
                weight = im.weight
                for idx in chosen:
                    wsum += weight[idx]
                scale = lam / wsum
                vb = im.vbytes
                ireq = ibyt = 0
                rand = rnd.random
                iid = im.id
                for idx in chosen:
                    req = int(scale * weight[idx] * (0.6 + 0.8 * rand()) + 0.5)
                    if req < 1:
                        req = 1
                    byt = int(req * vb[pair_vi[idx]] * (0.85 + 0.15 * rand()))
                    rows.append((o.hash, d, iid, pair_v[idx], pair_c[idx], req, byt))
                    ireq += req
                    ibyt += byt
                    if preq is not None:
                        preq[idx] += req
                        pbyt[idx] += byt
                nrows += len(chosen)
                image_days += 1
                day_req[di] += ireq
                day_bytes[di] += ibyt
                e = img_day.get(iid)
                if e is None:
                    e = img_day[iid] = ([0] * ndates, [0] * ndates)
                e[0][di] += ireq
                e[1][di] += ibyt
            # bots: a fixed share of each image's rows (bot_share), so the
            # rows' own random draws stay those of the seed
            brows = [r + (r[5] * bot_share(r[2]) // 100, r[6] * bot_share(r[2]) // 100) for r in rows]
            day_bot[di] = sum(r[7] for r in brows)
            day_bot_bytes[di] = sum(r[8] for r in brows)
            conn.executemany(ins_daily, brows)
            tsv.write("".join("%s\t%s\t%s\t%s\t%s\t%d\t%d\n" % r for r in rows))
            if is_bench and args.progress:
                if sys.stderr.isatty():
                    sys.stderr.write("\r   bench: date %d/%d, %d rows" % (di + 1, ndates, nrows))
                elif (di + 1) % 30 == 0 or di + 1 == ndates:
                    sys.stderr.write("   bench: date %d/%d, %d rows\n" % (di + 1, ndates, nrows))
                sys.stderr.flush()
        if is_bench and args.progress and sys.stderr.isatty():
            sys.stderr.write("\n")
        # owner_daily, monthly, status, batch_days
        months = {}
        for di, d in enumerate(dates):
            if day_req[di] == 0 and day_bytes[di] == 0:
                continue
            conn.execute("INSERT INTO analytics_owner_daily (owner, date, requests, bandwidth_bytes, "
                         "bot_requests, bot_bandwidth_bytes) VALUES (?, ?, ?, ?, ?, ?)",
                         (o.hash, d, day_req[di], day_bytes[di], day_bot[di], day_bot_bytes[di]))
            m = months.setdefault(d[:7], [0, 0])
            m[0] += day_req[di]
            m[1] += day_bytes[di]
        for ym in sorted(months):
            conn.execute("INSERT INTO analytics_monthly (owner, year_month, requests, bandwidth_bytes) "
                         "VALUES (?, ?, ?, ?)", (o.hash, ym, months[ym][0], months[ym][1]))
        status_days = {}
        for di, d in enumerate(dates):
            r = day_req[di]
            if r == 0:
                continue
            s304 = r * 9 // 100
            s206 = r // 100
            st = {200: r - s304 - s206, 206: s206, 304: s304, 404: r * 3 // 100, 400: r * 4 // 1000}
            status_days[di] = st
            for s in sorted(st):  # (owner, date, status) order
                if st[s] > 0:
                    # the bots' requests all answered 200
                    conn.execute("INSERT INTO analytics_status_daily (owner, date, status, requests, "
                                 "bot_requests) VALUES (?, ?, ?, ?, ?)",
                                 (o.hash, d, s, st[s], day_bot[di] if s == 200 else 0))
                    stsv.write("%s\t%s\t%d\t%d\n" % (o.hash, d, s, st[s]))
        for im in o.images:
            conn.execute("INSERT INTO images (id, owner, album, filename, content_type, size_bytes, "
                         "created_at, sha256, width, height) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (im.id, o.name, im.album, im.filename, "image/jpeg", im.size,
                          im.created_at, im.sha, im.width, im.height))
        totals_all[o.name] = {"hash": o.hash, "rows": nrows, "image_days": image_days,
                              "images": len(o.images), "requests": sum(day_req),
                              "bandwidth_bytes": sum(day_bytes), "c": round(o.c, 4)}
        more_rows(conn, o, img_day, dates, hrnd)
        hourly = hourly_rows(o, img_day, dates, args.hourly_days, now_hour, hrnd)
        conn.executemany("INSERT INTO analytics_hourly (owner, hour, image_id, requests, "
                         "bandwidth_bytes, bot_requests, bot_bandwidth_bytes) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)", hourly)
        if is_bench:
            expect["bots"] = {"requests": day_bot, "bandwidth_bytes": day_bot_bytes}
            first = epoch(dates[ndates - args.hourly_days]) // 3600 if args.hourly_days else 0
            hs = {k: [0] * (args.hourly_days * 24) for k in ("r", "b", "br", "bb")}
            for _, hr, iid, r, b, br, bb in hourly:
                if iid == "":
                    for k, v in (("r", r), ("b", b), ("br", br), ("bb", bb)):
                        hs[k][hr - first] = v
            expect["hourly"] = {"first_hour": first, "requests": hs["r"], "bandwidth_bytes": hs["b"],
                                "bot_requests": hs["br"], "bot_bandwidth_bytes": hs["bb"],
                                "rows": len(hourly)}
            expect["more_rows"] = {"clients": o.more[0], "uniques": o.more[1]}
            expect["owner_uniques"] = o.day_uniques
            by_id = {im.id: im for im in o.images}
            ranges = {}
            for span in sorted({args.days, 30, 7}):
                if span > ndates:
                    continue
                lo = ndates - span
                rng = {"start": dates[lo], "end": dates[-1], "days": span}
                ts = [{"date": dates[i], "requests": day_req[i], "bandwidth_bytes": day_bytes[i]}
                      for i in range(lo, ndates)]
                tot = {"requests": sum(day_req[lo:]), "bandwidth_bytes": sum(day_bytes[lo:])}
                imgs = {}
                for iid, (rq, bt) in img_day.items():
                    r = sum(rq[lo:])
                    if r:
                        imgs[iid] = [r, sum(bt[lo:])]
                top = ranked(imgs, "image_id")[:100]
                for t in top:
                    t["album"] = by_id[t["image_id"]].album
                    t["filename"] = by_id[t["image_id"]].filename
                countries = {}
                variants = {}
                for i in range(lo, ndates):
                    pr, pb = pair_req[i], pair_bytes[i]
                    for idx in range(NPAIRS):
                        if pr[idx]:
                            c = countries.setdefault(pair_c[idx], [0, 0])
                            c[0] += pr[idx]
                            c[1] += pb[idx]
                            v = variants.setdefault(pair_v[idx], [0, 0])
                            v[0] += pr[idx]
                            v[1] += pb[idx]
                status = {}
                for i in range(lo, ndates):
                    for s, n in status_days.get(i, {}).items():
                        if n:
                            status[s] = status.get(s, 0) + n
                sc = sorted(status.items(), key=lambda kv: (-kv[1], kv[0]))
                ranges[str(span)] = {
                    "range": rng, "totals": tot, "timeseries": ts, "top_images": top,
                    "countries": ranked(countries, "country"), "variants": ranked(variants, "variant"),
                    "status_codes": [{"status": s, "requests": n} for s, n in sc],
                    "images_served": len(imgs),
                }
            expect["overview"] = ranges
            # the top image and a mid one (rank images/10 by 90-day requests)
            order90 = ranges[str(args.days)]["top_images"]
            allranked = ranked({iid: [sum(rq), sum(bt)] for iid, (rq, bt) in img_day.items()}, "image_id")
            picks = {"top": allranked[0]["image_id"],
                     "mid": allranked[min(len(allranked) - 1, len(o.images) // 10)]["image_id"]}
            assert order90[0]["image_id"] == picks["top"]
            expect["picks"] = picks
            expect["pick_ranks"] = {"top": 1, "mid": min(len(allranked), len(o.images) // 10 + 1)}
            expect["image_rows"] = {}
            expect["image"] = {}
            o.img_day = img_day
            o.want = set(picks.values())
            o.by_id = by_id
            bench = o
    # analytics_batch_days: every date but the last
    for d in dates[:-1]:
        conn.execute("INSERT OR REPLACE INTO analytics_batch_days (date, events, daily_rows, status_rows, "
                     "drift, aggregated_at) VALUES (?, 0, 0, 0, 0, ?)", (d, d + "T02:00:00Z"))
    conn.execute("COMMIT")
    tsv.close()
    stsv.close()
    gen_s = time.time() - t0

    # The picked images' variants and countries: from the TSV just written
    # (our own output, not the database).
    per = {iid: {} for iid in bench.want}
    with open(args.tsv) as f:
        for line in f:
            if not line.startswith(bench.hash):
                continue
            _, d, iid, v, c, r, b = line.rstrip("\n").split("\t")
            if iid in per:
                per[iid].setdefault(d, []).append((v, c, int(r), int(b)))
    for iid in sorted(bench.want):
        im = bench.by_id[iid]
        rq, bt = bench.img_day[iid]
        out = {}
        nrows = sum(len(x) for x in per[iid].values())
        expect["image_rows"][iid] = nrows
        for span in sorted({args.days, 30, 7}):
            if span > ndates:
                continue
            lo = ndates - span
            variants, countries = {}, {}
            for d in dates[lo:]:
                for v, c, r, b in per[iid].get(d, []):
                    x = variants.setdefault(v, [0, 0])
                    x[0] += r
                    x[1] += b
                    x = countries.setdefault(c, [0, 0])
                    x[0] += r
                    x[1] += b
            out[str(span)] = {
                "image_id": iid, "owner": "bench", "album": im.album, "filename": im.filename,
                "range": {"start": dates[lo], "end": dates[-1], "days": span},
                "totals": {"requests": sum(rq[lo:]), "bandwidth_bytes": sum(bt[lo:])},
                "variants": ranked(variants, "variant"), "countries": ranked(countries, "country"),
                "timeseries": [{"date": dates[i], "requests": rq[i], "bandwidth_bytes": bt[i]}
                               for i in range(lo, ndates)],
            }
        expect["image"][iid] = out
    expect["owners"] = totals_all
    expect["gen_seconds"] = round(gen_s, 1)
    with open(args.expect, "w") as f:
        json.dump(expect, f)
    b = totals_all["bench"]
    print("owner=bench owner_hash=%s rows=%d image_days=%d images=%d requests=%d bandwidth_bytes=%d "
          "top_image=%s top_requests=%d mid_image=%s mid_rank=%d top_rows=%d mid_rows=%d "
          "all_rows=%d all_owners=%d gen_s=%.1f c=%s bot_requests=%d hourly_rows=%d "
          "client_rows=%d uniques_rows=%d"
          % (b["hash"], b["rows"], b["image_days"], b["images"], b["requests"], b["bandwidth_bytes"],
             expect["picks"]["top"], expect["overview"][str(args.days)]["top_images"][0]["requests"],
             expect["picks"]["mid"], expect["pick_ranks"]["mid"],
             expect["image_rows"][expect["picks"]["top"]], expect["image_rows"][expect["picks"]["mid"]],
             sum(t["rows"] for t in totals_all.values()), len(totals_all), gen_s, b["c"],
             sum(expect["bots"]["requests"]), expect["hourly"]["rows"],
             expect["more_rows"]["clients"], expect["more_rows"]["uniques"]))


# --- expected answers from the database (after live traffic) ----------------------------

def expected_from_db(db, secret, owner, kind, days, image=None, today=None):
    conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    conn.execute("PRAGMA busy_timeout = 10000")
    h = owner_hash(secret, owner)
    end = datetime.date.fromisoformat(today) if today else datetime.datetime.now(datetime.timezone.utc).date()
    start = end - datetime.timedelta(days=days - 1)
    dates = [(start + datetime.timedelta(days=i)).isoformat() for i in range(days)]
    rng = {"start": dates[0], "end": dates[-1], "days": days}
    cond = "owner = ? AND date BETWEEN ? AND ?"
    par = [h, dates[0], dates[-1]]
    if image:
        cond += " AND image_id = ?"
        par.append(image)
    ts = {d: [0, 0] for d in dates}
    for d, r, b in conn.execute("SELECT date, SUM(requests), SUM(bandwidth_bytes) FROM analytics_daily "
                                "WHERE %s GROUP BY date" % cond, par):
        ts[d] = [r, b]
    res = {"range": rng,
           "totals": {"requests": sum(v[0] for v in ts.values()),
                      "bandwidth_bytes": sum(v[1] for v in ts.values())},
           "timeseries": [{"date": d, "requests": ts[d][0], "bandwidth_bytes": ts[d][1]} for d in dates]}

    def group(col, name):
        d = {k: [r, b] for k, r, b in conn.execute(
            "SELECT %s, SUM(requests), SUM(bandwidth_bytes) FROM analytics_daily WHERE %s GROUP BY 1"
            % (col, cond), par)}
        return ranked(d, name)
    res["countries"] = group("country", "country")
    res["variants"] = group("variant", "variant")
    if image:
        row = conn.execute("SELECT album, filename FROM images WHERE id = ?", (image,)).fetchone()
        res.update({"image_id": image, "owner": owner, "album": row[0], "filename": row[1]})
    else:
        top = group("image_id", "image_id")[:100]
        for t in top:
            row = conn.execute("SELECT album, filename FROM images WHERE id = ?", (t["image_id"],)).fetchone()
            t["album"], t["filename"] = (row or (None, None))
        res["top_images"] = top
        st = conn.execute("SELECT status, SUM(requests) FROM analytics_status_daily WHERE %s "
                          "GROUP BY status" % cond, par).fetchall()
        res["status_codes"] = [{"status": s, "requests": n} for s, n in sorted(st, key=lambda x: (-x[1], x[0]))]
    return res


def compare(got, want, kind, limit):
    """Differences between an API answer and the expected one (list of strings)."""
    bad = []

    def eq(what, g, w):
        if g != w:
            bad.append("%s: got %s, expected %s" % (what, json.dumps(g)[:300], json.dumps(w)[:300]))

    # The fields of issue 20 are check20's: here the answer's older ones.
    got = dict(got)
    if isinstance(got.get("range"), dict):
        got["range"] = {k: v for k, v in got["range"].items() if k != "interval"}
    if isinstance(got.get("totals"), dict):
        got["totals"] = {k: v for k, v in got["totals"].items() if k != "uniques"}
    if isinstance(got.get("timeseries"), list):
        got["timeseries"] = [{k: v for k, v in e.items() if k != "uniques"}
                             for e in got["timeseries"]]
    for k in ("range", "totals", "timeseries"):
        eq(k, got.get(k), want.get(k))
    if kind == "image":
        for k in ("image_id", "owner", "album", "filename"):
            eq(k, got.get(k), want.get(k))
    else:
        eq("owner", got.get("owner"), "bench")
        top = got.get("top_images")
        if not isinstance(top, list):
            bad.append("top_images missing")
        else:
            w = want["top_images"][:limit]
            eq("top_images (length)", len(top), len(w))
            for i, (g, x) in enumerate(zip(top, w)):
                gg = {k: g.get(k) for k in ("image_id", "album", "filename", "requests", "bandwidth_bytes")}
                eq("top_images[%d]" % i, gg, x)
        if want.get("status_codes") is not None:
            eq("status_codes", got.get("status_codes"), want["status_codes"])
    for k in ("countries", "variants"):
        g = got.get(k)
        w = want[k]
        if not isinstance(g, list):
            bad.append("%s missing" % k)
        elif len(g) < len(w):
            # a shortened list must be the start of the full one
            eq("%s (first %d of %d)" % (k, len(g), len(w)), g, w[:len(g)])
        else:
            eq(k, g, w)
    return bad


def check(args):
    body = sys.stdin.read()
    try:
        got = json.loads(body)
    except ValueError:
        print("not JSON: %r" % body[:300])
        return 1
    if args.db:
        want = expected_from_db(args.db, args.secret, "bench", args.kind, args.days, args.image, args.today)
    else:
        exp = json.load(open(args.expect))
        if args.kind == "image":
            want = exp["image"][args.image][str(args.days)]
        else:
            want = exp["overview"][str(args.days)]
    bad = compare(got, want, args.kind, args.limit)
    if bad:
        for b in bad[:12]:
            print("  MISMATCH " + b)
        return 1
    print("ok: %s days=%d%s requests=%d bandwidth_bytes=%d" % (
        args.kind, args.days, (" image=" + args.image) if args.image else "",
        want["totals"]["requests"], want["totals"]["bandwidth_bytes"]))
    return 0


def check20(args):
    """The overview with issue 20's parameters (interval=hour, compare,
    exclude_bots) against the generator's day totals, bots and hours."""
    got = json.loads(sys.stdin.read())
    exp = json.load(open(args.expect))
    ov = exp["overview"]["90"]["timeseries"]
    dates = [e["date"] for e in ov]
    req = [e["requests"] for e in ov]
    byt = [e["bandwidth_bytes"] for e in ov]
    bots = exp["bots"]
    hourly = exp["hourly"]
    uniq = exp["owner_uniques"]
    ex = args.exclude_bots

    def period(lo, n):
        r = sum(req[lo:lo + n]) - (sum(bots["requests"][lo:lo + n]) if ex else 0)
        b = sum(byt[lo:lo + n]) - (sum(bots["bandwidth_bytes"][lo:lo + n]) if ex else 0)
        out = {"range": {"start": dates[lo], "end": dates[lo + n - 1], "days": n,
                         "interval": "hour" if args.hourly else "day"},
               "totals": {"requests": r, "bandwidth_bytes": b, "uniques": sum(uniq[lo:lo + n])}}
        if args.hourly:
            first = epoch(dates[lo]) // 3600
            ts = []
            for i in range(n * 24):
                k = first + i - hourly["first_hour"]
                hr = hb = 0
                if 0 <= k < len(hourly["requests"]):
                    hr = hourly["requests"][k] - (hourly["bot_requests"][k] if ex else 0)
                    hb = hourly["bandwidth_bytes"][k] - (hourly["bot_bandwidth_bytes"][k] if ex else 0)
                ts.append({"hour": datetime.datetime.fromtimestamp(
                    (first + i) * 3600, datetime.timezone.utc).strftime("%Y-%m-%dT%H:00:00Z"),
                    "requests": hr, "bandwidth_bytes": hb})
        else:
            ts = [{"date": dates[i], "requests": req[i] - (bots["requests"][i] if ex else 0),
                   "bandwidth_bytes": byt[i] - (bots["bandwidth_bytes"][i] if ex else 0),
                   "uniques": uniq[i]} for i in range(lo, lo + n)]
        out["timeseries"] = ts
        return out

    lo = len(dates) - args.days
    want = period(lo, args.days)
    bad = []
    for k in ("range", "totals", "timeseries"):
        if got.get(k) != want[k]:
            bad.append(k)
    if got.get("exclude_bots") is not ex:
        bad.append("exclude_bots")
    if args.compare:
        if lo - args.days < 0:
            bad.append("previous: outside the generated dates")
        else:
            w = period(lo - args.days, args.days)
            if got.get("previous") != w:
                bad.append("previous")
    elif "previous" in got:
        bad.append("previous (not asked for)")
    if bad:
        print("  MISMATCH " + ", ".join(bad))
        return 1
    print("ok: overview days=%d%s%s%s requests=%d" % (
        args.days, " interval=hour" if args.hourly else "", " compare=previous" if args.compare else "",
        " exclude_bots=true" if ex else "", want["totals"]["requests"]))
    return 0


# --- peer timing -------------------------------------------------------------------------

def pct(values, p):
    """Nearest-rank percentile."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, int(math.ceil(p / 100.0 * len(s))) - 1))
    return s[k]


def peer(args):
    """Alternating client-side round trips (ms) over keep-alive connections:
    pixflare's endpoint, ClickHouse's queries one request each, ClickHouse's
    one UNION ALL request. Lines: case run ms."""
    q = json.load(open(args.queries))
    pu = urllib.parse.urlsplit(args.pixflare)
    cu = urllib.parse.urlsplit(args.clickhouse)
    pf = http.client.HTTPConnection(pu.hostname, pu.port, timeout=60)
    ch = http.client.HTTPConnection(cu.hostname, cu.port, timeout=60)
    hdr = {"Authorization": "Bearer " + args.key}
    out = open(args.out, "w")
    now = time.perf_counter

    def pf_get(path):
        t = now()
        pf.request("GET", path, headers=hdr)
        r = pf.getresponse()
        body = r.read()
        ms = (now() - t) * 1000
        if r.status != 200:
            raise SystemExit("pixflare %s: HTTP %d %r" % (path, r.status, body[:200]))
        return ms

    def ch_post(sql, qid):
        t = now()
        ch.request("POST", "/?query_id=" + urllib.parse.quote(qid), body=sql.encode())
        r = ch.getresponse()
        body = r.read()
        ms = (now() - t) * 1000
        if r.status != 200:
            raise SystemExit("ClickHouse: HTTP %d %r for %s" % (r.status, body[:300], sql[:200]))
        return ms

    total = args.warmup + args.runs
    for i in range(total):
        run = i - args.warmup
        for case in q["cases"]:
            name = case["name"]
            ms = pf_get(case["pixflare"])
            if run >= 0:
                out.write("%s-pixflare %d %.3f\n" % (name, run, ms))
            s = 0.0
            for j, sql in enumerate(case["separate"]):
                s += ch_post(sql, "%s-%s-sep-%d-%d" % (args.tag, name, run, j) if run >= 0
                             else "%s-warm-%d-%d" % (args.tag, i, j))
            if run >= 0:
                out.write("%s-ch-separate %d %.3f\n" % (name, run, s))
            ms = ch_post(case["union"], "%s-%s-union-%d-0" % (args.tag, name, run) if run >= 0
                         else "%s-warmu-%d" % (args.tag, i))
            if run >= 0:
                out.write("%s-ch-union %d %.3f\n" % (name, run, ms))
        if args.progress and ((i + 1) % 10 == 0 or i + 1 == total):
            tty = sys.stderr.isatty()
            sys.stderr.write(("\r" if tty else "") + "   %d/%d runs" % (i + 1, total) + ("" if tty else "\n"))
            sys.stderr.flush()
    if args.progress and sys.stderr.isatty():
        sys.stderr.write("\n")
    out.close()
    return 0


def pct_cmd(args):
    vals = [float(x) for x in sys.stdin.read().split()]
    print(" ".join("%.3f" % pct(vals, p) for p in args.p))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--db", required=True)
    g.add_argument("--secret", required=True)
    g.add_argument("--today", required=True)
    g.add_argument("--days", type=int, default=90)
    g.add_argument("--rows", type=int, default=1100000)
    g.add_argument("--images", type=int, default=4000)
    g.add_argument("--top", type=float, default=20000)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--tsv", required=True)
    g.add_argument("--status-tsv", required=True)
    g.add_argument("--expect", required=True)
    g.add_argument("--progress", action="store_true")
    g.add_argument("--hourly-days", type=int, default=14)
    c = sub.add_parser("check")
    c.add_argument("--kind", choices=["overview", "image"], required=True)
    c.add_argument("--days", type=int, required=True)
    c.add_argument("--image")
    c.add_argument("--limit", type=int, default=10)
    c.add_argument("--expect")
    c.add_argument("--db")
    c.add_argument("--secret")
    c.add_argument("--today")
    c = sub.add_parser("check20")
    c.add_argument("--days", type=int, required=True)
    c.add_argument("--hourly", action="store_true")
    c.add_argument("--compare", action="store_true")
    c.add_argument("--exclude-bots", action="store_true")
    c.add_argument("--expect", required=True)
    p = sub.add_parser("peer")
    p.add_argument("--pixflare", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--clickhouse", required=True)
    p.add_argument("--queries", required=True)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--tag", default="api")
    p.add_argument("--out", required=True)
    p.add_argument("--progress", action="store_true")
    q = sub.add_parser("pct")
    q.add_argument("p", type=float, nargs="+")
    args = ap.parse_args()
    return {"gen": gen, "check": check, "check20": check20, "peer": peer,
            "pct": pct_cmd}[args.cmd](args) or 0


if __name__ == "__main__":
    sys.exit(main())
