// format.js - how the dashboard writes numbers, sizes, dates and
// countries. No DOM here: tests/dashboard/unit.test.mjs runs it under Node.

const NUM = new Intl.NumberFormat('en-US');
let regionNames = null;
try {
  regionNames = new Intl.DisplayNames(['en'], { type: 'region' });
} catch {
  regionNames = null;
}

// Bytes in powers of 1000 (B, kB, MB, ...), as CDNs bill them; three
// significant digits, or two when `short` (axis labels).
export function bytes(n, short) {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];
  let v = Number(n);
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  if (u === 0) return `${v} B`;
  const digits = short ? (v >= 100 ? 0 : 1) : (v >= 100 ? 0 : v >= 10 ? 1 : 2);
  let r = Number(v.toFixed(digits));
  if (r >= 1000 && u < units.length - 1) {
    // 999.9996 kB rounds to 1000 kB: say 1 MB.
    r = 1;
    u++;
  }
  return `${r} ${units[u]}`;
}

// A request count: 12,345 in full, or 12.3k / 4.5M when `short` (axis
// labels, averages).
export function count(n, short) {
  if (!short || n < 10000) return NUM.format(n);
  const units = [[1e12, 'T'], [1e9, 'B'], [1e6, 'M'], [1e3, 'k']];
  for (let i = 0; i < units.length; i++) {
    const [f, s] = units[i];
    if (n < f) continue;
    const r = Number((n / f).toFixed(n / f >= 100 ? 0 : 1));
    if (r >= 1000 && i > 0) return `1${units[i - 1][1]}`;
    return `${r}${s}`;
  }
  return NUM.format(n);
}

// The English name of a country code; Cloudflare's XX (unknown) and T1
// (Tor) have none, and an unknown code is shown as it is.
export function countryName(code) {
  if (code === 'XX') return 'Unknown';
  if (code === 'T1') return 'Tor network';
  try {
    const name = regionNames && regionNames.of(code);
    if (name && name !== code) return name;
  } catch {
    // not a region code Intl knows
  }
  return code;
}

// The colour class of an HTTP status.
export function statusClass(s) {
  return s >= 500 ? 's5' : s >= 400 ? 's4' : s >= 300 ? 's3' : 's2';
}

// Today's date in UTC, the API's day boundary.
export function todayUTC() {
  return new Date().toISOString().slice(0, 10);
}

// YYYY-MM-DD plus d days (UTC calendar).
export function addDays(iso, d) {
  const t = new Date(iso + 'T00:00:00Z');
  t.setUTCDate(t.getUTCDate() + d);
  return t.toISOString().slice(0, 10);
}

// A change against the previous period: {dir, text}, dir up | down | flat |
// new. "+40%", "−12.5%" (one decimal under 10%, a true minus sign), "±0%";
// a previous of 0 has no ratio, so "new" (or "none" when both are 0)
// rather than infinity.
export function deltaText(cur, prev) {
  if (prev === 0) return cur === 0 ? { dir: 'flat', text: 'none' } : { dir: 'new', text: 'new' };
  const pct = ((cur - prev) / prev) * 100;
  const a = Math.abs(pct);
  const digits = a >= 10 ? a.toFixed(0) : a.toFixed(1).replace(/\.0$/, '');
  if (digits === '0') return { dir: 'flat', text: '±0%' };
  return pct > 0 ? { dir: 'up', text: `+${digits}%` } : { dir: 'down', text: `−${digits}%` };
}
