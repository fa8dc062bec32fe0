'use strict';
// The JavaScript surface: require and import, the engine on an injected clock, the error
// classes, the fence's durable file, and the CLI's client subcommands.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync, execFileSync } = require('node:child_process');
const fencelock = require('fencelock');
const { CLI, startServerProcess } = require('./helpers');

const { Engine, ManualClock, Fence, FencelockError, Locked, Stale, Expired, BadRequest, MAX_TOKEN } = fencelock;

test('require and import give the same API', () => {
  const script = "import { Engine, connect, Locked } from 'fencelock'; import all from 'fencelock'; " +
    "if (typeof Engine !== 'function' || typeof connect !== 'function' || Locked.code !== 'LOCKED' || all.Engine !== Engine) process.exit(1);";
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: __dirname, encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  assert.equal(MAX_TOKEN, 2 ** 53 - 1);
});

test('the engine runs on an injected clock, in ms', () => {
  const clock = new ManualClock(1000);
  const engine = new Engine({ clock: clock.now, maxTtlMs: 60000 });
  const first = engine.acquire('a', { ttl: 500 });
  assert.deepEqual(first, { granted: true, name: 'a', token: 1, expiresAt: 1500 });
  assert.throws(() => engine.acquire('a', { ttl: 500 }), (error) => error instanceof Locked && error.msLeft === 500);
  const queued = engine.acquire('a', { ttl: 500, wait: 1000, client: 7 });
  assert.equal(queued.granted, false);
  clock.advance(500);
  engine.handleTimeout();
  const events = [...engine.events()];
  assert.deepEqual(events.map((e) => [e.kind, e.token ?? null]), [['expired', 1], ['granted', 2]]);
  assert.throws(() => engine.renew('a', 1, 100), Expired);
  assert.throws(() => engine.release('b', 5), Stale);
  assert.throws(() => engine.acquire('a', { ttl: 10 ** 9 }), BadRequest);
  assert.throws(() => new Engine({ noSuchSetting: 1 }), (error) => error instanceof BadRequest && error.code === 'ERR');
  assert.throws(() => engine.acquire('a', { ttl: -1 }), RangeError);
  const restored = new Engine({ clock: clock.now, start: 'clean', ceiling: engine.tokenCeiling, snapshot: engine.snapshot() });
  assert.ok(restored.verify('a', 2) > 0);
  engine.checkInvariants();
});

test('every error is a FencelockError with its code and a message starting with it', () => {
  const engine = new Engine();
  engine.acquire('x', { ttl: 1000 });
  try {
    engine.acquire('x', { ttl: 1000 });
    assert.fail('expected Locked');
  } catch (error) {
    assert.ok(error instanceof FencelockError && error instanceof Error);
    assert.equal(error.name, 'Locked');
    assert.match(error.message, /^LOCKED lock is held/);
    assert.ok(error.stack.includes('api.test.js'));
  }
  for (const name of ['Locked', 'Stale', 'Expired', 'LockTimeout', 'NotReady', 'LimitReached', 'TokensExhausted',
    'BadRequest', 'ProtocolError', 'ConnectionLost', 'LeaseLost', 'FenceRejected', 'DurabilityError']) {
    assert.ok(new fencelock[name]('x') instanceof FencelockError, name);
  }
});

test('a fence file written here has the core format and is read back', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fence-api-'));
  const file = path.join(dir, 'marks.json');
  new Fence(file).require('orders', 41);
  assert.equal(new Fence(file).highest('orders'), 41);
  fs.writeFileSync(file, 'not a fence');
  assert.throws(() => new Fence(file), /marks\.json/);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('the CLI: acquire, release, run and serve --help', async () => {
  const help = execFileSync(process.execPath, [CLI, 'serve', '--help'], { encoding: 'utf8' });
  for (const flag of ['--host', '--port', '--data-dir', '--in-memory', '--max-ttl-ms', '--lock-delay-ms', '--max-connections', '--test-clock', '--log-level', '--ready-file']) {
    assert.ok(help.includes(flag), flag);
  }
  const server = await startServerProcess([process.execPath, CLI, 'serve'], ['--in-memory']);
  try {
    const cli = (...args) => spawnSync(process.execPath, [CLI, ...args, '--port', String(server.port)], { encoding: 'utf8' });
    const acquired = cli('acquire', 'jobs/nightly', '30');
    assert.equal(acquired.status, 0, acquired.stderr);
    assert.equal(acquired.stdout.trim(), '1');
    const refused = cli('acquire', 'jobs/nightly', '30');
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /LOCKED/);
    assert.equal(cli('release', 'jobs/nightly', '1').stdout.trim(), 'OK');
    const run = spawnSync(process.execPath, [CLI, 'run', 'jobs/nightly', '--ttl', '1', '--port', String(server.port), '--',
      process.execPath, '-e', 'setTimeout(() => console.log(process.env.FENCELOCK_TOKEN), 1500)'], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout.trim(), '2');
    assert.equal(spawnSync(process.execPath, [CLI, 'nope'], { encoding: 'utf8' }).status, 2);
  } finally {
    await server.stop();
  }
});
