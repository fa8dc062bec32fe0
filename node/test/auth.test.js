'use strict';
// Users, rules, protected mode, audit lines and QUERY paging through the real Node server
// (issue 11), plus a hostile-client pass: wrong passwords in a loop, commands before AUTH, a
// user on another's prefix, huge AUTH arguments.

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { connect, AuthFailed, AuthRequired, PermissionDenied } = require('fencelock');
const native = require('fencelock/native');
const { CLI, startServerProcess } = require('./helpers');

const NODE_SERVER = [process.execPath, CLI, 'serve', '--in-memory'];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const hash = (password) => native.hashPassword(Buffer.from(password), crypto.randomBytes(16), 1000);

function usersFile(extra) {
  const users = [
    { name: 'alice', password: hash('alice-pw'), acquire: ['alice/'], read: ['shared/'] },
    { name: 'bob', password: hash('bob-pw'), acquire: ['bob/', 'shared/'] },
    { name: 'root', password: hash('root-pw'), acquire: [''], steal: true, debug: true },
  ];
  if (extra) users.push({ name: extra, password: hash('new-pw'), acquire: [''] });
  return JSON.stringify({ users });
}

function command(...args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = Buffer.from(arg);
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** Sends `data` and collects `lines` reply lines, or everything until the server closes. */
function exchange(port, data, lines) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let buffer = '';
    let closed = false;
    const done = () => resolve({ lines: buffer.split('\r\n').slice(0, lines), closed });
    socket.on('data', (chunk) => {
      buffer += chunk.toString('latin1');
      if (buffer.split('\r\n').length > lines && !closed) setTimeout(() => { socket.destroy(); done(); }, 100);
    });
    socket.on('end', () => { closed = true; });
    socket.on('close', () => { closed = true; done(); });
    socket.on('error', (error) => (error.code === 'EPIPE' || error.code === 'ECONNRESET' ? undefined : reject(error)));
    socket.write(data);
    setTimeout(() => { socket.destroy(); done(); }, 5000);
  });
}

async function secured(flags = []) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fencelock-users-'));
  const file = path.join(dir, 'users.json');
  fs.writeFileSync(file, usersFile());
  const server = await startServerProcess(NODE_SERVER, ['--users', file, ...flags]);
  return { server, file };
}

test('hash-password makes a hash the core accepts', () => {
  const result = spawnSync(process.execPath, [CLI, 'hash-password', '--iterations', '1000'], { input: 's3cret\n' });
  assert.equal(result.status, 0, String(result.stderr));
  const hashed = String(result.stdout).trim();
  assert.match(hashed, /^pbkdf2-sha256\$1000\$/);
  assert.ok(native.verifyPassword(hashed, Buffer.from('s3cret')));
  assert.ok(!native.verifyPassword(hashed, Buffer.from('s3cre')));
});

test('every rule end to end', async () => {
  const { server } = await secured();
  try {
    const anonymous = await connect({ port: server.port });
    await assert.rejects(anonymous.query('alice/'), AuthRequired);
    await anonymous.close();
    const wrong = await connect({ port: server.port, username: 'alice', password: 'wrong' });
    await assert.rejects(wrong.query('alice/'), AuthFailed);
    await wrong.close();
    const alice = await connect({ port: server.port, username: 'alice', password: 'alice-pw' });
    const bob = await connect({ port: server.port, username: 'bob', password: 'bob-pw', protocol: 2 });
    const root = await connect({ port: server.port, username: 'root', password: 'root-pw' });
    const lease = await alice.acquire('alice/job', { ttl: 30000 });
    await assert.rejects(alice.acquire('bob/job', { ttl: 30000 }), PermissionDenied);
    const shared = await bob.acquire('shared/report', { ttl: 30000 });
    assert.ok((await alice.verify('shared/report', shared.token)) > 0);
    await assert.rejects(alice.release('shared/report', shared.token), /NOPERM .*acquire/);
    await assert.rejects(bob.release('alice/job', lease.token), PermissionDenied);
    await assert.rejects(bob.verify('alice/job', lease.token), /NOPERM .*read/);
    await assert.rejects(bob.query(''), /NOPERM .*query/);
    await assert.rejects(bob.acquire('bob/x', { ttl: 30000, steal: true }), /NOPERM .*STEAL/);
    const stolen = await root.acquire('alice/job', { ttl: 30000, steal: true });
    assert.ok(stolen.token > lease.token);
    assert.ok((await alice.verify('alice/job', stolen.token)) > 0);
    for (const client of [alice, bob, root]) await client.close();
    await sleep(100);
    assert.match(server.output(), /audit stolen .*user=root lock=alice\/job/);
    assert.match(server.output(), /audit auth_failed .*user=alice/);
  } finally {
    await server.stop();
  }
});

test('hostile: wrong passwords in a loop close the connection; others stay fast', async () => {
  const { server } = await secured();
  try {
    const guesses = Buffer.concat([...Array(8).keys()].map((n) => command('AUTH', 'root', `guess${n}`)));
    const { lines, closed } = await exchange(server.port, guesses, 5);
    assert.deepEqual(lines, Array(5).fill('-WRONGPASS invalid username-password pair or user is disabled.'));
    assert.ok(closed);
    const root = await connect({ port: server.port, username: 'root', password: 'root-pw' });
    const started = Date.now();
    for (let n = 0; n < 20; n += 1) await root.query('');
    assert.ok(Date.now() - started < 2000);
    await root.close();
  } finally {
    await server.stop();
  }
});

test('hostile: commands before AUTH get NOAUTH; huge AUTH arguments are bounded', async () => {
  const { server } = await secured();
  try {
    const before = Buffer.concat([command('ACQUIRE', 'alice/x', '1000'), command('QUERY'), command('NOSUCH'), command('PING')]);
    const { lines } = await exchange(server.port, before, 4);
    assert.deepEqual(lines, [...Array(3).fill('-NOAUTH Authentication required.'), '+PONG']);
    const big = await exchange(server.port, command('AUTH', 'root', 'x'.repeat(200000)), 1);
    assert.match(big.lines[0], /^-WRONGPASS/);
    const huge = await exchange(server.port, command('AUTH', 'root', 'x'.repeat(2 << 20)), 1);
    assert.match(huge.lines[0], /^-ERR Protocol error/);
    assert.ok(huge.closed);
  } finally {
    await server.stop();
  }
});

test('requirepass: secrets stay out of logs, INFO and replies; JSON audit lines', async () => {
  const server = await startServerProcess(NODE_SERVER, ['--requirepass', 'Very$ecretPassw0rd', '--log-format', 'json']);
  try {
    const client = await connect({ port: server.port, password: 'Very$ecretPassw0rd' });
    await client.acquire('any/lock', { ttl: 30000 });
    const info = JSON.stringify(await client.info());
    await client.close();
    const { lines } = await exchange(server.port, command('AUTH', 'Other$ecret'), 1);
    assert.match(lines[0], /^-WRONGPASS/);
    await sleep(100);
    const output = server.output();
    for (const secret of ['Very$ecretPassw0rd', 'Other$ecret']) {
      assert.ok(!output.includes(secret) && !info.includes(secret) && !lines[0].includes(secret));
    }
    const audits = output.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line)).filter((line) => line.audit);
    assert.equal(audits[0].audit, 'auth_failed');
    assert.equal(audits[0].user, 'default');
  } finally {
    await server.stop();
  }
});

test('SIGHUP reloads the users file; a broken file keeps the users in force', async () => {
  const { server, file } = await secured();
  try {
    fs.writeFileSync(file, usersFile('carol'));
    server.child.kill('SIGHUP');
    for (let n = 0; n < 100 && !server.output().includes('users reloaded'); n += 1) await sleep(50);
    const carol = await connect({ port: server.port, username: 'carol', password: 'new-pw' });
    await carol.acquire('anything', { ttl: 5000 });
    await carol.close();
    fs.writeFileSync(file, '{not json');
    server.child.kill('SIGHUP');
    for (let n = 0; n < 100 && !server.output().includes('not reloaded'); n += 1) await sleep(50);
    assert.match(server.output(), /not reloaded/);
    const again = await connect({ port: server.port, username: 'carol', password: 'new-pw' });
    await again.query('');
    await again.close();
  } finally {
    await server.stop();
  }
});

test('protected mode refuses a public address without authentication', () => {
  const result = spawnSync(process.execPath, [CLI, 'serve', '--host', '0.0.0.0', '--port', '0', '--in-memory'], { timeout: 20000 });
  assert.notEqual(result.status, 0);
  assert.match(String(result.stderr), /refusing to serve 0\.0\.0\.0 without authentication.*--no-auth/s);
  const named = spawnSync(process.execPath, [CLI, 'serve', '--host', 'example.invalid', '--port', '0', '--in-memory'], { timeout: 20000 });
  assert.match(String(named.stderr), /refusing to serve example\.invalid/);
});

test('iterLocks pages through every lock in name order', async () => {
  const server = await startServerProcess(NODE_SERVER);
  try {
    const client = await connect({ port: server.port });
    const names = [...Array(45).keys()].map((n) => `page/${String(n).padStart(3, '0')}`);
    for (const name of [...names].reverse()) await client.acquire(name, { ttl: 30000 });
    await client.acquire('other', { ttl: 30000 });
    const seen = [];
    for await (const lock of client.iterLocks('page/', { pageSize: 7 })) seen.push(lock.name);
    assert.deepEqual(seen, names);
    await client.close();
  } finally {
    await server.stop();
  }
});
