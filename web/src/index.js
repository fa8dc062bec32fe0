// fencelock-web: locks with fencing tokens for the tabs of an origin. `connect()` reaches the
// fencelock worker (a SharedWorker, started on first use) and returns a Web-Locks-shaped
// client; `Fence` and `fencedWrite` guard the resource.

export { connect, Locks, DEFAULT_TTL_MS } from './client.js';
export { Lease } from './lease.js';
export { Fence, fencedWrite } from './fence.js';
export {
  FencelockError, Locked, Stale, Expired, LockTimeout, NotReady, LimitReached, TokensExhausted,
  BadRequest, ProtocolError, ConnectionLost, InternalError, LeaseLost,
} from './errors.js';
export { constants } from './wasm.js';
