'use strict';
// TLS (server, client, redis-cli as an independent client, client certificates, stalled
// handshakes, the Python host on either side) and the Prometheus metrics listener, scraped with
// fetch and read with a Prometheus text parser from npm (and prometheus_client's, through Python).

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { execFileSync, spawnSync } = require('node:child_process');
const parsePrometheusTextFormat = require('parse-prometheus-text-format');
const { connect } = require('fencelock');
const { CLI, startServerProcess, pythonWithFencelock } = require('./helpers');

const NODE_SERVER = [process.execPath, CLI, 'serve'];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const which = (program) => spawnSync('sh', ['-c', `command -v ${program}`]).status === 0;
const REDIS_CLI = which('redis-cli');
const python = pythonWithFencelock();

/** A CA, a server certificate for 127.0.0.1/localhost and a client certificate, made with openssl. */
function makePki() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fencelock-pki-'));
  const file = (name) => path.join(dir, name);
  const openssl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ecKey = (name) => openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file(name));
  for (const ca of ['ca', 'other-ca']) {
    ecKey(`${ca}-key.pem`);
    openssl('req', '-x509', '-new', '-key', file(`${ca}-key.pem`), '-subj', `/CN=fencelock test ${ca}`, '-days', '1',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', file(`${ca}.pem`));
  }
  const leaf = (name, extensions) => {
    ecKey(`${name}-key.pem`);
    openssl('req', '-new', '-key', file(`${name}-key.pem`), '-subj', `/CN=${name}`, '-out', file(`${name}.csr`));
    fs.writeFileSync(file(`${name}.ext`), extensions);
    openssl('x509', '-req', '-in', file(`${name}.csr`), '-CA', file('ca.pem'), '-CAkey', file('ca-key.pem'), '-CAcreateserial',
      '-days', '1', '-extfile', file(`${name}.ext`), '-out', file(`${name}.pem`));
  };
  leaf('server', 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n');
  leaf('client', 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n');
  return { dir, file, read: (name) => fs.readFileSync(file(name)) };
}

const pki = makePki();
test.after(() => fs.rmSync(pki.dir, { recursive: true, force: true }));
const tlsFlags = ({ clientCerts = false } = {}) => [
  '--in-memory', '--tls-cert', pki.file('server.pem'), '--tls-key', pki.file('server-key.pem'),
  ...(clientCerts ? ['--tls-ca', pki.file('ca.pem')] : []),
];

test('the Node client over TLS; an untrusted server certificate is refused', async () => {
  const server = await startServerProcess(NODE_SERVER, tlsFlags());
  try {
    assert.match(server.output(), /\(TLS\)/);
    const client = await connect({ host: '127.0.0.1', port: server.port, tls: { ca: pki.read('ca.pem') } });
    try {
      const lease = await client.acquire('tls/a', { ttl: 5000 });
      await assert.rejects(client.acquire('tls/a', { ttl: 5000 }), { code: 'LOCKED' });
      assert.ok((await client.verify('tls/a', lease.token)) > 0);
      await client.release('tls/a', lease.token);
    } finally {
      await client.close();
    }
    await assert.rejects(
      connect({ host: '127.0.0.1', port: server.port, tls: { ca: pki.read('other-ca.pem') }, connectTimeout: 2000 }),
      (error) => error.code === 'CONNECTION' && /certificate/i.test(error.message),
    );
  } finally {
    await server.stop();
  }
});

test('redis-cli --tls talks to the Node server', { skip: !REDIS_CLI && 'redis-cli is not installed' }, async () => {
  const server = await startServerProcess(NODE_SERVER, tlsFlags());
  try {
    const base = ['--tls', '--cacert', pki.file('ca.pem'), '-h', '127.0.0.1', '-p', String(server.port)];
    const token = spawnSync('redis-cli', [...base, 'ACQUIRE', 'cli/a', '5000'], { encoding: 'utf8', timeout: 10000 });
    assert.equal(token.status, 0, token.stderr);
    assert.ok(Number(token.stdout.trim()) > 0, token.stdout);
    const released = spawnSync('redis-cli', [...base, 'RELEASE', 'cli/a', token.stdout.trim()], { encoding: 'utf8', timeout: 10000 });
    assert.equal(released.stdout.trim(), 'OK');
  } finally {
    await server.stop();
  }
});

test('with --tls-ca, client certificates are required', { skip: !REDIS_CLI && 'redis-cli is not installed' }, async () => {
  const server = await startServerProcess(NODE_SERVER, tlsFlags({ clientCerts: true }));
  try {
    assert.match(server.output(), /client certificates required/);
    const base = ['--tls', '--cacert', pki.file('ca.pem'), '-h', '127.0.0.1', '-p', String(server.port)];
    const withCert = spawnSync('redis-cli', [...base, '--cert', pki.file('client.pem'), '--key', pki.file('client-key.pem'), 'PING'],
      { encoding: 'utf8', timeout: 10000 });
    assert.equal(withCert.stdout.trim(), 'PONG', withCert.stderr);
    const without = spawnSync('redis-cli', [...base, 'PING'], { encoding: 'utf8', timeout: 10000 });
    assert.doesNotMatch(without.stdout, /PONG/);
    await assert.rejects(
      connect({ host: '127.0.0.1', port: server.port, tls: { ca: pki.read('ca.pem') }, connectTimeout: 2000, timeout: 2000 }),
      { code: 'CONNECTION' },
    );
    const client = await connect({
      host: '127.0.0.1', port: server.port,
      tls: { ca: pki.read('ca.pem'), cert: pki.read('client.pem'), key: pki.read('client-key.pem') },
    });
    const lease = await client.acquire('mtls/a', { ttl: 5000 });
    await client.release('mtls/a', lease.token);
    await client.close();
  } finally {
    await server.stop();
  }
});

test('a TLS handshake that never finishes is closed at the timeout; others are served meanwhile', async () => {
  const server = await startServerProcess(NODE_SERVER, [...tlsFlags(), '--tls-handshake-timeout-ms', '500', '--metrics', '127.0.0.1:0']);
  try {
    const started = Date.now();
    const stalled = await Promise.all([0, 1, 2].map(() => new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port: server.port }, () => resolve(socket));
      socket.once('error', reject);
    })));
    // Half a ClientHello: the server waits for the rest, which never comes.
    stalled[0].write(Buffer.from('16030102000100 01fc0303'.replace(/ /g, ''), 'hex'));
    const closedAll = Promise.all(stalled.map((socket) => new Promise((resolve) => {
      socket.on('error', () => {});
      socket.once('close', resolve);
    })));
    const client = await connect({ host: '127.0.0.1', port: server.port, tls: { ca: pki.read('ca.pem') } });
    const lease = await client.acquire('stall/a', { ttl: 5000 });
    await client.release('stall/a', lease.token);
    await client.close();
    await Promise.race([closedAll, sleep(5000).then(() => { throw new Error('stalled handshakes were not closed'); })]);
    const elapsed = Date.now() - started;
    assert.ok(elapsed > 300 && elapsed < 4000, `closed after ${elapsed} ms`);
    // The stalled handshakes never reached the core.
    const families = await scrape(server.metrics);
    assert.equal(sample(families, 'fencelock_connections_received_total'), 1);
  } finally {
    await server.stop();
  }
});

/** Fetches /metrics and parses it; returns the families by name. */
async function scrape(address) {
  const response = await fetch(`http://${address}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const text = await response.text();
  return { text, byName: Object.fromEntries(parsePrometheusTextFormat(text).map((family) => [family.name, family])) };
}

function sample({ byName }, name, labels = {}) {
  const family = byName[name];
  assert.ok(family, `no family ${name}`);
  const found = family.metrics.find((metric) => Object.entries(labels).every(([key, value]) => metric.labels?.[key] === value));
  assert.ok(found, `no sample ${name} ${JSON.stringify(labels)}`);
  return Number(found.value);
}

test('metrics are scraped over HTTP and parse as Prometheus text', async () => {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'fencelock-metrics-'));
  const server = await startServerProcess(NODE_SERVER, ['--data-dir', data, '--metrics', '127.0.0.1:0']);
  try {
    assert.match(server.metrics, /^127\.0\.0\.1:\d+$/);
    const client = await connect({ host: '127.0.0.1', port: server.port });
    const other = await connect({ host: '127.0.0.1', port: server.port });
    const first = await client.acquire('m/a', { ttl: 5000 });
    await assert.rejects(other.acquire('m/a', { ttl: 5000 }), { code: 'LOCKED' });
    await other.acquire('m/a', { ttl: 5000, steal: true });
    await assert.rejects(client.release('m/a', first.token), { code: 'STALE' });
    await client.acquire('m/b', { ttl: 200 });
    await sleep(500);
    const families = await scrape(server.metrics);
    await client.close();
    await other.close();
    assert.equal(families.byName.fencelock_grants_total.type, 'COUNTER');
    assert.equal(families.byName.fencelock_live_leases.type, 'GAUGE');
    assert.equal(families.byName.fencelock_persist_duration_seconds.type, 'HISTOGRAM');
    assert.equal(sample(families, 'fencelock_grants_total'), 3);
    assert.equal(sample(families, 'fencelock_steals_total'), 1);
    assert.equal(sample(families, 'fencelock_expiries_total'), 1);
    assert.equal(sample(families, 'fencelock_errors_total', { code: 'LOCKED' }), 1);
    assert.equal(sample(families, 'fencelock_errors_total', { code: 'STALE' }), 1);
    assert.equal(sample(families, 'fencelock_live_leases'), 1);
    assert.equal(sample(families, 'fencelock_waiters'), 0);
    assert.ok(sample(families, 'fencelock_token_ceiling') >= sample(families, 'fencelock_last_token'));
    const persist = families.byName.fencelock_persist_duration_seconds.metrics[0];
    assert.ok(Number(persist.count) >= 1, JSON.stringify(persist));
    assert.equal(Number(persist.buckets['+Inf']), Number(persist.count));
    const missing = await fetch(`http://${server.metrics}/other`);
    assert.equal(missing.status, 404);
    await missing.text();
    if (python !== null) {
      // The same text through prometheus_client's parser (the Python suite's test dependency).
      const checked = spawnSync(python, ['-c', `
import sys
from prometheus_client.parser import text_string_to_metric_families
families = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}
assert families["fencelock_grants"].type == "counter", families["fencelock_grants"]
assert families["fencelock_persist_duration_seconds"].type == "histogram"
print(len(families))
`], { input: families.text, encoding: 'utf8' });
      assert.equal(checked.status, 0, checked.stderr);
    }
  } finally {
    await server.stop();
    fs.rmSync(data, { recursive: true, force: true });
  }
});

test('the Python client over TLS against the Node server, and the Node client against the Python server',
  { skip: python === null && 'no Python fencelock package (make python-test installs one)' }, async () => {
    const nodeServer = await startServerProcess(NODE_SERVER, tlsFlags());
    try {
      const script = `
import fencelock, sys
with fencelock.Client("127.0.0.1", int(sys.argv[1]), tls=True, tls_ca=sys.argv[2]) as client:
    lease = client.acquire("cross/tls", 5)
    client.release("cross/tls", lease.token)
    print(lease.token)
`;
      const run = spawnSync(python, ['-c', script, String(nodeServer.port), pki.file('ca.pem')], { encoding: 'utf8', timeout: 20000 });
      assert.equal(run.status, 0, run.stderr);
      assert.ok(Number(run.stdout.trim()) > 0);
    } finally {
      await nodeServer.stop();
    }
    const pythonServer = await startServerProcess([python, '-m', 'fencelock', 'serve', '--host', '127.0.0.1'], tlsFlags());
    try {
      const client = await connect({ host: '127.0.0.1', port: pythonServer.port, tls: { ca: pki.read('ca.pem') } });
      const lease = await client.acquire('cross/tls', { ttl: 5000 });
      await client.release('cross/tls', lease.token);
      await client.close();
    } finally {
      await pythonServer.stop();
    }
  });
