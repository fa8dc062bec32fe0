'use strict';
// The promise client: `net` sockets around the core's sans-IO client (docs/HOSTS.md, the
// model is python/fencelock/aio.py). The core decides which connection carries a request,
// timeouts, retries, failover, renewals and lost-lease detection; this file only opens
// sockets, writes, feeds received bytes back, delivers events before replies, and keeps one
// timer armed at the core's next deadline.

const net = require('node:net');
const tls = require('node:tls');
const { performance } = require('node:perf_hooks');
const native = require('./native');
const { ConnectionLost, LeaseLost, fromRecord, translate } = require('./errors');
const { ms, acquireOptions } = require('./options');
const { Lease } = require('./lease');

const DEFAULT_HOST = '127.0.0.1';
const DEFAULT_PORT = 7380;
// One clock for every client of the process: the core counts time in whole ms.
const ORIGIN = performance.now();
const nowMs = () => Math.floor(performance.now() - ORIGIN);

/**
 * A fencelock client. Durations are ms. Connections are made on first use.
 *
 * Options: `host`/`port`, or `endpoints` (`[{ host, port }, ...]` or `'host:port'` strings:
 * failover in order; a cluster follower's `-MOVED host:port` goes to the endpoint it names,
 * so give every node of a cluster), `timeout` (10000: longest wait for a reply), `connectTimeout` (5000),
 * `protocol` (3, or 2 for no pushes), `onEvent` (server notices about leases), `tls` (`true`
 * for TLS verified against Node's CAs, or `{ ca, cert, key, servername, ... }`: PEM contents
 * and any other `tls.connect` option; the handshake counts against `connectTimeout`).
 */
class Client {
  constructor(options = {}) {
    this.endpoints = endpointList(options);
    this.onEvent = options.onEvent ?? null;
    this.tls = options.tls ? (options.tls === true ? {} : { ...options.tls }) : null;
    const protocol = options.protocol ?? 3;
    if (protocol !== 2 && protocol !== 3) throw new RangeError(`protocol must be 2 or 3, got ${protocol}`);
    this.native = construct(() => new native.NativeClient({
      endpoints: this.endpoints.length,
      // A cluster follower's `-MOVED host:port` then names the endpoint to go to.
      addresses: this.endpoints.map(({ host, port }) => `${host}:${port}`),
      resp3: protocol === 3,
      requestTimeoutMs: ms('timeout', options.timeout ?? 10000),
      connectTimeoutMs: ms('connectTimeout', options.connectTimeout ?? 5000),
      username: options.username ?? undefined,
      password: options.password ?? undefined,
    }));
    this.sockets = new Map();
    this.pending = new Map();
    this.leases = new Map();
    this.timer = null;
    this.pumpScheduled = false;
    this.closed = false;
  }

  /** The client's clock (ms), the one lease deadlines are on. */
  nowMs() {
    return nowMs();
  }

  /**
   * Takes a lease on `name` for `ttl` ms. Options: `ttl` (required), `wait` (ms to wait in the
   * FIFO queue; default: fail with Locked at once), `shared`, `steal`, `owner`, `ephemeral`,
   * `lockDelay`, `signal` (abort to give up waiting).
   */
  async acquire(name, options) {
    const ttl = ms('ttl', options?.ttl);
    const nativeOptions = acquireOptions(options);
    const granted = await this.call((now) => this.native.acquire(now, name, ttl, nativeOptions), options.signal);
    const lease = new Lease(this, {
      name, token: granted.token, ttl, shared: options.shared, owner: options.owner,
      ephemeral: options.ephemeral, deadlineMs: granted.deadlineMs,
    });
    this.leases.set(key(name, granted.token), lease);
    return lease;
  }

  /** Extends the lease (name, token) to `ttl` ms from now; resolves to ms left. */
  renew(name, token, ttl, { signal } = {}) {
    const ttlMs = ms('ttl', ttl);
    return this.call((now) => this.native.renew(now, name, token, ttlMs), signal);
  }

  /** Releases the lease (name, token); rejects with Stale or Expired if it is not live. */
  async release(name, token, { signal } = {}) {
    await this.call((now) => this.native.release(now, name, token), signal);
  }

  /** Resolves to ms left on the lease (name, token), or rejects with Stale or Expired. */
  verify(name, token, { signal } = {}) {
    return this.call((now) => this.native.verify(now, name, token), signal);
  }

  /** Lists locks whose name starts with `prefix`, with holders and waiters. */
  query(prefix = '', { signal } = {}) {
    return this.call((now) => this.native.query(now, prefix), signal);
  }

  /**
   * Yields every lock whose name starts with `prefix`, in name order, a page
   * (`QUERY prefix COUNT n CURSOR c`) at a time: `for await (const lock of client.iterLocks('jobs/'))`.
   */
  async *iterLocks(prefix = '', { signal, pageSize = 500 } = {}) {
    let cursor = '';
    for (;;) {
      const after = cursor;
      const page = await this.call((now) => this.native.queryPage(now, prefix, pageSize, after), signal);
      yield* page.locks;
      if (!page.cursor) return;
      cursor = page.cursor;
    }
  }

  /** Resolves to the server's INFO facts and counters as a flat object (numbers converted). */
  async info({ signal } = {}) {
    const entries = await this.call((now) => this.native.info(now, null), signal);
    const facts = {};
    for (const entry of entries) facts[entry.key] = numberOrText(entry.value);
    return facts;
  }

  /** Round-trips a PING; rejects with ConnectionLost if the server is unreachable. */
  async ping({ signal } = {}) {
    await this.call((now) => this.native.ping(now), signal);
  }

  /** Sends any command (strings, Buffers, numbers) and resolves to its raw reply as plain values. */
  command(...args) {
    const argv = args.map(argBuffer);
    return this.call((now) => this.native.command(now, argv));
  }

  /**
   * Takes a lease that the client keeps alive until it is released (`await lease.release()`,
   * or `await using lease = await client.lock(...)`). Defaults: `ttl` 10000, `wait` 5000.
   * `lease.signal` aborts if the lease is lost.
   */
  async lock(name, options = {}) {
    const lease = await this.acquire(name, { ttl: 10000, wait: 5000, ...options });
    if (options.autoRenew !== false && !this.native.keepAlive(lease.name, lease.token)) {
      lease.markLost('its lease time ran out before a renewal was confirmed', 'lapsed');
    }
    this.pump();
    return lease;
  }

  /**
   * Holds a lease on `name` while `fn(lease)` runs, renewing it, and releases it after.
   * `lease.signal` aborts with a LeaseLost reason if the lease is lost; then the promise
   * rejects with that LeaseLost even if `fn` resolved.
   */
  async using(name, options, fn) {
    if (typeof options === 'function') {
      fn = options;
      options = {};
    }
    const lease = await this.lock(name, options);
    let result;
    try {
      result = await fn(lease);
    } catch (error) {
      await lease[Symbol.asyncDispose ?? Symbol.for('Symbol.asyncDispose')]().catch(() => {});
      throw error;
    }
    await lease[Symbol.asyncDispose ?? Symbol.for('Symbol.asyncDispose')]();
    lease.throwIfLost();
    return result;
  }

  /** Closes every connection (EPHEMERAL leases held through them end) and fails what waits. */
  async close() {
    if (this.closed) return;
    this.closed = true;
    this.native.close(nowMs());
    this.pump();
    for (const conn of [...this.sockets.keys()]) this.closeSocket(conn);
    clearTimeout(this.timer);
    this.timer = null;
    for (const [, waiter] of this.pending) waiter.reject(new ConnectionLost('client is closed'));
    this.pending.clear();
    for (const lease of this.leases.values()) lease.markLost('the client was closed', 'connection_closed');
    this.leases.clear();
  }

  async [Symbol.asyncDispose ?? Symbol.for('Symbol.asyncDispose')]() {
    await this.close();
  }

  // -- plumbing --------------------------------------------------------------------------

  /** Status of a tracked lease, or null. */
  leaseStatus(lease) {
    return this.native.lease(nowMs(), lease.name, lease.token);
  }

  /** Stops tracking a lease (its renewals stop). */
  forget(lease) {
    this.native.forget(lease.name, lease.token);
    this.leases.delete(key(lease.name, lease.token));
    this.pump();
  }

  call(submit, signal) {
    if (this.closed) return Promise.reject(new ConnectionLost('client is closed'));
    if (signal?.aborted) return Promise.reject(signal.reason);
    let id;
    try {
      id = submit(nowMs());
    } catch (error) {
      return Promise.reject(translate(error));
    }
    const promise = new Promise((resolve, reject) => {
      const waiter = { resolve, reject, signal, onAbort: null };
      if (signal) {
        // The core closes a waiting acquire's connection so the server drops the wait; a
        // short request keeps its place in the pipeline and its reply is dropped.
        waiter.onAbort = () => {
          if (!this.pending.delete(id)) return;
          this.native.cancel(nowMs(), id);
          this.pump();
          reject(signal.reason);
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.pending.set(id, waiter);
    });
    // Written once the callbacks and promise continuations of this turn have run: the core
    // client queues the requests made meanwhile on the same connection, so they go out in one
    // write (one syscall, one segment) instead of one each.
    if (!this.pumpScheduled) {
      this.pumpScheduled = true;
      setImmediate(() => {
        this.pumpScheduled = false;
        this.pump();
      });
    }
    return promise;
  }

  /** Does every pending output, delivers events, then replies, and re-arms the timer. */
  pump() {
    for (;;) {
      const { outputs, replies, events, timeoutMs } = this.native.drain();
      for (const output of outputs) {
        if (output.kind === 'connect') this.open(output.conn, output.endpoint);
        else if (output.kind === 'transmit') this.sockets.get(output.conn)?.write(output.data);
        else this.closeSocket(output.conn);
      }
      for (const event of events) this.deliver(event);
      for (const reply of replies) this.answer(reply);
      if (outputs.length === 0 && replies.length === 0 && events.length === 0) {
        this.arm(timeoutMs);
        return;
      }
    }
  }

  deliver(event) {
    if (event.kind === 'lease_lost') {
      const id = key(event.name, event.token);
      const lease = this.leases.get(id);
      this.leases.delete(id);
      lease?.markLost(event.description, event.reason);
    } else if (event.kind === 'notice' && this.onEvent !== null) {
      this.onEvent({ kind: event.notice, name: event.name, token: event.token, byToken: event.byToken ?? null });
    }
  }

  answer(reply) {
    const waiter = this.pending.get(reply.id);
    if (waiter === undefined) return;
    this.pending.delete(reply.id);
    if (waiter.onAbort) waiter.signal.removeEventListener('abort', waiter.onAbort);
    if (reply.error) waiter.reject(fromRecord(reply.error));
    else if (reply.granted) waiter.resolve(reply.granted);
    else if (reply.msLeft !== undefined) waiter.resolve(reply.msLeft);
    else if (reply.ok) waiter.resolve(true);
    else if (typeof reply.cursor === 'string') waiter.resolve({ cursor: reply.cursor, locks: reply.locks ?? [] });
    else if (reply.locks) waiter.resolve(reply.locks);
    else if (reply.info) waiter.resolve(reply.info);
    else if (reply.pong) waiter.resolve(reply.pong.toString());
    else if (reply.value) {
      const value = plainValue(reply.value);
      if (value instanceof Error) waiter.reject(value);
      else waiter.resolve(value);
    } else waiter.resolve(undefined);
  }

  arm(timeoutMs) {
    clearTimeout(this.timer);
    this.timer = null;
    if (timeoutMs === null || timeoutMs === undefined || this.closed) return;
    const wait = Math.max(0, timeoutMs - (performance.now() - ORIGIN));
    this.timer = setTimeout(() => {
      this.timer = null;
      this.native.handleTimeout(nowMs());
      this.pump();
    }, Math.ceil(wait));
    // Renewals keep the process alive while a lease is kept; an idle client does not.
    if (this.pending.size === 0 && this.leases.size === 0) this.timer.unref();
  }

  open(conn, endpoint) {
    const { host, port } = this.endpoints[endpoint];
    let socket;
    if (this.tls === null) {
      socket = net.connect({ host, port, noDelay: true });
    } else {
      // SNI takes a host name, never an address; the certificate check then uses the address.
      const servername = this.tls.servername ?? (net.isIP(host) ? undefined : host);
      socket = tls.connect({ ...this.tls, host, port, servername, noDelay: true });
    }
    this.sockets.set(conn, socket);
    let connected = false;
    socket.on(this.tls === null ? 'connect' : 'secureConnect', () => {
      connected = true;
      if (this.sockets.get(conn) !== socket) return;
      this.native.handleConnected(nowMs(), conn);
      this.pump();
    });
    socket.on('data', (data) => {
      if (this.sockets.get(conn) !== socket) return;
      this.native.receive(nowMs(), conn, data);
      this.pump();
    });
    let failure = null;
    socket.on('error', (error) => {
      failure = error;
    });
    socket.on('close', () => {
      if (this.sockets.get(conn) !== socket) return;
      this.sockets.delete(conn);
      const reason = connected
        ? failure ? String(failure.message) : 'server closed the connection'
        : `cannot connect to ${host}:${port}: ${failure ? failure.message : 'closed'}`;
      this.native.handleDisconnect(nowMs(), conn, reason);
      this.pump();
    });
  }

  closeSocket(conn) {
    const socket = this.sockets.get(conn);
    if (socket === undefined) return;
    this.sockets.delete(conn);
    socket.destroy();
  }
}

/** Creates a client and checks that a server answers; resolves to the client. */
async function connect(options = {}) {
  const client = new Client(options);
  try {
    await client.ping();
  } catch (error) {
    await client.close();
    throw error;
  }
  return client;
}

function endpointList(options) {
  const list = Array.isArray(options) ? options : options.endpoints ?? [{ host: options.host, port: options.port }];
  if (list.length === 0) throw new RangeError('a client needs at least one endpoint');
  return list.map((endpoint) => {
    if (typeof endpoint === 'string') {
      const cut = endpoint.lastIndexOf(':');
      return cut < 0
        ? { host: endpoint, port: DEFAULT_PORT }
        : { host: endpoint.slice(0, cut) || DEFAULT_HOST, port: Number(endpoint.slice(cut + 1)) };
    }
    return { host: endpoint.host ?? DEFAULT_HOST, port: endpoint.port ?? DEFAULT_PORT };
  });
}

function key(name, token) {
  return `${token} ${name}`;
}

function construct(build) {
  try {
    return build();
  } catch (error) {
    throw translate(error);
  }
}

function argBuffer(arg) {
  if (Buffer.isBuffer(arg) || arg instanceof Uint8Array) return Buffer.from(arg);
  if (typeof arg === 'string') return Buffer.from(arg, 'utf8');
  if (typeof arg === 'number' || typeof arg === 'bigint') return Buffer.from(String(arg), 'ascii');
  throw new TypeError(`cannot send ${typeof arg} as a command argument`);
}

function numberOrText(value) {
  return /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value;
}

/** A raw reply as plain values: bulk strings are Buffers, errors FencelockError instances. */
function plainValue(value) {
  if (value.error) return fromRecord(value.error);
  if (value.simple !== undefined) return value.simple;
  if (value.integer !== undefined) return value.integer;
  if (value.bulk !== undefined) return value.bulk;
  if (value.null) return null;
  if (value.boolean !== undefined) return value.boolean;
  if (value.double !== undefined) return value.double;
  if (value.big !== undefined) return BigInt(value.big);
  if (value.array) return value.array.map(plainValue);
  if (value.push) return value.push.map(plainValue);
  if (value.map) return new Map(value.map.map(([k, v]) => [plainValue(k), plainValue(v)]));
  return undefined;
}

module.exports = { Client, connect, DEFAULT_HOST, DEFAULT_PORT, LeaseLost };
