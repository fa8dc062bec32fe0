"""Request building and reply reading shared by the sync and async clients (no I/O here)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
import time
from typing import Any, Dict, List, Optional, Protocol, Union

from .errors import BadRequest, FencelockError, error_from_text
from .resp import ErrorReply, ProtocolError, decode_text
from .types import HolderInfo, LockInfo, WaiterInfo

Arg = Union[str, bytes, int]

log = logging.getLogger("fencelock.client")

# Commands that change nothing, or whose repetition cannot harm (RENEW only extends the named
# lease; RELEASE of an already released token answers STALE, which still means "not held").
RETRYABLE = frozenset({"RENEW", "RELEASE", "VERIFY", "QUERY", "INFO", "PING"})


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


def acquire_args(
    name: str,
    ttl: float,
    wait: Optional[float],
    shared: bool,
    steal: bool,
    owner: Optional[str],
    ephemeral: bool,
) -> List[Arg]:
    """Builds ``ACQUIRE name ttl_ms [WAIT ms] [SHARED] [STEAL] [OWNER label] [EPHEMERAL]``."""
    args: List[Arg] = ["ACQUIRE", check_name(name), to_ms(ttl, "ttl")]
    if wait:
        args += ["WAIT", to_ms(wait, "wait", allow_zero=True)]
    if shared:
        args.append("SHARED")
    if steal:
        args.append("STEAL")
    if owner is not None:
        args += ["OWNER", owner]
    if ephemeral:
        args.append("EPHEMERAL")
    return args


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


def raise_for_error(reply: Any) -> Any:
    """Raises the mapped exception for an error reply, else returns the reply."""
    if isinstance(reply, ErrorReply):
        raise error_from_text(reply.text)
    return reply


def read_int(reply: Any, command: str) -> int:
    reply = raise_for_error(reply)
    if isinstance(reply, bool) or not isinstance(reply, int):
        if isinstance(reply, (bytes, str)):
            try:
                return int(reply)
            except ValueError:
                pass
        raise ProtocolError(f"{command}: expected an integer reply, got {reply!r}")
    return reply


def read_ok(reply: Any, command: str) -> None:
    reply = raise_for_error(reply)
    if reply not in ("OK", b"OK", True):
        raise ProtocolError(f"{command}: expected OK, got {reply!r}")


def read_info(reply: Any) -> Dict[str, Union[str, int, float]]:
    """Parses Redis-INFO-style ``key:value`` lines into a flat dict (numbers converted)."""
    text = decode_text(raise_for_error(reply))
    if isinstance(text, dict):
        return {str(k): _number(v) if isinstance(v, str) else v for k, v in text.items()}
    if not isinstance(text, str):
        raise ProtocolError(f"INFO: expected text, got {text!r}")
    facts: Dict[str, Union[str, int, float]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if sep:
            facts[key] = _number(value)
    return facts


def _number(value: str) -> Union[str, int, float]:
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


def read_query(reply: Any) -> List[LockInfo]:
    """Parses a QUERY reply into :class:`LockInfo` records.

    Each lock is a flat field/value list (or a RESP3 map): ``name``, ``holders``, ``waiters``,
    ``delay_ms_left``; holders and waiters are field/value lists as well.
    """
    reply = decode_text(raise_for_error(reply))
    if not isinstance(reply, list):
        raise ProtocolError(f"QUERY: expected an array, got {reply!r}")
    return [_lock_info(_fields(item)) for item in reply]


def _fields(item: Any) -> Dict[str, Any]:
    if isinstance(item, dict):
        return {str(k): v for k, v in item.items()}
    if isinstance(item, list) and len(item) % 2 == 0:
        return {str(item[i]): item[i + 1] for i in range(0, len(item), 2)}
    raise ProtocolError(f"QUERY: expected field/value pairs, got {item!r}")


def _opt_str(value: Any) -> Optional[str]:
    return None if value in (None, "") else str(value)


def _lock_info(fields: Dict[str, Any]) -> LockInfo:
    holders = [
        HolderInfo(
            token=int(h["token"]),
            mode=str(h.get("mode", "exclusive")).lower(),
            owner=_opt_str(h.get("owner")),
            ms_left=int(h.get("ms_left", 0)),
            client=int(h.get("client", 0)),
        )
        for h in map(_fields, fields.get("holders") or [])
    ]
    waiters = [
        WaiterInfo(
            waiter=int(w.get("waiter", 0)),
            position=int(w.get("position", 0)),
            mode=str(w.get("mode", "exclusive")).lower(),
            owner=_opt_str(w.get("owner")),
            client=int(w.get("client", 0)),
            ms_left=int(w.get("ms_left", 0)),
        )
        for w in map(_fields, fields.get("waiters") or [])
    ]
    return LockInfo(
        name=str(fields.get("name", "")),
        holders=holders,
        waiters=waiters,
        delay_ms_left=int(fields.get("delay_ms_left", 0) or 0),
    )


def is_gone(error: FencelockError) -> bool:
    """Tells whether an error means "this token holds nothing" (so a retried RELEASE succeeded)."""
    return error.code in ("STALE", "EXPIRED")


__all__ = [
    "RETRYABLE",
    "to_ms",
    "acquire_args",
    "check_token",
    "raise_for_error",
    "read_int",
    "read_ok",
    "read_info",
    "read_query",
    "is_gone",
    "BadRequest",
]


# ---- rules of ``client.lock(...)`` shared by the sync and async contexts ----


@dataclass(frozen=True)
class LockRequest:
    """What ``client.lock(...)`` was asked for; both context managers acquire with it."""

    name: str
    ttl: float
    wait: Optional[float]
    shared: bool
    steal: bool
    owner: Optional[str]
    ephemeral: bool
    auto_renew: bool

    def acquire_options(self) -> Dict[str, Any]:
        """Keyword arguments of ``acquire`` after the name and TTL."""
        return {
            "wait": self.wait, "shared": self.shared, "steal": self.steal,
            "owner": self.owner, "ephemeral": self.ephemeral,
        }


class RenewSchedule:
    """When to renew a lease and what a failed renewal means; the loops only wait and send.

    Renewals happen every ttl/3. A refused renewal loses the lease. A lost connection is retried
    sooner while the lease may still be live, and loses it once its conservative deadline passed.
    """

    def __init__(self, lease: "LeaseLike") -> None:
        self.lease = lease
        self.interval = lease.ttl / 3.0
        self.next_at = time.monotonic() + self.interval

    def delay(self) -> float:
        """Seconds until the next renewal is due."""
        return max(0.0, self.next_at - time.monotonic())

    def renewed(self, sent: float, seconds_left: float) -> None:
        """Records a renewal sent at ``sent`` that left the lease ``seconds_left``."""
        self.lease.expires_at = sent + seconds_left
        self.next_at = sent + self.interval

    def connection_lost(self, error: Exception) -> bool:
        """Schedules a retry and returns True, or marks the lease lost and returns False."""
        now = time.monotonic()
        if now >= self.lease.expires_at:
            self.lease.mark_lost(f"renewal impossible until the lease lapsed: {error}")
            return False
        # Retry sooner than usual: the lease is running out while the server is away.
        self.next_at = now + max(0.05, min(self.interval, (self.lease.expires_at - now) / 4))
        return True

    def refused(self, error: Exception) -> None:
        self.lease.mark_lost(f"renewal refused: {error}")


def release_failed(lease: "LeaseLike", error: FencelockError) -> None:
    """A release that failed: STALE/EXPIRED mean the lease was already gone (lost); anything
    else leaves it held until its TTL, which delays others but harms nothing."""
    if is_gone(error):
        lease.mark_lost(f"release failed: {error}")
    else:
        log.warning("could not release %r token %d: %s", lease.name, lease.token, error)


class LeaseLike(Protocol):
    name: str
    token: int
    ttl: float
    expires_at: float

    def mark_lost(self, reason: str) -> None: ...
