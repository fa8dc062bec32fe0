"""fencelock: a lock service with fencing tokens.

A client takes a lease on a named lock and gets a fencing token larger than every token issued
before it; the protected resource (see :class:`Fence`) refuses anything older, so a client
paused past its lease can no longer do harm. Durations in this package are seconds (floats).

- :class:`Client` / :class:`AsyncClient`: talk to a ``fencelock serve`` (or any host) over TCP.
- :class:`Engine`: the same state machine in process (native core, injectable clock).
- :class:`Fence`: the resource side, with an optional durable file of high-water marks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .aio import AsyncClient, AsyncLockContext
from .client import DEFAULT_HOST, DEFAULT_PORT, Client, LockContext
from .errors import (
    BadRequest,
    ConnectionLost,
    Expired,
    FencelockError,
    FenceRejected,
    AuthFailed,
    AuthRequired,
    PermissionDenied,
    LeaseLost,
    LimitReached,
    Locked,
    LockTimeout,
    NotReady,
    ProtocolError,
    Stale,
    TokensExhausted,
)
from .lease import Lease, LeaseEvent
from .types import HolderInfo, LockInfo, Stats, WaiterInfo

if TYPE_CHECKING:
    from .engine import Engine, Event, Granted, Queued
    from .fence import Fence

from ._native import __version__ as __version__  # the Cargo workspace version: one source

__all__ = [
    "AsyncClient",
    "AsyncLockContext",
    "BadRequest",
    "Client",
    "ConnectionLost",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "Engine",
    "Event",
    "Expired",
    "Fence",
    "FenceRejected",
    "AuthFailed",
    "AuthRequired",
    "PermissionDenied",
    "FencelockError",
    "Granted",
    "HolderInfo",
    "Lease",
    "LeaseEvent",
    "LeaseLost",
    "LimitReached",
    "LockContext",
    "LockInfo",
    "LockTimeout",
    "Locked",
    "NotReady",
    "ProtocolError",
    "Queued",
    "Stale",
    "Stats",
    "TokensExhausted",
    "WaiterInfo",
]

_NATIVE_BACKED = {
    "Engine": "engine",
    "Event": "engine",
    "Granted": "engine",
    "Queued": "engine",
    "Fence": "fence",
}


def __getattr__(name: str) -> Any:
    # The native engine loads on first use, so client-only programs start fast.
    module = _NATIVE_BACKED.get(name)
    if module is None:
        raise AttributeError(f"module 'fencelock' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
