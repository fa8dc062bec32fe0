'use strict';
// The lock engine in process: the core with a clock and JavaScript records. Durations are ms.
// The core never reads a clock; this wrapper reads one (monotonic unless one is injected)
// and passes milliseconds in.

const crypto = require('node:crypto');
const native = require('./native');
const { translate } = require('./errors');
const { monotonicClock } = require('./clock');
const { ms, acquireOptions, settings } = require('./options');

const ENGINE_OPTIONS = new Set(['clock', 'start', 'ceiling', 'snapshot', 'hashSeed']);

/**
 * The fencelock state machine in process.
 *
 * `new Engine({ clock, maxTtlMs, lockDelayMs, ..., start, ceiling, snapshot })`: `clock` returns
 * milliseconds (monotonic by default); other keys are the core's settings in camelCase.
 * `start` is `fresh`, `crashed` (resume above `ceiling`, grant nothing for a restart grace) or
 * `clean` (restore `snapshot` bytes from `engine.snapshot()`).
 * After each call, take `pollPersist()` and make it durable before acting on the result if
 * tokens must survive a crash, then deliver `pollEvent()` events.
 */
class Engine {
  constructor(options = {}) {
    this.clock = options.clock ?? monotonicClock();
    this.origin = this.clock();
    const config = {};
    for (const [key, value] of Object.entries(options)) {
      if (!ENGINE_OPTIONS.has(key)) config[key] = value;
    }
    try {
      this.native = new native.NativeEngine(
        settings(config),
        options.hashSeed ?? crypto.randomBytes(16),
        options.start ?? 'fresh',
        options.ceiling ?? 0,
        options.snapshot ?? null,
        0,
      );
    } catch (error) {
      throw translate(error);
    }
  }

  /** Returns the engine's time in ms (0 at construction). */
  nowMs() {
    return Math.max(0, Math.floor(this.clock() - this.origin));
  }

  /**
   * Acquires `name`: `{ granted: true, token, expiresAt }`, or `{ granted: false, waiter,
   * waitDeadline }` when `wait` is given and the lock is held (an event follows).
   * Throws Locked, NotReady, LimitReached, TokensExhausted, BadRequest.
   */
  acquire(name, options) {
    const ttl = ms('ttl', options?.ttl);
    const native = acquireOptions(options);
    let acquired;
    try {
      acquired = this.native.acquire(this.nowMs(), name, ttl, native);
    } catch (error) {
      throw translate(error);
    }
    if (acquired.token !== undefined && acquired.token !== null) {
      return { granted: true, name, token: acquired.token, expiresAt: this.origin + acquired.deadlineMs };
    }
    return { granted: false, name, waiter: acquired.waiter, waitDeadline: this.origin + acquired.deadlineMs };
  }

  /** Extends the lease (name, token) to `ttl` ms from now; returns ms left. */
  renew(name, token, ttl) {
    try {
      return this.native.renew(this.nowMs(), name, token, ms('ttl', ttl));
    } catch (error) {
      throw translate(error);
    }
  }

  /** Releases the lease (name, token); throws Stale or Expired if it is not live. */
  release(name, token) {
    try {
      this.native.release(this.nowMs(), name, token);
    } catch (error) {
      throw translate(error);
    }
  }

  /** Returns ms left on the lease (name, token); throws Stale or Expired. */
  verify(name, token) {
    try {
      return this.native.verify(this.nowMs(), name, token);
    } catch (error) {
      throw translate(error);
    }
  }

  /** Withdraws a queued acquire; returns whether it was still waiting. */
  cancelWait(waiter) {
    return this.native.cancelWait(this.nowMs(), waiter);
  }

  /** Drops the client's waits and its EPHEMERAL leases. */
  disconnect(client) {
    this.native.disconnect(this.nowMs(), client);
  }

  /** Does whatever is due now; harmless when nothing is. */
  handleTimeout() {
    this.native.handleTimeout(this.nowMs());
  }

  /** Returns the clock reading of the next deadline, or null. */
  pollTimeout() {
    const at = this.native.pollTimeout();
    return at === null ? null : this.origin + at;
  }

  /** Returns the next event (`granted`, `wait_timed_out`, `expired`, `stolen`), or null. */
  pollEvent() {
    const event = this.native.pollEvent();
    if (event === null) return null;
    if (event.deadlineMs !== undefined) event.expiresAt = this.origin + event.deadlineMs;
    return event;
  }

  /** Yields every pending event. */
  *events() {
    for (let event = this.pollEvent(); event !== null; event = this.pollEvent()) yield event;
  }

  /** Returns a raised token ceiling to make durable before delivering results, or null. */
  pollPersist() {
    return this.native.pollPersist();
  }

  /** Returns locks whose name starts with `prefix`, sorted by name. */
  query(prefix = '') {
    return this.native.query(this.nowMs(), prefix);
  }

  /** Returns the counters since start. */
  stats() {
    return this.native.stats();
  }

  /** Returns the clean-shutdown snapshot (restore it with `new Engine({ start: 'clean', ... })`). */
  snapshot() {
    return this.native.snapshot(this.nowMs());
  }

  /** Returns ms of restart grace left (0 when grants are allowed). */
  graceLeft() {
    return this.native.graceLeft(this.nowMs());
  }

  /** The highest token issued so far (0 if none). */
  get lastToken() {
    return this.native.lastToken();
  }

  /** The highest token covered by a ceiling handed out for persisting. */
  get tokenCeiling() {
    return this.native.tokenCeiling();
  }

  /** The core configuration, by core setting name. */
  get config() {
    return this.native.config();
  }

  liveLocks() {
    return this.native.liveLocks();
  }

  liveLeases() {
    return this.native.liveLeases();
  }

  waiting() {
    return this.native.waiting();
  }

  /** Throws an Error if an engine invariant (I1-I5) is broken. */
  checkInvariants() {
    const broken = this.native.checkInvariants();
    if (broken !== null) throw new Error(`fencelock invariant broken: ${broken}`);
  }
}

module.exports = { Engine, MAX_TOKEN: native.constants().maxToken };
