"""The resource side of fencing: refuse any token older than the highest accepted.

Only the resource, comparing tokens when it writes, is safe: a lease verified before a write
can lapse before the write lands. Put a :class:`Fence` in front of the resource (or use the
same comparison inside the resource, e.g. ``UPDATE ... WHERE fence <= :token``).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Dict, NamedTuple, Optional, Union

from ._durable import DurabilityError, write_atomic
from ._native import NativeFence
from .errors import FenceRejected

__all__ = ["Fence", "FenceResult", "DurabilityError"]


class FenceResult(NamedTuple):
    """The answer of :meth:`Fence.check`; true when the write may proceed."""

    accepted: bool
    advanced: bool
    highest: int

    def __bool__(self) -> bool:
        return self.accepted


class Fence:
    """High-water marks per resource; thread-safe.

    With ``path`` the marks live in a file (its format is the core's, shared by every host),
    rewritten atomically (temp file, fsync, rename, fsync of the directory) before
    :meth:`check` reports an advanced mark, so a mark once accepted survives a crash. A failed
    write is fatal: the fence refuses every later call.
    """

    def __init__(self, path: Optional[Union[str, "os.PathLike[str]"]] = None) -> None:
        self.path = Path(path) if path is not None else None
        self._native = self._load(self.path) if self.path is not None else NativeFence()
        self._lock = threading.Lock()
        self._failure: Optional[BaseException] = None

    def check(self, resource: str, token: int) -> FenceResult:
        """Accepts ``token`` if it is >= the highest accepted for ``resource`` and advances the mark.

        Equal tokens pass (several writes under one lease).

        Raises:
            DurabilityError: the durable file could not be written (now or before).
        """
        with self._lock:
            self._raise_if_failed()
            checked = self._native.check(resource, token)
            if checked.advanced and self.path is not None:
                self._persist()
            return FenceResult(checked.accepted, checked.advanced, checked.highest)

    def require(self, resource: str, token: int) -> int:
        """Like :meth:`check` but raises :class:`FenceRejected` for an old token; returns the mark."""
        result = self.check(resource, token)
        if not result.accepted:
            raise FenceRejected(
                f"token {token} is older than {result.highest}, the highest accepted for {resource!r}",
                resource=resource, token=token, highest=result.highest,
            )
        return result.highest

    def highest(self, resource: str) -> int:
        """Returns the highest token accepted for ``resource`` (0 if none)."""
        with self._lock:
            return int(self._native.highest(resource))

    def marks(self) -> Dict[str, int]:
        """Returns every resource's high-water mark."""
        with self._lock:
            return dict(self._native.marks())

    def __len__(self) -> int:
        return len(self._native)

    def __repr__(self) -> str:
        return f"Fence(path={str(self.path) if self.path else None!r}, resources={len(self)})"

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise DurabilityError(
                f"fence file {self.path} could not be written earlier; refusing to go on"
            ) from self._failure

    def _persist(self) -> None:
        assert self.path is not None
        try:
            write_atomic(self.path, self._native.encode())
        except DurabilityError as error:
            self._failure = error
            raise

    @staticmethod
    def _load(path: Path) -> NativeFence:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return NativeFence()
        except OSError as error:
            raise ValueError(f"fence file {path} is unreadable: {error}") from error
        try:
            return NativeFence.decode(data)
        except ValueError as error:
            # A fence that forgot its marks would accept stale tokens: never start from a bad file.
            raise ValueError(f"{path}: {error}") from error
