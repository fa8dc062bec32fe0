"""Leases as the clients hand them out, and the bookkeeping that marks them lost."""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from .errors import LeaseLost
from .resp import Push

__all__ = ["Lease", "LeaseEvent", "LeaseRegistry"]


@dataclass(eq=False)
class Lease:
    """A granted lease: pass ``token`` to the protected resource with every write.

    ``expires_at`` is a conservative estimate on this process's monotonic clock (measured from
    when the request was sent), so the server's lease never ends before it.
    """

    name: str
    token: int
    ttl: float
    shared: bool = False
    owner: Optional[str] = None
    ephemeral: bool = False
    expires_at: float = 0.0
    lost: bool = False
    lost_reason: Optional[str] = None
    _lost_event: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def time_left(self) -> float:
        """Seconds left by the local conservative estimate (0 once lost or lapsed)."""
        if self.lost:
            return 0.0
        return max(0.0, self.expires_at - time.monotonic())

    def mark_lost(self, reason: str) -> None:
        """Records that the lease is gone; the first reason wins."""
        if not self.lost:
            self.lost = True
            self.lost_reason = reason
            self._lost_event.set()

    def wait_lost(self, timeout: Optional[float] = None) -> bool:
        """Blocks until the lease is marked lost or ``timeout`` passes; returns ``lost``."""
        return self._lost_event.wait(timeout)

    def raise_if_lost(self) -> None:
        """Raises :class:`LeaseLost` if the lease was lost."""
        if self.lost:
            raise LeaseLost(
                f"lease on {self.name!r} (token {self.token}) was lost: {self.lost_reason}",
                name=self.name,
                token=self.token,
            )


@dataclass(frozen=True)
class LeaseEvent:
    """A RESP3 push from the server about a lease of this client: ``kind`` is e.g. ``expired``."""

    kind: str
    name: str
    token: int
    raw: List[Any]
    #: For ``stolen``: the token of the lease that took the lock.
    by_token: Optional[int] = None


class LeaseRegistry:
    """Live leases of one client, so that server pushes can mark the right lease lost."""

    def __init__(self, on_event: Optional[Callable[[LeaseEvent], None]] = None) -> None:
        self._leases: "weakref.WeakValueDictionary[Tuple[str, int], Lease]" = weakref.WeakValueDictionary()
        self._lock = threading.Lock()
        self.on_event = on_event

    def add(self, lease: Lease) -> None:
        with self._lock:
            self._leases[(lease.name, lease.token)] = lease

    def discard(self, lease: Lease) -> None:
        with self._lock:
            self._leases.pop((lease.name, lease.token), None)

    def handle_push(self, push: Push) -> None:
        """Marks the lease named by a lease push lost and tells the ``on_event`` callback."""
        event = parse_lease_push(push)
        if event is None:
            return
        with self._lock:
            lease = self._leases.get((event.name, event.token))
        if lease is not None:
            taken = f" by token {event.by_token}" if event.by_token is not None else ""
            lease.mark_lost(f"server push: {event.kind}{taken}")
        if self.on_event is not None:
            self.on_event(event)


def parse_lease_push(push: Push) -> Optional[LeaseEvent]:
    """Reads ``[fencelock, kind, name, token, ...]`` (or ``[kind, name, token, ...]``) pushes."""
    items = [item.decode("utf-8", "replace") if isinstance(item, bytes) else item for item in push.items]
    if items and isinstance(items[0], str) and items[0].lower() == "fencelock":
        items = items[1:]
    if len(items) < 3 or not isinstance(items[0], str) or not isinstance(items[1], str):
        return None
    try:
        token = int(items[2])
    except (TypeError, ValueError):
        return None
    by_token: Optional[int] = None
    if len(items) > 3 and isinstance(items[3], int):
        by_token = items[3]
    return LeaseEvent(kind=items[0].lower(), name=items[1], token=token, raw=list(push.items), by_token=by_token)
