"""What the sync and async clients share around the native client: argument conversion
(seconds to milliseconds), turning reply payloads into public types, and routing lease events.

No protocol logic lives here: encoding, decoding, retries, renewals and lost-lease rules are
decided by the core client (``fencelock._native.NativeClient``); the clients only do I/O.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ._native import NativeClient
from .errors import FencelockError
from .lease import Lease, LeaseRegistry
from .types import lock_infos as lock_infos

Arg = Union[str, bytes, int, float]


def now_ms() -> int:
    """The host's monotonic clock in whole milliseconds, as the core client counts time."""
    return time.monotonic_ns() // 1_000_000


def native_client(
    endpoints: Union[int, Sequence[Tuple[str, int]]],
    protocol: int,
    timeout: float,
    connect_timeout: float,
    username: Optional[str] = None,
    password: Optional[str] = None,
) -> NativeClient:
    """Creates the core client behind a ``Client`` or an ``AsyncClient``; given the endpoints
    themselves, it can follow a cluster follower's ``-MOVED host:port`` to one of them."""
    if protocol not in (2, 3):
        raise ValueError(f"protocol must be 2 or 3, got {protocol!r}")
    if username is not None and password is None:
        raise ValueError("username= needs password=")
    addresses = None if isinstance(endpoints, int) else [f"{host}:{port}" for host, port in endpoints]
    return NativeClient(
        endpoints=endpoints if isinstance(endpoints, int) else len(endpoints),
        addresses=addresses,
        resp3=protocol == 3,
        request_timeout_ms=to_ms(timeout, "timeout"),
        connect_timeout_ms=to_ms(connect_timeout, "connect_timeout"),
        username=username,
        password=password,
    )


#: Locks per page when iterating (the server caps a page at its max_query_count anyway).
PAGE_SIZE = 500


def to_ms(seconds: float, what: str, *, allow_zero: bool = False) -> int:
    """Converts a duration in seconds to whole milliseconds for the wire, rounding up."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, got {type(seconds).__name__}")
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise ValueError(f"{what} must be a finite number of seconds >= 0, got {seconds!r}")
    ms = math.ceil(seconds * 1000 - 1e-9)
    if ms == 0 and not allow_zero:
        raise ValueError(f"{what} must be at least 1 ms, got {seconds!r} s")
    return int(ms)


def check_name(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"lock name must be str, got {type(name).__name__}")
    return name


def check_token(token: int) -> int:
    if isinstance(token, bool) or not isinstance(token, int):
        raise TypeError(f"token must be int, got {type(token).__name__}")
    if token < 0:
        raise ValueError(f"token must be >= 0, got {token}")
    return token


def argv_bytes(args: Sequence[Arg]) -> List[bytes]:
    """Converts ``execute`` arguments to the byte strings a command is sent as."""
    out: List[bytes] = []
    for arg in args:
        if isinstance(arg, bytes):
            out.append(arg)
        elif isinstance(arg, str):
            out.append(arg.encode("utf-8"))
        elif isinstance(arg, bool):
            raise TypeError("booleans are not command arguments; pass the keyword instead")
        elif isinstance(arg, (int, float)):
            out.append(str(arg).encode("ascii"))
        else:
            raise TypeError(f"cannot send {type(arg).__name__} as a command argument")
    return out


@dataclass(frozen=True)
class AcquireRequest:
    """An acquire as the user asked for it, in the client's units (seconds)."""

    name: str
    ttl: float
    wait: Optional[float] = None
    shared: bool = False
    steal: bool = False
    owner: Optional[str] = None
    ephemeral: bool = False
    lock_delay: Optional[float] = None

    def submit(self, native: Any, now: int) -> int:
        """Queues the ACQUIRE on the native client; returns its request id."""
        return int(
            native.acquire(
                now,
                check_name(self.name),
                to_ms(self.ttl, "ttl"),
                wait_ms=to_ms(self.wait, "wait", allow_zero=True) if self.wait else 0,
                shared=self.shared,
                steal=self.steal,
                owner=self.owner,
                ephemeral=self.ephemeral,
                lock_delay_ms=None if self.lock_delay is None else to_ms(self.lock_delay, "lock_delay", allow_zero=True),
            )
        )

    def lease(self, payload: Tuple[int, int]) -> Lease:
        """Builds the lease from a grant: its token and its local deadline (ms)."""
        token, deadline_ms = payload
        return Lease(
            name=self.name, token=token, ttl=float(self.ttl), shared=self.shared, owner=self.owner,
            ephemeral=self.ephemeral, expires_at=deadline_ms / 1000.0,
        )


@dataclass(frozen=True)
class LockRequest:
    """What ``client.lock(...)`` was asked for; both context managers acquire with it."""

    acquire: AcquireRequest
    auto_renew: bool


def info_dict(entries: List[Tuple[str, str, str]]) -> Dict[str, Union[str, int, float]]:
    """Flattens INFO lines into a dict, numbers converted."""
    return {key: _number(value) for _, key, value in entries}


def _number(value: str) -> Union[str, int, float]:
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


def result(payload: Any) -> Any:
    """Raises the payload if the core client answered with an error, else returns it."""
    if isinstance(payload, FencelockError):
        raise payload
    return payload


def route_events(events: List[Tuple[Any, ...]], leases: LeaseRegistry) -> None:
    """Applies the core client's lease events to the lease objects handed to the user."""
    for event in events:
        leases.handle_event(event)
