"""Every fencelock exception. The classes are defined by the native module, next to the one
place where core errors become them, and re-exported here as the public API.

The core and the wire report errors as ``CODE message`` (``LOCKED lock is held, free in at
most 950 ms``); ``str(error)`` is that text, ``error.code`` the code and ``error.message`` the
rest. The native module raises these classes with their fields (``ms_left``) taken from the
core error itself; :func:`error_from_text` builds the same classes from a wire error reply.
"""

from __future__ import annotations

import re
from typing import Dict, Optional, Type

from ._native import (
    AuthFailed,
    AuthRequired,
    BadRequest,
    ConnectionLost,
    Expired,
    FencelockError,
    FenceRejected,
    LeaseLost,
    LimitReached,
    Locked,
    LockTimeout,
    NotReady,
    PermissionDenied,
    ProtocolError,
    Stale,
    TokensExhausted,
)

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
    "ProtocolError",
    "LeaseLost",
    "ConnectionLost",
    "FenceRejected",
    "AuthRequired",
    "PermissionDenied",
    "AuthFailed",
    "error_from_code",
    "error_from_text",
]

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
    "PROTOCOL": ProtocolError,
    "CONNECTION": ConnectionLost,
    "NOAUTH": AuthRequired,
    "NOPERM": PermissionDenied,
    "WRONGPASS": AuthFailed,
}

# Only for text from the wire, where the number exists only inside the message.
_MS = re.compile(r"(\d+) ms")


def error_from_code(code: str, message: str) -> FencelockError:
    """Builds the exception for a stable error code; unknown codes keep their code on the base class."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return FencelockError(message, code=code)
    if cls is Locked:
        return Locked(message, ms_left=_first_ms(message))
    if cls is NotReady:
        return NotReady(message, ms_left=_first_ms(message))
    return cls(message)


def error_from_text(text: str) -> FencelockError:
    """Builds the exception for ``CODE message`` text, as a wire error reply or core error reads."""
    code, _, message = text.partition(" ")
    if code.isupper() and code.isalpha():
        return error_from_code(code, message)
    return FencelockError(text)


def _first_ms(message: str) -> Optional[int]:
    found = _MS.search(message)
    return int(found.group(1)) if found else None
