"""Atomic, durable file writes: temp file, fsync, rename, fsync of the directory.

Any failure raises :class:`DurabilityError`. After a failed fsync the kernel may have dropped
the dirty pages and cleared the error, so retrying could report success for lost data: callers
treat the error as fatal (the server exits, a fence refuses every later check).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

__all__ = ["DurabilityError", "write_atomic", "remove_durable", "fsync_dir"]

PathLike = Union[str, "os.PathLike[str]"]


class DurabilityError(OSError):
    """A durable write or removal failed; the state on disk is unknown."""


def write_atomic(path: PathLike, data: bytes) -> None:
    """Replaces ``path`` with ``data`` so that a crash leaves either the old or the new file."""
    target = Path(path)
    temp = target.with_name(f".{target.name}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, target)
        fsync_dir(target.parent)
    except OSError as error:
        raise DurabilityError(error.errno, f"durable write of {target} failed: {error.strerror or error}") from error


def remove_durable(path: PathLike) -> None:
    """Deletes ``path`` (if present) and makes the deletion durable."""
    target = Path(path)
    try:
        try:
            os.unlink(target)
        except FileNotFoundError:
            return
        fsync_dir(target.parent)
    except OSError as error:
        raise DurabilityError(error.errno, f"durable removal of {target} failed: {error.strerror or error}") from error


def fsync_dir(directory: PathLike) -> None:
    """Flushes a directory entry change (create, rename, unlink) to disk."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
