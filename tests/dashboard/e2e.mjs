// End-to-end test of the Pixflare dashboard in a real Chromium (Debian's,
// driven by playwright-core). tests/integration/test_dashboard.py starts a
// real server with known traffic and runs this script; it can also be run by
// hand against any server:
//
//   PIXFLARE_URL=http://127.0.0.1:8080 PIXFLARE_KEY=pfk_... \
//   PIXFLARE_EMPTY_KEY=pfk_... PIXFLARE_TRAFFIC_URL=http://127.0.0.1:8080/alice/pics/x.png/w256 \
//   node tests/dashboard/e2e.mjs
//
// Environment:
//   PIXFLARE_URL          the server's base URL (required)
//   PIXFLARE_KEY          read key of an owner with traffic today (required)
//   PIXFLARE_EMPTY_KEY    read key of an owner with no traffic (required)
//   PIXFLARE_TRAFFIC_URL  a CDN image URL of PIXFLARE_KEY's owner that this
//                         script GETs to make live traffic (required)
//   PIXFLARE_VIEWPORT     viewport width, 1280 (default) or 390 (844 high)
//   PIXFLARE_ARTIFACTS    where screenshots and the CSV go
//                         (default build/test-artifacts/dashboard/<width>)
//   PIXFLARE_CHROMIUM     the browser (default /usr/bin/chromium)
//
// What it checks, with the expected numbers from the API itself (fetch with
// the same key), so that the page must show what the API answers:
//  - no request leaves PIXFLARE_URL's origin (blob: and data: aside), no
//    console error, no uncaught exception (the wrong-key flow tolerates
//    Chromium's "Failed to load resource: ... 401" only);
//  - sign-in (#signin-key, #signin-submit, body[data-state]), #owner;
//  - totals (#total-requests, #total-bandwidth: data-value and text), top
//    images (thumbnails 128 wide, links to #/image/<id>, optionally followed
//    by ?<range>), countries with English names, variants, status codes,
//    both charts (one [data-date] per day, data-value adding up to the
//    totals; for 7 days one [data-hour] per hour, adding up to the API's
//    hourly series), for 30, 7 (click), 90 (keyboard) days and custom dates;
//  - live refresh (#live) of new traffic without a reload;
//  - the image page (#/image/<id>), its CSV download (= the API's CSV);
//  - sign-out forgets the key; dark mode; a wrong key; an owner with no
//    traffic; no sideways scrolling at 390 px.
// Screenshots and the CSV go to PIXFLARE_ARTIFACTS.
// Exits 0 when every check passed, 1 with "FAIL (step ...): ..." otherwise.
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const T = 20000; // every wait's limit, ms

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`FAIL: ${name} is not set (see the top of ${path.basename(import.meta.url)})`);
    process.exit(2);
  }
  return v;
}

const BASE = need('PIXFLARE_URL').replace(/\/+$/, '');
const ORIGIN = new URL(BASE).origin;
const KEY = need('PIXFLARE_KEY');
const EMPTY_KEY = need('PIXFLARE_EMPTY_KEY');
const TRAFFIC_URL = new URL(need('PIXFLARE_TRAFFIC_URL'), BASE).href;
const WIDTH = Number(process.env.PIXFLARE_VIEWPORT || 1280);
const VIEWPORT = { width: WIDTH, height: WIDTH <= 500 ? 844 : 800 };
const NARROW = WIDTH <= 500;
const ART = path.resolve(process.env.PIXFLARE_ARTIFACTS || `build/test-artifacts/dashboard/${WIDTH}`);
const CHROMIUM = process.env.PIXFLARE_CHROMIUM || '/usr/bin/chromium';
const WRONG_KEY = 'pfk_aaaaaaaaaaaa_' + 'abcdefghij'.repeat(4);
const REGION = new Intl.DisplayNames(['en'], { type: 'region' });
const T0 = Date.now();

let stepName = 'setup';
function step(name) {
  stepName = name;
  console.log(`[${((Date.now() - T0) / 1000).toFixed(1)}s] ${name}`);
}

class Fail extends Error {}
function fail(msg) {
  throw new Fail(msg);
}
function check(cond, msg) {
  if (!cond) fail(msg);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const j = (v) => JSON.stringify(v);

// ---- The API: the expected answers ----

async function api(p, key = KEY) {
  const r = await fetch(BASE + p, { headers: { Authorization: 'Bearer ' + key } });
  const body = await r.text();
  check(r.status === 200, `API ${p} answered ${r.status}: ${body.slice(0, 300)}`);
  return p.includes('format=csv') ? body : JSON.parse(body);
}

function countryName(code) {
  if (code === 'XX') return 'Unknown';
  return REGION.of(code);
}

function plusDays(date, n) {
  const d = new Date(date + 'T00:00:00Z');
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

// ---- The page ----

// Everything of the page the checks read, in one evaluate.
function snapshot(page) {
  return page.evaluate(() => {
    const q = (s) => document.querySelector(s);
    const qa = (s, root = document) => [...root.querySelectorAll(s)];
    const text = (e) => (e ? e.textContent.replace(/\s+/g, ' ').trim() : null);
    const total = (s) => {
      const e = q(s);
      return e ? { value: e.getAttribute('data-value'), text: text(e) } : null;
    };
    const chart = (s) => {
      const svg = q(s);
      if (!svg) return null;
      const hourly = qa('[data-hour]', svg).length > 0;
      const attr = hourly ? 'data-hour' : 'data-date';
      const pts = qa(`[${attr}]`, svg);
      return {
        n: pts.length,
        hourly,
        dates: pts.map((e) => e.getAttribute(attr)).sort(),
        values: pts.map((e) => e.getAttribute('data-value')),
        sum: pts.reduce((a, e) => a + Number(e.getAttribute('data-value')), 0),
      };
    };
    const view = q('main#view');
    return {
      state: document.body.dataset.state,
      hash: location.hash,
      view: view && {
        view: view.dataset.view,
        start: view.dataset.rangeStart,
        end: view.dataset.rangeEnd,
      },
      owner: text(q('#owner')),
      requests: total('#total-requests'),
      bandwidth: total('#total-bandwidth'),
      top: qa('#top-images li[data-image-id]').map((li) => {
        const img = li.querySelector('img');
        return {
          id: li.dataset.imageId,
          img: img && {
            src: img.currentSrc || img.src,
            complete: img.complete,
            naturalWidth: img.naturalWidth,
          },
          hashes: qa('a[href]', li).map((a) => a.hash),
        };
      }),
      countries: qa('#countries li[data-country]').map((li) => ({
        code: li.dataset.country,
        name: text(li.querySelector('.name')),
      })),
      variants: qa('#variants li[data-variant]').map((li) => li.dataset.variant),
      statuses: qa('#statuses li[data-status]').map((li) => li.dataset.status),
      charts: { requests: chart('svg#chart-requests'), bandwidth: chart('svg#chart-bandwidth') },
      imageTitle: text(q('#image-title')),
      pressed: qa('#range button[data-days]').map((b) => [b.dataset.days, b.getAttribute('aria-pressed')]),
      live: q('#live')?.getAttribute('data-live') ?? null,
      scrollWidth: document.documentElement.scrollWidth,
    };
  });
}

// Polls the page until `mismatches(snap)` is empty; on timeout fails with
// the last mismatches (the page renders asynchronously, so one read is not
// enough, but nothing here sleeps instead of checking).
async function until(page, what, mismatches, timeout = T) {
  const deadline = Date.now() + timeout;
  let last = ['(no snapshot yet)'];
  for (;;) {
    try {
      const snap = await snapshot(page);
      last = mismatches(snap);
      if (last.length === 0) return snap;
    } catch (e) {
      last = ['page.evaluate failed: ' + e.message];
    }
    if (Date.now() > deadline) {
      fail(`${what}: still wrong after ${timeout / 1000} s:\n    - ${last.join('\n    - ')}`);
    }
    await sleep(150);
  }
}

// #/image/<id>, or #/image/<id>?<range> (the range carried over).
function isImageHash(hash, id) {
  return hash === '#/image/' + id || hash.startsWith('#/image/' + id + '?');
}

function eq(out, what, got, want) {
  if (j(got) !== j(want)) out.push(`${what}: expected ${j(want)}, got ${j(got)}`);
}

// The overview of `days` days, chosen with its #range button.
function rangeMismatches(want, days) {
  return (snap) => {
    const out = overviewMismatches(want)(snap);
    const wrong = snap.pressed.filter(([d, p]) => (d === String(days)) !== (p === 'true'));
    if (snap.pressed.length === 0) out.push('no #range button[data-days]');
    if (wrong.length) {
      out.push(`only #range button[data-days="${days}"] should have aria-pressed="true"; ` +
        `got ${j(snap.pressed)}`);
    }
    return out;
  };
}

// The charts against the answer the page asked for: a column a day
// ([data-date]), or an hour ([data-hour]) when the answer is hourly (a
// range of 7 days or less is asked for with interval=hour).
function chartMismatches(out, snap, want) {
  const hourly = want.timeseries.length > 0 && 'hour' in want.timeseries[0];
  const attr = hourly ? 'data-hour' : 'data-date';
  const dates = want.timeseries.map((d) => (hourly ? d.hour : d.date)).sort();
  for (const [k, field] of [['requests', 'requests'], ['bandwidth', 'bandwidth_bytes']]) {
    const c = snap.charts[k];
    if (!c) {
      out.push(`svg#chart-${k} is missing`);
      continue;
    }
    eq(out, `svg#chart-${k} hourly ([data-hour] columns)`, c.hourly, hourly);
    eq(out, `svg#chart-${k} [${attr}] count`, c.n, hourly ? want.range.days * 24 : want.range.days);
    eq(out, `svg#chart-${k} sum of data-value`, c.sum,
      hourly ? want.timeseries.reduce((a, p) => a + p[field], 0) : want.totals[field]);
    eq(out, `svg#chart-${k} ${attr} values`, c.dates, dates);
  }
}

function listMismatches(out, snap, want) {
  eq(out, '#countries li[data-country] (in order)', snap.countries.map((c) => c.code),
    want.countries.map((c) => c.country));
  eq(out, '#countries .name', snap.countries.map((c) => c.name),
    want.countries.map((c) => countryName(c.country)));
  eq(out, '#variants li[data-variant] (in order)', snap.variants,
    want.variants.map((v) => v.variant));
}

function totalsMismatches(out, snap, want) {
  eq(out, '#total-requests data-value', snap.requests && snap.requests.value,
    String(want.totals.requests));
  eq(out, '#total-bandwidth data-value', snap.bandwidth && snap.bandwidth.value,
    String(want.totals.bandwidth_bytes));
  eq(out, 'main#view data-range-start', snap.view && snap.view.start, want.range.start);
  eq(out, 'main#view data-range-end', snap.view && snap.view.end, want.range.end);
}

// The overview page against an overview answer (steps 3 to 7).
function overviewMismatches(want) {
  return (snap) => {
    const out = [];
    eq(out, 'main#view data-view', snap.view && snap.view.view, 'overview');
    totalsMismatches(out, snap, want);
    if (out.length) return out; // the rest is of the old answer yet
    eq(out, '#owner text', snap.owner, want.owner);
    if (!snap.requests.text || !/\d/.test(snap.requests.text)) {
      out.push(`#total-requests text should show the number, got ${j(snap.requests.text)}`);
    }
    if (!/\d(\.\d+)?\s?(B|kB|MB|GB|TB)/.test(snap.bandwidth.text || '')) {
      out.push(`#total-bandwidth text should read like "1.2 MB", got ${j(snap.bandwidth.text)}`);
    }
    eq(out, '#top-images li[data-image-id] (in order)', snap.top.map((t) => t.id),
      want.top_images.map((t) => t.image_id));
    for (const t of snap.top) {
      if (!t.img) out.push(`#top-images li[data-image-id=${t.id}] has no img`);
      else if (!t.img.complete || t.img.naturalWidth !== 128) {
        out.push(`#top-images li[data-image-id=${t.id}] img (${t.img.src}) should be a loaded ` +
          `128-wide thumbnail: complete=${t.img.complete} naturalWidth=${t.img.naturalWidth}`);
      }
      if (!t.hashes.some((h) => isImageHash(h, t.id))) {
        out.push(`#top-images li[data-image-id=${t.id}] has no link to #/image/${t.id} ` +
          `(links: ${j(t.hashes)})`);
      }
    }
    listMismatches(out, snap, want);
    eq(out, '#statuses li[data-status] (in order)', snap.statuses,
      want.status_codes.map((s) => String(s.status)));
    chartMismatches(out, snap, want);
    return out;
  };
}

// The image page against an image answer (step 9).
function imageMismatches(want) {
  return (snap) => {
    const out = [];
    if (!isImageHash(snap.hash, want.image_id)) {
      out.push(`location.hash should be #/image/${want.image_id}, got ${j(snap.hash)}`);
    }
    eq(out, 'main#view data-view', snap.view && snap.view.view, 'image');
    totalsMismatches(out, snap, want);
    if (out.length) return out;
    if (!snap.imageTitle || !snap.imageTitle.includes(want.filename)) {
      out.push(`#image-title should contain ${j(want.filename)}, got ${j(snap.imageTitle)}`);
    }
    listMismatches(out, snap, want);
    chartMismatches(out, snap, want);
    return out;
  };
}

// ---- Watching what the page does ----

// Every request, console message and page error of a context. `tolerated`:
// console errors (regexps) allowed in that context, e.g. Chromium's note on a
// 401 in the wrong-key flow.
function watch(context, label, tolerated = []) {
  const problems = [];
  context.on('request', (req) => {
    const u = req.url();
    if (u.startsWith('blob:') || u.startsWith('data:')) return;
    let origin;
    try {
      origin = new URL(u).origin;
    } catch {
      origin = '(unparsable)';
    }
    if (origin !== ORIGIN) problems.push(`request to another origin: ${req.method()} ${u}`);
  });
  context.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const t = msg.text();
    if (tolerated.some((re) => re.test(t))) return;
    const loc = msg.location();
    problems.push(`console error: ${t}` + (loc && loc.url ? ` (${loc.url}:${loc.lineNumber})` : ''));
  });
  context.on('weberror', (err) => problems.push(`page error: ${err.error().stack || err.error()}`));
  return {
    assertClean() {
      if (problems.length) fail(`${label}: ${problems.length} problem(s):\n    - ${problems.join('\n    - ')}`);
    },
  };
}

async function newContext(browser, opts = {}) {
  return browser.newContext({
    viewport: VIEWPORT,
    deviceScaleFactor: 1,
    isMobile: false,
    acceptDownloads: true,
    ...opts,
  });
}

async function signIn(page, key) {
  await page.goto(BASE + '/dashboard');
  await page.waitForSelector('#signin-key', { state: 'visible', timeout: T });
  const state = await page.evaluate(() => document.body.dataset.state);
  check(state === 'signin', `before signing in, body data-state should be "signin", got ${j(state)}`);
  await page.fill('#signin-key', key);
  await page.click('#signin-submit');
}

async function waitState(page, state, what) {
  try {
    await page.waitForSelector(`body[data-state="${state}"]`, { state: 'attached', timeout: T });
  } catch {
    const got = await page.evaluate(() => ({
      state: document.body.dataset.state,
      error: document.querySelector('#signin-error')?.textContent.trim() ?? null,
      message: document.querySelector('#message')?.textContent.trim() ?? null,
    }));
    fail(`${what}: body data-state should become ${j(state)} within ${T / 1000} s; ` +
      `got ${j(got)}`);
  }
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(ART, name), fullPage: true });
}

async function noHorizontalScroll(page, where) {
  if (!NARROW) return;
  const w = await page.evaluate(() => document.documentElement.scrollWidth);
  check(w <= WIDTH, `${where} at ${WIDTH} px wide: document.documentElement.scrollWidth is ` +
    `${w} (scrolls sideways)`);
}

async function sendTraffic(n) {
  for (let i = 0; i < n; i++) {
    const r = await fetch(TRAFFIC_URL, { headers: { 'CF-IPCountry': 'FR' } });
    await r.arrayBuffer();
    check(r.status === 200, `GET ${TRAFFIC_URL} answered ${r.status}`);
  }
}

// ---- The flows ----

async function mainFlow(browser) {
  const context = await newContext(browser);
  const w = watch(context, 'main flow');
  const page = await context.newPage();
  page.setDefaultTimeout(T);
  try {
    step('1-2. open /dashboard, sign in with the key');
    const ov30 = await api('/v1/analytics/overview?days=30');
    check(ov30.top_images.length > 0, 'the API shows no top image: the test needs traffic');
    await signIn(page, KEY);
    await waitState(page, 'ready', 'after signing in');
    w.assertClean();

    step('3-6. overview (30 days): totals, top images, countries, variants, statuses, charts');
    await until(page, 'overview, 30 days', overviewMismatches(ov30));
    await noHorizontalScroll(page, 'the overview');
    await shot(page, 'overview.png');
    w.assertClean();

    step('7. range: 7 days (click)');
    // The page asks for 7 days by the hour.
    const ov7 = await api('/v1/analytics/overview?days=7&interval=hour');
    await page.click('#range button[data-days="7"]');
    await until(page, 'overview after clicking 7 days', rangeMismatches(ov7, 7));
    await shot(page, 'range-7.png');
    w.assertClean();

    step('7. range: 90 days (keyboard: focus, Enter)');
    const ov90 = await api('/v1/analytics/overview?days=90');
    await page.focus('#range button[data-days="90"]');
    await page.keyboard.press('Enter');
    await until(page, 'overview after Enter on 90 days', rangeMismatches(ov90, 90));
    w.assertClean();

    step('7. range: custom dates');
    const today = ov30.range.end; // the server's today (UTC)
    const start = plusDays(today, -10);
    const end = plusDays(today, -2);
    const ovc = await api(`/v1/analytics/overview?start=${start}&end=${end}`);
    await page.fill('#range-start', start);
    await page.fill('#range-end', end);
    await page.click('#range-apply');
    await until(page, `overview for ${start}..${end}`, overviewMismatches(ovc));
    w.assertClean();

    step('8. live refresh');
    await page.click('#range button[data-days="30"]');
    const before = await api('/v1/analytics/overview?days=30');
    await until(page, 'overview back on 30 days, live', (snap) => {
      const out = rangeMismatches(before, 30)(snap);
      if (snap.live !== 'true') out.push(`#live data-live should be "true" (realtime is on), got ${j(snap.live)}`);
      return out;
    });
    await page.evaluate(() => {
      window.__pixflareNoReload = true;
    });
    await sendTraffic(3);
    const grown = await until(page, '#total-requests data-value grows after new traffic',
      (snap) => (Number(snap.requests?.value) > before.totals.requests ? [] :
        [`#total-requests data-value ${j(snap.requests?.value)}, was ${before.totals.requests}`]));
    check(await page.evaluate(() => window.__pixflareNoReload === true),
      'the page reloaded to show new numbers');
    console.log(`    total requests ${before.totals.requests} -> ${grown.requests.value}`);
    // All three are flushed within ~100 ms; the next poll shows the API's numbers.
    let after;
    for (const deadline = Date.now() + T; ;) {
      after = await api('/v1/analytics/overview?days=30');
      if (after.totals.requests >= before.totals.requests + 3 || Date.now() > deadline) break;
      await sleep(500);
    }
    check(after.totals.requests === before.totals.requests + 3,
      `the API shows ${after.totals.requests} requests, expected ${before.totals.requests + 3}`);
    await until(page, 'overview after live refresh', overviewMismatches(after));
    w.assertClean();

    step('9. image page (click the top image)');
    const top = after.top_images[0].image_id;
    const im = await api(`/v1/analytics/images/${top}?days=30`);
    await page.click(`#top-images li[data-image-id="${top}"] a[href*="#/image/${top}"]`);
    await until(page, `image page of ${top}`, imageMismatches(im));
    await noHorizontalScroll(page, 'the image page');
    await shot(page, 'image.png');
    w.assertClean();

    step('10. CSV download');
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: T }),
      page.click('#csv'),
    ]);
    const name = download.suggestedFilename();
    const saved = path.join(ART, 'download-' + (name || `${top}.csv`).replace(/[^\w.-]/g, '_'));
    await download.saveAs(saved);
    const got = fs.readFileSync(saved, 'utf8').replace(/\r\n/g, '\n');
    const want = (await api(`/v1/analytics/images/${top}?days=30&format=csv`)).replace(/\r\n/g, '\n');
    if (got !== want) {
      fail(`the downloaded CSV (${saved}, suggested name ${j(name)}) differs from the API's:\n` +
        `--- got:\n${got}\n--- expected:\n${want}`);
    }
    console.log(`    ${name} (${got.length} bytes) equals the API's CSV`);
    w.assertClean();

    step('11. sign out');
    await page.click('#signout');
    await waitState(page, 'signin', 'after signing out');
    const stored = await page.evaluate((key) => {
      const found = [];
      for (const [name, s] of [['sessionStorage', sessionStorage], ['localStorage', localStorage]]) {
        for (let i = 0; i < s.length; i++) {
          const k = s.key(i);
          const v = s.getItem(k) || '';
          if (v.includes(key) || v.includes('pfk_') || k.includes('pfk_')) found.push(`${name}[${k}]`);
        }
      }
      if (document.cookie.includes('pfk_')) found.push('document.cookie');
      return found;
    }, KEY);
    check(stored.length === 0, `after signing out the key is still stored: ${stored.join(', ')}`);
    const keyField = await page.inputValue('#signin-key');
    check(!keyField.includes('pfk_'), `after signing out #signin-key still holds the key`);
    w.assertClean();
  } catch (e) {
    await page.screenshot({ path: path.join(ART, 'failure-main.png'), fullPage: true }).catch(() => {});
    throw e;
  } finally {
    await context.close();
  }
}

async function darkFlow(browser) {
  step('12. overview in dark mode');
  const context = await newContext(browser, { colorScheme: 'dark' });
  const w = watch(context, 'dark mode');
  const page = await context.newPage();
  try {
    await signIn(page, KEY);
    await waitState(page, 'ready', 'dark mode, after signing in');
    const ov = await api('/v1/analytics/overview?days=30');
    await until(page, 'overview in dark mode', overviewMismatches(ov));
    await shot(page, 'overview-dark.png');
    // Not a contract, a hint: a dark mode that looks like the light one.
    const colours = () => page.evaluate(() => ['documentElement', 'body'].map((e) => {
      const s = getComputedStyle(document[e]);
      return `${e}: ${s.backgroundColor} / ${s.color}`;
    }).join(', '));
    const dark = await colours();
    await page.emulateMedia({ colorScheme: 'light' });
    const light = await colours();
    if (dark === light) console.log(`    WARNING: the same colours in dark and light mode (${dark})`);
    w.assertClean();
  } catch (e) {
    await page.screenshot({ path: path.join(ART, 'failure-dark.png'), fullPage: true }).catch(() => {});
    throw e;
  } finally {
    await context.close();
  }
}

async function wrongKeyFlow(browser) {
  step('13. a wrong key');
  const context = await newContext(browser);
  const w = watch(context, 'wrong key',
    [/^Failed to load resource: the server responded with a status of 401/]);
  const page = await context.newPage();
  try {
    await signIn(page, WRONG_KEY);
    let msg = '';
    try {
      await page.waitForFunction(() => {
        const e = document.querySelector('#signin-error');
        return e && e.textContent.trim() !== '' && e.getClientRects().length > 0;
      }, null, { timeout: T });
      msg = (await page.textContent('#signin-error')).trim();
    } catch {
      fail('after a wrong key, #signin-error should show a message (visible, non-empty) ' +
        `within ${T / 1000} s; got ${j(await page.evaluate(() =>
          document.querySelector('#signin-error')?.outerHTML ?? null))}`);
    }
    check(/key/i.test(msg), `#signin-error should mention the key, got ${j(msg)}`);
    const state = await page.evaluate(() => document.body.dataset.state);
    check(state === 'signin', `after a wrong key body data-state should stay "signin", got ${j(state)}`);
    console.log(`    #signin-error: ${j(msg)}`);
    w.assertClean();
  } catch (e) {
    await page.screenshot({ path: path.join(ART, 'failure-wrong-key.png'), fullPage: true }).catch(() => {});
    throw e;
  } finally {
    await context.close();
  }
}

async function emptyFlow(browser) {
  step('13. an owner with no traffic');
  const ov = await api('/v1/analytics/overview?days=30', EMPTY_KEY);
  check(ov.totals.requests === 0, `the empty owner ${ov.owner} has ${ov.totals.requests} requests`);
  const context = await newContext(browser);
  const w = watch(context, 'empty owner');
  const page = await context.newPage();
  try {
    await signIn(page, EMPTY_KEY);
    try {
      await page.waitForFunction(() => {
        if (document.body.dataset.state === 'empty') return true;
        const m = document.querySelector('#message[data-kind="empty"]');
        return !!(m && m.textContent.trim() !== '' && m.getClientRects().length > 0);
      }, null, { timeout: T });
    } catch {
      fail(`an owner with no traffic: body data-state should be "empty", or ` +
        `#message[data-kind=empty] visible with text; got ${j(await page.evaluate(() => ({
          state: document.body.dataset.state,
          message: document.querySelector('#message')?.outerHTML ?? null,
        })))}`);
    }
    await shot(page, 'empty.png');
    w.assertClean();
  } catch (e) {
    await page.screenshot({ path: path.join(ART, 'failure-empty.png'), fullPage: true }).catch(() => {});
    throw e;
  } finally {
    await context.close();
  }
}

// The server failing: the page's own handling of a 500 answer and of a
// server that cannot be reached. The real server answers the sign-in; then
// Playwright stands in front of /v1/ (page.route), since the real one has
// no way to fail on demand.
async function serverErrorFlow(browser) {
  step('14. a server error, then an unreachable server');
  const context = await newContext(browser);
  const w = watch(context, 'server error', [
    /status of 500/, /ERR_CONNECTION_REFUSED/, /ERR_FAILED/,
  ]);
  const page = await context.newPage();
  try {
    await signIn(page, KEY);
    await waitState(page, 'ready', 'sign-in before the server error');
    const errorBody = '{"success":false,"error":{"code":"INTERNAL","message":"disk I/O error"}}';
    await page.route('**/v1/analytics/**', (r) => r.fulfill({
      status: 500, contentType: 'application/json', body: errorBody,
    }));
    await page.click('#range button[data-days="7"]');
    await waitState(page, 'error', 'a 500 from the API');
    const msg = (await page.textContent('#message[data-kind="error"]')) || '';
    check(/500/.test(msg) && /disk I\/O error/.test(msg),
      `a 500 should be shown with its status and message; #message says ${j(msg)}`);
    check(await page.isVisible('#message button'), 'the error message should offer "Try again"');
    check(await page.isHidden('#total-requests'), 'stale numbers should not stay on screen after an error');
    await shot(page, 'server-error.png');
    await page.unroute('**/v1/analytics/**');
    await page.click('#message button');
    await waitState(page, 'ready', '"Try again" once the server answers');
    await page.route('**/v1/analytics/**', (r) => r.abort('connectionrefused'));
    await page.click('#range button[data-days="90"]');
    await waitState(page, 'error', 'an unreachable server');
    const down = (await page.textContent('#message[data-kind="error"]')) || '';
    check(/cannot be reached/i.test(down), `an unreachable server should say so; #message says ${j(down)}`);
    w.assertClean();
  } catch (e) {
    await page.screenshot({ path: path.join(ART, 'failure-server-error.png'), fullPage: true }).catch(() => {});
    throw e;
  } finally {
    await context.close();
  }
}

// Accessibility audit with axe-core (WCAG 2.1 A and AA rules) of the
// sign-in page, the overview and an image page, light and dark. Any
// "serious" or "critical" violation fails. The context bypasses the page's
// CSP, which would otherwise (rightly) refuse the injected axe script.
const AXE = path.join(path.dirname(new URL(import.meta.url).pathname), 'node_modules/axe-core/axe.min.js');

async function audit(page, where) {
  await page.addScriptTag({ path: AXE });
  const res = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
  }));
  const bad = res.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  for (const v of res.violations) {
    console.log(`    axe ${where}: ${v.impact} ${v.id} (${v.nodes.length}): ${v.help}` +
      ` e.g. ${v.nodes[0].target.join(' ')}`);
  }
  check(bad.length === 0, `${where}: ${bad.length} serious accessibility violation(s): ` +
    bad.map((v) => `${v.id} at ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')}`).join('; '));
}

async function a11yFlow(browser) {
  step('15. accessibility audit (axe-core, WCAG 2.1 AA), light and dark');
  for (const scheme of ['light', 'dark']) {
    const context = await newContext(browser, { colorScheme: scheme, bypassCSP: true });
    const w = watch(context, `accessibility (${scheme})`);
    const page = await context.newPage();
    try {
      await page.goto(BASE + '/dashboard');
      await waitState(page, 'signin', 'the sign-in page');
      await audit(page, `sign-in, ${scheme}`);
      await page.fill('#signin-key', KEY);
      await page.click('#signin-submit');
      await waitState(page, 'ready', 'the overview');
      await page.waitForFunction(() => [...document.querySelectorAll('#top-images img')].every((i) => i.naturalWidth > 0));
      await audit(page, `overview, ${scheme}`);
      const id = await page.getAttribute('#top-images li[data-image-id]', 'data-image-id');
      await page.evaluate((i) => { location.hash = `#/image/${i}?days=30`; }, id);
      await page.waitForSelector('main[data-view="image"]');
      await waitState(page, 'ready', 'the image page');
      await audit(page, `image page, ${scheme}`);
      w.assertClean();
    } catch (e) {
      await page.screenshot({ path: path.join(ART, `failure-a11y-${scheme}.png`), fullPage: true }).catch(() => {});
      throw e;
    } finally {
      await context.close();
    }
  }
}

async function main() {
  fs.mkdirSync(ART, { recursive: true });
  console.log(`dashboard e2e: ${BASE}/dashboard, viewport ${VIEWPORT.width}x${VIEWPORT.height}, ` +
    `artifacts in ${ART}`);
  const browser = await chromium.launch({ executablePath: CHROMIUM });
  try {
    await mainFlow(browser);
    await darkFlow(browser);
    await wrongKeyFlow(browser);
    await emptyFlow(browser);
    await serverErrorFlow(browser);
    await a11yFlow(browser);
  } finally {
    await browser.close();
  }
  console.log(`PASS: dashboard e2e at ${WIDTH} px in ${((Date.now() - T0) / 1000).toFixed(1)} s`);
}

main().catch((e) => {
  if (e instanceof Fail) console.error(`FAIL (step ${stepName}): ${e.message}`);
  else console.error(`FAIL (step ${stepName}): ${e.stack || e}`);
  process.exit(1);
});
