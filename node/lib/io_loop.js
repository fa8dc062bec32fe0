'use strict';
// The I/O loop both servers share around their native core (docs/HOSTS.md): the clock, one
// timer re-armed from `pollTimeout()`, the listening socket, and each connection's bytes,
// backpressure and close. `Server` (server.js) and `ClusterServer` (cluster.js) extend it and
// define `flush()` (perform every pending output); this file holds no rule of either.

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const { performance } = require('node:perf_hooks');
const tls = require('node:tls');
const native = require('./native');
const { translate } = require('./errors');
const { writeAtomic } = require('./durable');

class IoLoop {
  /** `native` is set by the subclass: a `NativeServer` or a `NativeCluster`. */
  constructor() {
    this.origin = performance.now();
    this.sockets = new Map();
    this.timer = null;
    this.timerAt = null;
    this.listener = null;
    this.metricsListener = null;
    this.metricsAddress = null;
    this.stopping = false;
  }

  /** Gives the core its users: the users file, or one user for `requirepass`. */
  loadAuth() {
    const { usersFile, requirepass } = this.options;
    if (usersFile && requirepass) throw new Error('fencelock: give --users or --requirepass, not both');
    if (usersFile) {
      try {
        this.native.setUsers(fs.readFileSync(usersFile));
      } catch (error) {
        throw new Error(`fencelock: users file ${usersFile}: ${translate(error).message}; refusing to start`);
      }
      this.log.info(`authentication on: users from ${usersFile}`);
    } else if (requirepass) {
      // Hashed at once with a fresh salt: the plain password is not kept by the core.
      this.native.setPasswordHash(native.hashPassword(Buffer.from(requirepass), crypto.randomBytes(16)));
      this.log.info("authentication on: one user 'default' (--requirepass)");
    } else {
      this.log.info('authentication off: every client may take, steal and release every lock');
    }
  }

  /** Reads the users file again (SIGHUP); on any error the users in force stay. */
  reloadUsers() {
    const { usersFile } = this.options;
    if (!usersFile) {
      this.log.info('SIGHUP: no users file to reload');
      return false;
    }
    try {
      this.native.setUsers(fs.readFileSync(usersFile));
    } catch (error) {
      this.log.error(`SIGHUP: users file ${usersFile} not reloaded, the users in force stay: ${translate(error).message}`);
      return false;
    }
    this.log.info(`SIGHUP: users reloaded from ${usersFile}`);
    return true;
  }

  /** A `tls` server for `this.tls` (`tlsOptions`), or a plain `net` server. */
  createListener() {
    if (this.tls === null || this.tls === undefined) {
      return net.createServer({ noDelay: true }, (socket) => this.accept(socket));
    }
    // 'secureConnection' comes only after the handshake: a client that never finishes it is
    // destroyed at the handshake timeout and never takes a core connection.
    const listener = tls.createServer({ ...this.tls, noDelay: true }, (socket) => this.accept(socket));
    listener.on('tlsClientError', (error, socket) => {
      this.log.debug(`TLS handshake from ${socket.remoteAddress}:${socket.remotePort} failed: ${error.message}`);
      socket.destroy();
    });
    return listener;
  }

  /** What the start line says of TLS. */
  tlsNote() {
    if (this.tls === null || this.tls === undefined) return '';
    return this.tls.requestCert ? ' (TLS, client certificates required)' : ' (TLS)';
  }

  /** Logs the core's audit events (failed authentications, steals). */
  drainAudit() {
    for (let event = this.native.pollAudit(); event !== null; event = this.native.pollAudit()) this.logAudit(event);
  }

  /** Logs one audit event (`text`, `json`). */
  logAudit(event) {
    if (this.log.audit) this.log.audit(event.text, event.json);
    else this.log.warning(event.text);
  }

  /** Serves the core's Prometheus text at GET /metrics on `address` ('HOST:PORT'). */
  async listenMetrics(address) {
    const cut = address.lastIndexOf(':');
    const host = address.slice(0, cut).replace(/^\[|\]$/g, '') || '127.0.0.1';
    const port = Number(address.slice(cut + 1));
    if (cut < 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--metrics wants HOST:PORT, got ${JSON.stringify(address)}`);
    this.metricsListener = http.createServer((request, response) => {
      const url = request.url.split('?')[0];
      let status = 200;
      let body;
      let type = 'text/plain; version=0.0.4; charset=utf-8';
      if (request.method !== 'GET' && request.method !== 'HEAD') [status, body, type] = [405, 'only GET\n', 'text/plain; charset=utf-8'];
      else if (url !== '/metrics') [status, body, type] = [404, 'metrics are at /metrics\n', 'text/plain; charset=utf-8'];
      else body = this.native.metrics(this.nowMs());
      const bytes = Buffer.from(body, 'utf8');
      response.writeHead(status, { 'Content-Type': type, 'Content-Length': bytes.length, Connection: 'close' });
      response.end(request.method === 'HEAD' ? undefined : bytes);
    });
    this.metricsListener.headersTimeout = 10000;
    this.metricsListener.requestTimeout = 10000;
    await new Promise((resolve, reject) => {
      this.metricsListener.once('error', reject);
      this.metricsListener.listen({ host, port }, () => {
        this.metricsListener.off('error', reject);
        resolve();
      });
    });
    const bound = this.metricsListener.address();
    this.metricsAddress = { host: bound.address, port: bound.port };
    return this.metricsAddress;
  }

  /** Writes `readyFile`: host and port, and with metrics a third field saying where they are served (for --metrics HOST:0). */
  writeReady(host, port) {
    if (!this.options.readyFile) return;
    const third = this.metricsAddress ? ` ${this.metricsAddress.host}:${this.metricsAddress.port}` : '';
    writeAtomic(this.options.readyFile, Buffer.from(`${host} ${port}${third}\n`));
  }

  /** Closes the listening sockets (connections stay) and the timer. */
  stopListening() {
    if (this.listener !== null) this.listener.close();
    if (this.metricsListener !== null) {
      this.metricsListener.close();
      this.metricsListener.closeAllConnections();
    }
    clearTimeout(this.timer);
    this.timer = null;
  }

  /** The server's clock in whole ms, truncated (the core's timer rule). */
  nowMs() {
    return Math.floor(performance.now() - this.origin);
  }

  /** Listens with `listener` (a `net` or `tls` server) on `host`:`port`; resolves to the bound `{ host, port }`. */
  async bind(listener, host, port) {
    this.listener = listener;
    await new Promise((resolve, reject) => {
      listener.once('error', reject);
      listener.listen({ host, port, backlog: 1024 }, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    const { address, port: bound } = listener.address();
    this.address = { host: address, port: bound };
    return this.address;
  }

  /** Performs a `transmit` or `close` output; returns false for any other kind. */
  transmitOrClose(output) {
    if (output.kind === 'transmit') {
      const socket = this.sockets.get(output.conn);
      if (socket !== undefined && !socket.write(output.data, 'latin1')) this.slowReader(output.conn, socket);
      return true;
    }
    if (output.kind === 'close') {
      // `end` flushes the bytes written before it.
      const socket = this.sockets.get(output.conn);
      if (socket !== undefined) {
        this.sockets.delete(output.conn);
        socket.end();
      }
      return true;
    }
    return false;
  }

  schedule() {
    const deadline = this.native.pollTimeout();
    if (deadline === this.timerAt && (this.timer !== null || deadline === null)) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = deadline;
    if (deadline !== null) {
      // Armed for exactly the deadline: a call at or after it always makes progress. A timer
      // that fires early finds nothing due, and the flush re-arms it for the same instant.
      const wait = Math.max(0, deadline - (performance.now() - this.origin));
      this.timer = setTimeout(() => this.onTimer(), Math.ceil(wait));
    }
  }

  onTimer() {
    this.timer = null;
    this.timerAt = null;
    this.native.handleTimeout(this.nowMs());
    this.flush();
  }

  // -- connections ------------------------------------------------------------------------

  accept(socket) {
    if (this.stopping) {
      socket.destroy();
      return;
    }
    const conn = this.native.connect(this.nowMs());
    // Replies go out at once, as Redis sends them: Nagle would hold a reply back behind the last.
    socket.setNoDelay(true);
    this.sockets.set(conn, socket);
    socket.on('data', (data) => {
      // After the core closed `conn` it has forgotten it; bytes still arriving are dropped.
      if (this.sockets.get(conn) !== socket) return;
      this.received(conn, socket, data);
    });
    socket.on('error', () => {
      // A reset or a broken pipe: 'close' follows and reports the disconnect.
    });
    socket.on('close', () => {
      if (this.sockets.get(conn) === socket) {
        this.sockets.delete(conn);
        if (!this.stopping) {
          this.native.disconnect(this.nowMs(), conn);
          this.flush();
        }
      }
    });
    this.flush();
  }

  /** Feeds bytes received on `conn` to the core and performs what follows. */
  received(conn, socket, data) {
    this.native.receive(this.nowMs(), conn, data);
    this.flush();
  }

  /**
   * The client is not reading its replies: stop reading its requests (so the replies held
   * stay bounded) and tell the core how much waits, so it can cut the connection.
   */
  slowReader(conn, socket) {
    if (socket.isPaused()) {
      this.native.handleUnsent(this.nowMs(), conn, socket.writableLength);
      return;
    }
    socket.pause();
    this.native.handleUnsent(this.nowMs(), conn, socket.writableLength);
    socket.once('drain', () => {
      if (this.sockets.get(conn) !== socket) return;
      socket.resume();
      this.native.handleUnsent(this.nowMs(), conn, 0);
      this.flush();
    });
  }
}

/** Resolves once `socket` has closed. */
function closed(socket) {
  return new Promise((resolve) => {
    if (socket.destroyed) resolve();
    else socket.once('close', resolve);
  });
}

/** Resolves after `ms`, without keeping the process alive. */
function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Returns the `tls.createServer` options for the TLS flags, or null for plain TCP. */
function tlsOptions(options) {
  if (!options.tlsCert && !options.tlsKey && !options.tlsCa) return null;
  if (!options.tlsCert || !options.tlsKey) throw new Error('fencelock: --tls-cert and --tls-key go together (--tls-ca needs both)');
  const ms = options.tlsHandshakeTimeoutMs;
  if (!Number.isInteger(ms) || ms <= 0) throw new RangeError(`tlsHandshakeTimeoutMs must be a positive integer, got ${ms}`);
  let result;
  try {
    result = {
      cert: fs.readFileSync(options.tlsCert),
      key: fs.readFileSync(options.tlsKey),
      minVersion: 'TLSv1.2',
      handshakeTimeout: ms,
    };
    if (options.tlsCa) Object.assign(result, { ca: fs.readFileSync(options.tlsCa), requestCert: true, rejectUnauthorized: true });
    // Checks the pair now, so that a bad certificate or key stops the start, not each handshake.
    tls.createSecureContext(result);
  } catch (error) {
    throw new Error(`fencelock: cannot load the TLS certificate or key: ${error.message}`);
  }
  return result;
}

/** Tells whether `host` reaches only this machine (127.0.0.0/8, ::1, localhost). */
function isLoopback(host) {
  if (host === 'localhost' || host === '::1') return true;
  if (net.isIPv4(host)) return host.startsWith('127.');
  if (net.isIPv6(host)) return /^::ffff:127\./i.test(host);
  // A host name other than localhost may resolve anywhere: treat it as exposed.
  return false;
}

/** Protected mode: refuses to serve a non-loopback address with no authentication. */
function checkExposure(options, log) {
  if (isLoopback(options.host) || options.usersFile || options.requirepass) return;
  if (options.noAuth) {
    log.warning(`serving ${options.host} with no authentication (--no-auth): anyone who reaches the port can take, steal and release every lock`);
    return;
  }
  const error = new Error(
    `fencelock: refusing to serve ${options.host} without authentication: anyone who reaches the port could take, ` +
      'steal and release every lock. Give --users FILE or --requirepass (or FENCELOCK_REQUIREPASS), bind 127.0.0.1, ' +
      'or pass --no-auth to insist.',
  );
  error.code = 'PROTECTED_MODE';
  throw error;
}

module.exports = { IoLoop, closed, delay, tlsOptions, checkExposure, isLoopback };
