'use strict';
// Client and server round trips over real sockets: the Node client against the Node server.
// The server's socket loop is the addon's native one unless FENCELOCK_TEST_IO says 'net'
// (roundtrip_net.test.js runs this whole file that way).

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');
const { spawnSync } = require('node:child_process');
const { Server, Client, connect, Locked, Stale, LeaseLost, ConnectionLost, Fence, FenceRejected } = require('fencelock');

const IO = process.env.FENCELOCK_TEST_IO ?? 'native';
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function withServer(options, body) {
  const server = new Server({ port: 0, io: IO, ...options });
  const { port } = await server.listen();
  const clients = [];
  const client = async (more = {}) => {
    const c = await connect({ port, ...more });
    clients.push(c);
    return c;
  };
  try {
    return await body({ server, port, client });
  } finally {
    for (const c of clients) await c.close();
    await server.stop();
  }
}

test('redis-cli is an independent client', { skip: spawnSync('redis-cli', ['--version']).status !== 0 }, async () => {
  await withServer({}, async ({ port }) => {
    const run = (...args) => new Promise((resolve) => {
      const child = require('node:child_process').spawn('redis-cli', ['-p', String(port), ...args]);
      let out = '';
      child.stdout.on('data', (d) => { out += d; });
      child.on('exit', () => resolve(out.trim()));
    });
    assert.equal(await run('ACQUIRE', 'a', '1000'), '1');
    assert.match(await run('ACQUIRE', 'a', '1000'), /^LOCKED /);
    assert.equal(await run('RELEASE', 'a', '1'), 'OK');
  });
});

test('acquire, verify, renew, release, query, info', async () => {
  await withServer({}, async ({ client }) => {
    const c = await client();
    const lease = await c.acquire('orders', { ttl: 2000, owner: 'me' });
    assert.equal(lease.token, 1);
    assert.ok(lease.timeLeft > 1900 && lease.timeLeft <= 2000);
    await assert.rejects(c.acquire('orders', { ttl: 1000 }), (error) => error instanceof Locked && error.code === 'LOCKED' && error.msLeft > 0);
    assert.ok((await c.verify('orders', lease.token)) > 1900);
    assert.ok((await c.renew('orders', lease.token, 5000)) > 4900);
    const [info] = await c.query('ord');
    assert.equal(info.name, 'orders');
    assert.deepEqual(info.holders.map((h) => [h.token, h.owner]), [[1, 'me']]);
    await c.release('orders', lease.token);
    await assert.rejects(c.release('orders', lease.token), Stale);
    const facts = await c.info();
    assert.equal(typeof facts.fencelock_version, 'string');
  });
});

test('requests made in one turn leave the client in one write; a lone request in one of its own', async () => {
  await withServer({}, async ({ client }) => {
    const c = await client();
    const lease = await c.acquire('batched', { ttl: 5000 });
    const [socket] = c.sockets.values();
    const writes = [];
    const write = socket.write.bind(socket);
    socket.write = (data, ...rest) => {
      writes.push(Buffer.from(data));
      return write(data, ...rest);
    };
    const lefts = await Promise.all(Array.from({ length: 50 }, () => c.verify('batched', lease.token)));
    assert.equal(lefts.length, 50);
    assert.deepEqual(writes.map((data) => data.toString().split('VERIFY').length - 1), [50]);
    await c.release('batched', lease.token);
    assert.equal(writes.length, 2);
    assert.ok(writes[1].includes('RELEASE'));
  });
});

test('WAIT serves waiters in FIFO order', async () => {
  await withServer({}, async ({ client }) => {
    const holder = await client();
    const first = await holder.acquire('q', { ttl: 5000 });
    const order = [];
    const waiters = [];
    for (const label of ['b', 'c', 'd']) {
      const c = await client();
      waiters.push(c.acquire('q', { ttl: 5000, wait: 5000 }).then(async (lease) => {
        order.push(label);
        await sleep(10);
        await lease.release();
      }));
      await sleep(30); // queue them in a known order
    }
    await holder.release('q', first.token);
    await Promise.all(waiters);
    assert.deepEqual(order, ['b', 'c', 'd']);
  });
});

test('shared leases coexist; an exclusive one waits for them', async () => {
  await withServer({}, async ({ client }) => {
    const c = await client();
    const r1 = await c.acquire('s', { ttl: 5000, shared: true });
    const r2 = await c.acquire('s', { ttl: 5000, shared: true });
    assert.ok(r2.token > r1.token);
    await assert.rejects(c.acquire('s', { ttl: 5000 }), Locked);
    await r1.release();
    await r2.release();
    const w = await c.acquire('s', { ttl: 5000 });
    assert.ok(w.token > r2.token);
  });
});

test('steal fences the old holder, whose lease signal aborts (RESP3 push)', async () => {
  await withServer({}, async ({ client }) => {
    const a = await client();
    const b = await client();
    const lease = await a.lock('x', { ttl: 5000 });
    const aborted = new Promise((resolve) => {
      lease.signal.addEventListener('abort', () => resolve(lease.signal.reason));
    });
    const thief = await b.acquire('x', { ttl: 5000, steal: true });
    assert.ok(thief.token > lease.token);
    const reason = await aborted;
    assert.ok(reason instanceof LeaseLost);
    assert.equal(reason.reason, 'stolen');
    assert.ok(lease.lost);
    await assert.rejects(a.verify('x', lease.token), Stale);
  });
});

test('using() renews past the TTL and rejects with LeaseLost when the lease is lost', async () => {
  await withServer({}, async ({ client }) => {
    const a = await client();
    const b = await client();
    const token = await a.using('job', { ttl: 300 }, async (lease) => {
      await sleep(800); // well past the TTL: renewals keep it
      assert.ok(!lease.signal.aborted);
      return lease.token;
    });
    assert.equal(token, 1);
    let seen = null;
    await assert.rejects(
      a.using('job', { ttl: 5000 }, async (lease) => {
        await b.acquire('job', { ttl: 5000, steal: true });
        if (!lease.signal.aborted) await new Promise((resolve) => lease.signal.addEventListener('abort', resolve));
        seen = lease.signal.reason;
      }),
      LeaseLost,
    );
    assert.ok(seen instanceof LeaseLost);
  });
});

test('await using releases at the end of the block', { skip: !Symbol.asyncDispose }, async () => {
  await withServer({}, async ({ client }) => {
    const c = await client();
    const lease = await c.lock('d', { ttl: 5000 });
    await lease[Symbol.asyncDispose]();
    const again = await c.acquire('d', { ttl: 1000 });
    assert.ok(again.token > lease.token);
  });
});

test('EPHEMERAL leases end when their connection closes', async () => {
  await withServer({}, async ({ client }) => {
    const a = await client();
    const b = await client();
    await a.acquire('e', { ttl: 60000, ephemeral: true });
    await assert.rejects(b.acquire('e', { ttl: 1000 }), Locked);
    await a.close();
    const lease = await b.acquire('e', { ttl: 1000, wait: 2000 });
    assert.equal(lease.token, 2);
  });
});

test('an aborted waiting acquire leaves the queue', async () => {
  await withServer({}, async ({ client }) => {
    const a = await client();
    const b = await client();
    const held = await a.acquire('w', { ttl: 5000 });
    const controller = new AbortController();
    const waiting = b.acquire('w', { ttl: 5000, wait: 5000, signal: controller.signal });
    await sleep(50);
    controller.abort(new Error('gave up'));
    await assert.rejects(waiting, /gave up/);
    await sleep(50);
    const [lock] = await a.query('w');
    assert.equal(lock.waiters.length, 0);
    await held.release();
  });
});

test('a client with no server fails with ConnectionLost', async () => {
  const probe = net.createServer();
  await new Promise((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  await assert.rejects(connect({ port, connectTimeout: 500, timeout: 1000 }), ConnectionLost);
});

test('failover: the second endpoint serves when the first is down', async () => {
  await withServer({}, async ({ port }) => {
    const probe = net.createServer();
    await new Promise((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const dead = probe.address().port;
    await new Promise((resolve) => probe.close(resolve));
    const c = await connect({ endpoints: [`127.0.0.1:${dead}`, { host: '127.0.0.1', port }] });
    const lease = await c.acquire('f', { ttl: 1000 });
    assert.equal(lease.token, 1);
    await c.close();
  });
});

test('a clean restart on the same data dir keeps leases and tokens', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fencelock-'));
  let token;
  await withServer({ dataDir: dir }, async ({ client }) => {
    const c = await client();
    token = (await c.acquire('kept', { ttl: 60000 })).token;
  });
  assert.ok(fs.existsSync(path.join(dir, 'snapshot.json')));
  await withServer({ dataDir: dir }, async ({ server, client }) => {
    assert.equal(server.startKind, 'clean');
    assert.ok(!fs.existsSync(path.join(dir, 'snapshot.json')), 'the snapshot is removed before serving');
    const c = await client();
    assert.ok((await c.verify('kept', token)) > 50000);
    const next = await c.acquire('other', { ttl: 1000 });
    assert.ok(next.token > token);
  });
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Floods the server with PINGs on a connection that never reads; returns the stats after `ms`. */
async function flood(server, port, ms) {
  const socket = net.connect({ port, host: '127.0.0.1' });
  await new Promise((resolve) => socket.on('connect', resolve));
  socket.pause(); // never read
  socket.on('error', () => {});
  const request = Buffer.from('PING\n'.repeat(2000));
  const writer = setInterval(() => socket.write(request), 1);
  await sleep(ms);
  clearInterval(writer);
  return { socket, stats: server.connectionStats() };
}

test(`a client that does not read its replies is cut off past max_output_bytes (${IO})`, async () => {
  // One 64 KB read of PINGs makes about 90 KB of replies: past the limit at once.
  await withServer({ limits: { maxOutputBytes: 32 * 1024 } }, async ({ server, port, client }) => {
    const { socket, stats } = await flood(server, port, 2000);
    assert.equal(stats.open, 0, `the flooding connection is closed: ${JSON.stringify(stats)}`);
    assert.equal(server.native.connections(), 0);
    const other = await client();
    assert.equal((await other.acquire('still', { ttl: 1000 })).token, 1);
    socket.destroy();
  });
});

test(`a client that does not read its replies is no longer read from (backpressure, ${IO})`, async () => {
  await withServer({ limits: { maxOutputBytes: 64 * 1024 * 1024 } }, async ({ server, port, client }) => {
    const { socket, stats } = await flood(server, port, 3000);
    // The kernel's buffers filled, then the host stopped reading from it with at most about
    // one read's replies held: memory stays bounded while the connection stays open.
    assert.deepEqual([stats.open, stats.paused], [1, 1], JSON.stringify(stats));
    assert.ok(stats.maxHeldBytes > 0 && stats.maxHeldBytes < 1024 * 1024, `held ${stats.maxHeldBytes} bytes`);
    // Everyone else is still served.
    const other = await client();
    assert.equal((await other.acquire('still', { ttl: 1000 })).token, 1);
    // Once it reads again, every reply comes, in order, and the host reads it again.
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk) => {
      text += chunk;
    });
    socket.resume();
    socket.write('ECHO last\r\n');
    const deadline = Date.now() + 10000;
    while (!text.endsWith('$4\r\nlast\r\n') && Date.now() < deadline) await sleep(20);
    assert.ok(text.endsWith('$4\r\nlast\r\n'), `the reply after the held ones arrives (${text.length} bytes read)`);
    const pongs = text.slice(0, -'$4\r\nlast\r\n'.length);
    assert.ok(pongs.length > 0 && pongs === '+PONG\r\n'.repeat(pongs.length / 7), 'only whole PONGs before it');
    assert.equal(server.connectionStats().paused, 0);
    socket.destroy();
  });
});

test(`past --max-connections a connection gets an error and is closed; the others are served (${IO})`, async () => {
  await withServer({ maxConnections: 2 }, async ({ port, client }) => {
    const first = await client();
    const second = await client();
    const third = net.connect({ port, host: '127.0.0.1' });
    let text = '';
    third.setEncoding('latin1');
    third.on('data', (chunk) => {
      text += chunk;
    });
    third.on('error', () => {});
    await new Promise((resolve) => third.on('close', resolve));
    assert.equal(text, '-ERR max number of clients reached\r\n');
    assert.equal((await first.acquire('a', { ttl: 1000 })).token, 1);
    assert.equal((await second.acquire('b', { ttl: 1000 })).token, 2);
  });
});

test(`a failed durable write stops the server before the grant it guards leaves (${IO})`, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fencelock-'));
  const fatal = [];
  const lines = [];
  const log = { debug() {}, info() {}, warning() {}, error() {}, critical: (line) => lines.push(line) };
  const server = new Server({ port: 0, io: IO, dataDir: dir, log, onFatal: (status) => fatal.push(status) });
  const { port } = await server.listen();
  // The grant below needs the lease horizon on disk first; its temp file cannot be created.
  fs.mkdirSync(path.join(dir, '.horizon.tmp'));
  const socket = net.connect({ port, host: '127.0.0.1' });
  await new Promise((resolve) => socket.on('connect', resolve));
  let received = '';
  socket.on('data', (chunk) => {
    received += chunk;
  });
  socket.on('error', () => {});
  const ended = new Promise((resolve) => socket.on('close', resolve));
  socket.write('ACQUIRE guarded 60000\r\n');
  await Promise.race([ended, sleep(5000)]);
  assert.deepEqual(fatal, [3]);
  assert.match(lines.join('\n'), /cannot write horizon durably/);
  assert.equal(received, '', 'no reply, so no token, left the server');
  assert.ok(socket.destroyed, 'the connection was dropped');
  await server.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a durable fence refuses a late write across reloads', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fence-'));
  const file = path.join(dir, 'fence.json');
  const fence = new Fence(file);
  assert.equal(fence.require('db', 5), 5);
  const reloaded = new Fence(file);
  assert.throws(() => reloaded.require('db', 4), FenceRejected);
  assert.equal(reloaded.check('db', 6).accepted, true);
  fs.rmSync(dir, { recursive: true, force: true });
});
