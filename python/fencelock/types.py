"""Plain records shared by the engine wrapper and the clients (times in milliseconds, as reported)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, List, Optional

__all__ = ["HolderInfo", "WaiterInfo", "LockInfo", "Stats", "lock_infos"]


@dataclass(frozen=True)
class HolderInfo:
    """One holder of a lock: its token, ``"exclusive"`` or ``"shared"``, and time left."""

    token: int
    mode: str
    owner: Optional[str]
    ms_left: int
    client: int = 0


@dataclass(frozen=True)
class WaiterInfo:
    """One waiter in a lock's queue; ``position`` counts from 1."""

    waiter: int
    position: int
    mode: str
    owner: Optional[str]
    client: int
    ms_left: int


@dataclass(frozen=True)
class LockInfo:
    """A lock with its holders, waiters and remaining lock-delay."""

    name: str
    holders: List[HolderInfo] = field(default_factory=list)
    waiters: List[WaiterInfo] = field(default_factory=list)
    delay_ms_left: int = 0


@dataclass(frozen=True)
class Stats:
    """Counters of an engine since it started."""

    acquires: int = 0
    grants: int = 0
    grants_after_wait: int = 0
    releases: int = 0
    renewals: int = 0
    expiries: int = 0
    steals: int = 0
    stale_rejections: int = 0
    wait_timeouts: int = 0
    total_wait_ms: int = 0
    horizon_writes: int = 0


def lock_infos(records: Iterable[Any]) -> List[LockInfo]:
    """Builds :class:`LockInfo` values from the native module's ``LockRecord``s (the engine's
    ``query`` and the client's QUERY reply alike)."""
    return [
        LockInfo(
            name=record.name,
            holders=[
                HolderInfo(token=h.token, mode=h.mode, owner=h.owner, ms_left=h.ms_left, client=h.client)
                for h in record.holders
            ],
            waiters=[
                WaiterInfo(
                    waiter=w.waiter, position=w.position, mode=w.mode, owner=w.owner, client=w.client,
                    ms_left=w.ms_left,
                )
                for w in record.waiters
            ],
            delay_ms_left=record.delay_ms_left,
        )
        for record in records
    ]
