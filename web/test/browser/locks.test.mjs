// fencelock-web in real headless Chromium: pages of one browser share one SharedWorker (one
// engine), as the tabs of an origin do. Each test uses its own worker (its own `name`, so its
// own IndexedDB ceiling). Waiting is on conditions (a query showing the queue, a promise
// settling), never on a guessed sleep.
import test from 'node:test';
import assert from 'node:assert/strict';
import { useBrowser, openPage } from './harness.mjs';

const env = useBrowser();

/** Opens a page connected to the worker `query` names; its client is `window.locks`. */
async function pageOn(query) {
  const page = await openPage(env.browser.context, env.site.url);
  await page.evaluate(async (q) => {
    window.locks = await window.connectTo(q);
    window.held = {};
  }, query);
  return page;
}

/** Waits until `query()` on `page` shows `predicate` true of `{ held, pending }` for lock `name`. */
async function until(page, name, predicate) {
  await page.waitForFunction(
    async ([lock, source]) => {
      const state = await window.locks.query(lock);
      // eslint-disable-next-line no-new-func
      return new Function('state', `return (${source})(state)`)(state);
    },
    [name, predicate.toString()],
    { timeout: 10_000, polling: 20 },
  );
}

test('two pages take a lock in FIFO order with increasing tokens', async () => {
  const worker = 'name=fifo';
  const a = await pageOn(worker);
  const b = await pageOn(worker);
  const first = await a.evaluate(async () => {
    window.held.first = await window.locks.acquire('fifo', { ttl: 10_000 });
    return window.held.first.token;
  });
  // b queues first, then a asks again: the grants must follow that order.
  await b.evaluate(() => {
    window.order = window.locks.request('fifo', { wait: 10_000 }, async (lease) => lease.token);
  });
  await until(a, 'fifo', (state) => state.pending.length === 1);
  await a.evaluate(() => {
    window.order = window.locks.request('fifo', { wait: 10_000 }, async (lease) => lease.token);
  });
  await until(a, 'fifo', (state) => state.pending.length === 2);
  const queue = await a.evaluate(async () => (await window.locks.query('fifo')).pending.map((w) => w.position));
  assert.deepEqual(queue, [1, 2]);
  await a.evaluate(() => window.held.first.release());
  const second = await b.evaluate(() => window.order);
  const third = await a.evaluate(() => window.order);
  assert.ok(first < second && second < third, `tokens in grant order: ${first}, ${second}, ${third}`);
  await a.close();
  await b.close();
});

test('shared mode: readers hold together, a writer waits for both', async () => {
  const worker = 'name=shared';
  const a = await pageOn(worker);
  const b = await pageOn(worker);
  const tokens = [];
  for (const page of [a, b]) {
    tokens.push(await page.evaluate(async () => {
      window.held.reader = await window.locks.acquire('doc', { mode: 'shared', ttl: 10_000 });
      return window.held.reader.token;
    }));
  }
  const held = await a.evaluate(async () => (await window.locks.query('doc')).held.map((h) => [h.mode, h.token]));
  assert.deepEqual(held.sort(), tokens.map((token) => ['shared', token]).sort());
  await a.evaluate(() => {
    window.writer = window.locks.request('doc', { mode: 'exclusive', wait: 10_000 }, async (lease) => lease.token);
  });
  await until(a, 'doc', (state) => state.pending.length === 1 && state.held.length === 2);
  await a.evaluate(() => window.held.reader.release());
  await until(a, 'doc', (state) => state.pending.length === 1 && state.held.length === 1);
  await b.evaluate(() => window.held.reader.release());
  const writer = await a.evaluate(() => window.writer);
  assert.ok(writer > Math.max(...tokens));
  await a.close();
  await b.close();
});

test("steal aborts the old holder's lease.signal", async () => {
  const worker = 'name=steal';
  const a = await pageOn(worker);
  const b = await pageOn(worker);
  await a.evaluate(() => {
    window.outcome = window.locks.request('job', { ttl: 10_000 }, (lease) =>
      new Promise((resolve) => {
        lease.signal.addEventListener('abort', () =>
          resolve({ token: lease.token, reason: lease.signal.reason.reason, code: lease.signal.reason.code }));
      }));
  });
  await until(b, 'job', (state) => state.held.length === 1);
  const thief = await b.evaluate(async () => {
    const lease = await window.locks.acquire('job', { steal: true, ttl: 10_000 });
    return lease.token;
  });
  const outcome = await a.evaluate(() => window.outcome);
  assert.equal(outcome.reason, 'stolen');
  assert.equal(outcome.code, 'LOST');
  assert.ok(thief > outcome.token);
  await a.close();
  await b.close();
});

test('closing a page frees its EPHEMERAL lease and its wait', async () => {
  const worker = 'name=close';
  const holder = await pageOn(worker);
  const leaver = await pageOn(worker);
  const stayer = await pageOn(worker);
  await holder.evaluate(async () => {
    window.held.lease = await window.locks.acquire('room', { ttl: 60_000 });
  });
  await leaver.evaluate(() => {
    window.locks.request('room', { wait: 60_000 }, async () => {});
  });
  await until(stayer, 'room', (state) => state.pending.length === 1);
  await stayer.evaluate(() => {
    window.got = window.locks.request('room', { wait: 60_000 }, async (lease) => lease.token);
  });
  await until(stayer, 'room', (state) => state.pending.length === 2);
  await leaver.close();
  await until(stayer, 'room', (state) => state.pending.length === 1 && state.held.length === 1);
  // The holder's lease has 60 s left: only the page closing can free it this soon.
  await holder.close();
  const started = Date.now();
  const token = await stayer.evaluate(() => window.got);
  assert.ok(token > 0);
  assert.ok(Date.now() - started < 10_000);
  await stayer.close();
});

test('a page whose lease expired has its fenced write refused', async () => {
  const worker = 'name=fenced';
  const paused = await pageOn(worker);
  const next = await pageOn(worker);
  const stale = await paused.evaluate(async () => {
    // No keep-alive: as if the page froze right after taking the lease.
    window.held.lease = await window.locks.acquire('ledger', { ttl: 300 });
    return window.held.lease.token;
  });
  const fresh = await next.evaluate(async () => {
    const lease = await window.locks.acquire('ledger', { ttl: 10_000, wait: 10_000 });
    const db = await openLedger();
    const outcome = await window.fencelock.fencedWrite(db, { resource: 'ledger', token: lease.token, stores: ['entries'] },
      (tx) => tx.objectStore('entries').add({ by: 'next', token: lease.token }));
    return { token: lease.token, outcome };

    function openLedger() {
      return new Promise((resolve, reject) => {
        const open = indexedDB.open('ledger-test', 1);
        open.onupgradeneeded = () => {
          open.result.createObjectStore('fence');
          open.result.createObjectStore('entries', { autoIncrement: true });
        };
        open.onsuccess = () => resolve(open.result);
        open.onerror = () => reject(open.error);
      });
    }
  });
  assert.ok(fresh.token > stale);
  assert.deepEqual(fresh.outcome, { accepted: true, highest: fresh.token });
  const late = await paused.evaluate(async (token) => {
    const db = await new Promise((resolve) => {
      const open = indexedDB.open('ledger-test', 1);
      open.onsuccess = () => resolve(open.result);
    });
    const outcome = await window.fencelock.fencedWrite(db, { resource: 'ledger', token, stores: ['entries'] },
      (tx) => tx.objectStore('entries').add({ by: 'paused', token }));
    const entries = await new Promise((resolve) => {
      const all = db.transaction('entries').objectStore('entries').getAll();
      all.onsuccess = () => resolve(all.result);
    });
    return { outcome, writers: entries.map((entry) => entry.by) };
  }, stale);
  assert.deepEqual(late.outcome, { accepted: false, highest: fresh.token });
  assert.deepEqual(late.writers, ['next']);
  await paused.close();
  await next.close();
});

test('a restarted worker keeps tokens increasing (ceiling in IndexedDB)', async () => {
  // A short max TTL and no lock-delay keep the restart grace after a crash (the max TTL,
  // then the longest lock-delay a page may ask for) short.
  const worker = 'name=reload&max_ttl_ms=1000&max_lock_delay_ms=0';
  const first = await pageOn(worker);
  const before = await first.evaluate(async () => {
    const tokens = [];
    for (let i = 0; i < 3; i += 1) {
      const lease = await window.locks.acquire('counter', { ttl: 500 });
      tokens.push(lease.token);
      await lease.release();
    }
    const { liveness, started } = await window.locks.worker();
    return { tokens, liveness, started: started.kind };
  });
  assert.equal(before.started, 'fresh');
  // Another worker of the origin's pages watches the first worker's liveness lock.
  const watcher = await pageOn('name=watcher&in_memory=1');
  await watcher.evaluate((liveness) => {
    window.gone = navigator.locks.request(liveness, () => true);
  }, before.liveness);
  await first.close();
  assert.equal(await watcher.evaluate(() => window.gone), true);
  const second = await pageOn(worker);
  const after = await second.evaluate(async () => {
    const { started } = await window.locks.worker();
    for (;;) {
      try {
        const lease = await window.locks.acquire('counter', { ttl: 500 });
        return { token: lease.token, started: started.kind };
      } catch (error) {
        if (error.code !== 'NOTREADY') throw error;
        // The worker says how long its restart grace has left.
        await new Promise((resolve) => setTimeout(resolve, error.msLeft + 1));
      }
    }
  });
  assert.equal(after.started, 'crashed');
  assert.ok(after.token > Math.max(...before.tokens), `${after.token} after ${before.tokens}`);
  await second.close();
  await watcher.close();
});
