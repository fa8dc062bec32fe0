'use strict';
// A Node client process of the safety run: acquire -> fenced write(s) -> release, in a loop,
// with require('fencelock') (NODE_PATH points at this repository's node/ package). The writes
// go through the Python store gateway (worker.py --gateway, a child in this process group, so
// a SIGSTOP of the group pauses both), which runs the one fenced statement of store.py.
// History: JSON lines, as worker.py writes them, with CLOCK_MONOTONIC milliseconds.

const fs = require('node:fs');
const readline = require('node:readline');
const { spawn } = require('node:child_process');
const { connect } = require('fencelock');

const CERTAIN_FAILURES = new Set(['LOCKED', 'NOTREADY', 'TIMEOUT', 'STALE', 'EXPIRED']);

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, '').replace(/-/g, '_')] = argv[i + 1];
  return args;
}

// mulberry32: a small seeded generator, so a seed gives the same choices in the same order.
function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class History {
  constructor(path, client) {
    this.fd = fs.openSync(path, 'a');
    this.client = client;
    this.count = 0;
  }

  invoke(op, fields) {
    this.count += 1;
    const id = `${this.client}-${this.count}`;
    this.emit({ ev: 'inv', id, client: this.client, op, t: nowMs(), ...fields });
    return id;
  }

  ret(id, out, fields = {}) {
    this.emit({ ev: 'ret', id, t: nowMs(), out, ...fields });
  }

  failOrUnknown(id, error) {
    const code = error && error.code;
    if (CERTAIN_FAILURES.has(code)) this.ret(id, 'fail', { code });
    // The core client says the request never left it (no connection opened): no effect.
    else if (code === 'CONNECTION' && String(error?.message).includes(' not sent: ')) this.ret(id, 'fail', { code: 'NOTSENT', error: String(error) });
    else this.ret(id, 'unknown', { code: code ?? null, error: String(error) });
  }

  note(what, fields) {
    this.emit({ ev: 'note', client: this.client, what, t: nowMs(), ...fields });
  }

  emit(record) {
    fs.writeSync(this.fd, `${JSON.stringify(record)}\n`);
  }
}

class Gateway {
  constructor(python, conninfo) {
    this.child = spawn(python, [`${__dirname}/worker.py`, '--gateway', conninfo], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.waiting = [];
    readline.createInterface({ input: this.child.stdout }).on('line', (line) => this.waiting.shift()(JSON.parse(line)));
    this.child.on('exit', () => { for (const resolve of this.waiting.splice(0)) resolve({ result: 'unknown', error: 'gateway exited' }); });
  }

  write(request) {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.child.stdin.write(`${JSON.stringify(request)}\n`);
    });
  }

  close() {
    this.child.stdin.end();
  }
}

async function connectWithRetry(ports, stopFile) {
  const endpoints = ports.map((port) => ({ host: '127.0.0.1', port }));
  for (;;) {
    try {
      return await connect({ endpoints, timeout: 2000, connectTimeout: 1000 });
    } catch (error) {
      if (fs.existsSync(stopFile)) return null;
      await sleep(50);
    }
  }
}

async function clientPause(random, ttl, log) {
  const roll = random();
  let delay;
  if (roll < 0.8) delay = random() * 20;
  else if (roll < 0.95) delay = 50 + random() * (ttl * 0.8 - 50);
  else {
    delay = ttl * (1.1 + random() * 1.4);
    log.note('long-pause', { ms: Math.round(delay) });
  }
  await sleep(delay);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const random = seeded(Number(args.seed));
  const pick = (list) => list[Math.floor(random() * list.length)];
  const locks = args.locks.split(',');
  const ttls = (args.ttls ?? '150,300,500').split(',').map(Number);
  const log = new History(args.history, args.client);
  const gateway = new Gateway(args.python, args.conninfo);
  // A cluster's nodes (--ports) or one server (--port); cluster clients start at different nodes.
  const ports = (args.ports ?? args.port).split(',').map(Number);
  const first = ports.length > 1 ? Math.floor(random() * ports.length) : 0;
  const client = await connectWithRetry([...ports.slice(first), ...ports.slice(0, first)], args.stop_file);
  let writes = 0;
  while (client && !fs.existsSync(args.stop_file)) {
    const lock = pick(locks);
    const ttl = pick(ttls);
    const wait = pick([null, null, 50 + Math.floor(random() * 550)]);
    let id = log.invoke('acquire', { lock, ttl, wait });
    let lease;
    try {
      lease = await client.acquire(lock, wait === null ? { ttl } : { ttl, wait });
    } catch (error) {
      log.failOrUnknown(id, error);
      await sleep(2 + random() * 28);
      continue;
    }
    log.ret(id, 'ok', { token: lease.token });
    const count = 1 + Math.floor(random() * 3);
    for (let k = 0; k < count; k += 1) {
      await clientPause(random, ttl, log);
      writes += 1;
      const writeId = `${args.client}-w${writes}`;
      id = log.invoke('write', { lock, token: lease.token, write_id: writeId });
      const reply = await gateway.write({ lock, token: lease.token, client: args.client, write_id: writeId });
      log.ret(id, reply.result, reply.error ? { error: reply.error } : {});
    }
    if (random() < 0.9) {
      id = log.invoke('release', { lock, token: lease.token });
      try {
        await client.release(lock, lease.token);
        log.ret(id, 'ok');
      } catch (error) {
        log.failOrUnknown(id, error);
      }
    }
  }
  if (client) await client.close();
  gateway.close();
}

main().then(() => process.exit(0), (error) => { console.error(error); process.exit(1); });
