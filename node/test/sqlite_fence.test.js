'use strict';
// A fenced write into a real SQLite database: a client paused (SIGSTOP) past its TTL loses
// its lease to another client, and its late write is refused by the database itself, which
// compares tokens atomically at write time (`... WHERE fence <= :token`).

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const Database = require('better-sqlite3');
const { Server, connect } = require('fencelock');

test('a client paused past its TTL has its late write refused', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fencelock-sqlite-'));
  const file = path.join(dir, 'resource.db');
  const db = new Database(file);
  db.exec('CREATE TABLE resource (id INTEGER PRIMARY KEY, value TEXT, fence INTEGER NOT NULL)');
  db.prepare('INSERT INTO resource VALUES (1, ?, 0)').run('initial');
  const server = new Server({ port: 0 });
  const { port } = await server.listen();
  const writer = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'paused_writer.js'), String(port), file], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const exited = new Promise((resolve) => writer.on('exit', resolve));
  const firstToken = await new Promise((resolve, reject) => {
    writer.stdout.on('data', (data) => {
      out += data;
      const match = /token (\d+)/.exec(out);
      if (match && !writer.paused) {
        writer.paused = true;
        writer.kill('SIGSTOP'); // frozen before its write, with a 300 ms lease
        resolve(Number(match[1]));
      }
    });
    writer.on('exit', () => reject(new Error(`writer exited early: ${out}`)));
  });
  try {
    const client = await connect({ port });
    // The frozen client cannot renew: the lock frees up once its lease lapses on the server.
    const lease = await client.acquire('db', { ttl: 5000, wait: 5000 });
    assert.ok(lease.token > firstToken);
    const accepted = db
      .prepare('UPDATE resource SET value = ?, fence = ? WHERE id = 1 AND fence <= ?')
      .run(`written by ${lease.token}`, lease.token, lease.token).changes;
    assert.equal(accepted, 1);
    writer.kill('SIGCONT');
    assert.equal(await exited, 0);
    assert.match(out, /changes 0 /, `the late write must be refused: ${out}`);
    const row = db.prepare('SELECT value, fence FROM resource WHERE id = 1').get();
    assert.deepEqual(row, { value: `written by ${lease.token}`, fence: lease.token });
    await lease.release();
    await client.close();
  } finally {
    writer.kill('SIGKILL');
    db.close();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
