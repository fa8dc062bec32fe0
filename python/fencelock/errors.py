"""Every fencelock exception, and the one place where wire/core error codes become classes.

The core and the wire report errors as ``CODE message`` (``LOCKED lock is held, free in at
most 950 ms``). The native module raises ``FencelockError`` subclasses built here, and the
clients turn ``-CODE message`` replies into the same classes, so in-process and remote use
raise identical exceptions.
"""

from __future__ import annotations

import re
from typing import Dict, Optional, Type

__all__ = [
    "FencelockError",
    "Locked",
    "Stale",
    "Expired",
    "LockTimeout",
    "NotReady",
    "LimitReached",
    "TokensExhausted",
    "BadRequest",
    "LeaseLost",
    "ConnectionLost",
    "ProtocolError",
    "FenceRejected",
    "error_from_code",
    "error_from_text",
]


class FencelockError(Exception):
    """Base class of every fencelock error; ``code`` is the stable wire code."""

    code: str = "ERROR"

    def __init__(self, message: str, *, code: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code} {self.message}" if self.message else self.code


class Locked(FencelockError):
    """The lock is held (or in lock-delay) and the caller did not wait."""

    code = "LOCKED"

    @property
    def ms_left(self) -> Optional[int]:
        """Milliseconds until the soonest holder's lease ends, when the server said."""
        return _first_ms(self.message)


class Stale(FencelockError):
    """The token is not a live lease of that lock (released, superseded, stolen or unknown)."""

    code = "STALE"


class Expired(FencelockError):
    """The token's lease lapsed; a lapsed lease stays lapsed."""

    code = "EXPIRED"


class LockTimeout(FencelockError):
    """The wait ran out before the lock was granted."""

    code = "TIMEOUT"


class NotReady(FencelockError):
    """The server restarted after a crash and grants nothing until its restart grace ends."""

    code = "NOTREADY"

    @property
    def ms_left(self) -> Optional[int]:
        """Milliseconds left until grants resume, when the server said."""
        return _first_ms(self.message)


class LimitReached(FencelockError):
    """A configured limit (waiters, locks, holders, connections) was reached."""

    code = "LIMIT"


class TokensExhausted(FencelockError):
    """The token sequence reached 2^53-1; no further token can be issued."""

    code = "EXHAUSTED"


class BadRequest(FencelockError):
    """The request was malformed: names, numbers, TTL bounds or syntax."""

    code = "ERR"


class LeaseLost(FencelockError):
    """A lease held in a ``lock()`` block was lost (expired, stolen, or renewal failed)."""

    code = "LOST"

    def __init__(self, message: str, *, name: str = "", token: int = 0) -> None:
        super().__init__(message)
        self.name = name
        self.token = token


class ConnectionLost(FencelockError, ConnectionError):
    """The connection to the server failed; the request may or may not have been applied."""

    code = "CONNECTION"


class ProtocolError(FencelockError):
    """The server sent bytes that are not RESP, or a reply of the wrong shape."""

    code = "PROTOCOL"


class FenceRejected(FencelockError):
    """A fence refused a token lower than the highest it has accepted for the resource."""

    code = "FENCED"

    def __init__(self, message: str, *, resource: str = "", token: int = 0, highest: int = 0) -> None:
        super().__init__(message)
        self.resource = resource
        self.token = token
        self.highest = highest


_BY_CODE: Dict[str, Type[FencelockError]] = {
    "LOCKED": Locked,
    "STALE": Stale,
    "EXPIRED": Expired,
    "TIMEOUT": LockTimeout,
    "NOTREADY": NotReady,
    "LIMIT": LimitReached,
    "EXHAUSTED": TokensExhausted,
    "ERR": BadRequest,
    "BADREQ": BadRequest,
    "CONNECTION": ConnectionLost,
    "PROTOCOL": ProtocolError,
}


def error_from_code(code: str, message: str) -> FencelockError:
    """Builds the exception for a stable error code; unknown codes keep their code on the base class."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return FencelockError(message, code=code)
    return cls(message)


def error_from_text(text: str) -> FencelockError:
    """Builds the exception for ``CODE message`` text, as a wire error reply or core error reads."""
    code, _, message = text.partition(" ")
    if code.isupper() and code.isalpha():
        return error_from_code(code, message)
    return FencelockError(text)


_MS = re.compile(r"(\d+) ms")


def _first_ms(message: str) -> Optional[int]:
    found = _MS.search(message)
    return int(found.group(1)) if found else None
