// chart.js - the dashboard's charts: a column chart (a column a day, or an
// hour) and horizontal bar lists, drawn as SVG and HTML with no library.
//
// Why hand-written: the dashboard needs two kinds of chart, and this module
// is ~250 lines; a charting library from npm would add 50-200 KB to every
// binary, a build step with Node.js to `make`, and code we did not read to
// a page that holds an API key. Everything here draws from plain numbers,
// so it is easy to test and to restyle (colours come from CSS variables).

const SVGNS = 'http://www.w3.org/2000/svg';

function el(name, attrs, parent) {
  const node = document.createElementNS(SVGNS, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (parent) parent.appendChild(node);
  return node;
}

// Round max up to a "nice" axis end (1, 2, 2.5 or 5 times a power of ten)
// and return the ticks from 0 to it.
export function niceTicks(max, count = 4) {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const pow = Math.pow(10, Math.floor(Math.log10(raw)));
  let step = pow;
  for (const m of [1, 2, 2.5, 5, 10]) {
    step = m * pow;
    if (step >= raw) break;
  }
  if (step < 1 && Number.isInteger(max)) step = 1;
  const ticks = [];
  for (let v = 0; v < max + step / 2; v += step) ticks.push(v);
  if (ticks[ticks.length - 1] < max) ticks.push(ticks[ticks.length - 1] + step);
  return ticks;
}

const DAY_FMT = new Intl.DateTimeFormat('en', { month: 'short', day: 'numeric', timeZone: 'UTC' });
const LONG_FMT = new Intl.DateTimeFormat('en', {
  weekday: 'short', year: 'numeric', month: 'short', day: 'numeric', timeZone: 'UTC',
});

export function shortDate(iso) {
  return DAY_FMT.format(new Date(iso + 'T00:00:00Z'));
}

export function longDate(iso) {
  return LONG_FMT.format(new Date(iso + 'T00:00:00Z'));
}

// "2026-12-03T14:00:00Z" -> "Thu, Dec 3, 2026, 14:00-15:00 UTC".
export function longHour(iso) {
  const h = Number(iso.slice(11, 13));
  const two = (n) => String(n).padStart(2, '0');
  return `${longDate(iso.slice(0, 10))}, ${two(h)}:00–${two((h + 1) % 24)}:00 UTC`;
}

// Column chart in `svg`, one column per point; `points` is [{date, value}]
// (a column a day) or, with `opt.hourly`, [{hour, value}] (an hour each,
// "YYYY-MM-DDTHH:00:00Z"); `opt.format` turns a value into text, `opt.name`
// names the measure for the tooltip and for screen readers. The chart is
// drawn at the svg's current width and redrawn when it changes. Each column
// is a <g> carrying data-date (or data-hour) and data-value (the tooltip's
// and the tests' handle); the tooltip follows the pointer, and the arrow
// keys when focused (Page Up / Page Down: a day back or on, hourly).
export function columnChart(svg, points, opt) {
  const state = { svg, points, opt, active: -1 };
  svg.__chart = state;
  draw(state);
  if (!svg.__observed) {
    svg.__observed = true;
    let pending = false;
    let lastWidth = 0;
    new ResizeObserver(() => {
      const w = svg.parentElement.clientWidth;
      if (pending || w === lastWidth) return;
      lastWidth = w;
      pending = true;
      requestAnimationFrame(() => { pending = false; draw(svg.__chart); });
    }).observe(svg.parentElement);
    svg.addEventListener('pointermove', (e) => pointAt(svg.__chart, e));
    svg.addEventListener('pointerleave', () => setActive(svg.__chart, -1));
    svg.addEventListener('blur', () => setActive(svg.__chart, -1));
    svg.addEventListener('focus', () => {
      const s = svg.__chart;
      setActive(s, s.active >= 0 ? s.active : s.points.length - 1);
    });
    svg.addEventListener('keydown', (e) => keyAt(svg.__chart, e));
  }
}

function draw(s) {
  const { svg, points, opt } = s;
  const width = Math.max(240, svg.parentElement.clientWidth);
  const height = (width < 480 ? 150 : 190) - (opt.small ? 50 : 0);
  const max = points.reduce((m, p) => Math.max(m, p.value), 0);
  const ticks = niceTicks(max);
  const top = ticks[ticks.length - 1] || 1;
  const labelW = Math.max(...ticks.map((t) => opt.format(t, true).length)) * 6.5 + 10;
  const m = { l: labelW, r: 8, t: 10, b: 24 };
  const iw = width - m.l - m.r;
  const ih = height - m.t - m.b;
  svg.replaceChildren();
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('width', width);
  svg.setAttribute('height', height);
  const total = points.reduce((a, p) => a + p.value, 0);
  const hourly = Boolean(opt.hourly);
  const unit = hourly ? 'hour' : 'day';
  const when = hourly ? (p) => longHour(p.hour) : (p) => longDate(p.date);
  svg.setAttribute('aria-label', `${opt.name} per ${unit}, ${points.length} ${unit}s` +
    (points.length ? ` from ${when(points[0])} to ${when(points[points.length - 1])}` : '') +
    `: ${opt.format(total)} in all, at most ${opt.format(max)} in one ${unit}. ` +
    `Use the arrow keys to read each ${unit}` + (hourly ? ', Page Up and Page Down to move a day.' : '.'));

  const grid = el('g', { class: 'grid' }, svg);
  for (const t of ticks) {
    const y = m.t + ih - (t / top) * ih;
    el('line', { x1: m.l, x2: width - m.r, y1: y, y2: y }, grid);
    const label = el('text', { x: m.l - 6, y: y + 4, 'text-anchor': 'end' }, grid);
    label.textContent = opt.format(t, true);
  }
  const n = Math.max(points.length, 1);
  const slot = iw / n;
  const gap = slot > 6 ? Math.min(slot * 0.25, 6) : 0;
  const days = el('g', { class: 'days' }, svg);
  s.slot = slot;
  s.left = m.l;
  s.groups = [];
  points.forEach((p, i) => {
    const g = el('g', hourly ? { 'data-hour': p.hour, 'data-value': p.value }
      : { 'data-date': p.date, 'data-value': p.value }, days);
    const x = m.l + i * slot;
    el('rect', { class: 'hit', x, y: m.t, width: slot, height: ih }, g);
    const h = (p.value / top) * ih;
    // A day with traffic stays visible even when tiny next to the peak.
    const hh = p.value > 0 ? Math.max(h, 1.5) : 0;
    el('rect', {
      class: `bar ${opt.cls || ''}`, x: x + gap / 2, y: m.t + ih - hh,
      width: Math.max(slot - gap, 1), height: hh, rx: Math.min(2, slot / 4),
    }, g);
    s.groups.push(g);
  });
  const axis = el('g', { class: 'axis' }, svg);
  if (hourly) {
    hourAxis(s, axis, grid, { m, ih, iw, height });
    if (s.active >= points.length) s.active = -1;
    setActive(s, s.active);
    return;
  }
  // Date labels: as many as fit, evenly spaced, always the last day.
  const every = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(iw / 58))));
  points.forEach((p, i) => {
    if ((points.length - 1 - i) % every !== 0) return;
    // Labels at the edges are anchored inwards so they are never cut off.
    let x = m.l + i * slot + slot / 2;
    let anchor = 'middle';
    if (x + 22 > width) {
      x = width - 2;
      anchor = 'end';
    } else if (x - 22 < m.l - labelW + 10) {
      x = m.l;
      anchor = 'start';
    }
    const t = el('text', { x, y: height - 6, 'text-anchor': anchor }, axis);
    t.textContent = shortDate(p.date);
  });
  if (s.active >= points.length) s.active = -1;
  setActive(s, s.active);
}

// An hourly chart's axis: a line where each UTC day starts and the day's
// date under it, every day or every few days, as many as fit.
function hourAxis(s, axis, grid, { m, ih, iw, height }) {
  const starts = [];
  s.points.forEach((p, i) => {
    if (p.hour.slice(11, 13) === '00') starts.push(i);
  });
  const every = Math.max(1, Math.ceil(starts.length / Math.max(2, Math.floor(iw / 58))));
  starts.forEach((i, k) => {
    const x = m.l + i * s.slot;
    if (i > 0) el('line', { class: 'day', x1: x, x2: x, y1: m.t, y2: m.t + ih }, grid);
    if (k % every !== 0 || x + 40 > m.l + iw + m.r) return;
    const t = el('text', { x: x + 2, y: height - 6, 'text-anchor': 'start' }, axis);
    t.textContent = shortDate(s.points[i].hour.slice(0, 10));
  });
}

function pointAt(s, e) {
  const rect = s.svg.getBoundingClientRect();
  const scale = rect.width ? s.svg.viewBox.baseVal.width / rect.width : 1;
  const i = Math.floor(((e.clientX - rect.left) * scale - s.left) / s.slot);
  setActive(s, i >= 0 && i < s.points.length ? i : -1);
}

function keyAt(s, e) {
  const last = s.points.length - 1;
  const moves = { ArrowLeft: -1, ArrowRight: 1, Home: -Infinity, End: Infinity };
  if (s.opt.hourly) Object.assign(moves, { PageUp: -24, PageDown: 24 });
  if (e.key === 'Escape') { setActive(s, -1); return; }
  if (!(e.key in moves) || last < 0) return;
  e.preventDefault();
  const from = s.active < 0 ? last : s.active;
  setActive(s, Math.min(last, Math.max(0, from + moves[e.key])));
}

function setActive(s, i) {
  s.active = i;
  const tip = s.svg.parentElement.querySelector('.tip');
  s.groups.forEach((g, j) => g.classList.toggle('active', j === i));
  if (i < 0 || !s.points[i]) {
    tip.hidden = true;
    return;
  }
  const p = s.points[i];
  tip.textContent = '';
  const d = document.createElement('strong');
  d.textContent = s.opt.hourly ? longHour(p.hour) : longDate(p.date);
  tip.append(d, document.createElement('br'), `${opt_format(s, p.value)} ${s.opt.unit || ''}`.trim());
  tip.hidden = false;
  const box = s.svg.getBoundingClientRect();
  const scale = s.svg.viewBox.baseVal.width ? box.width / s.svg.viewBox.baseVal.width : 1;
  const cx = (s.left + (i + 0.5) * s.slot) * scale;
  const w = tip.offsetWidth;
  tip.style.left = `${Math.max(0, Math.min(box.width - w, cx - w / 2))}px`;
}

function opt_format(s, v) {
  return s.opt.formatExact ? s.opt.formatExact(v) : s.opt.format(v);
}

// A <span> with a class and text (always as text: names come from users).
function span(cls, text) {
  const node = document.createElement('span');
  node.className = cls;
  node.textContent = text;
  return node;
}

// Horizontal bars in the list `ol`: rows are [{key, label, sub, value,
// valueText, subText, href, thumb (an image id), cls, attrs}]; each bar's length is its
// share of the largest value. Plain HTML, so it wraps on a phone and reads
// as a list to a screen reader.
export function barList(ol, rows, empty) {
  ol.replaceChildren();
  if (!rows.length) {
    const li = document.createElement('li');
    li.className = 'none muted';
    li.textContent = empty;
    ol.appendChild(li);
    return;
  }
  const max = rows.reduce((m, r) => Math.max(m, r.value), 0) || 1;
  for (const r of rows) {
    const li = document.createElement('li');
    for (const [k, v] of Object.entries(r.attrs || {})) li.setAttribute(k, String(v));
    const head = document.createElement(r.href ? 'a' : 'div');
    head.className = 'row';
    if (r.href) head.href = r.href;
    if (r.thumb) {
      const img = document.createElement('img');
      // The caller fills src (thumbnails need the API key: see app.js).
      img.dataset.thumb = r.thumb;
      img.alt = '';
      img.width = 40;
      img.height = 40;
      img.decoding = 'async';
      img.addEventListener('error', () => img.classList.add('broken'), { once: true });
      head.appendChild(img);
    }
    const name = span('name', r.label);
    if (r.sub) name.appendChild(span('sub muted', r.sub));
    const val = span('val', r.valueText);
    if (r.subText) val.appendChild(span('sub muted', r.subText));
    const track = span('track', '');
    const fill = span(`fill ${r.cls || ''}`, '');
    fill.style.width = `${Math.max(0.5, (r.value / max) * 100)}%`;
    track.appendChild(fill);
    head.append(name, val, track);
    li.appendChild(head);
    ol.appendChild(li);
  }
}
