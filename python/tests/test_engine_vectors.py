"""Runs every shared engine scenario (tests/vectors/engine/*.json) through the Python binding.

Format: tests/vectors/README.md. The runner uses the native module directly so that times are
the vectors' own milliseconds; errors still come out as the mapped ``fencelock`` exceptions.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

from fencelock import FencelockError
from fencelock._native import AcquireGranted, NativeEngine


# Tests import no sibling modules (importlib mode), so the path is computed here too.
VECTORS = Path(os.environ.get("FENCELOCK_VECTORS", Path(__file__).resolve().parents[2] / "tests" / "vectors"))
FILES = sorted((VECTORS / "engine").glob("*.json"))


def test_the_vector_set_is_there() -> None:
    assert len(FILES) >= 15, f"expected the shared engine vectors in {VECTORS / 'engine'}"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_engine_vector(path: Path) -> None:
    scenario = json.loads(path.read_text())
    runner = Runner(scenario)
    for index, step in enumerate(scenario["steps"]):
        try:
            runner.step(step)
        except AssertionError as failure:
            raise AssertionError(f"step {index} {json.dumps(step)}: {failure}") from None


class Runner:
    def __init__(self, scenario: Dict[str, Any]) -> None:
        self.config: Dict[str, int] = dict(scenario.get("config") or {})
        # (boot id, system monotonic ms at the scenario's time 0), if the engine has a boot clock.
        boot = scenario.get("boot")
        self.boot: Optional[Tuple[str, int]] = (boot["id"], int(boot["monotonic_ms"])) if boot else None
        self.horizon: Optional[bytes] = None
        start = scenario.get("start") or {}
        if start.get("kind") == "crashed":
            self.persisted = int(start.get("ceiling", 0))
            self.engine = NativeEngine(self.config, "crashed", self.persisted, None, 0, **self.boot_args(0))
        else:
            self.persisted = 0
            self.engine = NativeEngine(self.config, **self.boot_args(0))
        self.highest_token = 0
        self.at = 0

    def boot_args(self, now: int) -> Dict[str, Any]:
        if self.boot is None:
            return {}
        return {"boot_id": self.boot[0], "monotonic_ms": self.boot[1] + now}

    def horizon_json(self) -> Dict[str, Any]:
        if self.horizon is None:
            return {"monotonic_ms": None, "boot_id": None, "ceiling": None}
        stored = json.loads(self.horizon)
        return {key: stored[key] for key in ("monotonic_ms", "boot_id", "ceiling")}

    def see_deadline(self, deadline: int) -> None:
        """A deadline revealed by an engine with a boot clock must be under the persisted horizon."""
        if self.boot is None:
            return
        horizon = self.horizon_json()["monotonic_ms"] or 0
        assert self.boot[1] + deadline <= horizon, f"deadline {deadline} revealed past the persisted horizon {horizon}"

    def step(self, step: Dict[str, Any]) -> None:
        if "at_ms" in step:
            self.at = int(step["at_ms"])
        result = self.execute(step, self.at)
        while (ceiling := self.engine.poll_persist()) is not None:
            assert ceiling >= self.persisted, f"persist request went down: {ceiling} < {self.persisted}"
            self.persisted = ceiling
        while (horizon := self.engine.poll_horizon()) is not None:
            self.horizon = horizon
        if "token" in result:
            self.see_token(result["token"])
            self.see_deadline(result["deadline_ms"])
        if step["op"] == "renew" and "ms_left" in result:
            self.see_deadline(self.at + result["ms_left"])
        events: List[Dict[str, Any]] = []
        while (raw := self.engine.poll_event()) is not None:
            event = event_json(raw)
            if event["type"] == "granted":
                self.see_token(event["token"])
                self.see_deadline(event["deadline_ms"])
            events.append(event)
        assert self.engine.last_token() <= self.persisted, (
            f"token {self.engine.last_token()} revealed above persisted ceiling {self.persisted}"
        )
        broken = self.engine.check_invariants()
        assert broken is None, broken
        if "expect" in step:
            matches(step["expect"], result, "expect")
        if "events" in step:
            matches(step["events"], events, "events")

    def see_token(self, token: int) -> None:
        assert token > self.highest_token, f"I2: token {token} not above earlier {self.highest_token}"
        self.highest_token = token

    def execute(self, step: Dict[str, Any], now: int) -> Dict[str, Any]:
        op = step["op"]
        name = step.get("name", "")
        token = int(step.get("token", 0))
        ttl = int(step.get("ttl_ms", 0))
        engine = self.engine
        try:
            if op == "acquire":
                acquired = engine.acquire(
                    now, name, ttl,
                    shared=step.get("mode") == "shared",
                    wait_ms=int(step.get("wait_ms", 0)),
                    owner=step.get("owner"),
                    steal=bool(step.get("steal", False)),
                    client=int(step.get("client", 0)),
                    ephemeral=bool(step.get("ephemeral", False)),
                    lock_delay_ms=step.get("lock_delay_ms"),
                )
                if isinstance(acquired, AcquireGranted):
                    return {"token": acquired.token, "deadline_ms": acquired.deadline_ms}
                return {"queued": acquired.waiter, "deadline_ms": acquired.deadline_ms}
            if op == "renew":
                return {"ms_left": engine.renew(now, name, token, ttl)}
            if op == "verify":
                return {"ms_left": engine.verify(now, name, token)}
            if op == "release":
                engine.release(now, name, token)
                return {"ok": True}
        except FencelockError as error:
            return {"error": error.code, "message": str(error)}
        if op == "cancel":
            return {"ok": engine.cancel_wait(now, int(step.get("waiter", 0)))}
        if op == "disconnect":
            engine.disconnect(now, int(step.get("client", 0)))
            return {}
        if op == "tick":
            engine.handle_timeout(now)
            return {}
        if op == "next_timeout":
            return {"at_ms": engine.poll_timeout()}
        if op == "query":
            return {"locks": [
                {
                    "name": lock.name,
                    "delay_ms_left": lock.delay_ms_left,
                    "holders": [
                        {"token": h.token, "mode": h.mode, "owner": h.owner, "ms_left": h.ms_left, "client": h.client}
                        for h in lock.holders
                    ],
                    "waiters": [
                        {"waiter": w.waiter, "position": w.position, "mode": w.mode, "owner": w.owner,
                         "client": w.client, "ms_left": w.ms_left}
                        for w in lock.waiters
                    ],
                }
                for lock in engine.query(now, step.get("prefix", ""))
            ]}
        if op == "stats":
            return dict(engine.stats())
        if op == "counts":
            return {"locks": engine.live_locks(), "leases": engine.live_leases(), "waiting": engine.waiting()}
        if op == "ceiling":
            return {"ceiling": self.persisted}
        if op == "grace":
            return {"ms_left": engine.grace_left(now), "case": engine.grace_case()}
        if op == "horizon":
            return self.horizon_json()
        if op == "restart":
            kind = step.get("kind")
            if step.get("no_boot"):
                self.boot = None
            elif "boot" in step:
                # The system clock of that boot reads monotonic_ms now, at this step's time.
                self.boot = (step["boot"]["id"], int(step["boot"]["monotonic_ms"]) - now)
            if kind == "crash":
                self.engine = NativeEngine(
                    self.config, "crashed", self.persisted, None, now, horizon=self.horizon, **self.boot_args(now)
                )
            elif kind == "clean":
                snapshot = bytes(engine.snapshot(now))
                self.engine = NativeEngine(self.config, "clean", self.persisted, snapshot, now, **self.boot_args(now))
            else:
                raise AssertionError(f"unknown restart kind {kind!r}")
            return {}
        raise AssertionError(f"unknown op {op!r}")


def event_json(event: Any) -> Dict[str, Any]:
    fields = {"granted": ("name", "token", "waiter", "client", "deadline_ms"),
              "wait_timed_out": ("name", "waiter", "client", "waited_ms"),
              "expired": ("name", "token", "owner", "client"),
              "stolen": ("name", "token", "owner", "client", "by_token")}[event.kind]
    return {"type": event.kind, **{field: getattr(event, field) for field in fields}}


def matches(expected: Any, actual: Any, path: str) -> None:
    """Partial for objects, exact for arrays and scalars (tests/vectors/README.md)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{path}.{key}: missing in {actual!r}"
            matches(value, actual[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), (
            f"{path}: expected {len(expected)} items, got {actual!r}"
        )
        for index, (want, got) in enumerate(zip(expected, actual)):
            matches(want, got, f"{path}[{index}]")
    else:
        assert type(expected) is type(actual) or (
            isinstance(expected, (int, float)) and isinstance(actual, (int, float))
            and not isinstance(expected, bool) and not isinstance(actual, bool)
        ), f"{path}: expected {expected!r}, got {actual!r}"
        assert expected == actual, f"{path}: expected {expected!r}, got {actual!r}"
