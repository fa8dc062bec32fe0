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
