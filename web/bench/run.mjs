// make bench-web: acquire+release round trips per second from a page through the SharedWorker,
// beside navigator.locks.request round trips in the same page, in headless Chromium. Several
// runs of each, interleaved; prints each median and the ratio (target: fencelock >= 0.5x).
import { serveStatic, launch } from '../test/browser/harness.mjs';

const RUNS = Number(process.env.RUNS ?? 7);
const MS = Number(process.env.MS ?? 1000);
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

const site = await serveStatic();
const browser = await launch();
try {
  const page = await browser.context.newPage();
  await page.goto(`${site.url}/bench/bench.html`);
  await page.waitForFunction(() => window.ready === true, null, { timeout: 10_000 });
  const results = { 'fencelock acquire+release': [], 'fencelock request()': [], 'navigator.locks.request': [] };
  for (let run = 0; run < RUNS; run += 1) {
    results['fencelock acquire+release'].push(await page.evaluate((ms) => window.fencelockRate(ms), MS));
    results['fencelock request()'].push(await page.evaluate((ms) => window.requestRate(ms), MS));
    results['navigator.locks.request'].push(await page.evaluate((ms) => window.webLocksRate(ms), MS));
  }
  const medians = Object.fromEntries(Object.entries(results).map(([name, rates]) => [name, median(rates)]));
  console.log(`${RUNS} runs of ${MS} ms each, medians (round trips per second):`);
  for (const [name, rate] of Object.entries(medians)) {
    console.log(`  ${name.padEnd(28)} ${rate.toFixed(0).padStart(7)}   runs: ${results[name].map((r) => r.toFixed(0)).join(' ')}`);
  }
  const ratio = medians['fencelock acquire+release'] / medians['navigator.locks.request'];
  console.log(`fencelock / Web Locks: ${ratio.toFixed(2)}x (target >= 0.5x)`);
} finally {
  await browser.close();
  await site.close();
}
