// The worker host: core's protocol server in a SharedWorker or a dedicated Worker, serving the
// tabs of an origin. It is an I/O loop (docs/HOSTS.md): every connection is a MessagePort
// carrying the same RESP bytes as TCP, time comes from performance.now(), one timer is re-armed
// from pollTimeout(), and the token ceiling is made durable in IndexedDB before any reply that
// may reveal tokens up to it. The core decides everything else.

import { openFiles } from './files.js';
import { PROTOCOL, randomId, hashSeed, now } from './shared.js';

/**
 * Serves fencelock from this worker: accepts the connections that `fencelock-web` clients
 * open over `scope` (the SharedWorker's `connect` ports, or the dedicated Worker's own
 * messages). Call it during the worker script's first run: listeners are added at once, and
 * what arrives before the engine is ready waits for it.
 *
 * @param {object} [options]
 * @param {string} [options.name] the IndexedDB database suffix (one ceiling per name)
 * @param {Record<string, number>} [options.config] engine settings by core name (`max_ttl_ms`, ...)
 * @param {Record<string, number>} [options.server] server settings by core name (`max_connections`, ...)
 * @param {boolean} [options.inMemory] keep nothing in IndexedDB (tokens restart with the worker)
 * @param {any} [options.scope] the worker's global scope (default: globalThis)
 * @param {(line: string) => void} [options.log] where the start summary goes
 * @returns {Promise<Host>} once the engine serves
 */
export function serve(options = {}) {
  const scope = options.scope ?? globalThis;
  const host = new Host(options.log ?? ((line) => console.info(`fencelock: ${line}`)), settingsFor(options.config ?? {}));
  if ('onconnect' in scope) {
    scope.addEventListener('connect', (/** @type {MessageEvent} */ event) => host.attach(event.ports[0]));
  } else {
    host.attach(scope);
  }
  return host.start(options).then(
    () => host,
    (error) => {
      host.fatal(error);
      throw error;
    },
  );
}

/** The defaults a client needs to fill in its own options (the core's, unless overridden). */
function settingsFor(config) {
  return { maxWaitMs: config.max_wait_ms ?? 3_600_000, maxTtlMs: config.max_ttl_ms ?? 300_000 };
}

/** One engine and the connections to it. */
export class Host {
  constructor(log, settings) {
    this.log = log;
    this.settings = settings;
    /** @type {any} the wasm server, once started */
    this.server = null;
    this.files = null;
    /** Control channels attached before the engine was ready, and their messages. */
    this.early = [];
    /** @type {Map<number, MessagePort>} */
    this.ports = new Map();
    /** Outputs not yet performed, in order; a durable write in progress holds the rest back. */
    this.queue = [];
    this.head = 0;
    this.blocked = false;
    this.timer = undefined;
    this.timerAt = undefined;
    this.dead = false;
    this.liveness = `fencelock-worker:${randomId()}`;
    /** How the engine started (`fresh`, `crashed`, ...), for clients to show. */
    this.started = null;
  }

  /** Reads the durable files, starts the engine as the core's recovery plan says, then serves. */
  async start(options) {
    const config = options.config ?? {};
    this.files = options.inMemory ? null : await openFiles(`fencelock:${options.name ?? 'default'}`);
    const read = this.files ? await this.files.readAll() : {};
    // Loaded here, not imported above: the module's top-level await would hold back this
    // script's first run, and a SharedWorker's `connect` events would fire before `serve`
    // listens.
    const { WasmServer } = await import('./wasm.js');
    const server = WasmServer.recover(now(), read, config, options.server ?? {}, hashSeed());
    const recovery = server.takeRecovery();
    this.log(recovery.summary);
    this.started = { kind: recovery.kind, summary: recovery.summary };
    for (const action of recovery.actions) await this.store(action);
    await this.holdLiveness();
    this.server = server;
    for (const [control, messages] of this.early) {
      this.hello(control);
      for (const event of messages) this.onControl(event);
    }
    this.early = [];
  }

  /** Holds this worker's liveness lock until the worker ends: clients request it to learn that. */
  holdLiveness() {
    return new Promise((held) => {
      navigator.locks.request(this.liveness, () => {
        held(undefined);
        return new Promise(() => {});
      });
    });
  }

  /** A page's control channel: it sends one `connect` message per connection it opens. */
  attach(control) {
    const waiting = this.server === null ? [control, []] : null;
    if (waiting !== null) this.early.push(waiting);
    control.addEventListener('message', (/** @type {MessageEvent} */ event) => {
      if (this.server === null && waiting !== null) waiting[1].push(event);
      else this.onControl(event);
    });
    if (typeof control.start === 'function') control.start();
    if (waiting === null) this.hello(control);
  }

  hello(control) {
    control.postMessage({ fencelock: PROTOCOL, type: 'hello', liveness: this.liveness, settings: this.settings, started: this.started });
  }

  onControl(event) {
    const message = event.data;
    if (message?.fencelock !== PROTOCOL) return;
    if (message.type === 'connect' && event.ports[0] && typeof message.liveness === 'string') {
      this.accept(event.ports[0], message.liveness);
    }
  }

  /** One connection: its bytes go to the server; it ends when its liveness lock frees. */
  accept(port, liveness) {
    const conn = this.run(() => this.server.connect(now()));
    if (conn === undefined) return;
    this.ports.set(conn, port);
    port.onmessage = (event) => {
      const data = event.data;
      if (data instanceof ArrayBuffer) this.run(() => this.server.receive(now(), conn, new Uint8Array(data)));
      else if (data === 'close') this.drop(conn);
    };
    // Granted only once the page released it: it closed the connection, or it is gone
    // (closed, crashed, navigated away). A frozen page keeps holding it.
    navigator.locks.request(liveness, () => this.drop(conn));
  }

  drop(conn) {
    const port = this.ports.get(conn);
    if (port === undefined) return;
    this.ports.delete(conn);
    port.onmessage = null;
    port.close();
    this.run(() => this.server.disconnect(now(), conn));
  }

  /** Runs one input call, then flushes; a throw from the module is fatal. */
  run(call) {
    if (this.dead || this.server === null) return undefined;
    let result;
    try {
      result = call();
      for (const output of this.server.drain()) this.queue.push(output);
    } catch (error) {
      this.fatal(error);
      return undefined;
    }
    this.pump();
    this.arm();
    return result;
  }

  /** Performs queued outputs in order, stopping at a durable write until it completes. */
  pump() {
    while (!this.blocked && this.head < this.queue.length) {
      const output = this.queue[this.head];
      this.head += 1;
      if (output.kind === 'transmit') {
        const port = this.ports.get(output.conn);
        port?.postMessage(output.data.buffer, [output.data.buffer]);
      } else if (output.kind === 'close') {
        const port = this.ports.get(output.conn);
        if (port !== undefined) {
          this.ports.delete(output.conn);
          port.postMessage('close');
          port.close();
        }
      } else if (output.kind === 'write' || output.kind === 'remove') {
        this.blocked = true;
        this.store(output).then(
          () => {
            this.blocked = false;
            this.pump();
          },
          (error) => this.fatal(error),
        );
      } else {
        this.fatal(new Error(`unknown output ${JSON.stringify(output)}: update the host`));
      }
    }
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    }
  }

  /** Makes a file action durable (IndexedDB, `strict` durability) before anything after it. */
  async store(action) {
    if (this.files === null) return;
    if (action.kind === 'write') await this.files.write(action.file, action.data);
    else await this.files.remove(action.file);
  }

  /** One timer, re-armed at exactly `pollTimeout()`. */
  arm() {
    const at = this.server.pollTimeout();
    if (at === this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    if (at === undefined) return;
    this.timer = setTimeout(() => {
      this.timerAt = undefined;
      this.run(() => this.server.handleTimeout(now()));
    }, Math.max(0, at - now()));
  }

  /**
   * A failed durable write or a trap in the module: nothing can be trusted, so the worker
   * ends. Its liveness lock frees, and every client learns that its connections are gone.
   */
  fatal(error) {
    if (this.dead) return;
    this.dead = true;
    console.error('fencelock: the worker stops:', error);
    for (const port of this.ports.values()) port.close();
    this.ports.clear();
    clearTimeout(this.timer);
    if (typeof globalThis.close === 'function') globalThis.close();
  }
}
