// A lease as the client hands it out: its token, and a `signal` that aborts (with a
// `LeaseLost` reason) as soon as the core says the lease is lost.

import { now } from './shared.js';

/** The key of a lease in the client's map. */
export function leaseKey(name, token) {
  return `${token}:${name}`;
}

export class Lease {
  constructor(locks, name, token, mode, ttl) {
    this.locks = locks;
    /** The lock's name. */
    this.name = name;
    /** The fencing token: give it to the resource with every write. */
    this.token = token;
    /** `exclusive` or `shared`. */
    this.mode = mode;
    this.ttl = ttl;
    this.controller = new AbortController();
    /** @type {Error | null} */
    this.lost = null;
  }

  /** Aborts when the lease is lost: expired, stolen, its renewal refused, or the worker gone. */
  get signal() {
    return this.controller.signal;
  }

  /** The ms the lease surely has left by the client's conservative local deadline (0 if unknown). */
  get msLeft() {
    if (this.lost) return 0;
    const status = this.locks.client.lease(now(), this.name, this.token);
    return status === null ? 0 : status.msLeft;
  }

  /** Throws the reason if the lease is lost. */
  throwIfLost() {
    if (this.lost) throw this.lost;
  }

  renew(ttl = this.ttl) {
    return this.locks.renew(this.name, this.token, ttl);
  }

  verify() {
    return this.locks.verify(this.name, this.token);
  }

  release() {
    return this.locks.release(this.name, this.token);
  }

  /** Records that the lease is gone and aborts `signal`; the first reason wins. */
  lose(reason) {
    if (this.lost) return;
    this.lost = reason;
    this.controller.abort(reason);
  }
}
