'use strict';
// Option shapes shared by the engine, the client and the server: JavaScript names in,
// the addon's names out. Checks here are about JavaScript types only; every rule on values
// (TTL bounds, names, limits) is the core's.

/** Returns `value` if it is a whole number of ms >= 0, else throws a TypeError/RangeError. */
function ms(what, value) {
  if (typeof value !== 'number') throw new TypeError(`${what} must be a number of milliseconds, got ${typeof value}`);
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`${what} must be a finite number of milliseconds >= 0, got ${value}`);
  // Round up so that a lease or a wait is never shorter than asked.
  return Math.ceil(value);
}

/** Converts acquire options ({ ttl, wait, shared, ... }) to the addon's shape. */
function acquireOptions(options) {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('acquire options must be an object with at least { ttl }');
  }
  const native = {};
  if (options.wait !== undefined && options.wait !== null) native.waitMs = ms('wait', options.wait);
  if (options.shared !== undefined) native.shared = Boolean(options.shared);
  if (options.steal !== undefined) native.steal = Boolean(options.steal);
  if (options.owner !== undefined && options.owner !== null) native.owner = String(options.owner);
  if (options.ephemeral !== undefined) native.ephemeral = Boolean(options.ephemeral);
  if (options.lockDelay !== undefined && options.lockDelay !== null) native.lockDelayMs = ms('lockDelay', options.lockDelay);
  if (options.client !== undefined && options.client !== null) native.client = options.client;
  return native;
}

/** `maxTtlMs` -> `max_ttl_ms`: the core's setting names, from JavaScript's spelling. */
function settingName(key) {
  return key.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}

/** Converts `{ maxTtlMs: 1000, testClock: true }` to `{ max_ttl_ms: 1000, test_clock: 1 }`. */
function settings(object) {
  const out = {};
  for (const [key, value] of Object.entries(object ?? {})) {
    if (value === undefined || value === null) continue;
    out[settingName(key)] = typeof value === 'boolean' ? Number(value) : value;
  }
  return out;
}

module.exports = { ms, acquireOptions, settings };
