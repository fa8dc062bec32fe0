'use strict';
// Cluster mode against a real etcd: 3 etcd members on loopback and fencelock nodes of both
// hosts (Node, and Python when its package with the `cluster` extra is installed) as real
// processes. The first leader is a Python node; SIGKILL it: a Node node leads within the
// election TTL + 1 s, the leases granted before are honoured and every new token exceeds every
// earlier one; Node followers answer MOVED naming the leader; the Node client, given every
// node, follows MOVED to the named leader; a node that joins late replays the log. With a
// small --snapshot-every, the log before each snapshot is deleted and a late node restores it.
// Skips when no `etcd` binary is on PATH (Debian: apt-get install etcd-server).

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { Client } = require('fencelock');
const { CLI, startServerProcess, pythonWithFencelock } = require('./helpers');

const NODE_SERVER = [process.execPath, CLI, 'serve'];
const ELECTION_TTL_S = 3;
/** Wall-time bound of the failover test, etcd start included. */
const BUDGET_MS = 60000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const ETCD = findOnPath('etcd');
const python = clusterPython();
const PYTHON_SERVER = python === null ? null : [python, '-m', 'fencelock', 'serve'];
// Without a Python host, the nodes said to be Python are Node nodes (the test says so).
const FIRST_SERVER = PYTHON_SERVER ?? NODE_SERVER;
const KINDS = PYTHON_SERVER === null ? 'Node nodes (no Python host installed)' : 'Python and Node nodes';

test(`a cluster of ${KINDS} on 3 etcd members: MOVED to the leader, failover after SIGKILL keeps leases and token order`, {
  skip: ETCD === null && 'no etcd binary on PATH (Debian: apt-get install etcd-server)',
  timeout: BUDGET_MS,
}, async (t) => {
  if (python === null) t.diagnostic('no Python fencelock package with aetcd (make python-test; FENCELOCK_PYTHON): every node is a Node node');
  const etcd = await startEtcd();
  const nodes = new Map();
  const fake = await silentListener();
  let client = null;
  try {
    const start = async (server, port) => {
      const node = await startServerProcess(server, [
        '--port', String(port), '--etcd', etcd.urls, '--cluster', 't', '--advertise', `127.0.0.1:${port}`,
        '--election-ttl', String(ELECTION_TTL_S),
      ]);
      nodes.set(port, node);
      return node;
    };
    const [first, nodeA, nodeB, late] = await freePorts(4);
    // The first node leads before the others start, so the leader is known: a Python node
    // whose log the Node followers replay.
    await start(FIRST_SERVER, first);
    await waitFor(async () => (await info(first))?.role === 'leader', 15000, 'the first node to lead');
    await start(NODE_SERVER, nodeA);
    await start(NODE_SERVER, nodeB);
    assert.equal(await agreedLeader([first, nodeA, nodeB], 15000), first);

    // Node followers redirect lock commands to the leader by name.
    for (const follower of [nodeA, nodeB]) {
      assert.equal(await raw(follower, 'ACQUIRE', 'x', '1000'), `-MOVED 127.0.0.1:${first}`);
    }
    // A client given every node acquires through any of them first.
    const tokens = [];
    const all = [first, nodeA, nodeB];
    for (const port of all) {
      const anyFirst = new Client({ endpoints: [port, ...all.filter((other) => other !== port)].map((p) => `127.0.0.1:${p}`), timeout: 3000 });
      try {
        const lease = await anyFirst.acquire('any-node', { ttl: 5000 });
        tokens.push(lease.token);
        await anyFirst.release('any-node', lease.token);
      } finally {
        await anyFirst.close();
      }
    }
    // The client starts at a follower; the MOVED names the leader, so the client goes straight
    // there and never to the silent endpoint between them (which would answer nothing).
    client = new Client({
      endpoints: [`127.0.0.1:${nodeA}`, `127.0.0.1:${fake.port}`, `127.0.0.1:${first}`, `127.0.0.1:${nodeB}`],
      timeout: 3000,
      connectTimeout: 1000,
    });
    const viaClient = await client.acquire('via-client', { ttl: 5000 });
    tokens.push(viaClient.token);
    await client.release('via-client', viaClient.token);
    assert.equal(fake.connections(), 0, 'the client went to the endpoint after the follower, not to the leader MOVED named');
    const kept = await client.lock('kept', { ttl: 6000 });
    tokens.push(kept.token);

    const held = integer(await raw(first, 'ACQUIRE', 'held', '60000'));
    const shortTtlMs = 1500;
    const short = integer(await raw(first, 'ACQUIRE', 'short', String(shortTtlMs)));
    const shortDeadline = Date.now() + shortTtlMs;
    tokens.push(held, short);
    for (let n = 0; n < 20; n += 1) {
      const token = integer(await raw(first, 'ACQUIRE', 'churn', '10000'));
      assert.equal(await raw(first, 'RELEASE', 'churn', String(token)), '+OK');
      tokens.push(token);
    }
    assertIncreasing(tokens);
    // The Node followers replay the Python leader's log to the same engine state.
    const leaderInfo = await info(first);
    assert.ok(leaderInfo.log_index >= 1 && leaderInfo.etcd_revision >= 1, JSON.stringify(leaderInfo));
    for (const follower of [nodeA, nodeB]) {
      await waitFor(async () => (await info(follower))?.last_token === leaderInfo.last_token, 5000, `follower ${follower} to replay the log`);
    }

    const killedAt = Date.now();
    await nodes.get(first).stop('SIGKILL');
    nodes.delete(first);
    const leader = await agreedLeader([nodeA, nodeB], (ELECTION_TTL_S + 5) * 1000);
    const tookMs = Date.now() - killedAt;
    assert.ok(tookMs <= (ELECTION_TTL_S + 1) * 1000, `failover took ${tookMs} ms`);
    const follower = leader === nodeA ? nodeB : nodeA;

    // The leases granted before the failover are honoured by the new (Node) leader.
    assert.match(await raw(leader, 'ACQUIRE', 'held', '1000'), /^-LOCKED /);
    assert.ok(integer(await raw(leader, 'VERIFY', 'held', String(held))) > 0);
    const fresh = integer(await raw(leader, 'ACQUIRE', 'fresh', '10000'));
    assert.ok(fresh > Math.max(...tokens), `token ${fresh} after the failover, ${Math.max(...tokens)} before`);
    tokens.push(fresh);
    // The short lease lapses, never before its deadline; the failover gap may lengthen it
    // (engine time resumes from the last logged instant), by at most the gap.
    await waitFor(async () => (await raw(leader, 'VERIFY', 'short', String(short))).startsWith('-'), shortTtlMs + tookMs + 2000, 'the short lease to lapse');
    assert.ok(Date.now() >= shortDeadline);
    const taken = integer(await raw(leader, 'ACQUIRE', 'short', '1000'));
    tokens.push(taken);
    // The remaining Node follower names the new leader.
    assert.equal(await raw(follower, 'ACQUIRE', 'x', '1000'), `-MOVED 127.0.0.1:${leader}`);
    // The client reaches the new leader; its kept lease was renewed through the failover.
    const after = await client.acquire('via-client', { ttl: 5000 });
    tokens.push(after.token);
    assert.ok(integer(await raw(leader, 'VERIFY', 'kept', String(kept.token))) > 0);
    assert.equal(kept.signal.aborted, false, `the kept lease was lost across the failover: ${kept.signal.reason?.message}`);
    await kept.release();
    assertIncreasing(tokens);
    assert.equal(fake.connections(), 0);

    // A node that joins now replays the whole log, written by the first leader and the new one.
    await start(FIRST_SERVER, late);
    const leaderNow = await info(leader);
    await waitFor(async () => {
      const joined = await info(late);
      return joined?.leader === `127.0.0.1:${leader}` && joined.last_token >= leaderNow.last_token;
    }, 10000, 'the late node to replay the log');
    assert.equal(await raw(late, 'ACQUIRE', 'x', '1000'), `-MOVED 127.0.0.1:${leader}`);
  } catch (error) {
    for (const [port, node] of nodes) t.diagnostic(`node ${port}:\n${node.output().slice(-3000)}`);
    throw error;
  } finally {
    if (client !== null) await client.close();
    await Promise.all([...nodes.values()].map((node) => node.stop('SIGKILL')));
    fake.close();
    await etcd.stop();
  }
});

test(`snapshots on ${KINDS}: the log before the newest snapshot is deleted, a late Node node restores it and takes over`, {
  skip: ETCD === null && 'no etcd binary on PATH (Debian: apt-get install etcd-server)',
  timeout: BUDGET_MS,
}, async (t) => {
  const etcd = await startEtcd();
  const nodes = new Map();
  const { Etcd3 } = require('etcd3');
  const store = new Etcd3({ hosts: etcd.urls.split(',') });
  try {
    const start = async (server, port) => {
      const node = await startServerProcess(server, [
        '--port', String(port), '--etcd', etcd.urls, '--cluster', 't', '--advertise', `127.0.0.1:${port}`,
        '--election-ttl', String(ELECTION_TTL_S), '--snapshot-every', '5',
      ]);
      nodes.set(port, node);
      return node;
    };
    /** The newest snapshot's index, after checking that the log starts at it. */
    const compacted = async () => {
      // One read, so the snapshot and the log are seen at one revision: the leader may store
      // a newer snapshot and delete the log before it between two reads.
      const all = await store.getAll().prefix('/fencelock/t/').strings();
      const snapshot = JSON.parse(all['/fencelock/t/snapshot']);
      const indexes = Object.keys(all)
        .filter((key) => key.startsWith('/fencelock/t/log/'))
        .map((key) => Number(key.split('/').pop()))
        .sort((a, b) => a - b);
      assert.equal(snapshot.version, 1);
      assert.equal(indexes[0], snapshot.index, `log ${indexes.join(',')} after snapshot ${snapshot.index}`);
      assert.equal(indexes.length, indexes[indexes.length - 1] - indexes[0] + 1, 'no gap after the snapshot');
      return snapshot.index;
    };
    const churn = async (leader, tokens) => {
      for (let n = 0; n < 10; n += 1) {
        const token = integer(await raw(leader, 'ACQUIRE', 'churn', '10000'));
        assert.equal(await raw(leader, 'RELEASE', 'churn', String(token)), '+OK');
        tokens.push(token);
      }
    };
    const [first, second, late] = await freePorts(3);
    await start(FIRST_SERVER, first);
    await waitFor(async () => (await info(first))?.role === 'leader', 15000, 'the first node to lead');
    await start(NODE_SERVER, second);
    assert.equal(await agreedLeader([first, second], 15000), first);
    const held = integer(await raw(first, 'ACQUIRE', 'held', '60000'));
    const tokens = [held];
    await churn(first, tokens);
    const firstSnapshot = await compacted();
    assert.ok(firstSnapshot >= 15, `snapshot at ${firstSnapshot}`);
    // The Node follower takes over and writes snapshots of its own.
    await nodes.get(first).stop('SIGKILL');
    nodes.delete(first);
    assert.equal(await agreedLeader([second], (ELECTION_TTL_S + 5) * 1000), second);
    await churn(second, tokens);
    const secondSnapshot = await compacted();
    assert.ok(secondSnapshot > firstSnapshot, `snapshot ${secondSnapshot} after ${firstSnapshot}`);
    assert.ok((await info(second)).snapshot_index >= secondSnapshot);

    // A Node node that starts now cannot replay the whole log: it restores the snapshot.
    await start(NODE_SERVER, late);
    await waitFor(async () => {
      const [joined, leading] = await Promise.all([info(late), info(second)]);
      return joined?.role === 'follower' && joined.log_index === leading?.log_index;
    }, 10000, 'the late node to follow');
    assert.ok((await info(late)).snapshot_index >= secondSnapshot);
    await nodes.get(second).stop('SIGKILL');
    nodes.delete(second);
    assert.equal(await agreedLeader([late], (ELECTION_TTL_S + 5) * 1000), late);
    assert.match(await raw(late, 'ACQUIRE', 'held', '1000'), /^-LOCKED /);
    assert.ok(integer(await raw(late, 'VERIFY', 'held', String(held))) > 0);
    tokens.push(integer(await raw(late, 'ACQUIRE', 'after', '10000')));
    assertIncreasing(tokens);
  } catch (error) {
    for (const [port, node] of nodes) t.diagnostic(`node ${port}:\n${node.output().slice(-3000)}`);
    throw error;
  } finally {
    store.close();
    await Promise.all([...nodes.values()].map((node) => node.stop('SIGKILL')));
    await etcd.stop();
  }
});

const SERVE = [process.execPath, CLI, 'serve', '--etcd', 'http://127.0.0.1:1', '--port', '0'];

for (const [flags, expected] of [
  [['--host', '0.0.0.0'], /refusing to serve 0\.0\.0\.0 without authentication/],
  [['--users', 'no-such-users.json'], /users file no-such-users\.json: .*refusing to start/],
  [['--tls-cert', 'no-such.pem', '--tls-key', 'no-such-key.pem'], /cannot load the TLS certificate or key/],
  [['--tls-ca', 'ca.pem'], /--tls-cert and --tls-key go together/],
]) {
  test(`cluster mode refuses ${flags.join(' ')}`, () => {
    const done = spawnSync(SERVE[0], [...SERVE.slice(1), ...flags], { encoding: 'utf8', timeout: 20000 });
    assert.equal(done.status, 1, done.stderr);
    assert.match(done.stderr, expected);
  });
}

test('cluster nodes with --requirepass and --metrics: NOAUTH before MOVED; the client authenticates and follows MOVED; gauges per node', {
  skip: ETCD === null && 'no etcd binary on PATH (Debian: apt-get install etcd-server)',
  timeout: BUDGET_MS,
}, async () => {
  const etcd = await startEtcd();
  const nodes = [];
  let client = null;
  try {
    const [first, second] = await freePorts(2);
    for (const port of [first, second]) {
      nodes.push(await startServerProcess(NODE_SERVER, [
        '--port', String(port), '--etcd', etcd.urls, '--cluster', 'auth', '--advertise', `127.0.0.1:${port}`,
        '--election-ttl', String(ELECTION_TTL_S), '--requirepass', 'secret', '--metrics', '127.0.0.1:0',
      ]));
      if (port === first) await waitFor(async () => (await authedInfo(first))?.role === 'leader', 15000, 'the first node to lead');
    }
    await waitFor(async () => (await authedInfo(second))?.leader === `127.0.0.1:${first}`, 15000, 'the follower to know the leader');
    // Before AUTH a follower says nothing, not even where the leader is.
    assert.match(await raw(second, 'ACQUIRE', 'x', '1000'), /^-NOAUTH/);
    assert.equal(await rawAfterAuth(second, 'secret', 'ACQUIRE', 'x', '1000'), `-MOVED 127.0.0.1:${first}`);
    client = await require('fencelock').connect({ endpoints: [`127.0.0.1:${second}`, `127.0.0.1:${first}`], password: 'secret' });
    const lease = await client.acquire('x', { ttl: 5000 });
    assert.ok(lease.token > 0);
    assert.ok((await client.verify('x', lease.token)) > 0);
    // Metrics: the cluster's gauges beside the server's; the follower's replica holds the lease.
    const scrape = async (node) => {
      const url = node.output().match(/metrics on (http:\/\/\S+)/)[1];
      return (await fetch(url)).text();
    };
    assert.match(await scrape(nodes[0]), /\nfencelock_cluster_leader 1\n/);
    await waitFor(async () => /\nfencelock_live_leases 1\n/.test(await scrape(nodes[1])), 5000, "the follower's replica to hold the lease");
    assert.match(await scrape(nodes[1]), /\nfencelock_cluster_leader 0\n/);
  } finally {
    if (client !== null) await client.close();
    await Promise.all(nodes.map((node) => node.stop('SIGKILL')));
    await etcd.stop();
  }
});

test('cluster mode says which etcd endpoint it cannot use', () => {
  for (const [etcd, expected] of [['https://127.0.0.1:2379', /only http:\/\/ is supported/], [',', /no etcd endpoint given/], ['http://[::1', /bad etcd endpoint/]]) {
    const done = spawnSync(process.execPath, [CLI, 'serve', '--etcd', etcd, '--port', '0'], { encoding: 'utf8', timeout: 20000 });
    assert.equal(done.status, 2, done.stderr);
    assert.match(done.stderr, expected);
  }
});

// -- helpers ---------------------------------------------------------------------------------

function findOnPath(name) {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const file = path.join(dir, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return null;
}

/** The Python interpreter with fencelock and its cluster extra (aetcd), or null. */
function clusterPython() {
  const found = pythonWithFencelock();
  if (found === null) return null;
  return spawnSync(found, ['-c', 'import fencelock.cluster, aetcd']).status === 0 ? found : null;
}

async function freePorts(count) {
  const servers = await Promise.all(Array.from({ length: count }, () => new Promise((resolve) => {
    const server = net.createServer();
    server.listen({ host: '127.0.0.1', port: 0 }, () => resolve(server));
  })));
  const ports = servers.map((server) => server.address().port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

/** Starts 3 etcd members on loopback ports with temp data dirs; resolves once all are healthy. */
async function startEtcd() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fencelock-etcd-'));
  const ports = await freePorts(6);
  const [clients, peers] = [ports.slice(0, 3), ports.slice(3)];
  const initial = peers.map((port, i) => `e${i}=http://127.0.0.1:${port}`).join(',');
  const members = clients.map((port, i) => {
    const log = fs.openSync(path.join(dir, `etcd${i}.log`), 'a');
    const child = spawn(ETCD, [
      '--name', `e${i}`, '--data-dir', path.join(dir, `etcd${i}`),
      '--listen-client-urls', `http://127.0.0.1:${port}`, '--advertise-client-urls', `http://127.0.0.1:${port}`,
      '--listen-peer-urls', `http://127.0.0.1:${peers[i]}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peers[i]}`,
      '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', `fencelock-node-test-${process.pid}`,
      // What docs/CLUSTER.md asks of operators: etcd forgets deleted log keys.
      '--auto-compaction-mode', 'revision', '--auto-compaction-retention', '1000',
    ], { stdio: ['ignore', log, log] });
    fs.closeSync(log);
    return child;
  });
  const stop = async () => {
    await Promise.all(members.map((child) => new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else {
        child.once('exit', resolve);
        child.kill('SIGKILL');
      }
    })));
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(async () => (await Promise.all(clients.map(healthy))).every(Boolean), 20000, 'etcd to become healthy');
  } catch (error) {
    const logs = [0, 1, 2].map((i) => fs.readFileSync(path.join(dir, `etcd${i}.log`), 'utf8').slice(-1500)).join('\n');
    await stop();
    throw new Error(`${error.message}\n${logs}`);
  }
  return { urls: clients.map((port) => `http://127.0.0.1:${port}`).join(','), stop };
}

/** etcd's own health check on its client port (`GET /health`). */
function healthy(port) {
  return new Promise((resolve) => {
    const request = http.get({ host: '127.0.0.1', port, path: '/health', timeout: 1000 }, (response) => {
      let body = '';
      response.on('data', (chunk) => { body += chunk; });
      response.on('end', () => resolve(response.statusCode === 200 && /"health":\s*"true"/.test(body)));
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(false));
  });
}

/** A listener that accepts connections and never answers; counts them. */
async function silentListener() {
  let count = 0;
  const sockets = new Set();
  const server = net.createServer((socket) => {
    count += 1;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  return {
    port: server.address().port,
    connections: () => count,
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

/** Polls `condition` (errors count as false) until it is truthy; resolves to its value. */
async function waitFor(condition, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let value;
    try {
      value = await condition();
    } catch {
      value = undefined;
    }
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Resolves to the one port every node in `ports` names as leader (and that leads). */
function agreedLeader(ports, timeoutMs) {
  return waitFor(async () => {
    const facts = await Promise.all(ports.map(info));
    const leading = ports.filter((port, i) => facts[i]?.role === 'leader');
    if (leading.length !== 1) return null;
    return facts.every((fact) => fact?.leader === `127.0.0.1:${leading[0]}`) ? leading[0] : null;
  }, timeoutMs, `one leader among ${ports.join(', ')}`);
}

/** The node's INFO as an object (numbers converted), or null if it does not answer. */
async function info(port) {
  const reply = await raw(port, 'INFO').catch(() => null);
  if (reply === null || !reply.startsWith('$')) return null;
  const facts = {};
  for (const line of reply.split('\r\n').slice(1)) {
    const cut = line.indexOf(':');
    if (cut <= 0 || line.startsWith('#')) continue;
    const value = line.slice(cut + 1);
    facts[line.slice(0, cut)] = /^-?\d+$/.test(value) ? Number(value) : value;
  }
  return facts;
}

/**
 * Sends one RESP2 request on a fresh connection and resolves to the reply as text: the first
 * line for a simple reply, the whole bulk string with its header for a bulk one. (fencelock's
 * own client would follow the MOVED this test wants to see.)
 */
function raw(port, ...args) {
  const request = `*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`;
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(new Error(`no reply from ${port} to ${args[0]}`)), 2000);
    const finish = (error, text) => {
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(text);
    };
    socket.on('connect', () => socket.write(request));
    socket.on('data', (chunk) => {
      data = Buffer.concat([data, chunk]);
      const end = data.indexOf('\r\n');
      if (end < 0) return;
      const head = data.subarray(0, end).toString('latin1');
      if (!head.startsWith('$')) return finish(null, head);
      const length = Number(head.slice(1));
      if (data.length >= end + 2 + length + 2) return finish(null, data.subarray(0, end + 2 + length).toString('latin1'));
      return undefined;
    });
    socket.on('error', (error) => finish(error));
    socket.on('close', () => finish(new Error(`connection to ${port} closed before a reply`)));
  });
}

/** Like `raw`, on a connection that first authenticates with `password`. */
async function rawAfterAuth(port, password, ...args) {
  const encode = (argv) => `*${argv.length}\r\n${argv.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`;
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(new Error(`no reply from ${port} to ${args[0]}`)), 2000);
    const finish = (error, text) => {
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(text);
    };
    socket.on('connect', () => socket.write(encode(['AUTH', password]) + encode(args)));
    socket.on('data', (chunk) => {
      data = Buffer.concat([data, chunk]);
      const first = data.indexOf('\r\n');
      if (first < 0) return undefined;
      if (data.subarray(0, first).toString('latin1') !== '+OK') return finish(new Error(`AUTH: ${data.subarray(0, first)}`));
      const rest = data.subarray(first + 2);
      const end = rest.indexOf('\r\n');
      if (end < 0) return undefined;
      const head = rest.subarray(0, end).toString('latin1');
      if (!head.startsWith('$')) return finish(null, head);
      const length = Number(head.slice(1));
      if (rest.length >= end + 2 + length + 2) return finish(null, rest.subarray(0, end + 2 + length).toString('latin1'));
      return undefined;
    });
    socket.on('error', (error) => finish(error));
    socket.on('close', () => finish(new Error(`connection to ${port} closed before a reply`)));
  });
}

/** `info` on a node that asks for the password `secret`. */
async function authedInfo(port) {
  const reply = await rawAfterAuth(port, 'secret', 'INFO').catch(() => null);
  if (reply === null || !reply.startsWith('$')) return null;
  const facts = {};
  for (const line of reply.split('\r\n').slice(1)) {
    const cut = line.indexOf(':');
    if (cut <= 0 || line.startsWith('#')) continue;
    facts[line.slice(0, cut)] = line.slice(cut + 1);
  }
  return facts;
}

function integer(reply) {
  assert.match(reply, /^:\d+$/, `expected an integer reply, got ${reply}`);
  return Number(reply.slice(1));
}

function assertIncreasing(tokens) {
  for (let i = 1; i < tokens.length; i += 1) {
    assert.ok(tokens[i] > tokens[i - 1], `token ${tokens[i]} after ${tokens[i - 1]}: ${tokens.join(' ')}`);
  }
}
