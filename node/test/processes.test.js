'use strict';
// The server as a process (the CLI): kill -9 under load, independent Redis clients from npm,
// and the cross-host pairs (the Python client against this server, this client against the
// Python server).

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { connect, FencelockError, NotReady } = require('fencelock');
const { CLI, startServerProcess, pythonWithFencelock } = require('./helpers');

const NODE_SERVER = [process.execPath, CLI, 'serve'];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test('kill -9 under load, restart on the same data dir: every new token exceeds every earlier one', async () => {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'fencelock-crash-'));
  // Small blocks make the server persist its ceiling many times during the load.
  const flags = ['--data-dir', data, '--max-ttl-ms', '1000', '--token-block', '50'];
  const server = await startServerProcess(NODE_SERVER, flags);
  const seen = [];
  let stop = false;
  const load = async (worker) => {
    const client = await connect({ port: server.port, timeout: 2000 });
    for (let n = 0; !stop; n += 1) {
      try {
        const lease = await client.acquire(`job-${worker}-${n % 7}`, { ttl: 500 });
        seen.push(lease.token);
        await client.release(lease.name, lease.token);
      } catch (error) {
        if (!(error instanceof FencelockError)) throw error;
        if (stop) break;
      }
    }
    await client.close();
  };
  const workers = [0, 1, 2, 3].map(load);
  while (seen.length < 500) await sleep(10);
  await server.stop('SIGKILL');
  stop = true;
  await Promise.all(workers);
  const before = Math.max(...seen);

  const restarted = await startServerProcess(NODE_SERVER, flags);
  try {
    assert.match(restarted.output(), /crash/);
    const client = await connect({ port: restarted.port });
    await assert.rejects(client.acquire('job-0-1', { ttl: 500 }), NotReady);
    let first;
    // The grace ends at the lease horizon: the last deadline plus the slack (5 s).
    const deadline = Date.now() + 10000;
    for (;;) {
      try {
        first = await client.acquire('after', { ttl: 500 });
        break;
      } catch (error) {
        if (!(error instanceof NotReady) || Date.now() > deadline) throw error;
        await sleep(50);
      }
    }
    const later = [];
    for (let i = 0; i < 100; i += 1) later.push((await client.acquire(`after-${i}`, { ttl: 500 })).token);
    await client.close();
    assert.ok(first.token > before, `token ${first.token} reissued after a crash (had seen ${before})`);
    assert.ok(Math.min(...later) > before);
    assert.deepEqual(later, [...later].sort((a, b) => a - b));
  } finally {
    await restarted.stop();
    fs.rmSync(data, { recursive: true, force: true });
  }
});

test('SIGTERM stops cleanly with one log line; the snapshot restores leases', async () => {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'fencelock-clean-'));
  const server = await startServerProcess(NODE_SERVER, ['--data-dir', data]);
  const client = await connect({ port: server.port });
  const lease = await client.acquire('kept', { ttl: 60000 });
  await client.acquire('gone', { ttl: 60000, ephemeral: true });
  await client.close();
  assert.equal(await server.stop('SIGTERM'), 0);
  assert.match(server.output(), /stopped: 1 live leases kept in the snapshot/);
  const again = await startServerProcess(NODE_SERVER, ['--data-dir', data]);
  try {
    const c = await connect({ port: again.port });
    assert.ok((await c.verify('kept', lease.token)) > 50000);
    assert.equal((await c.query('gone')).length, 0);
    await c.close();
  } finally {
    await again.stop();
    fs.rmSync(data, { recursive: true, force: true });
  }
});

function optional(name) {
  try {
    return require(name);
  } catch {
    return null;
  }
}

test('ioredis (from npm) is an independent client', { skip: !optional('ioredis') && 'ioredis not installed' }, async () => {
  const Redis = optional('ioredis').default ?? optional('ioredis');
  const server = await startServerProcess(NODE_SERVER, ['--in-memory']);
  const redis = new Redis({ port: server.port, host: '127.0.0.1', lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 0 });
  try {
    await redis.connect();
    const token = await redis.call('ACQUIRE', 'io', '5000');
    assert.equal(token, 1);
    await assert.rejects(redis.call('ACQUIRE', 'io', '5000'), /^ReplyError: LOCKED|LOCKED/);
    assert.ok((await redis.call('VERIFY', 'io', String(token))) > 4000);
    assert.equal(await redis.call('RELEASE', 'io', String(token)), 'OK');
  } finally {
    redis.disconnect();
    await server.stop();
  }
});

test('node-redis (from npm) is an independent client', { skip: !optional('redis') && 'redis not installed' }, async () => {
  const { createClient } = optional('redis');
  const server = await startServerProcess(NODE_SERVER, ['--in-memory']);
  const client = createClient({ socket: { host: '127.0.0.1', port: server.port, reconnectStrategy: false } });
  client.on('error', () => {});
  try {
    await client.connect();
    const token = await client.sendCommand(['ACQUIRE', 'nr', '5000']);
    assert.equal(token, 1);
    await assert.rejects(client.sendCommand(['ACQUIRE', 'nr', '5000']), /LOCKED/);
    assert.equal(await client.sendCommand(['RELEASE', 'nr', String(token)]), 'OK');
  } finally {
    await client.quit().catch(() => {});
    await server.stop();
  }
});

const python = pythonWithFencelock();

test('the Python client against the Node server', { skip: python === null && 'no Python fencelock package (make python-test installs one)' }, async () => {
  const server = await startServerProcess(NODE_SERVER, ['--in-memory']);
  try {
    const script = `
import fencelock, sys
port = int(sys.argv[1])
with fencelock.Client(port=port) as client:
    with client.lock("cross", ttl=0.3) as lease:
        import time; time.sleep(0.8)
        assert not lease.lost
        assert client.verify("cross", lease.token) > 0
    try:
        client.release("cross", lease.token)
        raise SystemExit("released twice")
    except fencelock.Stale:
        pass
    print(lease.token)
`;
    const result = spawnSync(python, ['-c', script, String(server.port)], { encoding: 'utf8', timeout: 20000 });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout.trim(), '1');
  } finally {
    await server.stop();
  }
});

test('the Node client against the Python server', { skip: python === null && 'no Python fencelock package (make python-test installs one)' }, async () => {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'fencelock-py-'));
  const server = await startServerProcess([python, '-m', 'fencelock', 'serve'], ['--data-dir', data]);
  try {
    const a = await connect({ port: server.port });
    const b = await connect({ port: server.port });
    const lease = await a.lock('shared-dir', { ttl: 60000 });
    const stolen = await b.acquire('shared-dir', { ttl: 60000, steal: true });
    if (!lease.signal.aborted) await new Promise((resolve) => lease.signal.addEventListener('abort', resolve));
    assert.equal(lease.signal.reason.reason, 'stolen');
    await a.close();
    await b.close();
    assert.equal(await server.stop('SIGTERM'), 0);
    // A data dir written by the Python host is read by this one: same files, same leases.
    const node = await startServerProcess(NODE_SERVER, ['--data-dir', data]);
    try {
      assert.match(node.output(), /clean/);
      const c = await connect({ port: node.port });
      assert.ok((await c.verify('shared-dir', stolen.token)) > 50000);
      assert.ok((await c.acquire('next', { ttl: 1000 })).token > stolen.token);
      await c.close();
    } finally {
      await node.stop();
    }
  } finally {
    await server.stop('SIGKILL');
    fs.rmSync(data, { recursive: true, force: true });
  }
});

test('the client reconnects after the server restarts on the same port', async () => {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'fencelock-reconnect-'));
  const first = await startServerProcess(NODE_SERVER, ['--data-dir', data]);
  const port = first.port;
  const client = await connect({ port, timeout: 3000 });
  try {
    const before = await client.acquire('r', { ttl: 60000 });
    await first.stop('SIGTERM');
    const again = await startServerProcess(NODE_SERVER, ['--data-dir', data, '--port', String(port)]);
    try {
      // The old connection is gone; the core client opens a new one for the next request.
      assert.ok((await client.verify('r', before.token)) > 50000);
      const next = await client.acquire('s', { ttl: 1000 });
      assert.ok(next.token > before.token);
    } finally {
      await again.stop();
    }
  } finally {
    await client.close();
    fs.rmSync(data, { recursive: true, force: true });
  }
});
