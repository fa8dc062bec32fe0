// A matrix driver for the browser: the fencelock-web client in pages of headless Chromium,
// against the package's SharedWorker server. One process hosts every logical client of a cell
// (each a page of one browser context, so they share one SharedWorker) and the orchestrator's
// control page. JSON lines in and out as the other drivers (tests/matrix/README.md), with a
// `client` field naming the page; `{"op": "scenario", "worker": name}` starts a fresh worker
// (in memory, test clock) for the next scenario; `{"op": "control", ...}` runs DEBUG ADVANCE or
// QUERY; `{"op": "kill", "client"}` closes that client's page.
import http from 'node:http';
import readline from 'node:readline';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const WEB = process.env.FENCELOCK_WEB ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'web');
const require = createRequire(join(WEB, 'package.json'));
const { chromium } = require('playwright-core');
const handler = require('serve-handler');

const emit = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);

const site = http.createServer((request, response) => handler(request, response, { public: WEB, cleanUrls: false, directoryListing: false }));
await new Promise((resolve) => site.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${site.address().port}`;
const profile = mkdtempSync(join(tmpdir(), 'fencelock-matrix-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});

let worker = null;
const pages = new Map();

async function page(client) {
  if (pages.has(client)) return pages.get(client);
  const opened = (async () => {
    const p = await context.newPage();
    await p.goto(`${base}/test/browser/page.html`);
    await p.waitForFunction(() => window.ready === true, null, { timeout: 10_000 });
    await p.exposeFunction('matrixEvent', (event) => emit({ ...event, client }));
    await p.evaluate(async (query) => {
      // No default owner, as the other clients: QUERY shows an owner only where one was given.
      window.locks = await window.fencelock.connect({ worker: new URL(`../../src/worker-main.js?${query}`, location.href) });
      window.leases = new Map();
    }, `name=${worker}&in_memory=1&server.test_clock=1`);
    return p;
  })();
  pages.set(client, opened);
  return opened;
}

// Runs in the page: one request of the driver protocol through the page's Locks.
async function pageRun(r) {
  const { locks } = window;
  const codeOf = (error) => {
    if (typeof error?.code === 'string' && /^[A-Z]+$/.test(error.code)) return error.code;
    if (error instanceof RangeError || error instanceof TypeError) return 'ERR';
    return error?.name ?? 'Error';
  };
  try {
    switch (r.op) {
      case 'acquire': {
        const lease = await locks.acquire(r.name, {
          ttl: r.ttl, wait: r.wait ?? 0, mode: r.shared ? 'shared' : 'exclusive', steal: Boolean(r.steal),
          owner: r.owner ?? undefined, ephemeral: Boolean(r.ephemeral), lockDelay: r.lock_delay ?? undefined,
        });
        lease.signal.addEventListener('abort', () => {
          window.matrixEvent({ event: 'lost', reason: lease.signal.reason?.reason ?? 'lost', name: lease.name, token: lease.token });
        });
        return { ok: { token: lease.token } };
      }
      case 'renew': return { ok: { ms_left: await locks.renew(r.name, r.token, r.ttl) } };
      case 'verify': return { ok: { ms_left: await locks.verify(r.name, r.token) } };
      case 'release': await locks.release(r.name, r.token); return { ok: {} };
      case 'query': {
        const { held, pending } = await locks.query(r.prefix ?? '');
        const byName = new Map();
        const lock = (name) => byName.get(name) ?? byName.set(name, { name, holders: [], waiters: [] }).get(name);
        for (const h of held) lock(h.name).holders.push({ token: h.token, mode: h.mode, owner: h.owner });
        for (const w of [...pending].sort((a, b) => a.position - b.position)) lock(w.name).waiters.push({ mode: w.mode, owner: w.owner });
        return { ok: { locks: [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1)) } };
      }
      case 'advance': {
        // The browser's module carries no raw-command entry point: DEBUG ADVANCE goes to the
        // worker over a connection of its own, as the RESP bytes any client would send.
        const { port, release } = await locks.link.open();
        const ms = String(r.ms);
        const request = new TextEncoder().encode(`*3\r\n$5\r\nDEBUG\r\n$7\r\nADVANCE\r\n$${ms.length}\r\n${ms}\r\n`);
        const reply = await new Promise((resolve) => {
          let text = '';
          port.onmessage = (event) => {
            if (!(event.data instanceof ArrayBuffer)) {
              resolve(text || 'closed by the worker');
              return;
            }
            text += new TextDecoder().decode(event.data);
            if (text.endsWith('\r\n')) resolve(text);
          };
          port.postMessage(request.buffer, [request.buffer]);
        });
        port.postMessage('close');
        port.close();
        release();
        if (reply.startsWith('-') || !reply.endsWith('\r\n')) throw new Error(`DEBUG ADVANCE: ${reply.trim()}`);
        return { ok: {} };
      }
      default: throw new Error(`unknown op ${r.op}`);
    }
  } catch (error) {
    return { error: codeOf(error), text: String(error?.message ?? error) };
  }
}

emit({ ready: 'browser' });
const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  const request = JSON.parse(line);
  const { id } = request;
  if (request.op === 'close') {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
    site.close();
    emit({ id, ok: {} });
    process.exit(0);
  }
  if (request.op === 'scenario') {
    for (const p of pages.values()) await (await p).close();
    pages.clear();
    worker = request.worker;
    emit({ id, ok: {} });
    continue;
  }
  if (request.op === 'kill') {
    const p = pages.get(request.client);
    pages.delete(request.client);
    if (p) await (await p).close();
    emit({ id, ok: {} });
    continue;
  }
  const client = request.op === 'control' ? '(control)' : request.client;
  const body = request.op === 'control' ? { ...request.request } : request;
  page(client)
    .then((p) => p.evaluate(pageRun, body))
    .then((result) => emit({ id, ...result }), (error) => emit({ id, error: 'DRIVER', text: String(error?.stack ?? error) }));
}
