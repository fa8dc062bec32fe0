"""fencelock.Engine in process: seconds, an injected clock, mapped errors."""

from __future__ import annotations

import pytest

import fencelock
from fencelock.engine import Granted, ManualClock, Queued


def test_acquire_release_and_stale_tokens() -> None:
    engine = fencelock.Engine(clock=ManualClock())
    first = engine.acquire("orders", 1.0)
    assert isinstance(first, Granted) and first.token == 1 and first.expires_at == 1.0
    with pytest.raises(fencelock.Locked) as held:
        engine.acquire("orders", 1.0)
    assert held.value.ms_left == 1000
    engine.release("orders", first.token)
    with pytest.raises(fencelock.Stale):
        engine.release("orders", first.token)
    second = engine.acquire("orders", 1.0)
    assert isinstance(second, Granted) and second.token > first.token


def test_expiry_on_the_injected_clock() -> None:
    clock = ManualClock()
    engine = fencelock.Engine(clock=clock)
    lease = engine.acquire("a", 0.5, owner="w1")
    assert isinstance(lease, Granted)
    assert engine.verify("a", lease.token) == 0.5
    clock.advance(0.2)
    assert engine.renew("a", lease.token, 0.5) == 0.5
    assert engine.poll_timeout() == pytest.approx(0.7)
    clock.advance(0.7)
    engine.handle_timeout()
    events = list(engine.events())
    assert [(e.kind, e.name, e.token, e.owner) for e in events] == [("expired", "a", lease.token, "w1")]
    with pytest.raises(fencelock.Expired):
        engine.renew("a", lease.token, 0.5)


def test_waiters_are_granted_in_order() -> None:
    clock = ManualClock()
    engine = fencelock.Engine(clock=clock)
    holder = engine.acquire("q", 1.0)
    waiting = engine.acquire("q", 1.0, wait=5.0, client=7)
    assert isinstance(holder, Granted) and isinstance(waiting, Queued)
    (lock,) = engine.query("q")
    assert [w.position for w in lock.waiters] == [1] and lock.waiters[0].client == 7
    engine.release("q", holder.token)
    (event,) = list(engine.events())
    assert event.kind == "granted" and event.waiter == waiting.waiter and event.token == holder.token + 1
    engine.check_invariants()


def test_tokens_survive_a_crash_and_a_clean_restart() -> None:
    engine = fencelock.Engine(clock=ManualClock(), token_block=10)
    first = engine.acquire("a", 1.0)
    ceiling = engine.poll_persist()
    assert isinstance(first, Granted) and ceiling is not None and ceiling >= first.token
    crashed = fencelock.Engine(clock=ManualClock(), start="crashed", ceiling=ceiling, max_ttl=1.0, max_lock_delay=0.5)
    # The longest lease, then the longest lock-delay an acquire may have asked for.
    assert crashed.grace_left() == 1.5
    with pytest.raises(fencelock.NotReady):
        crashed.acquire("b", 1.0)
    clean = fencelock.Engine(clock=ManualClock(), start="clean", ceiling=ceiling, snapshot=engine.snapshot())
    with pytest.raises(fencelock.Locked):
        clean.acquire("a", 1.0)
    later = clean.acquire("b", 1.0)
    assert isinstance(later, Granted) and later.token > first.token


def test_bad_requests_are_bad_request() -> None:
    engine = fencelock.Engine(max_ttl=1.0)
    with pytest.raises(fencelock.BadRequest):
        engine.acquire("a", 2.0)
    with pytest.raises(fencelock.BadRequest):
        engine.acquire("", 1.0)
    with pytest.raises(fencelock.BadRequest):
        fencelock.Engine(no_such_setting=1)
    with pytest.raises(fencelock.BadRequest):
        fencelock.Engine(start="clean", snapshot=b"not json")
    with pytest.raises(ValueError):
        engine.acquire("a", -1.0)


def test_stats_and_counts() -> None:
    engine = fencelock.Engine()
    lease = engine.acquire("a", 10.0)
    assert isinstance(lease, Granted)
    engine.release("a", lease.token)
    stats = engine.stats()
    assert (stats.acquires, stats.grants, stats.releases) == (1, 1, 1)
    assert engine.live_leases() == 0 and engine.config["max_ttl_ms"] == 300_000
