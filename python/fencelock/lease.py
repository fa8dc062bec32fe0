"""Leases as the clients hand them out, and the registry that marks them lost when the core
client says so."""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Tuple

from .errors import LeaseLost

__all__ = ["Lease", "LeaseEvent", "LeaseRegistry"]


@dataclass(eq=False)
class Lease:
    """A granted lease: pass ``token`` to the protected resource with every write.

    ``expires_at`` is a conservative estimate on this process's monotonic clock (measured from
    when the request was sent), so the server's lease never ends before it. Renewals move it.
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
    _status: Optional[Callable[["Lease"], Optional[float]]] = field(default=None, repr=False)

    @property
    def time_left(self) -> float:
        """Seconds left by the local conservative estimate (0 once lost or lapsed)."""
        if self.lost:
            return 0.0
        if self._status is not None:
            deadline = self._status(self)
            if deadline is not None:
                self.expires_at = deadline
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
    """Live leases of one client, so that the core client's events reach the right lease."""

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

    def handle_event(self, event: Tuple[Any, ...]) -> None:
        """Applies ``("lease_lost", name, token, kind, text, by_token, refusal)`` or
        ``("notice", kind, name, token, by_token)`` from the native client."""
        if event[0] == "lease_lost":
            name, token, text = event[1], event[2], event[4]
            with self._lock:
                lease = self._leases.pop((name, token), None)
            if lease is not None:
                lease.mark_lost(text)
        elif event[0] == "notice" and self.on_event is not None:
            _, kind, name, token, by_token = event
            raw: List[Any] = [kind, name, token] + ([by_token] if by_token is not None else [])
            self.on_event(LeaseEvent(kind=kind, name=name, token=token, raw=raw, by_token=by_token))
