'use strict';
// The lease horizon (issue 14) with real processes: after kill -9 on the same boot the restart
// grace ends at the stored horizon, not after the full max TTL; a forged boot identity or a
// data dir from before horizons give the full grace; a horizon written by the Python host is
// read by this one.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { performance } = require('node:perf_hooks');
const { connect, NotReady } = require('fencelock');
const native = require('fencelock/native');
const { CLI, startServerProcess, pythonWithFencelock } = require('./helpers');

const NODE_SERVER = [process.execPath, CLI, 'serve'];
const BOOT_ID = '/proc/sys/kernel/random/boot_id';
const linux = fs.existsSync(BOOT_ID);
const skip = !linux && "needs Linux's boot id";
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => performance.now();

function tempDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A boot id file the server reads instead of the kernel's (FENCELOCK_BOOT_ID_PATH). */
function bootEnv(dir, bootId) {
  const file = path.join(dir, `boot-id-${bootId}`);
  fs.writeFileSync(file, `${bootId}\n`);
  return { FENCELOCK_BOOT_ID_PATH: file };
}

/** Asks for `name` until granted; resolves to performance.now() just before the granting call. */
async function firstGrantTime(client, name, ttl, giveUpMs) {
  const deadline = now() + giveUpMs;
  for (;;) {
    const asked = now();
    try {
      await client.acquire(name, { ttl });
      return asked;
    } catch (error) {
      if (!(error instanceof NotReady) || now() > deadline) throw error;
      await sleep(20);
    }
  }
}

test('performance.now() runs on the system monotonic clock the horizon is stored on', { skip }, async () => {
  const offsets = [];
  for (let i = 0; i < 5; i += 1) {
    offsets.push(native.monotonicMs() - performance.now());
    await sleep(200);
  }
  // Same clock from another origin: the offset stays put (within a ms of truncation).
  assert.ok(Math.max(...offsets) - Math.min(...offsets) <= 2, `offsets drift: ${offsets}`);
  const uptime = Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1000;
  assert.ok(native.monotonicMs() <= uptime + 1000, 'CLOCK_MONOTONIC counts from boot');
});

test('kill -9 after every lease lapsed: a grant comes within a second', { skip }, async () => {
  const data = tempDir('fencelock-horizon-');
  const flags = ['--data-dir', data, '--horizon-slack-ms', '300'];
  try {
    const server = await startServerProcess(NODE_SERVER, flags);
    const client = await connect({ port: server.port });
    await client.acquire('short', { ttl: 500 });
    await client.close();
    const horizon = JSON.parse(fs.readFileSync(path.join(data, 'horizon'), 'utf8'));
    assert.equal(horizon.boot_id, fs.readFileSync(BOOT_ID, 'utf8').trim());
    await sleep(1000);
    await server.stop('SIGKILL');

    const started = now();
    const again = await startServerProcess(NODE_SERVER, flags);
    try {
      const next = await connect({ port: again.port });
      const grantedAt = await firstGrantTime(next, 'next', 1000, 5000);
      const info = await next.info();
      await next.close();
      assert.ok(grantedAt - started < 1500, `first grant ${grantedAt - started} ms after the restart began`);
      assert.match(again.output(), /recovered from a crash.*case horizon/);
      assert.equal(info.restart_grace_case, 'horizon');
      assert.ok(info.restart_grace_ms < 1000);
    } finally {
      await again.stop('SIGKILL');
    }
  } finally {
    fs.rmSync(data, { recursive: true, force: true });
  }
});

test('kill -9 with a live 8 s lease: nothing granted before its deadline, then within the slack', { skip }, async () => {
  const data = tempDir('fencelock-horizon-');
  const flags = ['--data-dir', data, '--horizon-slack-ms', '1000'];
  try {
    const server = await startServerProcess(NODE_SERVER, flags);
    const client = await connect({ port: server.port });
    const sent = now();
    const lease = await client.acquire('held', { ttl: 8000 });
    const replied = now();
    await client.close();
    await server.stop('SIGKILL');

    const again = await startServerProcess(NODE_SERVER, flags);
    try {
      const next = await connect({ port: again.port });
      await assert.rejects(next.acquire('held', { ttl: 1000 }), NotReady);
      const grantedAt = await firstGrantTime(next, 'other', 1000, 15000);
      const info = await next.info();
      const after = await next.acquire('held', { ttl: 1000 });
      await next.close();
      assert.ok(grantedAt >= sent + 8000 - 50, `granted ${grantedAt - sent} ms after the lease was asked for`);
      assert.ok(grantedAt <= replied + 8000 + 1000 + 500, `granted only ${grantedAt - replied} ms after`);
      assert.ok(after.token > lease.token);
      assert.equal(info.restart_grace_case, 'horizon');
      assert.ok(info.restart_grace_ms > 6000 && info.restart_grace_ms <= 9100, String(info.restart_grace_ms));
    } finally {
      await again.stop('SIGKILL');
    }
  } finally {
    fs.rmSync(data, { recursive: true, force: true });
  }
});

test('a forged boot identity gives the full grace', { skip }, async () => {
  const data = tempDir('fencelock-horizon-');
  // The full grace: the longest lease, then the longest lock-delay a client may ask for.
  const flags = ['--data-dir', data, '--max-ttl-ms', '3000', '--max-lock-delay-ms', '500', '--horizon-slack-ms', '100'];
  try {
    const server = await startServerProcess(NODE_SERVER, flags, { env: bootEnv(data, 'boot-a') });
    const client = await connect({ port: server.port });
    await client.acquire('a', { ttl: 100 });
    await client.close();
    assert.equal(JSON.parse(fs.readFileSync(path.join(data, 'horizon'), 'utf8')).boot_id, 'boot-a');
    await server.stop('SIGKILL');

    const again = await startServerProcess(NODE_SERVER, flags, { env: bootEnv(data, 'boot-b') });
    try {
      assert.match(again.output(), /case rebooted/);
      const next = await connect({ port: again.port });
      const info = await next.info();
      assert.equal(info.restart_grace_case, 'rebooted');
      assert.equal(info.restart_grace_ms, 3500);
      await assert.rejects(next.acquire('b', { ttl: 1000 }), NotReady);
      await next.close();
    } finally {
      await again.stop('SIGKILL');
    }
  } finally {
    fs.rmSync(data, { recursive: true, force: true });
  }
});

test('a data dir from before horizons starts with the full grace; a corrupt horizon refuses to start', { skip }, async () => {
  const data = tempDir('fencelock-horizon-');
  try {
    fs.writeFileSync(path.join(data, 'ceiling'), '1048576\n');
    const server = await startServerProcess(NODE_SERVER, ['--data-dir', data, '--max-ttl-ms', '2000', '--max-lock-delay-ms', '0']);
    try {
      assert.match(server.output(), /case no-horizon/);
      const client = await connect({ port: server.port });
      await assert.rejects(client.acquire('a', { ttl: 1000 }), NotReady);
      await firstGrantTime(client, 'a', 1000, 5000);
      await client.close();
      assert.equal(JSON.parse(fs.readFileSync(path.join(data, 'horizon'), 'utf8')).ceiling, 2 * 1048576);
    } finally {
      await server.stop('SIGKILL');
    }
    fs.writeFileSync(path.join(data, 'horizon'), '{"version": 1, "boot');
    await assert.rejects(startServerProcess(NODE_SERVER, ['--data-dir', data]), /horizon is corrupt.*refusing to start/s);
  } finally {
    fs.rmSync(data, { recursive: true, force: true });
  }
});

const python = pythonWithFencelock();

test('a horizon written by the Python host bounds the grace of this one', { skip: skip || (python === null && 'no Python fencelock package (make python-test installs one)') }, async () => {
  const data = tempDir('fencelock-horizon-');
  const flags = ['--data-dir', data, '--horizon-slack-ms', '500'];
  try {
    const server = await startServerProcess([python, '-m', 'fencelock', 'serve'], flags);
    const client = await connect({ port: server.port });
    const sent = now();
    await client.acquire('held', { ttl: 3000 });
    await client.close();
    await server.stop('SIGKILL');

    const node = await startServerProcess(NODE_SERVER, flags);
    try {
      assert.match(node.output(), /case horizon/);
      const next = await connect({ port: node.port });
      const grantedAt = await firstGrantTime(next, 'other', 1000, 10000);
      await next.close();
      assert.ok(grantedAt >= sent + 3000 - 50 && grantedAt <= sent + 3000 + 500 + 1500, `granted after ${grantedAt - sent} ms`);
    } finally {
      await node.stop('SIGKILL');
    }
  } finally {
    fs.rmSync(data, { recursive: true, force: true });
  }
});
