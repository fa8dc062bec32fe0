"""The sequential specifications the safety run's histories are checked against.

Two objects per lock name, checked separately (by locality that is the same as checking them
together, since neither model reads the other's state):

- the lease: ``acquire(ttl) -> ok token | fail code | unknown`` and
  ``release(token) -> ok | fail code | unknown``, with expiry by time;
- the fence register in PostgreSQL: ``write(token) -> accepted | refused | unknown``.

Times are client-side CLOCK_MONOTONIC milliseconds (the server runs on the same machine and
clock). A server grant happens somewhere between the acquire's invoke and return, so a lease of
``ttl`` ms granted by an operation [inv, ret] is live at least until ``inv + ttl`` and at most
until ``ret + ttl``. The models only use bounds that hold for every possible grant instant, so
they may accept a wrong history but never reject a right one. ``MARGIN_MS`` covers the server
truncating its clock to whole milliseconds.
"""

from __future__ import annotations

from typing import Hashable, List, Optional, Tuple

from linearizability import Model, Operation

__all__ = ["MARGIN_MS", "UNKNOWN_TOKEN", "LEASE_MODEL", "FENCE_MODEL", "acquire", "release", "set_linger", "write"]

MARGIN_MS = 3.0
#: How much longer than its TTL a lease may stay live on the server: 0 for one server; a
#: cluster's failover stops engine time for the gap, lengthening leases by at most that much.
#: It widens only the upper bound (what LOCKED and a successful release may see), never the
#: lower one that decides whether a grant was allowed.
_LINGER_MS = [0.0]


def set_linger(ms: float) -> None:
    """Sets how long past its TTL a lease may stay live (see ``_LINGER_MS``)."""
    _LINGER_MS[0] = float(ms)
UNKNOWN_TOKEN = -1  # a lease granted to an acquire whose reply never came: nobody knows its token

# Lease state: (holder token | UNKNOWN_TOKEN | None, live at least until, live at most until,
# highest token granted on this lock so far).
LeaseState = Tuple[Optional[int], float, float, int]


def acquire(client: str, invoke: float, ret: float, ttl_ms: float, output: Optional[Tuple] = None, **meta) -> Operation:
    """An acquire: output ("ok", token), ("fail", code) or None (unknown)."""
    return Operation(client, invoke, ret, ("acquire", ttl_ms), output, meta)


def release(client: str, invoke: float, ret: float, token: int, output: Optional[Tuple] = None, **meta) -> Operation:
    """A release: output ("ok",), ("fail", code) or None (unknown)."""
    return Operation(client, invoke, ret, ("release", token), output, meta)


def write(client: str, invoke: float, ret: float, token: int, output: Optional[str] = None, **meta) -> Operation:
    """A fenced write: output "accepted", "refused" or None (unknown)."""
    return Operation(client, invoke, ret, ("write", token), output, meta)


def _lease_init() -> LeaseState:
    return (None, 0.0, 0.0, 0)


def _lease_step(state: Hashable, operation: Operation) -> List[Hashable]:
    holder, live_until_min, live_until_max, last_token = state  # type: ignore[misc]
    kind, argument = operation.input
    output = operation.output
    if kind == "acquire":
        ttl = argument
        # The holder's lease may have lapsed by the latest instant this acquire can take effect.
        free = holder is None or operation.ret >= live_until_min
        granted_bounds = (operation.invoke + ttl - MARGIN_MS, operation.ret + ttl + MARGIN_MS + _LINGER_MS[0])
        if output is None:
            states: List[Hashable] = [state]
            if free:
                states.append((UNKNOWN_TOKEN, *granted_bounds, last_token))
            return states
        if output[0] == "ok":
            token = output[1]
            if free and token > last_token:
                return [(token, *granted_bounds, token)]
            return []
        if output[1] == "LOCKED":
            # Only a lease that may still be live can make the lock answer LOCKED.
            return [state] if holder is not None and operation.invoke <= live_until_max else []
        # NOTREADY (restart grace), TIMEOUT (WAIT ran out), anything else: no effect.
        return [state]
    if kind == "release":
        token = argument
        live = holder == token and operation.invoke <= live_until_max
        released: LeaseState = (None, 0.0, 0.0, last_token)
        if output is None:
            return [state, released] if live else [state]
        if output[0] == "ok":
            return [released] if live else []
        # STALE or EXPIRED: the lease lapsed, or the server restarted and forgot it (its restart
        # grace still keeps the lock closed until the lease would have lapsed): no change.
        return [state]
    return []


def _fence_init() -> int:
    return 0


def _fence_step(state: Hashable, operation: Operation) -> List[Hashable]:
    highest = state
    _, token = operation.input
    accepts = token >= highest  # type: ignore[operator]
    if operation.output is None:
        return [state, token] if accepts else [state]
    if operation.output == "accepted":
        return [token] if accepts else []
    return [state] if not accepts else []


def _describe(operation: Operation) -> str:
    kind, argument = operation.input
    what = f"{kind}({'ttl=%g' % argument if kind == 'acquire' else 'token=%s' % argument})"
    outcome = "unknown" if operation.output is None else " ".join(str(part) for part in (operation.output if isinstance(operation.output, tuple) else (operation.output,)))
    return f"{operation.client:>6} [{operation.invoke:12.3f} .. {operation.ret:12.3f}] {what} -> {outcome}"


LEASE_MODEL = Model(init=_lease_init, step=_lease_step, describe=_describe)
FENCE_MODEL = Model(init=_fence_init, step=_fence_step, describe=_describe)
