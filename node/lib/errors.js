'use strict';
// Every fencelock error, and the one place where the addon's error records become them.
// A record is `{ fencelock: true, code, message, text, msLeft?, token?, waitedMs? }`, built by
// the core from its own error (never parsed back out of text).

/** Base class of every fencelock error; `code` is the stable wire code. */
class FencelockError extends Error {
  /**
   * @param {string} [message] the text after the code
   * @param {{ code?: string, cause?: unknown }} [options]
   */
  constructor(message = '', options = {}) {
    const code = options.code ?? new.target.code ?? 'ERROR';
    super(message ? `${code} ${message}` : code, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    /** The stable code (`LOCKED`, `STALE`, ...). */
    this.code = code;
    /** The human-readable text after the code. */
    this.detail = message;
  }
}
FencelockError.code = 'ERROR';

/** The lock is held (or in lock-delay) and the caller did not wait; `msLeft` says until when. */
class Locked extends FencelockError {}
Locked.code = 'LOCKED';
/** The token is not a live lease of that lock (released, superseded, stolen or unknown). */
class Stale extends FencelockError {}
Stale.code = 'STALE';
/** The token's lease lapsed; a lapsed lease stays lapsed. */
class Expired extends FencelockError {}
Expired.code = 'EXPIRED';
/** The wait ran out before the lock was granted. */
class LockTimeout extends FencelockError {}
LockTimeout.code = 'TIMEOUT';
/** The server restarted after a crash and grants nothing until its restart grace ends (`msLeft`). */
class NotReady extends FencelockError {}
NotReady.code = 'NOTREADY';
/** A configured limit (waiters, locks, holders, connections) was reached. */
class LimitReached extends FencelockError {}
LimitReached.code = 'LIMIT';
/** The token sequence reached 2^53-1; no further token can be issued. */
class TokensExhausted extends FencelockError {}
TokensExhausted.code = 'EXHAUSTED';
/** The request was malformed: names, numbers, TTL bounds or syntax. */
class BadRequest extends FencelockError {}
BadRequest.code = 'ERR';
/** The peer sent bytes that are not RESP, or a reply of the wrong shape. */
class ProtocolError extends FencelockError {}
ProtocolError.code = 'PROTOCOL';
/** The connection to the server failed; the request may or may not have been applied. */
class ConnectionLost extends FencelockError {}
ConnectionLost.code = 'CONNECTION';
/** A bug in fencelock, never the caller's fault. */
class InternalError extends FencelockError {}
InternalError.code = 'INTERNAL';
/** A lease held by `using`/`lock` was lost (expired, stolen, renewal refused or connection gone). */
class LeaseLost extends FencelockError {
  constructor(message = '', options = {}) {
    super(message, options);
    /** The lock. */
    this.lockName = options.name ?? '';
    /** The lost lease's token. */
    this.token = options.token ?? 0;
    /** Why: `lapsed`, `expired`, `stolen`, `connection_closed`, `refused`, `released`. */
    this.reason = options.reason ?? '';
  }
}
LeaseLost.code = 'LOST';
/** A fence refused a token lower than the highest it has accepted for the resource. */
class FenceRejected extends FencelockError {
  constructor(message = '', options = {}) {
    super(message, options);
    this.resource = options.resource ?? '';
    this.token = options.token ?? 0;
    this.highest = options.highest ?? 0;
  }
}
FenceRejected.code = 'FENCED';
/** The server requires authentication: pass `username` and `password` to the client. */
class AuthRequired extends FencelockError {}
AuthRequired.code = 'NOAUTH';
/** The user's rules do not allow the command; the message names the user and the rule. */
class PermissionDenied extends FencelockError {}
PermissionDenied.code = 'NOPERM';
/** Authentication failed: unknown user or wrong password (the server never says which). */
class AuthFailed extends FencelockError {}
AuthFailed.code = 'WRONGPASS';
/** A durable write (temp file, fsync, rename, fsync dir) failed: the state on disk is unknown. */
class DurabilityError extends FencelockError {}
DurabilityError.code = 'DURABILITY';

const CLASSES = [
  Locked, Stale, Expired, LockTimeout, NotReady, LimitReached, TokensExhausted, BadRequest,
  ProtocolError, ConnectionLost, InternalError, LeaseLost, FenceRejected, DurabilityError,
  AuthRequired, PermissionDenied, AuthFailed,
];
const BY_CODE = new Map(CLASSES.map((cls) => [cls.code, cls]));
BY_CODE.set('BADREQ', BadRequest);

/** Returns the error for an addon error record. */
function fromRecord(record) {
  const cls = BY_CODE.get(record.code) ?? FencelockError;
  const error = new cls(record.message, { code: record.code });
  if (record.msLeft !== undefined && record.msLeft !== null) error.msLeft = record.msLeft;
  if (record.token !== undefined && record.token !== null) error.token = record.token;
  if (record.waitedMs !== undefined && record.waitedMs !== null) error.waitedMs = record.waitedMs;
  return error;
}

/** Whether `value` is an error record the addon threw or returned. */
function isRecord(value) {
  return value !== null && typeof value === 'object' && value.fencelock === true && typeof value.code === 'string';
}

/** Turns whatever the addon threw into what the caller should see. */
function translate(thrown) {
  if (isRecord(thrown)) {
    const error = fromRecord(thrown);
    Error.captureStackTrace?.(error, translate);
    return error;
  }
  // napi argument errors ("InvalidArg"): a wrong type or range from the caller.
  if (thrown instanceof Error && thrown.code === 'InvalidArg') {
    return new RangeError(thrown.message);
  }
  return thrown;
}

module.exports = {
  FencelockError,
  AuthRequired,
  PermissionDenied,
  AuthFailed,
  Locked,
  Stale,
  Expired,
  LockTimeout,
  NotReady,
  LimitReached,
  TokensExhausted,
  BadRequest,
  ProtocolError,
  ConnectionLost,
  InternalError,
  LeaseLost,
  FenceRejected,
  DurabilityError,
  fromRecord,
  translate,
};
