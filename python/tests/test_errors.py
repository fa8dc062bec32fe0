"""One exception class per wire code, all under FencelockError, built in one file."""

from __future__ import annotations

import pytest

import fencelock
from fencelock.errors import error_from_code, error_from_text

CODES = {
    "LOCKED": fencelock.Locked,
    "STALE": fencelock.Stale,
    "EXPIRED": fencelock.Expired,
    "TIMEOUT": fencelock.LockTimeout,
    "NOTREADY": fencelock.NotReady,
    "LIMIT": fencelock.LimitReached,
    "EXHAUSTED": fencelock.TokensExhausted,
    "ERR": fencelock.BadRequest,
}


@pytest.mark.parametrize("code,cls", sorted(CODES.items()))
def test_every_code_has_its_class(code: str, cls: type) -> None:
    error = error_from_text(f"{code} something happened")
    assert type(error) is cls
    assert isinstance(error, fencelock.FencelockError)
    assert error.code == code
    assert str(error) == f"{code} something happened"


def test_numbers_in_messages_are_available() -> None:
    assert error_from_text("LOCKED lock is held, free in at most 950 ms").ms_left == 950  # type: ignore[attr-defined]
    assert error_from_code("NOTREADY", "restarting after a crash, 12 ms left").ms_left == 12  # type: ignore[attr-defined]


def test_unknown_codes_keep_their_code() -> None:
    error = error_from_text("WRONGTYPE odd")
    assert type(error) is fencelock.FencelockError and error.code == "WRONGTYPE"


def test_connection_lost_is_also_a_connection_error() -> None:
    assert issubclass(fencelock.ConnectionLost, ConnectionError)
    assert issubclass(fencelock.LeaseLost, fencelock.FencelockError)


def test_core_errors_carry_their_fields_not_parsed_text() -> None:
    engine = fencelock.Engine(clock=fencelock.engine.ManualClock())
    engine.acquire("a", 1.5)
    with pytest.raises(fencelock.Locked) as held:
        engine.acquire("a", 1.0)
    assert held.value.ms_left == 1500
    assert held.value.code == "LOCKED"
    assert str(held.value) == f"LOCKED {held.value.message}"
    crashed = fencelock.Engine(start="crashed", ceiling=10, max_ttl=2.0, max_lock_delay=0.0)
    with pytest.raises(fencelock.NotReady) as waiting:
        crashed.acquire("a", 1.0)
    assert waiting.value.ms_left == 2000


def test_classes_come_from_the_native_module() -> None:
    from fencelock import _native, errors

    for name in errors.__all__:
        if name[0].isupper():
            assert getattr(errors, name) is getattr(_native, name) is getattr(fencelock, name)
    assert issubclass(fencelock.ProtocolError, fencelock.FencelockError)
    assert fencelock.ProtocolError("bad reply").code == "PROTOCOL"
    assert type(error_from_text("PROTOCOL bad")) is fencelock.ProtocolError


def test_connection_lost_is_both_and_keeps_its_text() -> None:
    error = fencelock.ConnectionLost("cannot connect")
    assert isinstance(error, ConnectionError) and isinstance(error, fencelock.FencelockError)
    assert str(error) == "CONNECTION cannot connect" and error.message == "cannot connect"
    with pytest.raises(ConnectionError):
        raise error


def test_extra_attributes_and_unknown_keywords() -> None:
    lost = fencelock.LeaseLost("gone", name="jobs", token=7)
    assert (lost.name, lost.token, lost.code) == ("jobs", 7, "LOST")
    assert fencelock.LeaseLost("x").token == 0
    rejected = fencelock.FenceRejected("old", resource="db", token=3, highest=5)
    assert (rejected.resource, rejected.token, rejected.highest) == ("db", 3, 5)
    with pytest.raises(TypeError):
        fencelock.Stale("x", ms_left=3)  # type: ignore[call-arg]
    other = fencelock.FencelockError("odd", code="WRONGTYPE")
    assert str(other) == "WRONGTYPE odd" and fencelock.FencelockError.code == "ERROR"
    assert str(fencelock.Stale()) == "STALE"
