// The demo page in headless Chromium: three tabs contend, one holds the lock, a paused tab's
// late write is refused by the fence. A screenshot goes to the test output; the checks read
// the DOM, not pixels.
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { useBrowser, OUTPUT } from './harness.mjs';

const env = useBrowser();

test('the demo shows the holder, its token, the queue and a refused stale write', async () => {
  const page = await env.browser.context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error));
  await page.goto(`${env.site.url}/demo/index.html?auto`);
  await page.waitForFunction(() => document.getElementById('token').textContent !== '-' &&
    document.getElementById('queue').textContent.split(',').length === 2, null, { timeout: 15_000 });
  const owner = await page.evaluate(() => document.getElementById('holder').dataset.owner);
  assert.match(owner, /^tab [ABC]$/);
  // Pause the holding tab: its lease lapses, the next tab takes over, and its late write is refused.
  const frame = page.frames().find((f) => f.url().includes(`tab=${owner.slice(4)}`));
  assert.ok(frame, `the frame of ${owner}`);
  await frame.click('#pause');
  await page.waitForSelector('#log li.refused', { timeout: 15_000 });
  await page.waitForFunction((paused) => {
    const holder = document.getElementById('holder').dataset.owner;
    return holder !== '' && holder !== paused;
  }, owner, { timeout: 15_000 });
  mkdirSync(OUTPUT, { recursive: true });
  const shot = join(OUTPUT, 'demo.png');
  await page.screenshot({ path: shot, fullPage: true });
  const shown = await page.evaluate(() => ({
    holder: document.getElementById('holder').textContent,
    token: document.getElementById('token').textContent,
    refused: document.querySelector('#log li.refused').textContent,
    accepted: [...document.querySelectorAll('#log li.accepted')].map((li) => li.textContent),
  }));
  assert.match(shown.holder, /^tab [ABC] \(\d+ ms left\)$/);
  assert.match(shown.token, /^\d+$/);
  const refusedToken = Number(/token (\d+) is below (\d+)/.exec(shown.refused)?.[1]);
  const highest = Number(/is below (\d+)/.exec(shown.refused)?.[1]);
  assert.ok(refusedToken < highest, shown.refused);
  assert.ok(Number(shown.token) >= highest, `the holder's token ${shown.token} is the fence's mark ${highest} or later`);
  assert.deepEqual(errors, []);
  console.log(`screenshot: ${shot}`);
});
