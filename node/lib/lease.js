'use strict';
// Leases as the client hands them out. A lease's `signal` aborts, with a LeaseLost reason,
// as soon as the core client says the lease is lost: leases never end silently.

const { LeaseLost } = require('./errors');

/** A granted lease: pass `token` to the protected resource with every write. */
class Lease {
  constructor(client, { name, token, ttl, shared, owner, ephemeral, deadlineMs }) {
    this.client = client;
    /** The lock. */
    this.name = name;
    /** The fencing token (a number, at most 2^53-1). */
    this.token = token;
    /** The TTL asked for, in ms. */
    this.ttl = ttl;
    this.shared = Boolean(shared);
    this.owner = owner ?? null;
    this.ephemeral = Boolean(ephemeral);
    this.deadlineMs = deadlineMs;
    /** Whether the lease is known to be lost. */
    this.lost = false;
    /** Why it was lost (a sentence), or null. */
    this.lostReason = null;
    this.released = false;
    this.controller = new AbortController();
  }

  /** Aborts (with a LeaseLost reason) when the lease is lost. */
  get signal() {
    return this.controller.signal;
  }

  /** The lease's conservative local deadline, on the client's monotonic clock (ms). */
  get expiresAt() {
    const status = this.client.leaseStatus(this);
    if (status !== null) this.deadlineMs = status.deadlineMs;
    return this.deadlineMs;
  }

  /** ms left by the local conservative estimate (0 once lost). */
  get timeLeft() {
    if (this.lost) return 0;
    return Math.max(0, this.expiresAt - this.client.nowMs());
  }

  /** Records that the lease is gone and aborts `signal`; the first reason wins. */
  markLost(description, reason = 'lost') {
    if (this.lost) return;
    this.lost = true;
    this.lostReason = description;
    this.controller.abort(
      new LeaseLost(`lease on ${JSON.stringify(this.name)} (token ${this.token}) was lost: ${description}`, {
        name: this.name,
        token: this.token,
        reason,
      }),
    );
  }

  /** Throws LeaseLost if the lease was lost. */
  throwIfLost() {
    if (this.lost) throw this.signal.reason;
  }

  /** Releases the lease (once); a lost lease is not released, and throws LeaseLost. */
  async release() {
    if (this.released) return;
    this.released = true;
    try {
      if (!this.lost) await this.client.release(this.name, this.token);
    } finally {
      this.client.forget(this);
    }
    this.throwIfLost();
  }

  /** `await using lease = await client.lock(...)`: releases at the end of the block. */
  async [Symbol.asyncDispose ?? Symbol.for('Symbol.asyncDispose')]() {
    if (this.released) return;
    this.released = true;
    try {
      if (!this.lost) await this.client.release(this.name, this.token);
    } catch (error) {
      // Lost while releasing: the lease's signal says so; nothing else to undo.
      if (!this.lost) throw error;
    } finally {
      this.client.forget(this);
    }
  }

  toJSON() {
    return { name: this.name, token: this.token, ttl: this.ttl, shared: this.shared, owner: this.owner, lost: this.lost };
  }
}

module.exports = { Lease };
