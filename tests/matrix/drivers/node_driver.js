'use strict';
// A matrix driver: one client of the scenario, over one of Node's clients.
//
// Reads one JSON request per line on stdin and writes one JSON line per result or event on
// stdout (see tests/matrix/README.md). Modes: `fencelock` (the package's promise client) and
// `ioredis` (ioredis sending raw fencelock commands). Durations are milliseconds throughout.
// The fencelock package is resolved from FENCELOCK_NODE (a directory or an installed package
// name), ioredis from the same place.

const readline = require('node:readline');
const path = require('node:path');
const { createRequire } = require('node:module');

const [mode, portText] = process.argv.slice(2);
// One server's port, or a cluster's ports (`p1,p2,p3`: the client is given every node).
const ports = portText.split(',').map(Number);
const port = ports[0];
const from = createRequire(path.join(process.env.FENCELOCK_NODE ?? path.join(__dirname, '../../../node'), 'package.json'));

function emit(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

function errorCode(error) {
  if (typeof error?.code === 'string' && /^[A-Z]+$/.test(error.code)) return error.code;
  if (error instanceof RangeError || error instanceof TypeError) return 'ERR'; // the client's own checks
  const first = String(error?.message ?? error).split(' ', 1)[0];
  return /^[A-Z]+$/.test(first) ? first : (error?.name ?? 'Error');
}

function rawAcquire(r) {
  const argv = [r.name, String(r.ttl)];
  if (r.wait != null) argv.push('WAIT', String(r.wait));
  if (r.shared) argv.push('SHARED');
  if (r.steal) argv.push('STEAL');
  if (r.owner != null) argv.push('OWNER', r.owner);
  if (r.ephemeral) argv.push('EPHEMERAL');
  if (r.lock_delay != null) argv.push('LOCKDELAY', String(r.lock_delay));
  return argv;
}

function pairs(flat) {
  if (!Array.isArray(flat)) return flat;
  const out = {};
  for (let i = 0; i < flat.length; i += 2) out[String(flat[i])] = flat[i + 1];
  return out;
}

function rawLocks(reply) {
  return reply.map((entry) => {
    const lock = pairs(entry);
    return {
      name: String(lock.name),
      holders: lock.holders.map(pairs).map((h) => ({ token: Number(h.token), mode: String(h.mode), owner: h.owner ?? null })),
      waiters: lock.waiters.map(pairs).map((w) => ({ mode: String(w.mode), owner: w.owner ?? null })),
    };
  });
}

function libLocks(locks) {
  return locks.map((lock) => ({
    name: lock.name,
    holders: lock.holders.map((h) => ({ token: h.token, mode: h.mode, owner: h.owner ?? null })),
    waiters: lock.waiters.map((w) => ({ mode: w.mode, owner: w.owner ?? null })),
  }));
}

async function main() {
  let run;
  let close;
  if (mode === 'fencelock') {
    const { connect } = from('fencelock');
    const client = await connect({ endpoints: ports.map((each) => ({ host: '127.0.0.1', port: each })) });
    run = async (r) => {
      switch (r.op) {
        case 'acquire': {
          const lease = await client.acquire(r.name, {
            ttl: r.ttl, wait: r.wait ?? undefined, shared: Boolean(r.shared), steal: Boolean(r.steal),
            owner: r.owner ?? undefined, ephemeral: Boolean(r.ephemeral), lockDelay: r.lock_delay ?? undefined,
          });
          lease.signal.addEventListener('abort', () => {
            emit({ event: 'lost', reason: lease.signal.reason?.reason ?? 'lost', name: lease.name, token: lease.token });
          });
          return { token: lease.token };
        }
        case 'renew': return { ms_left: await client.renew(r.name, r.token, r.ttl) };
        case 'verify': return { ms_left: await client.verify(r.name, r.token) };
        case 'release': await client.release(r.name, r.token); return {};
        case 'query': return { locks: libLocks(await client.query(r.prefix ?? '')) };
        default: throw new Error(`unknown op ${r.op}`);
      }
    };
    close = () => client.close();
  } else if (mode === 'ioredis') {
    const Redis = from('ioredis');
    const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true, enableOfflineQueue: true, maxRetriesPerRequest: 0 });
    await client.connect();
    run = async (r) => {
      switch (r.op) {
        case 'acquire': return { token: Number(await client.call('ACQUIRE', ...rawAcquire(r))) };
        case 'renew': return { ms_left: Number(await client.call('RENEW', r.name, String(r.token), String(r.ttl))) };
        case 'verify': return { ms_left: Number(await client.call('VERIFY', r.name, String(r.token))) };
        case 'release': await client.call('RELEASE', r.name, String(r.token)); return {};
        case 'query': return { locks: rawLocks(await client.call('QUERY', r.prefix ?? '')) };
        default: throw new Error(`unknown op ${r.op}`);
      }
    };
    close = () => client.quit();
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  emit({ ready: mode });
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    const request = JSON.parse(line);
    if (request.op === 'close') {
      await close();
      emit({ id: request.id, ok: {} });
      process.exit(0);
    }
    run(request).then(
      (ok) => emit({ id: request.id, ok }),
      (error) => emit({ id: request.id, error: errorCode(error), text: String(error?.message ?? error) }),
    );
  }
}

main().catch((error) => {
  emit({ fatal: String(error?.stack ?? error) });
  process.exit(1);
});
