// Unit tests of the dashboard's DOM-free modules, under Node's own test
// runner: `node --test tests/dashboard/` (scripts/test.sh runs it).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { niceTicks } from '../../dashboard/chart.js';
import { addDays, bytes, count, countryName, deltaText, statusClass } from '../../dashboard/format.js';

test('bytes: powers of 1000, three significant digits', () => {
  assert.equal(bytes(0), '0 B');
  assert.equal(bytes(999), '999 B');
  assert.equal(bytes(1000), '1 kB');
  assert.equal(bytes(1234), '1.23 kB');
  assert.equal(bytes(12345), '12.3 kB');
  assert.equal(bytes(123456), '123 kB');
  assert.equal(bytes(5678901), '5.68 MB');
  assert.equal(bytes(999999), '1 MB');
  assert.equal(bytes(999999999), '1 GB');
  assert.equal(bytes(2.5e12), '2.5 TB');
  assert.equal(bytes(8e6, true), '8 MB');
  assert.equal(bytes(1.25e6, true), '1.3 MB');
});

test('count: thousands separators, compact when short', () => {
  assert.equal(count(0), '0');
  assert.equal(count(1234567), '1,234,567');
  assert.equal(count(9999, true), '9,999');
  assert.equal(count(12345, true), '12.3k');
  assert.equal(count(999999, true), '1M');
  assert.equal(count(4500000, true), '4.5M');
  assert.equal(count(2e9, true), '2B');
});

test('countryName: English names, XX and T1, unknown codes as they are', () => {
  assert.equal(countryName('DE'), 'Germany');
  assert.equal(countryName('US'), 'United States');
  assert.equal(countryName('JP'), 'Japan');
  assert.equal(countryName('XX'), 'Unknown');
  assert.equal(countryName('T1'), 'Tor network');
  assert.equal(countryName('Q9'), 'Q9');
});

test('statusClass and addDays', () => {
  assert.deepEqual([200, 206, 304, 404, 503].map(statusClass), ['s2', 's2', 's3', 's4', 's5']);
  assert.equal(addDays('2026-11-25', -30), '2026-10-26');
  assert.equal(addDays('2024-02-28', 1), '2024-02-29');
  assert.equal(addDays('2026-12-31', 1), '2027-01-01');
});

test('niceTicks: from 0 to a round number at or above the maximum', () => {
  assert.deepEqual(niceTicks(0), [0, 1]);
  assert.deepEqual(niceTicks(3), [0, 1, 2, 3]);
  assert.deepEqual(niceTicks(480), [0, 200, 400, 600]);
  assert.deepEqual(niceTicks(100), [0, 25, 50, 75, 100]);
  for (const max of [1, 7, 13, 99, 101, 1234, 5678901, 1e12]) {
    const t = niceTicks(max);
    assert.equal(t[0], 0);
    assert.ok(t[t.length - 1] >= max, `${max}: ${t}`);
    assert.ok(t.length >= 2 && t.length <= 7, `${max}: ${t}`);
    const step = t[1] - t[0];
    t.forEach((v, i) => assert.ok(Math.abs(v - i * step) < step * 1e-9));
  }
});

test('deltaText: the change against the previous period', () => {
  assert.deepEqual(deltaText(140, 100), { dir: 'up', text: '+40%' });
  assert.deepEqual(deltaText(75, 100), { dir: 'down', text: '\u221225%' });
  assert.deepEqual(deltaText(1025, 1000), { dir: 'up', text: '+2.5%' });
  assert.deepEqual(deltaText(1030, 1000), { dir: 'up', text: '+3%' });
  assert.deepEqual(deltaText(300, 100), { dir: 'up', text: '+200%' });
  assert.deepEqual(deltaText(100, 100), { dir: 'flat', text: '\u00b10%' });
  assert.deepEqual(deltaText(100001, 100000), { dir: 'flat', text: '\u00b10%' });
  assert.deepEqual(deltaText(0, 100), { dir: 'down', text: '\u2212100%' });
  // No ratio against nothing: "new", never Infinity or NaN.
  assert.deepEqual(deltaText(5, 0), { dir: 'new', text: 'new' });
  assert.deepEqual(deltaText(0, 0), { dir: 'flat', text: 'none' });
});
