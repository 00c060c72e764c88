// The dashboard's numbers of issue 20 against known stored rows, in a real
// Chromium (Debian's, driven by playwright-core). tests/integration/
// test_dashboard.py writes the rows into the server's tables before it starts
// (traffic on past days cannot be sent) and runs this script with what the
// page must show, worked out from those rows, not from the API:
//
//   PIXFLARE_URL       the server's base URL
//   PIXFLARE_KEY       read key of the owner with the rows
//   PIXFLARE_EXPECT    JSON: {today, hours7: {"YYYY-MM-DDTHH:00:00Z": requests},
//                      totals7, totals7_nobots, totals30, uniques7: {date: n},
//                      clients7: {client: requests}, deltas7, deltas7_nobots,
//                      deltas30, bot_requests7, export_rows: [{...}]}
//   PIXFLARE_VIEWPORT  viewport width (1280 default, 390: a phone)
//   PIXFLARE_ARTIFACTS where screenshots and the exported CSV go
//   PIXFLARE_CHROMIUM  the browser (default /usr/bin/chromium)
//
// What it checks:
//  - 7 days: hourly charts (main[data-interval=hour], 168 [data-hour]
//    columns of requests and of bandwidth, no [data-date]; each hour's value
//    as stored), "per hour" headings; 30 days: daily charts (30 [data-date],
//    no [data-hour]);
//  - the totals, and the deltas against the previous period: text with sign
//    and value ("+40% vs previous 7 days", "−25% ..."), data-direction
//    (up, down, new when the previous period had none);
//  - the unique clients card (#total-uniques) and its daily chart;
//  - the clients breakdown (human, preview, bot); "Exclude bots" (keyboard:
//    focus, Space) takes exactly the stored bot requests off the totals,
//    drops the bot row, is kept in the URL (exclude_bots=true) and through a
//    reload, and the deltas follow;
//  - "Export rows (CSV)" downloads (Playwright's download event) a CSV equal
//    to the server's /v1/analytics/export answer and holding exactly the
//    stored rows of the range;
//  - no request leaves the server's origin, no console error, no page
//    error, no sideways scrolling at 390 px; axe-core (WCAG 2.1 A/AA) finds
//    no serious violation on the hourly view.
// Exits 0 when every check passed, 1 with "FAIL (step ...): ..." otherwise.
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const T = 20000;
const env = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`FAIL: ${name} is not set (see the top of this script)`);
    process.exit(2);
  }
  return v;
};
const BASE = env('PIXFLARE_URL').replace(/\/+$/, '');
const ORIGIN = new URL(BASE).origin;
const KEY = env('PIXFLARE_KEY');
const X = JSON.parse(env('PIXFLARE_EXPECT'));
const WIDTH = Number(process.env.PIXFLARE_VIEWPORT || 1280);
const NARROW = WIDTH <= 500;
const ART = path.resolve(process.env.PIXFLARE_ARTIFACTS || `build/test-artifacts/dashboard-seeded/${WIDTH}`);
const CHROMIUM = process.env.PIXFLARE_CHROMIUM || '/usr/bin/chromium';
const AXE = path.join(path.dirname(new URL(import.meta.url).pathname), 'node_modules/axe-core/axe.min.js');
const T0 = Date.now();
const j = (v) => JSON.stringify(v);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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
// JSON with objects' keys sorted: the same content compares equal.
function canon(v) {
  if (Array.isArray(v)) return `[${v.map(canon).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${j(k)}:${canon(v[k])}`).join(',')}}`;
  return j(v);
}
function eq(out, what, got, want) {
  if (canon(got) !== canon(want)) out.push(`${what}: expected ${canon(want)}, got ${canon(got)}`);
}

// What the checks read of the page, in one evaluate.
function snapshot(page) {
  return page.evaluate(() => {
    const q = (s) => document.querySelector(s);
    const qa = (s) => [...document.querySelectorAll(s)];
    const text = (e) => (e ? e.textContent.replace(/\s+/g, ' ').trim() : null);
    const cols = (svg, attr) => Object.fromEntries(qa(`${svg} [${attr}]`)
      .map((g) => [g.getAttribute(attr), Number(g.getAttribute('data-value'))]));
    const delta = (id) => {
      const e = q(id);
      return e && { hidden: e.hidden, dir: e.dataset.direction, text: text(e) };
    };
    const view = q('main#view');
    return {
      state: document.body.dataset.state,
      hash: location.hash,
      interval: view.dataset.interval,
      excludeBots: view.dataset.excludeBots,
      start: view.dataset.rangeStart,
      end: view.dataset.rangeEnd,
      checked: q('#exclude-bots').checked,
      requests: Number(q('#total-requests').dataset.value),
      bandwidth: Number(q('#total-bandwidth').dataset.value),
      uniques: Number(q('#total-uniques').dataset.value),
      uniquesText: text(q('#total-uniques')),
      deltas: {
        requests: delta('#delta-requests'),
        bandwidth: delta('#delta-bandwidth'),
        uniques: delta('#delta-uniques'),
      },
      headings: [text(q('#h-requests')), text(q('#h-bandwidth'))],
      reqHours: cols('#chart-requests', 'data-hour'),
      reqDays: cols('#chart-requests', 'data-date'),
      bwHours: cols('#chart-bandwidth', 'data-hour'),
      bwDays: cols('#chart-bandwidth', 'data-date'),
      uqDays: cols('#chart-uniques', 'data-date'),
      uniquesNote: text(q('#uniques-note')),
      clients: Object.fromEntries(qa('#clients li[data-client]')
        .map((li) => [li.dataset.client, Number(li.dataset.requests)])),
      scrollWidth: document.documentElement.scrollWidth,
    };
  });
}

async function until(page, what, mismatches) {
  const deadline = Date.now() + T;
  let last = ['(no snapshot yet)'];
  for (;;) {
    try {
      const snap = await snapshot(page);
      last = mismatches(snap);
      if (last.length === 0) return snap;
    } catch (e) {
      last = ['page.evaluate failed: ' + e.message];
    }
    if (Date.now() > deadline) fail(`${what}: still wrong after ${T / 1000} s:\n    - ${last.join('\n    - ')}`);
    await sleep(150);
  }
}

const sum = (o) => Object.values(o).reduce((a, v) => a + v, 0);

function totalsMismatches(out, snap, want) {
  eq(out, '#total-requests data-value', snap.requests, want.requests);
  eq(out, '#total-bandwidth data-value', snap.bandwidth, want.bandwidth_bytes);
  eq(out, '#total-uniques data-value', snap.uniques, want.uniques);
}

// deltas: {requests: [direction, "text part"], ...}
function deltaMismatches(out, snap, deltas) {
  for (const [k, [dir, words]] of Object.entries(deltas)) {
    const d = snap.deltas[k];
    if (!d || d.hidden) {
      out.push(`#delta-${k} should be shown`);
      continue;
    }
    eq(out, `#delta-${k} data-direction`, d.dir, dir);
    if (!d.text.includes(words)) out.push(`#delta-${k} text should contain ${j(words)}, got ${j(d.text)}`);
  }
}

// The 7-day view: hourly charts with the stored hours.
function hourlyMismatches(nobots) {
  return (snap) => {
    const out = [];
    eq(out, 'main#view data-interval', snap.interval, 'hour');
    eq(out, 'main#view data-exclude-bots', snap.excludeBots, String(nobots));
    eq(out, 'main#view data-range-end', snap.end, X.today);
    if (out.length) return out;
    const totals = nobots ? X.totals7_nobots : X.totals7;
    totalsMismatches(out, snap, totals);
    deltaMismatches(out, snap, nobots ? X.deltas7_nobots : X.deltas7);
    eq(out, 'svg#chart-requests [data-hour] count', Object.keys(snap.reqHours).length, 7 * 24);
    eq(out, 'svg#chart-bandwidth [data-hour] count', Object.keys(snap.bwHours).length, 7 * 24);
    eq(out, 'svg#chart-requests [data-date] count (hourly chart)', Object.keys(snap.reqDays).length, 0);
    const hours = nobots ? X.hours7_nobots : X.hours7;
    const nonzero = Object.fromEntries(Object.entries(snap.reqHours).filter(([, v]) => v !== 0));
    eq(out, 'svg#chart-requests hours with requests', nonzero, hours);
    eq(out, 'svg#chart-requests sum of data-value', sum(snap.reqHours), totals.requests);
    eq(out, 'svg#chart-bandwidth sum of data-value', sum(snap.bwHours), totals.bandwidth_bytes);
    const first = Object.keys(snap.reqHours).sort()[0];
    eq(out, 'svg#chart-requests first hour', first, `${X.start7}T00:00:00Z`);
    if (!/per hour/i.test(snap.headings[0] || '') || !/per hour/i.test(snap.headings[1] || '')) {
      out.push(`chart headings should say "per hour": ${j(snap.headings)}`);
    }
    const uq = Object.fromEntries(Object.entries(snap.uqDays).filter(([, v]) => v !== 0));
    eq(out, 'svg#chart-uniques days with uniques', uq, X.uniques7);
    eq(out, 'svg#chart-uniques [data-date] count', Object.keys(snap.uqDays).length, 7);
    if (!/per (UTC )?day/i.test(snap.uniquesNote || '') || !/estimated/i.test(snap.uniquesNote || '') ||
        !/2%/.test(snap.uniquesNote || '')) {
      out.push(`#uniques-note should say the uniques are per day and estimated (±~2%): ${j(snap.uniquesNote)}`);
    }
    eq(out, '#clients li[data-client] requests', snap.clients, nobots ? X.clients7_nobots : X.clients7);
    return out;
  };
}

function dailyMismatches(nobots) {
  return (snap) => {
    const out = [];
    eq(out, 'main#view data-interval', snap.interval, 'day');
    eq(out, 'main#view data-exclude-bots', snap.excludeBots, String(nobots));
    if (out.length) return out;
    const totals = nobots ? X.totals30_nobots : X.totals30;
    totalsMismatches(out, snap, totals);
    deltaMismatches(out, snap, X.deltas30);
    eq(out, 'svg#chart-requests [data-date] count', Object.keys(snap.reqDays).length, 30);
    eq(out, 'svg#chart-requests [data-hour] count (daily chart)', Object.keys(snap.reqHours).length, 0);
    eq(out, 'svg#chart-bandwidth [data-date] count', Object.keys(snap.bwDays).length, 30);
    const nonzero = Object.fromEntries(Object.entries(snap.reqDays).filter(([, v]) => v !== 0));
    eq(out, 'svg#chart-requests days with requests', nonzero, nobots ? X.days30_nobots : X.days30);
    if (!/per day/i.test(snap.headings[0] || '')) out.push(`chart heading should say "per day": ${j(snap.headings)}`);
    return out;
  };
}

function watch(context) {
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
    // The key goes in the Authorization header, never in a URL.
    if (u.includes(KEY)) problems.push(`the key is in a URL: ${req.method()} ${u.replace(KEY, 'pfk_…')}`);
  });
  context.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
  });
  context.on('weberror', (err) => problems.push(`page error: ${err.error().stack || err.error()}`));
  return () => check(problems.length === 0, `${problems.length} problem(s):\n    - ${problems.join('\n    - ')}`);
}

async function noSidewaysScroll(page, where) {
  if (!NARROW) return;
  const w = await page.evaluate(() => document.documentElement.scrollWidth);
  check(w <= WIDTH, `${where} at ${WIDTH} px: scrollWidth ${w} (scrolls sideways)`);
}

// A CSV (RFC 4180: quoted fields, CRLF) as rows of fields.
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c === '"') {
      quoted = true;
    } else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else {
      field += c;
    }
  }
  if (field !== '' || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

async function main() {
  fs.mkdirSync(ART, { recursive: true });
  console.log(`dashboard seeded e2e: ${BASE}/dashboard, ${WIDTH} px, artifacts in ${ART}`);
  const browser = await chromium.launch({ executablePath: CHROMIUM });
  const context = await browser.newContext({
    viewport: { width: WIDTH, height: NARROW ? 844 : 800 }, deviceScaleFactor: 1, acceptDownloads: true,
  });
  const clean = watch(context);
  const page = await context.newPage();
  try {
    step('sign in, 7 days: hourly charts, totals, deltas, uniques, clients');
    await page.goto(`${BASE}/dashboard#/?days=7`);
    await page.waitForSelector('#signin-key', { state: 'visible', timeout: T });
    await page.fill('#signin-key', KEY);
    await page.click('#signin-submit');
    await until(page, '7 days (hourly)', hourlyMismatches(false));
    await noSidewaysScroll(page, '7 days');
    await page.screenshot({ path: path.join(ART, 'hourly-7.png'), fullPage: true });
    clean();

    step('accessibility of the hourly view (axe-core, WCAG 2.1 A/AA)');
    {
      const ctx = await browser.newContext({ viewport: { width: WIDTH, height: 800 }, bypassCSP: true });
      const p = await ctx.newPage();
      await p.goto(`${BASE}/dashboard#/?days=7`);
      await p.fill('#signin-key', KEY);
      await p.click('#signin-submit');
      await p.waitForSelector('main[data-interval="hour"]', { state: 'attached', timeout: T });
      await p.addScriptTag({ path: AXE });
      const res = await p.evaluate(() => window.axe.run(document, {
        runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
      }));
      for (const v of res.violations) console.log(`    axe: ${v.impact} ${v.id}: ${v.help} e.g. ${v.nodes[0].target.join(' ')}`);
      const bad = res.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
      check(bad.length === 0, `serious accessibility violations: ${bad.map((v) => v.id).join(', ')}`);
      await ctx.close();
    }

    step('the hourly chart by keyboard: focus, Home, arrow, Page Down');
    await page.focus('#chart-requests');
    await page.keyboard.press('Home');
    await page.keyboard.press('PageDown');
    const tip = await page.evaluate(() => {
      const t = document.querySelector('[data-chart="requests"] .tip');
      return { hidden: t.hidden, text: t.textContent };
    });
    check(!tip.hidden && /01:00|00:00/.test(tip.text) && /UTC/.test(tip.text),
      `the tooltip should show the hour a day after the first: ${j(tip)}`);

    step('30 days: daily charts');
    await page.click('#range button[data-days="30"]');
    await until(page, '30 days (daily)', dailyMismatches(false));
    clean();

    step('Exclude bots (keyboard), on 30 days');
    await page.focus('#exclude-bots');
    await page.keyboard.press('Space');
    const snap30 = await until(page, '30 days without bots', (snap) => {
      const out = dailyMismatches(true)(snap);
      if (!/exclude_bots=true/.test(snap.hash)) out.push(`location.hash should hold exclude_bots=true: ${j(snap.hash)}`);
      eq(out, '#exclude-bots checked', snap.checked, true);
      return out;
    });
    check(X.totals30.requests - snap30.requests === X.bot_requests30,
      `excluding bots should take exactly the ${X.bot_requests30} stored bot requests off`);

    step('back to 7 days: the bots setting stays; deltas without bots');
    await page.click('#range button[data-days="7"]');
    const snap7 = await until(page, '7 days without bots', (snap) => {
      const out = hourlyMismatches(true)(snap);
      if (!/exclude_bots=true/.test(snap.hash)) out.push(`location.hash should hold exclude_bots=true: ${j(snap.hash)}`);
      return out;
    });
    check(X.totals7.requests - snap7.requests === X.bot_requests7,
      `7 days: excluding bots should take exactly the ${X.bot_requests7} stored bot requests off ` +
      `(${X.totals7.requests} -> ${snap7.requests})`);
    check(!('bot' in snap7.clients), 'the clients breakdown should have no bot row when bots are excluded');

    step('reload keeps "Exclude bots"');
    await page.reload();
    await until(page, '7 days without bots, after a reload', (snap) => {
      const out = hourlyMismatches(true)(snap);
      eq(out, '#exclude-bots checked after reload', snap.checked, true);
      return out;
    });
    await noSidewaysScroll(page, '7 days without bots');
    await page.screenshot({ path: path.join(ART, 'hourly-7-nobots.png'), fullPage: true });

    step('untick "Exclude bots": the bots come back');
    await page.click('#exclude-bots');
    await until(page, '7 days with bots again', (snap) => {
      const out = hourlyMismatches(false)(snap);
      if (/exclude_bots/.test(snap.hash)) out.push(`location.hash should not hold exclude_bots: ${j(snap.hash)}`);
      return out;
    });
    clean();

    step('Export rows (CSV): a download equal to the export endpoint and to the stored rows');
    // The download, or the page's error message when the export failed.
    const failed = page.waitForSelector('#message[data-kind="error"]', { state: 'visible', timeout: T })
      .then(async (e) => `the page says: ${(await e.textContent()).trim()}`, () => null);
    const [download] = await Promise.all([
      Promise.race([
        page.waitForEvent('download', { timeout: T }),
        failed.then((msg) => msg && fail(`no download: ${msg}`)),
      ]),
      page.click('#export'),
    ]);
    const name = download.suggestedFilename();
    const saved = path.join(ART, 'export-' + (name || 'rows.csv').replace(/[^\w.-]/g, '_'));
    await download.saveAs(saved);
    const got = fs.readFileSync(saved, 'utf8');
    const res = await fetch(`${BASE}/v1/analytics/export?start=${X.start7}&end=${X.today}&format=csv`,
      { headers: { Authorization: `Bearer ${KEY}` } });
    const want = await res.text();
    check(res.status === 200, `the export endpoint answered ${res.status}: ${want.slice(0, 300)}`);
    check(got === want, `the downloaded CSV (${saved}) differs from the export endpoint's:\n--- got:\n${got}\n--- expected:\n${want}`);
    const rows = parseCsv(got.replace(/(\r\n)+$/, ''));
    const head = rows[0];
    const cols = Object.keys(X.export_rows[0]);
    for (const c of cols) check(head.includes(c), `the CSV header should have ${c}: ${j(head)}`);
    const seen = rows.slice(1).map((r) => j(cols.map((c) => r[head.indexOf(c)]))).sort();
    const stored = X.export_rows.map((r) => j(cols.map((c) => String(r[c])))).sort();
    check(j(seen) === j(stored), `the CSV's rows should be the stored rows of the range:\n` +
      `--- got:\n${seen.join('\n')}\n--- stored:\n${stored.join('\n')}`);
    console.log(`    ${name}: ${rows.length - 1} rows, equal to the stored rows and to the endpoint's answer`);
    clean();
  } catch (e) {
    await page.screenshot({ path: path.join(ART, 'failure.png'), fullPage: true }).catch(() => {});
    throw e;
  } finally {
    await context.close();
    await browser.close();
  }
  console.log(`PASS: dashboard seeded e2e at ${WIDTH} px in ${((Date.now() - T0) / 1000).toFixed(1)} s`);
}

main().catch((e) => {
  if (e instanceof Fail) console.error(`FAIL (step ${stepName}): ${e.message}`);
  else console.error(`FAIL (step ${stepName}): ${e.stack || e}`);
  process.exit(1);
});
