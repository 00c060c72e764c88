// app.js - the Pixflare stats dashboard: sign-in, routing, API calls and
// rendering. It talks to this server's /v1/analytics API only, with the
// key the user typed (kept in sessionStorage, so it goes when the tab goes).
//
// Views live in the URL's fragment, so the back button and links work:
//   #/?days=30                    overview of the last 30 days
//   #/?start=2026-11-01&end=...   overview of a custom range
//   #/image/abc123?days=7         one image
//   ...&exclude_bots=true         the same without bots' requests
//
// A range of 7 days or less is asked for by the hour (interval=hour) and
// drawn as hourly charts; a longer one by the day. Every view is asked for
// with compare=previous (the deltas on the totals); an hourly one also by
// the day, for the unique clients series and the daily table.
//
// The DOM carries the state for people and for tests: body[data-state] is
// signin | loading | ready | empty | error; main#view has data-view and the
// range shown (data-range-start / data-range-end); every number on screen
// also carries its exact value in data-value.

import { barList, columnChart, longDate } from './chart.js';
import { addDays, bytes, count, countryName, deltaText, statusClass, todayUTC } from './format.js';

const KEY_STORE = 'pixflare.key';
const KEY_RE = /^pfk_[a-z0-9]{12}_[A-Za-z0-9]{40}$/;
const LIVE_MS = 5000;
const HOURLY_DAYS = 7; // the API's limit for interval=hour
const CLIENT_NAMES = { human: 'Humans', preview: 'Link previews', bot: 'Bots' };

const $ = (sel) => document.querySelector(sel);
const NUM = new Intl.NumberFormat('en-US');

const app = {
  key: sessionStorage.getItem(KEY_STORE) || '',
  owner: '',
  data: null,          // last answer shown
  timer: 0,            // live refresh or retry timer
  seq: 0,              // answers to older requests are dropped
  controller: null,
  thumbs: new Map(),    // image id -> Promise of a blob: URL (or '')
  serverToday: '',      // the server's UTC date, from a days=N answer
};

const STATUS_TEXT = {
  200: 'OK', 206: 'Partial Content', 304: 'Not Modified', 400: 'Bad Request', 403: 'Forbidden',
  404: 'Not Found', 405: 'Method Not Allowed', 412: 'Precondition Failed', 414: 'URI Too Long',
  416: 'Range Not Satisfiable', 431: 'Headers Too Large', 500: 'Internal Error', 503: 'Unavailable',
};

// ---- routing ----------------------------------------------------------

function parseRoute() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, qs] = hash.split('?');
  const q = new URLSearchParams(qs || '');
  const range = {};
  if (q.get('start') || q.get('end')) {
    if (q.get('start')) range.start = q.get('start');
    if (q.get('end')) range.end = q.get('end');
  } else {
    range.days = q.get('days') || '30';
  }
  const m = /^\/image\/([a-z0-9]{6})$/.exec(path);
  return {
    view: m ? 'image' : 'overview', id: m ? m[1] : null, range,
    excludeBots: q.get('exclude_bots') === 'true',
  };
}

function rangeQuery(range) {
  const q = new URLSearchParams();
  for (const k of ['days', 'start', 'end']) if (range[k]) q.set(k, range[k]);
  return q.toString();
}

// The fragment's query of a route: its range, and the bots setting.
function routeQuery(route) {
  return rangeQuery(route.range) + (route.excludeBots ? '&exclude_bots=true' : '');
}

// The number of days of a range as the server will count them (start
// alone runs to today, end alone is the 30 days ending there).
function rangeDays(range) {
  if (range.days) return Number(range.days);
  const end = range.end || latestDay();
  const start = range.start || addDays(end, -29);
  return Math.round((Date.parse(end) - Date.parse(start)) / 86400000) + 1;
}

function hourlyRange(range) {
  const n = rangeDays(range);
  return n >= 1 && n <= HOURLY_DAYS;
}

function go(route) {
  const base = route.view === 'image' ? `#/image/${route.id}` : '#/';
  const target = `${base}?${routeQuery(route)}`;
  if (location.hash === target) load();
  else location.hash = target;
}

// ---- API --------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

async function api(path, params, key, signal) {
  let res;
  try {
    res = await fetch(`/v1/analytics/${path}?${params}`, {
      headers: { Authorization: `Bearer ${key}` },
      cache: 'no-store',
      signal,
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'NETWORK', 'The Pixflare server cannot be reached.');
  }
  if (params.includes('format=csv') && res.ok) return path === 'export' ? res : res.text();
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok || !body) {
    const err = (body && body.error) || {};
    throw new ApiError(res.status, err.code || 'INTERNAL',
      err.message || `The server answered ${res.status} ${res.statusText}.`,
      Number(res.headers.get('Retry-After')) || 0);
  }
  return body;
}

// Thumbnails come from /v1/images/{id}/thumb, which wants the key like any
// API call (so no one can fetch image bytes there without being counted
// but the owner), hence fetch() and a blob: URL rather than <img src>.
// Each is fetched once per page: ids are stable and images immutable.
function thumbUrl(id) {
  if (!app.thumbs.has(id)) {
    const p = fetch(`/v1/images/${id}/thumb`, { headers: { Authorization: `Bearer ${app.key}` } })
      .then((res) => (res.ok ? res.blob() : null))
      .then((blob) => (blob ? URL.createObjectURL(blob) : ''))
      .catch(() => '');
    app.thumbs.set(id, p);
  }
  return app.thumbs.get(id);
}

function showThumb(img, id) {
  if (img.dataset.shown === id) return;
  img.dataset.shown = id;
  img.classList.remove('broken');
  thumbUrl(id).then((url) => {
    if (img.dataset.shown !== id) return;
    if (url) img.src = url;
    else img.classList.add('broken');
  });
}

// ---- sign-in ----------------------------------------------------------

function setState(s) {
  document.body.dataset.state = s;
  const signedIn = s !== 'signin';
  $('#signin').hidden = signedIn;
  for (const n of document.querySelectorAll('[data-signed-in]')) n.hidden = !signedIn;
}

function showSignin(message) {
  stopTimer();
  if (app.controller) app.controller.abort();
  app.key = '';
  app.owner = '';
  app.data = null;
  for (const p of app.thumbs.values()) p.then((u) => u && URL.revokeObjectURL(u));
  app.thumbs.clear();
  sessionStorage.removeItem(KEY_STORE);
  setState('signin');
  $('#signin-error').textContent = message || '';
  const input = $('#signin-key');
  input.value = '';
  input.setAttribute('aria-invalid', message ? 'true' : 'false');
  input.focus();
}

function authMessage(e) {
  if (e.status === 401) return 'This API key was not accepted: it is unknown, revoked or expired.';
  if (e.status === 403) return 'This API key cannot read analytics: it lacks the "read" scope.';
  return null;
}

async function signIn(ev) {
  ev.preventDefault();
  const key = $('#signin-key').value.trim();
  const error = $('#signin-error');
  if (!key) {
    error.textContent = 'Enter an API key.';
    return;
  }
  if (!KEY_RE.test(key)) {
    error.textContent = 'That is not a Pixflare API key: keys look like pfk_<12 characters>_<40 characters>.';
    return;
  }
  const button = $('#signin-submit');
  button.disabled = true;
  error.textContent = '';
  try {
    // One small call proves the key before the page switches.
    await api('overview', 'days=1&limit=1', key);
    app.key = key;
    sessionStorage.setItem(KEY_STORE, key);
    $('#signin-key').value = '';
    setState('loading');
    load();
  } catch (e) {
    error.textContent = authMessage(e) ||
      (e.status === 429 ? `Too many requests for this owner; try again in ${e.retryAfter || 60} s.`
        : `Cannot sign in: ${e.message}`);
    $('#signin-key').setAttribute('aria-invalid', e.status === 401 || e.status === 403 ? 'true' : 'false');
  } finally {
    button.disabled = false;
  }
}

// ---- loading ----------------------------------------------------------

function stopTimer() {
  clearTimeout(app.timer);
  app.timer = 0;
}

function showMessage(kind, text, retry) {
  const box = $('#message');
  // Unchanged: leave the live region alone, or screen readers repeat it.
  if (box.dataset.kind === kind && box.dataset.text === text) return;
  box.dataset.kind = kind;
  box.dataset.text = text;
  box.replaceChildren();
  box.hidden = !kind;
  if (!kind) return;
  const p = document.createElement('p');
  p.textContent = text;
  box.appendChild(p);
  if (retry) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = 'Try again';
    b.addEventListener('click', () => load());
    box.appendChild(b);
  }
}

// Fetch and draw the view of the current URL. `quiet` (a live refresh)
// keeps what is on screen while it loads and on a passing failure.
async function load(quiet = false) {
  stopTimer();
  if (!app.key) {
    showSignin();
    return;
  }
  const route = parseRoute();
  syncRangeControls(route);
  const seq = ++app.seq;
  if (app.controller) app.controller.abort();
  app.controller = new AbortController();
  if (!quiet) document.body.dataset.state = 'loading';
  document.body.setAttribute('aria-busy', 'true');
  const hourly = hourlyRange(route.range);
  const bots = route.excludeBots ? '&exclude_bots=true' : '';
  const params = rangeQuery(route.range);
  const path = route.view === 'image' ? `images/${route.id}` : 'overview';
  const more = route.view === 'image' ? '' : '&limit=10';
  let data;
  let daily;
  try {
    // Hourly: the daily answer too (the uniques are per day), in parallel.
    const signal = app.controller.signal;
    [data, daily] = await Promise.all([
      api(path, `${params}&interval=${hourly ? 'hour' : 'day'}&compare=previous${bots}${more}`, app.key, signal),
      hourly ? api(path, `${params}&interval=day${bots}${route.view === 'image' ? '' : '&limit=1'}`, app.key, signal)
        : null,
    ]);
    if (!daily) daily = data;
  } catch (e) {
    if (seq !== app.seq || e.name === 'AbortError') return;
    document.body.removeAttribute('aria-busy');
    failed(e, route, quiet);
    return;
  }
  if (seq !== app.seq) return;
  document.body.removeAttribute('aria-busy');
  const moved = !app.data || app.data.route.view !== route.view || app.data.route.id !== route.id;
  app.data = { route, data, daily };
  app.owner = data.owner;
  if (route.range.days) app.serverToday = data.range.end;
  render(route, data, daily, quiet);
  scheduleLive(route, data);
  if (moved && !quiet) {
    // A new page (not a new range): start at its top, focus on its content.
    window.scrollTo(0, 0);
    if (route.view === 'image') $('#view').focus({ preventScroll: true });
  }
}

function failed(e, route, quiet) {
  const auth = authMessage(e);
  if (auth) {
    showSignin(auth);
    return;
  }
  if (!quiet || !app.data) {
    // Nothing shown is current any more: no range, no "Live".
    $('#range-label').textContent = '';
    $('#live').dataset.live = 'false';
    $('#live').textContent = '';
  }
  if (e.status === 429) {
    const s = e.retryAfter || 5;
    if (quiet && app.data) {
      // A live refresh over the limit: keep the numbers, try later.
      app.timer = setTimeout(() => load(true), s * 1000);
      return;
    }
    showMessage('error', `Too many requests for this owner in the last minute; trying again in ${s} s.`);
    document.body.dataset.state = 'error';
    app.timer = setTimeout(() => load(), s * 1000);
    return;
  }
  if (e.status === 400) {
    showMessage('error', `This range cannot be shown: ${e.message}`);
    document.body.dataset.state = 'error';
    return;
  }
  if (e.status === 404 && route.view === 'image') {
    showMessage('error', 'No such image for this owner.');
    document.body.dataset.state = 'error';
    return;
  }
  if (quiet && app.data) {
    // A live refresh that failed: keep the numbers, say they are stale.
    const live = $('#live');
    live.dataset.live = 'false';
    live.textContent = 'Offline';
    live.title = `Live refresh failed (${e.message}); retrying.`;
    app.timer = setTimeout(() => load(true), LIVE_MS * 2);
    return;
  }
  const what = e.status === 0 ? e.message
    : `The server failed to answer (${e.status} ${e.code}): ${e.message}`;
  showMessage('error', what, true);
  document.body.dataset.state = 'error';
}

function scheduleLive(route, data) {
  const live = $('#live');
  const rt = data.freshness ? data.freshness.realtime : false;
  // A days=N range ends on the server's today by definition; a custom one
  // is live when it reaches the server's today (the browser's clock may be
  // off, or past midnight UTC before the server is).
  const on = rt && (Boolean(route.range.days) || data.range.end >= (app.serverToday || todayUTC()));
  live.dataset.live = on ? 'true' : 'false';
  if (on) {
    live.textContent = 'Live';
    live.title = `Realtime: refreshed every ${LIVE_MS / 1000} s; last at ${new Date().toLocaleTimeString()}.`;
    live.setAttribute('aria-label', 'Live: the numbers refresh every few seconds');
    app.timer = setTimeout(function tick() {
      if (document.hidden) app.timer = setTimeout(tick, LIVE_MS);
      else load(true);
    }, LIVE_MS);
  } else {
    live.textContent = rt ? 'Past range' : 'Daily';
    live.title = rt ? 'This range ends before today: its numbers no longer change.'
      : 'Realtime is off: numbers come from the nightly aggregation.';
  }
}

// ---- rendering --------------------------------------------------------

function syncRangeControls(route) {
  for (const b of document.querySelectorAll('#range button[data-days]')) {
    b.setAttribute('aria-pressed', String(route.range.days === b.dataset.days));
  }
  const today = latestDay();
  for (const id of ['#range-start', '#range-end']) {
    $(id).max = today;
    $(id).min = addDays(today, -365);
  }
  $('#back').hidden = route.view !== 'image';
  $('#back').href = `#/?${routeQuery(route)}`;
  $('#exclude-bots').checked = route.excludeBots;
}

// The last day a range may end on: the server's today (UTC) when known,
// else the browser's, whichever is later (the server refuses what is not).
function latestDay() {
  const mine = todayUTC();
  return app.serverToday > mine ? app.serverToday : mine;
}

function setText(sel, text) {
  const n = $(sel);
  if (n.textContent !== text) n.textContent = text;
}

function setNumber(sel, value, text, title) {
  const n = $(sel);
  n.dataset.value = String(value);
  n.textContent = text;
  n.title = title || '';
}

// "previous 7 days" / "previous day": the period compare=previous answers.
function previousLabel(d) {
  const n = d.previous ? d.previous.range.days : d.range.days;
  return n === 1 ? 'previous day' : `previous ${n} days`;
}

const ARROWS = { up: '▲', down: '▼', flat: '=', new: '▲' };

function setDelta(sel, d, field, format) {
  const n = $(sel);
  if (!d.previous || !d.previous.totals || typeof d.previous.totals[field] !== 'number' ||
      typeof d.totals[field] !== 'number') {
    n.hidden = true;
    return;
  }
  const cur = d.totals[field];
  const prev = d.previous.totals[field];
  const { dir, text } = deltaText(cur, prev);
  const label = previousLabel(d);
  const arrow = document.createElement('span');
  arrow.className = 'arrow';
  arrow.setAttribute('aria-hidden', 'true');
  arrow.textContent = ARROWS[dir];
  const words = dir === 'new' ? `new: none in the ${label}`
    : dir === 'flat' && text === 'none' ? `none in the ${label} either`
      : dir === 'flat' ? `unchanged vs ${label}` : `${text} vs ${label}`;
  n.replaceChildren(arrow, ` ${words}`);
  n.dataset.direction = dir;
  n.dataset.previous = String(prev);
  const pr = d.previous.range;
  n.title = `${label[0].toUpperCase()}${label.slice(1)} (${longDate(pr.start)} – ${longDate(pr.end)}): ${format(prev)}`;
  n.hidden = false;
}

function render(route, d, daily, quiet) {
  const view = $('#view');
  const days = d.range.days || 1;
  const hourly = d.range.interval === 'hour' || Boolean(d.timeseries.length && d.timeseries[0].hour);
  view.dataset.view = route.view;
  view.dataset.rangeStart = d.range.start;
  view.dataset.rangeEnd = d.range.end;
  view.dataset.interval = hourly ? 'hour' : 'day';
  view.dataset.excludeBots = String(Boolean(d.exclude_bots));
  view.dataset.updated = String(Number(view.dataset.updated || 0) + 1);
  $('#owner').textContent = d.owner;
  setText('#range-label', `${longDate(d.range.start)} – ${longDate(d.range.end)} (UTC)` +
    (d.exclude_bots ? ', bots excluded' : ''));
  if (!quiet) {
    // A live refresh must not undo dates being typed in.
    $('#range-start').value = d.range.start;
    $('#range-end').value = d.range.end;
  }

  setNumber('#total-requests', d.totals.requests, NUM.format(d.totals.requests));
  setNumber('#total-bandwidth', d.totals.bandwidth_bytes, bytes(d.totals.bandwidth_bytes),
    `${NUM.format(d.totals.bandwidth_bytes)} bytes`);
  const uniques = Number(d.totals.uniques || 0);
  setNumber('#total-uniques', uniques, NUM.format(uniques),
    'The sum of the daily estimates: a client seen on two days counts twice');
  setDelta('#delta-requests', d, 'requests', (v) => `${NUM.format(v)} requests`);
  setDelta('#delta-bandwidth', d, 'bandwidth_bytes', (v) => bytes(v));
  setDelta('#delta-uniques', d, 'uniques', (v) => `${NUM.format(v)} unique clients`);
  const avg = d.totals.requests / days;
  $('#avg-requests').textContent = `${avg > 0 && avg < 10 ? avg.toFixed(1) : count(Math.round(avg), true)} a day on average`;
  $('#avg-bandwidth').textContent = `${bytes(Math.round(d.totals.bandwidth_bytes / days))} a day on average`;

  const series = d.timeseries;
  const point = hourly ? (p, v) => ({ hour: p.hour, value: v }) : (p, v) => ({ date: p.date, value: v });
  setText('#h-requests', hourly ? 'Requests per hour (UTC)' : 'Requests per day');
  setText('#h-bandwidth', hourly ? 'Bandwidth per hour (UTC)' : 'Bandwidth per day');
  columnChart($('#chart-requests'), series.map((p) => point(p, p.requests)), {
    name: 'Requests', format: (v, s) => count(v, s), formatExact: (v) => NUM.format(v),
    unit: 'requests', cls: 'req', hourly,
  });
  columnChart($('#chart-bandwidth'), series.map((p) => point(p, p.bandwidth_bytes)), {
    name: 'Bandwidth', format: (v, s) => bytes(v, s), cls: 'bw', hourly,
  });
  const perDay = daily.timeseries;
  columnChart($('#chart-uniques'), perDay.map((p) => ({ date: p.date, value: Number(p.uniques || 0) })), {
    name: 'Unique clients (estimated)', format: (v, s) => count(v, s), formatExact: (v) => NUM.format(v),
    unit: 'unique clients (est.)', cls: 'uq', small: true,
  });
  const tbody = $('#daily-table tbody');
  tbody.replaceChildren();
  for (const p of perDay.slice().reverse()) {
    const tr = document.createElement('tr');
    for (const t of [longDate(p.date), NUM.format(p.requests), bytes(p.bandwidth_bytes), NUM.format(Number(p.uniques || 0))]) {
      const td = document.createElement('td');
      td.textContent = t;
      tr.appendChild(td);
    }
    tbody.appendChild(tr);
  }

  const share = (v, all) => (all > 0 ? `${((v / all) * 100).toFixed(v / all >= 0.1 ? 0 : 1)}%` : '');
  const total = d.totals.requests;
  barList($('#countries'), d.countries.map((c) => ({
    label: countryName(c.country), value: c.requests,
    valueText: NUM.format(c.requests), subText: share(c.requests, total),
    attrs: { 'data-country': c.country, 'data-requests': c.requests, 'data-bandwidth': c.bandwidth_bytes },
  })), 'No requests in this range.');
  for (const li of document.querySelectorAll('#countries li[data-country]')) li.title = li.dataset.country;
  const clients = d.clients || [];
  const clientSum = clients.reduce((a, c) => a + c.requests, 0);
  barList($('#clients'), clients.map((c) => ({
    label: CLIENT_NAMES[c.client] || c.client, value: c.requests,
    valueText: NUM.format(c.requests), subText: share(c.requests, clientSum), cls: `c-${c.client}`,
    attrs: { 'data-client': c.client, 'data-requests': c.requests, 'data-bandwidth': c.bandwidth_bytes },
  })), 'No requests in this range.');
  $('#clients-note').textContent = (d.exclude_bots
    ? 'Bots are left out of every number on this page ("Exclude bots"). '
    : '') + 'Told apart by the user agent when the request is counted; the user agent itself is not stored. ' +
    'Link previews are chat and social apps fetching an image to show a link.';
  barList($('#variants'), d.variants.map((v) => ({
    label: v.variant, value: v.requests, valueText: NUM.format(v.requests),
    subText: bytes(v.bandwidth_bytes),
    attrs: { 'data-variant': v.variant, 'data-requests': v.requests, 'data-bandwidth': v.bandwidth_bytes },
  })), 'No requests in this range.');

  const isImage = route.view === 'image';
  $('#image-head').hidden = !isImage;
  $('#card-top').hidden = isImage;
  $('#card-statuses').hidden = isImage;
  $('#kpi-errors').hidden = isImage;
  if (isImage) {
    const name = `${d.album}/${d.filename}`;
    $('#image-title').textContent = name;
    showThumb($('#image-thumb'), d.image_id);
    const link = $('#image-link');
    link.textContent = `${location.origin}/i/${d.image_id}`;
    link.href = `/i/${d.image_id}`;
    document.title = `${name} · Pixflare stats`;
  } else {
    document.title = `${d.owner} · Pixflare stats`;
    const q = routeQuery(route);
    barList($('#top-images'), d.top_images.map((t) => ({
      label: t.filename, sub: t.album, value: t.requests, valueText: NUM.format(t.requests),
      subText: bytes(t.bandwidth_bytes), href: `#/image/${t.image_id}?${q}`,
      thumb: t.image_id,
      attrs: { 'data-image-id': t.image_id, 'data-requests': t.requests, 'data-bandwidth': t.bandwidth_bytes },
    })), 'No image was requested in this range.');
    for (const img of document.querySelectorAll('#top-images img[data-thumb]')) showThumb(img, img.dataset.thumb);
    const all = d.status_codes.reduce((a, s) => a + s.requests, 0);
    const errors = d.status_codes.filter((s) => s.status >= 400).reduce((a, s) => a + s.requests, 0);
    setNumber('#error-rate', errors, all ? share(errors, all) || '0%' : '–');
    $('#error-detail').textContent = `${NUM.format(errors)} of ${NUM.format(all)} responses were 4xx or 5xx`;
    barList($('#statuses'), d.status_codes.map((s) => ({
      label: String(s.status), sub: STATUS_TEXT[s.status] || '', value: s.requests,
      valueText: NUM.format(s.requests), subText: share(s.requests, all), cls: statusClass(s.status),
      attrs: { 'data-status': s.status, 'data-requests': s.requests },
    })), 'No responses in this range.');
  }

  const f = d.freshness || {};
  $('#freshness').textContent = (f.realtime ? 'Realtime counting is on: new requests show within seconds. '
    : 'Realtime counting is off: numbers come from the nightly aggregation. ') +
    (f.last_aggregation_date ? `Last nightly aggregation: ${longDate(f.last_aggregation_date)}.`
      : 'No nightly aggregation has run yet.') +
    ' Dates are UTC days. Pixflare stores no IP addresses, user agents or referers.';

  const empty = d.totals.requests === 0 && !(d.status_codes && d.status_codes.length);
  if (empty) {
    showMessage('empty', isImage
      ? `${d.filename} had no requests between ${longDate(d.range.start)} and ${longDate(d.range.end)}.`
      : `No requests for ${d.owner}'s images between ${longDate(d.range.start)} and ${longDate(d.range.end)} yet. ` +
        `Images are served at /${d.owner}/<album>/<file> and /i/<id>; requests show here within seconds.`);
  } else if (!quiet || $('#message').dataset.kind === 'empty') {
    // A live refresh leaves a message about the date inputs in place.
    showMessage('', '');
  }
  document.body.dataset.state = empty ? 'empty' : 'ready';
}

async function downloadCsv() {
  if (!app.data) return;
  const { route, data } = app.data;
  // The numbers on screen: without bots when they are excluded.
  const params = `${rangeQuery({ start: data.range.start, end: data.range.end })}&format=csv` +
    (route.excludeBots ? '&exclude_bots=true' : '');
  const button = $('#csv');
  button.disabled = true;
  try {
    const text = route.view === 'image'
      ? await api(`images/${route.id}`, params, app.key)
      : await api('overview', `${params}&limit=10`, app.key);
    const what = route.view === 'image' ? `image-${route.id}` : 'overview';
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
    a.download = `pixflare-${data.owner}-${what}-${data.range.start}-${data.range.end}.csv`;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  } catch (e) {
    const auth = authMessage(e);
    if (auth) showSignin(auth);
    else showMessage('error', `The CSV could not be made: ${e.message}`, false);
  } finally {
    button.disabled = false;
  }
}

// The export: every stored row of the range on screen (all the owner's
// images), from /v1/analytics/export. fetch() sends the key in its header,
// and the answer becomes a blob: URL to download: the key never goes into
// a URL (where history, logs and Referer would keep it).
async function exportRows() {
  if (!app.data) return;
  const { data } = app.data;
  const params = `${rangeQuery({ start: data.range.start, end: data.range.end })}&format=csv`;
  const button = $('#export');
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    const res = await api('export', params, app.key);
    const blob = await res.blob();
    const cd = /filename="([^"\/]+)"/.exec(res.headers.get('Content-Disposition') || '');
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([blob], { type: 'text/csv' }));
    a.download = cd ? cd[1] : `pixflare-${data.owner}-export-${data.range.start}-${data.range.end}.csv`;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  } catch (e) {
    const auth = authMessage(e);
    if (auth) showSignin(auth);
    else showMessage('error', `The export could not be made: ${e.message}`, false);
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

// ---- wiring -----------------------------------------------------------

function applyCustom(ev) {
  ev.preventDefault();
  const start = $('#range-start').value;
  const end = $('#range-end').value;
  const today = latestDay();
  let problem = '';
  if (!start || !end) problem = 'Choose both a start and an end date.';
  else if (start > end) problem = 'The start date is after the end date.';
  else if (end > today) problem = 'The end date is in the future (dates are UTC).';
  else if (addDays(start, 89) < end) problem = 'A range can span at most 90 days.';
  if (problem) {
    showMessage('error', problem);
    return;
  }
  go({ ...parseRoute(), range: { start, end } });
}

function init() {
  $('#signin-form').addEventListener('submit', signIn);
  $('#signout').addEventListener('click', () => {
    // Forget the key, then load the page afresh: none of this owner's
    // numbers, names or thumbnails stay in memory or in the DOM.
    sessionStorage.removeItem(KEY_STORE);
    location.replace(location.pathname);
  });
  for (const b of document.querySelectorAll('#range button[data-days]')) {
    b.addEventListener('click', () => go({ ...parseRoute(), range: { days: b.dataset.days } }));
  }
  $('#range-custom').addEventListener('submit', applyCustom);
  $('#csv').addEventListener('click', downloadCsv);
  $('#export').addEventListener('click', exportRows);
  $('#exclude-bots').addEventListener('change', (e) => go({ ...parseRoute(), excludeBots: e.target.checked }));
  // The skip link must not go through the fragment: that holds the route.
  $('.skip').addEventListener('click', (e) => {
    e.preventDefault();
    $('#view').focus();
  });
  $('#image-thumb').addEventListener('error', (e) => e.target.classList.add('broken'));
  window.addEventListener('hashchange', () => load());
  document.addEventListener('visibilitychange', () => {
    // Back on the tab: bring the numbers up to date at once.
    if (!document.hidden && app.key && $('#live').dataset.live === 'true') load(true);
  });
  if (app.key) load();
  else showSignin('');
}

init();
