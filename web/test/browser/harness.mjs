// Serves web/ on 127.0.0.1 (serve-handler, the engine of the `serve` package) and launches
// Debian's headless Chromium through playwright-core, one fresh profile per browser.
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, after } from 'node:test';
import handler from 'serve-handler';
import { chromium } from 'playwright-core';

export const WEB = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const OUTPUT = process.env.FENCELOCK_TEST_OUTPUT ?? join(WEB, 'test-output');

const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

/** Serves `root` on 127.0.0.1 at a free port; resolves to `{ url, close }`. */
export function serveStatic(root = WEB) {
  const server = http.createServer((request, response) => handler(request, response, { public: root, cleanUrls: false, directoryListing: false }));
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
      resolve({ url: `http://127.0.0.1:${port}`, close: () => new Promise((done) => server.close(done)) });
    });
  });
}

/** Launches headless Chromium with a fresh profile; `close()` removes the profile. */
export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), 'fencelock-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ARGS,
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Opens the test page and waits until the package has loaded. */
export async function openPage(context, base) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error));
  await page.goto(`${base}/test/browser/page.html`);
  await page.waitForFunction(() => /** @type {any} */ (window).ready === true, null, { timeout: 10_000 });
  page.errors = errors;
  return page;
}

/**
 * Serves web/ and launches Chromium before the file's tests, and stops both after them;
 * returns the object whose `site` and `browser` the tests use.
 */
export function useBrowser() {
  const env = { site: /** @type {any} */ (null), browser: /** @type {any} */ (null) };
  before(async () => {
    env.site = await serveStatic();
    env.browser = await launch();
  });
  after(async () => {
    await env.browser?.close();
    await env.site?.close();
  });
  return env;
}
