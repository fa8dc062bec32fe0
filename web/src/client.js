// The page's client: an I/O loop around core's sans-IO client (docs/HOSTS.md, "Writing a
// client") over MessagePorts to the worker, with a Web-Locks-shaped API on top. The core
// encodes, decodes, renews, retries and decides when a lease is lost; this file only moves
// bytes, keeps one timer and settles promises.

import { WasmClient } from './wasm.js';
import { WorkerLink } from './link.js';
import { Lease, leaseKey } from './lease.js';
import { now } from './shared.js';
import { translate, fromRecord, Locked, LeaseLost } from './errors.js';

/** The TTL of a lease when the caller gives none, in ms; `request` renews it while it runs. */
export const DEFAULT_TTL_MS = 10_000;

/**
 * Connects to the fencelock worker of this origin (started on first use).
 * @param {import('../types/index.js').ConnectOptions} [options]
 */
export async function connect(options = {}) {
  const locks = new Locks(options);
  await locks.link.ready();
  return locks;
}

export class Locks {
  /** @param {import('../types/index.js').ConnectOptions} options */
  constructor(options = {}) {
    this.owner = options.owner;
    this.onEvent = options.onEvent;
    this.client = new WasmClient({
      endpoints: 1,
      resp3: true,
      requestTimeoutMs: options.requestTimeoutMs,
      connectTimeoutMs: options.connectTimeoutMs,
    });
    this.link = new WorkerLink(options, () => this.workerGone());
    /** @type {Map<number, { port: MessagePort | null, release: () => void }>} */
    this.conns = new Map();
    /** @type {Map<number, { resolve: (reply: any) => void, reject: (error: unknown) => void }>} */
    this.pending = new Map();
    /** @type {Map<string, Lease>} */
    this.leases = new Map();
    this.timer = undefined;
    this.timerAt = undefined;
    this.closed = false;
  }

  /**
   * Web Locks' `request`: takes the lock, runs `callback(lease)`, keeps the lease alive while
   * it runs, and releases it after. With `ifAvailable`, `callback(null)` when it is held.
   */
  async request(name, optionsOrCallback, maybeCallback) {
    const [options, callback] =
      typeof optionsOrCallback === 'function' ? [{}, optionsOrCallback] : [optionsOrCallback ?? {}, maybeCallback];
    if (typeof callback !== 'function') throw new TypeError('request(name, [options], callback): callback must be a function');
    if (options.ifAvailable && options.steal) throw new TypeError('ifAvailable and steal cannot be used together');
    const { settings } = await this.link.ready();
    const wait = options.ifAvailable || options.steal ? 0 : options.wait ?? settings.maxWaitMs;
    let lease;
    try {
      lease = await this.acquire(name, { ...options, wait, keepAlive: true });
    } catch (error) {
      if (options.ifAvailable && error instanceof Locked) return callback(null);
      throw error;
    }
    try {
      return await callback(lease);
    } finally {
      if (!lease.lost) await lease.release().catch(() => {});
    }
  }

  /**
   * Takes a lease; the caller releases it. `keepAlive` has the core renew it until released.
   * @returns {Promise<Lease>}
   */
  async acquire(name, options = {}) {
    const mode = options.mode ?? 'exclusive';
    if (mode !== 'exclusive' && mode !== 'shared') throw new TypeError(`mode must be 'exclusive' or 'shared', got ${String(mode)}`);
    const ttl = options.ttl ?? DEFAULT_TTL_MS;
    const reply = await this.submit(
      (at) =>
        this.client.acquire(at, name, ttl, {
          shared: mode === 'shared',
          waitMs: options.wait ?? 0,
          owner: options.owner ?? this.owner,
          steal: options.steal ?? false,
          ephemeral: options.ephemeral ?? true,
          lockDelayMs: options.lockDelay,
        }),
      options.signal,
    );
    const lease = new Lease(this, name, reply.granted.token, mode, ttl);
    this.leases.set(leaseKey(name, lease.token), lease);
    if (options.keepAlive) this.client.keepAlive(name, lease.token);
    return lease;
  }

  /** Renews the lease (name, token) for `ttl` ms; resolves with the ms it has left. */
  async renew(name, token, ttl = DEFAULT_TTL_MS) {
    return (await this.submit((at) => this.client.renew(at, name, token, ttl))).msLeft;
  }

  /** Releases the lease (name, token). */
  async release(name, token) {
    await this.submit((at) => this.client.release(at, name, token));
    this.leases.delete(leaseKey(name, token));
  }

  /** Resolves with the ms the lease (name, token) has left, or rejects (`STALE`, `EXPIRED`). */
  async verify(name, token) {
    return (await this.submit((at) => this.client.verify(at, name, token))).msLeft;
  }

  /**
   * Web Locks' `query`, with tokens, owners and time left: `{ held, pending }` for the locks
   * whose name starts with `prefix`.
   */
  async query(prefix = '') {
    const reply = await this.submit((at) => this.client.query(at, prefix));
    const held = [];
    const pending = [];
    for (const lock of reply.locks) {
      for (const holder of lock.holders) {
        held.push({ name: lock.name, mode: holder.mode, token: holder.token, owner: holder.owner ?? null, msLeft: holder.msLeft, clientId: String(holder.client) });
      }
      for (const waiter of lock.waiters) {
        pending.push({ name: lock.name, mode: waiter.mode, owner: waiter.owner ?? null, msLeft: waiter.msLeft, position: waiter.position, clientId: String(waiter.client) });
      }
    }
    return { held, pending };
  }

  /**
   * Describes the worker this client talks to: `{ liveness, started: { kind, summary },
   * settings }` (`liveness` is the Web Lock it holds while it runs).
   */
  async worker() {
    const { liveness, started, settings } = await this.link.ready();
    return { liveness, started, settings };
  }

  /** Closes every connection; leases still held end as the worker sees the connections go. */
  close() {
    if (this.closed) return;
    this.run(() => this.client.close(now()));
    this.closed = true;
    this.link.close();
    clearTimeout(this.timer);
  }

  /** Queues one request and resolves with its typed reply (rejects with its error). */
  submit(request, signal) {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new Error('this fencelock client is closed'));
        return;
      }
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      let id;
      try {
        id = request(now());
      } catch (error) {
        reject(translate(error));
        return;
      }
      const entry = { resolve, reject };
      this.pending.set(id, entry);
      if (signal) {
        const onAbort = () => {
          if (!this.pending.has(id)) return;
          this.pending.delete(id);
          this.run(() => this.client.cancel(now(), id));
          reject(signal.reason);
        };
        signal.addEventListener('abort', onAbort, { once: true });
        entry.resolve = (reply) => {
          signal.removeEventListener('abort', onAbort);
          resolve(reply);
        };
        entry.reject = (error) => {
          signal.removeEventListener('abort', onAbort);
          reject(error);
        };
      }
      this.flush();
    });
  }

  /** Runs one input call, then flushes. */
  run(call) {
    try {
      call();
    } catch (error) {
      // The glue checks every argument this loop passes; a throw here is a bug.
      console.error('fencelock client:', error);
    }
    this.flush();
  }

  /** Outputs, then events (leases lost before anyone is woken), then replies, then the timer. */
  flush() {
    const drained = this.client.drain();
    for (const output of drained.outputs) this.perform(output);
    for (const event of drained.events) this.deliver(event);
    for (const reply of drained.replies) {
      const waiter = this.pending.get(reply.id);
      if (waiter === undefined) continue;
      this.pending.delete(reply.id);
      if (reply.error) waiter.reject(fromRecord(reply.error));
      else waiter.resolve(reply);
    }
    this.arm(drained.timeoutMs);
  }

  perform(output) {
    if (output.kind === 'connect') {
      this.conns.set(output.conn, { port: null, release: () => {} });
      this.open(output.conn);
    } else if (output.kind === 'transmit') {
      const conn = this.conns.get(output.conn);
      conn?.port?.postMessage(output.data.buffer, [output.data.buffer]);
    } else if (output.kind === 'close') {
      const conn = this.conns.get(output.conn);
      this.conns.delete(output.conn);
      if (conn?.port) {
        conn.port.postMessage('close');
        conn.port.close();
      }
      conn?.release();
    }
  }

  /** Opens the transport for `conn` and reports back to the core. */
  async open(conn) {
    let opened;
    try {
      opened = await this.link.open();
    } catch (error) {
      if (this.conns.has(conn)) this.run(() => this.client.handleDisconnect(now(), conn, `cannot reach the fencelock worker: ${error}`));
      return;
    }
    const entry = this.conns.get(conn);
    if (entry === undefined) {
      // The core gave up on it meanwhile (a cancelled wait, a connect timeout).
      opened.port.close();
      opened.release();
      return;
    }
    entry.port = opened.port;
    entry.release = opened.release;
    opened.port.onmessage = (event) => {
      if (event.data instanceof ArrayBuffer) this.run(() => this.client.receive(now(), conn, new Uint8Array(event.data)));
      else if (event.data === 'close') this.lost(conn, 'closed by the fencelock worker');
    };
    this.run(() => this.client.handleConnected(now(), conn));
  }

  lost(conn, reason) {
    const entry = this.conns.get(conn);
    if (entry === undefined) return;
    this.conns.delete(conn);
    entry.port?.close();
    entry.release();
    this.run(() => this.client.handleDisconnect(now(), conn, reason));
  }

  workerGone() {
    for (const conn of [...this.conns.keys()]) this.lost(conn, 'the fencelock worker is gone');
  }

  deliver(event) {
    if (event.kind === 'lease_lost') {
      const key = leaseKey(event.name, event.token);
      const lease = this.leases.get(key);
      this.leases.delete(key);
      lease?.lose(new LeaseLost(event.description, { name: event.name, token: event.token, reason: event.reason }));
    }
    this.onEvent?.(event);
  }

  /** One timer, re-armed at exactly the core's next deadline. */
  arm(at) {
    if (at === this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    if (at === undefined || this.closed) return;
    this.timer = setTimeout(() => {
      this.timerAt = undefined;
      this.run(() => this.client.handleTimeout(now()));
    }, Math.max(0, at - now()));
  }
}
