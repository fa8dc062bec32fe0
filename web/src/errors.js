// The one place where the wasm module's error records become JavaScript errors: a
// `FencelockError` whose `code` is the core's stable wire code, with the core's fields
// (`msLeft`, `token`, `waitedMs`). Nothing here parses error text.

/** Base class of every fencelock error; `code` is the stable wire code. */
export class FencelockError extends Error {
  /**
   * @param {string} [message] the text after the code
   * @param {{ code?: string, cause?: unknown, msLeft?: number, token?: number, waitedMs?: number }} [options]
   */
  constructor(message = '', options = {}) {
    const code = options.code ?? /** @type {any} */ (new.target).code ?? 'ERROR';
    super(message ? `${code} ${message}` : code, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.detail = message;
    if (options.msLeft !== undefined) this.msLeft = options.msLeft;
    if (options.token !== undefined) this.token = options.token;
    if (options.waitedMs !== undefined) this.waitedMs = options.waitedMs;
  }
}
FencelockError.code = 'ERROR';

/** The lock is held (or in lock-delay) and the caller did not wait; `msLeft` says until when. */
export class Locked extends FencelockError {}
Locked.code = 'LOCKED';
/** The token is not a live lease of that lock (released, superseded, stolen or unknown). */
export class Stale extends FencelockError {}
Stale.code = 'STALE';
/** The token's lease lapsed; a lapsed lease stays lapsed. */
export class Expired extends FencelockError {}
Expired.code = 'EXPIRED';
/** The wait ran out before the lock was granted. */
export class LockTimeout extends FencelockError {}
LockTimeout.code = 'TIMEOUT';
/** The worker restarted after a crash and grants nothing until its restart grace ends (`msLeft`). */
export class NotReady extends FencelockError {}
NotReady.code = 'NOTREADY';
/** A configured limit (waiters, locks, holders, connections) was reached. */
export class LimitReached extends FencelockError {}
LimitReached.code = 'LIMIT';
/** The token sequence reached 2^53-1. */
export class TokensExhausted extends FencelockError {}
TokensExhausted.code = 'EXHAUSTED';
/** The request was malformed: names, numbers, TTL bounds. */
export class BadRequest extends FencelockError {}
BadRequest.code = 'ERR';
/** The worker sent bytes that are not RESP, or a reply of the wrong shape. */
export class ProtocolError extends FencelockError {}
ProtocolError.code = 'PROTOCOL';
/** The connection to the worker failed; the request may or may not have been applied. */
export class ConnectionLost extends FencelockError {}
ConnectionLost.code = 'CONNECTION';
/** A bug in fencelock, never the caller's fault. */
export class InternalError extends FencelockError {}
InternalError.code = 'INTERNAL';
/** A lease was lost: expired, stolen, its renewal refused, or its connection (or the worker) gone. */
export class LeaseLost extends FencelockError {
  /** @param {string} [message] @param {{ name?: string, token?: number, reason?: string, cause?: unknown }} [options] */
  constructor(message = '', options = {}) {
    super(message, options);
    this.lockName = options.name ?? '';
    this.token = options.token ?? 0;
    this.reason = options.reason ?? '';
  }
}
LeaseLost.code = 'LOST';

const CLASSES = [
  Locked, Stale, Expired, LockTimeout, NotReady, LimitReached, TokensExhausted, BadRequest,
  ProtocolError, ConnectionLost, InternalError, LeaseLost,
];
const BY_CODE = new Map(CLASSES.map((cls) => [cls.code, cls]));

/**
 * Returns the error for a record of the wasm module (`{ fencelock, code, message, ... }`).
 * @param {any} record
 */
export function fromRecord(record) {
  const cls = BY_CODE.get(record.code) ?? FencelockError;
  return new cls(record.message, { code: record.code, msLeft: record.msLeft, token: record.token, waitedMs: record.waitedMs });
}

/**
 * Returns `thrown` as a `FencelockError` when the wasm module threw a core error; anything
 * else (a `TypeError`, `RangeError` of the glue) is returned as it is.
 * @param {unknown} thrown
 */
export function translate(thrown) {
  if (thrown !== null && typeof thrown === 'object' && /** @type {any} */ (thrown).fencelock === true) {
    return fromRecord(thrown);
  }
  return thrown;
}
