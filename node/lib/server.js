'use strict';
// `fencelock serve`: an I/O loop around the core's sans-IO protocol server (docs/HOSTS.md).
// Plain TCP is served by the addon's native socket loop (bindings/node/src/tcp.rs: an epoll
// loop on a thread of its own, so no request crosses into JavaScript); TLS, or `io: 'net'`,
// by a `net`/`tls` loop in this file and io_loop.js. Either moves bytes, time and durable
// writes; the core parses, runs and encodes every request, so this host answers byte for byte
// like every other host. Outputs are handled in the order polled, and a file write is durable
// (fsync) before any later output is handled, since later bytes may carry tokens up to the
// ceiling it wrote.
//
// The data directory's rules (file names, formats, which start to take, what to remove before
// serving, what to write at shutdown) are the core's: this host reads the files the core names
// and performs the writes and removals it is given, atomically and durably.

const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const native = require('./native');
const { translate } = require('./errors');
const { writeAtomic, removeDurable } = require('./durable');
const { settings } = require('./options');
const { silent } = require('./log');
const { IoLoop, closed, delay, tlsOptions, checkExposure, isLoopback } = require('./io_loop');

const { dataFiles: DATA_FILES, version: VERSION } = native.constants();
const EXIT_DURABILITY = 3;
// Where Linux names the current boot; FENCELOCK_BOOT_ID_PATH overrides it (tests forge another
// boot with it).
const BOOT_ID_PATH = '/proc/sys/kernel/random/boot_id';

/**
 * One listening socket, its connections, and the native server they share.
 *
 * Options: `host` (127.0.0.1), `port` (7380; 0 for any), `dataDir` (null: in memory),
 * `maxTtlMs`, `lockDelayMs`, `maxConnections` (10000), `testClock`, `readyFile`,
 * `engine` (more core engine settings in camelCase), `limits` (more core server settings in
 * camelCase: `maxOutputBytes`, `maxRequestBytes`, ...), `log` (a logger), `onFatal`.
 * TLS: `tlsCert` and `tlsKey` (PEM file paths), `tlsCa` (PEM path: client certificates signed
 * by it are then required), `tlsHandshakeTimeoutMs` (10000). Metrics: `metrics` ('HOST:PORT'
 * to serve Prometheus text at GET /metrics). `io`: `'native'` (the default for plain TCP: the
 * addon's socket loop) or `'net'` (Node's `net` module; always used for TLS).
 */
class Server extends IoLoop {
  constructor(options = {}) {
    super();
    this.options = {
      host: '127.0.0.1',
      port: 7380,
      dataDir: null,
      maxConnections: 10000,
      testClock: false,
      tlsHandshakeTimeoutMs: 10000,
      ...options,
    };
    this.tls = tlsOptions(this.options);
    const io = this.options.io ?? 'native';
    if (io !== 'native' && io !== 'net') throw new TypeError(`io must be 'native' or 'net', got ${JSON.stringify(io)}`);
    // The native loop speaks plain TCP only.
    this.io = this.tls === null ? io : 'net';
    this.loop = null;
    this.failed = false;
    this.metricsListener = null;
    this.metricsAddress = null;
    this.log = options.log ?? silent;
    this.dataDir = this.options.dataDir ?? null;
    this.stopped = null;
    this.onFatal = options.onFatal ?? ((status) => process.exit(status));
    checkExposure(this.options, this.log);
    this.startNative();
    this.loadAuth();
  }

  startNative() {
    const engine = settings({ ...this.options.engine, maxTtlMs: this.options.maxTtlMs, lockDelayMs: this.options.lockDelayMs });
    const server = settings({
      ...this.options.limits,
      maxConnections: this.options.maxConnections,
      testClock: Boolean(this.options.testClock),
    });
    const seed = crypto.randomBytes(16);
    const now = this.nowMs();
    // The system monotonic clock, read with `now`: the boot clock maps one onto the other.
    // performance.now() is that clock (CLOCK_MONOTONIC through libuv) from another origin.
    const monotonic = native.monotonicMs();
    if (this.dataDir === null) {
      this.startKind = 'in-memory';
      this.native = construct(() => new native.NativeServer(engine, server, seed, 'fresh', 0, null, now));
      return;
    }
    fs.mkdirSync(this.dataDir, { recursive: true });
    const files = {};
    for (const name of DATA_FILES) {
      try {
        files[name] = fs.readFileSync(path.join(this.dataDir, name));
      } catch (error) {
        if (error.code !== 'ENOENT') throw error;
        files[name] = null;
      }
    }
    // The lease horizon is stored on the system monotonic clock, which runs across process
    // restarts on one boot; a test clock's time is not that clock's.
    const bootId = this.options.testClock ? null : readBootId(this.log);
    try {
      this.native = native.NativeServer.recover(now, files, engine, server, seed, bootId, monotonic);
    } catch (error) {
      const refused = new Error(`fencelock: ${this.dataDir}: ${translate(error).message}; refusing to start`);
      refused.code = 'CORRUPT_DATA_DIR';
      throw refused;
    }
    const recovery = this.native.takeRecovery();
    for (const action of recovery.actions) {
      // Before serving anyone: e.g. a snapshot is valid for one start only.
      if (!this.perform(action)) throw new Error(`fencelock: ${this.dataDir}: cannot prepare the data directory; refusing to start`);
    }
    if (recovery.hasGrace) this.log.warning(recovery.summary);
    else this.log.info(recovery.summary);
    this.startKind = recovery.kind;
  }

  /** Binds the socket; resolves to the bound `{ host, port }`. */
  async listen() {
    const { host, port } =
      this.io === 'native' ? this.listenNative() : await this.bind(this.createListener(), this.options.host, this.options.port);
    if (this.options.metrics) await this.listenMetrics(this.options.metrics);
    const where = this.dataDir !== null ? `data dir ${this.dataDir}` : 'in memory (nothing on disk)';
    const secure = this.tlsNote();
    const metrics = this.metricsAddress ? `, metrics on http://${this.metricsAddress.host}:${this.metricsAddress.port}/metrics` : '';
    this.log.info(
      `fencelock ${VERSION} serving on ${host}:${port}${secure}, ${where}, start ${this.startKind}, node ${process.version}` +
        `${this.options.testClock ? ', test clock' : ''}${metrics}`,
    );
    this.writeReady(host, port);
    if (this.loop === null) this.schedule();
    return this.address;
  }

  /**
   * Hands the core to the addon's socket loop, which binds and serves from its own thread;
   * from then on `this.native` is the loop (users, metrics and counts go through it).
   */
  listenNative() {
    const loop = construct(() =>
      native.NativeTcpLoop.start(this.native, this.options.host, this.options.port, this.nowMs(), this.dataDir, () => this.onLoopEvents()),
    );
    this.loop = loop;
    this.native = loop;
    this.loopStopped = new Promise((resolve) => {
      this.resolveLoopStopped = resolve;
    });
    this.address = { host: loop.host, port: loop.port };
    return this.address;
  }

  /** Logs what the socket loop reports; a failed durable write ends the process. */
  onLoopEvents() {
    for (const event of this.loop.pollEvents()) {
      switch (event.kind) {
        case 'audit':
          this.logAudit(event);
          break;
        case 'log':
          (this.log[event.level] ?? this.log.info)(event.text);
          break;
        case 'fatal':
          // The loop has stopped and dropped every connection.
          this.failed = true;
          this.log.critical(event.text);
          this.stopListening();
          this.resolveLoopStopped(this.loop.liveLeases());
          this.onFatal(EXIT_DURABILITY);
          break;
        case 'stopped':
          this.resolveLoopStopped(event.leases);
          break;
        default:
          this.log.warning(`unknown socket loop event ${JSON.stringify(event.kind)}`);
      }
    }
  }

  /** Open connections, how many are paused (not read: their replies are not read) and the most bytes held for one. */
  connectionStats() {
    if (this.loop !== null) return this.loop.stats();
    const sockets = [...this.sockets.values()];
    return {
      open: sockets.length,
      closing: 0,
      paused: sockets.filter((socket) => socket.isPaused()).length,
      maxHeldBytes: Math.max(0, ...sockets.map((socket) => socket.writableLength)),
    };
  }

  /** Stops accepting, closes every connection, and writes the clean-shutdown snapshot. */
  stop() {
    if (this.stopped !== null) return this.stopped;
    this.stopping = true;
    this.stopped = (async () => {
      this.stopListening();
      if (this.loop !== null) {
        // The loop performs the core's shutdown (the ceiling write, the last replies and
        // closes, the snapshot write) on its thread and flushes for up to a second.
        this.loop.stop();
        const leases = await this.loopStopped;
        this.loop.join();
        this.logStopped(leases);
        return;
      }
      // The core closes every connection (EPHEMERAL leases end with them) and yields the
      // ceiling write, the last bytes and closes, then the snapshot write, in that order.
      this.native.shutdown(this.nowMs());
      const leases = this.native.liveLeases();
      this.flush();
      const closing = [...this.sockets.values()].map((socket) => closed(socket));
      for (const socket of this.sockets.values()) socket.end();
      this.sockets.clear();
      await Promise.race([Promise.all(closing), delay(1000)]);
      this.logStopped(leases);
    })();
    return this.stopped;
  }

  logStopped(leases) {
    this.log.info(`stopped: ${leases} live leases ${this.dataDir !== null ? 'kept in the snapshot' : 'dropped (in memory)'}`);
  }

  /** Performs every pending output, in order, then re-arms the timer. */
  flush() {
    if (this.failed) return;
    for (const output of this.native.drain()) {
      if (this.transmitOrClose(output)) continue;
      switch (output.kind) {
        case 'write':
        case 'remove':
          if (!this.perform(output)) return;
          break;
        default:
          // An output this host does not know may be a durability barrier: stop.
          this.fail(`unknown server output ${JSON.stringify(output.kind)}: update the host; exiting`);
          return;
      }
    }
    this.drainAudit();
    if (!this.stopping) this.schedule();
  }

  /**
   * Makes a data-directory change durable and returns true, or stops and exits: after a failed
   * fsync nothing on disk can be trusted, and going on could reissue tokens.
   */
  perform(action) {
    if (this.dataDir === null) return true;
    const file = path.join(this.dataDir, action.file);
    try {
      const started = process.hrtime.bigint();
      if (action.kind === 'write') writeAtomic(file, action.data);
      else removeDurable(file);
      // Not yet during recovery: the native server is made by it.
      if (this.native) this.native.recordPersist(Number((process.hrtime.bigint() - started) / 1000n));
    } catch (error) {
      this.fail(`cannot ${action.kind} ${action.file} durably: ${error.message}; exiting`);
      return false;
    }
    return true;
  }

  /**
   * Performs nothing more (no later output may leave: it could carry what was not made
   * durable), drops every connection and ends the process through `onFatal`.
   */
  fail(text) {
    this.failed = true;
    this.log.critical(text);
    this.stopListening();
    for (const socket of this.sockets.values()) socket.destroy();
    this.sockets.clear();
    this.onFatal(EXIT_DURABILITY);
  }

  /**
   * Most requests are answered at once with one reply: the core hands it back directly.
   * Anything else (other connections woken, file writes, a new timer) goes through flush.
   */
  received(conn, socket, data) {
    if (this.failed) return;
    const reply = this.native.receiveReply(this.nowMs(), conn, data);
    if (reply === null) this.flush();
    else if (reply.length > 0 && !socket.write(reply, 'latin1')) this.slowReader(conn, socket);
  }
}

/**
 * Serves until SIGTERM or SIGINT, then shuts down cleanly; resolves to the exit status.
 */
async function serve(options = {}) {
  let server;
  try {
    server = new Server(options);
  } catch (error) {
    (options.log ?? silent).error(error.message);
    return 1;
  }
  // Before the socket (and the ready file): a SIGHUP sent once the server is up must never
  // meet Node's default action, which ends the process.
  const reload = () => server.reloadUsers();
  process.on('SIGHUP', reload);
  try {
    await server.listen();
  } catch (error) {
    (options.log ?? silent).error(`cannot serve: ${error.message}`);
    process.off('SIGHUP', reload);
    return 1;
  }
  await new Promise((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  process.off('SIGHUP', reload);
  await server.stop();
  return 0;
}

/**
 * Returns this boot's identity, or null where it cannot be read (then no lease horizon is kept
 * and a crash restart waits the full grace).
 */
function readBootId(log) {
  if (process.platform !== 'linux') return null;
  const file = process.env.FENCELOCK_BOOT_ID_PATH || BOOT_ID_PATH;
  let text;
  try {
    text = fs.readFileSync(file, 'latin1').trim();
  } catch (error) {
    log.debug(`no boot id (${error.message}): a crash restart waits the full grace`);
    return null;
  }
  if (!/^[\x21-\x7e]{1,128}$/.test(text)) {
    log.warning(`boot id ${JSON.stringify(text.slice(0, 40))} is not printable ASCII: a crash restart waits the full grace`);
    return null;
  }
  return text;
}

function construct(build) {
  try {
    return build();
  } catch (error) {
    throw translate(error);
  }
}

module.exports = { Server, serve, isLoopback };
