'use strict';
// The resource side of fencing: refuse any token older than the highest accepted. Only the
// resource, comparing tokens when it writes, is safe: a lease verified before a write can
// lapse before the write lands.

const fs = require('node:fs');
const native = require('./native');
const { FenceRejected, DurabilityError, translate } = require('./errors');
const { writeAtomic } = require('./durable');

/**
 * High-water marks per resource. With `path`, the marks live in a file (its format is the
 * core's, shared with every host), rewritten atomically (temp, fsync, rename, fsync dir)
 * before `check` reports an advanced mark. A failed write is fatal: the fence refuses every
 * later call.
 */
class Fence {
  constructor(path = null) {
    this.path = path;
    this.failure = null;
    this.native = path === null ? new native.NativeFence() : load(path);
  }

  /** Accepts `token` if it is >= the highest accepted for `resource`; returns `{ accepted, advanced, highest }`. */
  check(resource, token) {
    this.throwIfFailed();
    let checked;
    try {
      checked = this.native.check(resource, token);
    } catch (error) {
      throw translate(error);
    }
    if (checked.advanced && this.path !== null) {
      try {
        writeAtomic(this.path, this.native.encode());
      } catch (error) {
        this.failure = error;
        throw error;
      }
    }
    return checked;
  }

  /** Like `check` but throws FenceRejected for an old token; returns the mark. */
  require(resource, token) {
    const result = this.check(resource, token);
    if (!result.accepted) {
      throw new FenceRejected(
        `token ${token} is older than ${result.highest}, the highest accepted for ${JSON.stringify(resource)}`,
        { resource, token, highest: result.highest },
      );
    }
    return result.highest;
  }

  /** Returns the highest token accepted for `resource` (0 if none). */
  highest(resource) {
    return this.native.highest(resource);
  }

  /** Returns every resource's mark as a Map. */
  marks() {
    return new Map(this.native.marks().map((mark) => [mark.resource, mark.highest]));
  }

  get size() {
    return this.native.marks().length;
  }

  throwIfFailed() {
    if (this.failure !== null) {
      throw new DurabilityError(`fence file ${this.path} could not be written earlier; refusing to go on`, {
        cause: this.failure,
      });
    }
  }
}

function load(path) {
  let data;
  try {
    data = fs.readFileSync(path);
  } catch (error) {
    if (error.code === 'ENOENT') return new native.NativeFence();
    throw new Error(`fence file ${path} is unreadable: ${error.message}`, { cause: error });
  }
  try {
    return native.NativeFence.decode(data);
  } catch (error) {
    // A fence that forgot its marks would accept stale tokens: never start from a bad file.
    throw new Error(`${path}: ${error.message}`, { cause: error });
  }
}

module.exports = { Fence };
