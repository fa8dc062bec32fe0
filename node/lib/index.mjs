// ESM entry: the CommonJS implementation, re-exported by name.
import fencelock from './index.js';

export const {
  Engine, Fence, ManualClock, monotonicClock, MAX_TOKEN, writeAtomic, removeDurable,
  FencelockError, Locked, Stale, Expired, LockTimeout, NotReady, LimitReached, TokensExhausted,
  BadRequest, ProtocolError, ConnectionLost, InternalError, LeaseLost, FenceRejected, DurabilityError,
  AuthRequired, PermissionDenied, AuthFailed,
  connect, Client, Lease, Server, serve,
} = fencelock;
export default fencelock;
