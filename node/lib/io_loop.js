'use strict';
// The I/O loop both servers share around their native core (docs/HOSTS.md): the clock, one
// timer re-armed from `pollTimeout()`, the listening socket, and each connection's bytes,
// backpressure and close. `Server` (server.js) and `ClusterServer` (cluster.js) extend it and
// define `flush()` (perform every pending output); this file holds no rule of either.

const { performance } = require('node:perf_hooks');

class IoLoop {
  /** `native` is set by the subclass: a `NativeServer` or a `NativeCluster`. */
  constructor() {
    this.origin = performance.now();
    this.sockets = new Map();
    this.timer = null;
    this.timerAt = null;
    this.listener = null;
    this.stopping = false;
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

module.exports = { IoLoop, closed, delay };
