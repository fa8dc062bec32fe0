"""The lock engine in process: the native core with seconds, a clock, and Python records.

The core never reads a clock; this wrapper reads one (``time.monotonic`` unless another is
injected) and passes milliseconds in. With :class:`ManualClock` tests run on simulated time.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Union

from . import _native
from .types import LockInfo, Stats, lock_infos

__all__ = ["Engine", "ManualClock", "Granted", "Queued", "Event", "MAX_TOKEN"]

MAX_TOKEN: int = _native.MAX_TOKEN
Clock = Callable[[], float]


class ManualClock:
    """A clock that moves only when told to (seconds); call it to read it."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Moves the clock forward and returns the new reading."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, seconds: float) -> None:
        """Sets the reading unless that would move it backwards."""
        with self._lock:
            self._now = max(self._now, float(seconds))


@dataclass(frozen=True)
class Granted:
    """An acquire that holds the lock now; ``expires_at`` is a reading of the engine's clock."""

    name: str
    token: int
    expires_at: float


@dataclass(frozen=True)
class Queued:
    """An acquire that waits; an ``Event`` of kind ``granted`` or ``wait_timed_out`` follows."""

    name: str
    waiter: int
    wait_deadline: float


@dataclass(frozen=True)
class Event:
    """Something to deliver: kind is ``granted``, ``wait_timed_out``, ``expired`` or ``stolen``."""

    kind: str
    name: str
    token: Optional[int] = None
    waiter: Optional[int] = None
    client: int = 0
    owner: Optional[str] = None
    expires_at: Optional[float] = None
    waited: Optional[float] = None
    by_token: Optional[int] = None


class Engine:
    """The fencelock state machine, in process and thread-safe. Durations are seconds.

    ``start`` is ``"fresh"``, ``"crashed"`` (resume tokens above ``ceiling`` and grant nothing
    for a restart grace) or ``"clean"`` (restore ``snapshot`` bytes from :meth:`snapshot`).
    After each call, take :meth:`poll_persist` and make it durable before acting on the result
    if tokens must survive a crash, then deliver :meth:`poll_event` events.
    """

    def __init__(
        self,
        *,
        clock: Optional[Clock] = None,
        max_ttl: Optional[float] = None,
        max_wait: Optional[float] = None,
        lock_delay: Optional[float] = None,
        max_lock_delay: Optional[float] = None,
        start: str = "fresh",
        ceiling: int = 0,
        snapshot: Optional[bytes] = None,
        **limits: int,
    ) -> None:
        """Creates an engine; ``limits`` are the core's count settings (``max_locks=...``)."""
        self._clock: Clock = clock or time.monotonic
        self._origin = self._clock()
        config: Dict[str, int] = dict(limits)
        for key, seconds in (
            ("max_ttl_ms", max_ttl), ("max_wait_ms", max_wait),
            ("lock_delay_ms", lock_delay), ("max_lock_delay_ms", max_lock_delay),
        ):
            if seconds is not None:
                config[key] = _ms(seconds)
        self._lock = threading.Lock()
        self._native = _native.NativeEngine(config, start, ceiling, snapshot, 0)

    # -- time ------------------------------------------------------------------------------

    def now_ms(self) -> int:
        """Returns the engine's current time in ms (0 at construction)."""
        return max(0, int((self._clock() - self._origin) * 1000))

    def _at(self, ms: int) -> float:
        return self._origin + ms / 1000.0

    # -- operations ------------------------------------------------------------------------

    def acquire(
        self,
        name: str,
        ttl: float,
        *,
        wait: Optional[float] = None,
        shared: bool = False,
        steal: bool = False,
        owner: Optional[str] = None,
        client: int = 0,
        ephemeral: bool = False,
        lock_delay: Optional[float] = None,
    ) -> Union[Granted, Queued]:
        """Acquires ``name`` for ``ttl`` seconds, or queues when ``wait`` is given and it is held.

        Raises:
            Locked, NotReady, LimitReached, TokensExhausted, BadRequest.
        """
        with self._lock:
            acquired = self._native.acquire(
                self.now_ms(), name, _ms(ttl),
                shared=shared, wait_ms=_ms(wait) if wait else 0, owner=owner, steal=steal,
                client=client, ephemeral=ephemeral,
                lock_delay_ms=None if lock_delay is None else _ms(lock_delay),
            )
        if isinstance(acquired, _native.AcquireGranted):
            return Granted(name, acquired.token, self._at(acquired.deadline_ms))
        return Queued(name, acquired.waiter, self._at(acquired.deadline_ms))

    def renew(self, name: str, token: int, ttl: float) -> float:
        """Extends the lease ``(name, token)`` to ``ttl`` seconds from now; returns seconds left."""
        with self._lock:
            return self._native.renew(self.now_ms(), name, token, _ms(ttl)) / 1000.0

    def release(self, name: str, token: int) -> None:
        """Releases the lease ``(name, token)``; raises Stale or Expired if it is not live."""
        with self._lock:
            self._native.release(self.now_ms(), name, token)

    def verify(self, name: str, token: int) -> float:
        """Returns seconds left on the lease ``(name, token)``; raises Stale or Expired."""
        with self._lock:
            return self._native.verify(self.now_ms(), name, token) / 1000.0

    def cancel_wait(self, waiter: int) -> bool:
        """Withdraws a queued acquire; returns whether it was still waiting."""
        with self._lock:
            return bool(self._native.cancel_wait(self.now_ms(), waiter))

    def disconnect(self, client: int) -> None:
        """Drops the client's waits and its EPHEMERAL leases."""
        with self._lock:
            self._native.disconnect(self.now_ms(), client)

    def handle_timeout(self) -> None:
        """Does whatever is due now (expiries, wait timeouts); harmless when nothing is."""
        with self._lock:
            self._native.handle_timeout(self.now_ms())

    def poll_timeout(self) -> Optional[float]:
        """Returns the clock reading of the next deadline, or None."""
        with self._lock:
            deadline = self._native.poll_timeout()
        return None if deadline is None else self._at(deadline)

    def poll_event(self) -> Optional[Event]:
        """Returns the next event to deliver, or None."""
        with self._lock:
            raw = self._native.poll_event()
        return None if raw is None else self._event(raw)

    def events(self) -> Iterator[Event]:
        """Yields every pending event."""
        while True:
            event = self.poll_event()
            if event is None:
                return
            yield event

    def poll_persist(self) -> Optional[int]:
        """Returns a raised token ceiling to make durable before delivering results, or None."""
        with self._lock:
            return self._native.poll_persist()

    def query(self, prefix: str = "") -> List[LockInfo]:
        """Returns locks whose name starts with ``prefix``, sorted by name."""
        with self._lock:
            records = self._native.query(self.now_ms(), prefix)
        return lock_infos(records)

    def stats(self) -> Stats:
        """Returns the counters since start."""
        with self._lock:
            return Stats(**self._native.stats())

    def snapshot(self) -> bytes:
        """Returns the clean-shutdown snapshot (restore it with ``Engine(start="clean", ...)``)."""
        with self._lock:
            return bytes(self._native.snapshot(self.now_ms()))

    def grace_left(self) -> float:
        """Returns seconds of restart grace left (0 when grants are allowed)."""
        with self._lock:
            return self._native.grace_left(self.now_ms()) / 1000.0

    @property
    def last_token(self) -> int:
        """The highest token issued so far (0 if none)."""
        return int(self._native.last_token())

    @property
    def token_ceiling(self) -> int:
        """The highest token covered by a ceiling handed out for persisting."""
        return int(self._native.token_ceiling())

    @property
    def config(self) -> Dict[str, int]:
        """The core configuration (milliseconds and counts)."""
        return dict(self._native.config())

    def live_locks(self) -> int:
        return int(self._native.live_locks())

    def live_leases(self) -> int:
        return int(self._native.live_leases())

    def waiting(self) -> int:
        return int(self._native.waiting())

    def check_invariants(self) -> None:
        """Raises AssertionError if an engine invariant (I1-I5) is broken."""
        with self._lock:
            broken = self._native.check_invariants()
        if broken is not None:
            raise AssertionError(broken)

    def _event(self, raw: _native._Event) -> Event:
        if isinstance(raw, _native.GrantedEvent):
            return Event(
                raw.kind, raw.name, token=raw.token, waiter=raw.waiter, client=raw.client,
                expires_at=self._at(raw.deadline_ms),
            )
        if isinstance(raw, _native.WaitTimedOutEvent):
            return Event(raw.kind, raw.name, waiter=raw.waiter, client=raw.client, waited=raw.waited_ms / 1000.0)
        if isinstance(raw, _native.ExpiredEvent):
            return Event(raw.kind, raw.name, token=raw.token, owner=raw.owner, client=raw.client)
        return Event(raw.kind, raw.name, token=raw.token, owner=raw.owner, client=raw.client, by_token=raw.by_token)


def _ms(seconds: float) -> int:
    """Seconds to whole milliseconds, rounding up so a lease is never shorter than asked."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"expected seconds as a number, got {type(seconds).__name__}")
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise ValueError(f"expected a finite number of seconds >= 0, got {seconds!r}")
    return int(math.ceil(seconds * 1000 - 1e-9))
