"""A small RESP2/RESP3 codec for the clients: commands out, replies in, incrementally.

Requests go out as arrays of bulk strings (what every Redis client sends). Replies are parsed
from a growing buffer; a reply split across reads is simply not returned until it is whole.
Error replies become :class:`ErrorReply` values rather than exceptions, so the caller decides
(the clients turn them into :mod:`fencelock.errors` classes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

__all__ = ["encode_command", "ErrorReply", "Push", "Parser", "ProtocolError", "NEED_MORE"]

Arg = Union[str, bytes, int, float]

MAX_BULK = 512 * 1024 * 1024
MAX_LINE = 64 * 1024


class ProtocolError(Exception):
    """The peer sent bytes that are not RESP."""


@dataclass(frozen=True)
class ErrorReply:
    """A ``-CODE message`` (or RESP3 ``!``) reply."""

    text: str


@dataclass(frozen=True)
class Push:
    """A RESP3 out-of-band push message (``>``); the first item names its kind."""

    items: List[Any]


class _NeedMore(Exception):
    pass


class _Sentinel:
    def __repr__(self) -> str:
        return "NEED_MORE"


NEED_MORE: Any = _Sentinel()
"""Returned by :meth:`Parser.get` while no whole reply is buffered."""


def encode_command(*args: Arg) -> bytes:
    """Encodes one request as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode("utf-8")
        elif isinstance(arg, bool):
            raise TypeError("booleans are not RESP arguments; pass the keyword instead")
        elif isinstance(arg, (int, float)):
            data = str(arg).encode("ascii")
        else:
            raise TypeError(f"cannot encode {type(arg).__name__} as a RESP argument")
        parts.append(b"$%d\r\n" % len(data))
        parts.append(data)
        parts.append(b"\r\n")
    return b"".join(parts)


class Parser:
    """Incremental reply parser: :meth:`feed` bytes, then :meth:`get` replies until ``NEED_MORE``."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        """Appends bytes received from the peer."""
        if self._pos and self._pos > len(self._buffer) // 2:
            del self._buffer[: self._pos]
            self._pos = 0
        self._buffer += data

    def get(self) -> Any:
        """Returns the next whole reply, or ``NEED_MORE``.

        Raises:
            ProtocolError: the buffered bytes are not RESP.
        """
        try:
            value, end = self._parse(self._pos)
        except _NeedMore:
            return NEED_MORE
        self._pos = end
        return value

    def buffered(self) -> int:
        """Returns how many received bytes are not yet consumed."""
        return len(self._buffer) - self._pos

    # The parser restarts a partial reply from its first byte on the next feed: replies here are
    # small, and this keeps the code free of resumable state.
    def _line(self, pos: int) -> Tuple[bytes, int]:
        end = self._buffer.find(b"\r\n", pos)
        if end < 0:
            if len(self._buffer) - pos > MAX_LINE:
                raise ProtocolError("line longer than 64 KiB")
            raise _NeedMore
        return bytes(self._buffer[pos:end]), end + 2

    def _int(self, line: bytes) -> int:
        try:
            return int(line)
        except ValueError:
            raise ProtocolError(f"bad integer {line[:40]!r}") from None

    def _blob(self, pos: int, length: int) -> Tuple[bytes, int]:
        if length > MAX_BULK:
            raise ProtocolError("bulk string too long")
        end = pos + length
        if len(self._buffer) < end + 2:
            raise _NeedMore
        if self._buffer[end : end + 2] != b"\r\n":
            raise ProtocolError("bulk string not terminated by CRLF")
        return bytes(self._buffer[pos:end]), end + 2

    def _items(self, pos: int, count: int) -> Tuple[List[Any], int]:
        items: List[Any] = []
        for _ in range(count):
            item, pos = self._parse(pos)
            items.append(item)
        return items, pos

    def _parse(self, pos: int) -> Tuple[Any, int]:
        if pos >= len(self._buffer):
            raise _NeedMore
        kind = bytes(self._buffer[pos : pos + 1])
        line, pos = self._line(pos + 1)
        if kind == b"+":
            return line.decode("utf-8", "replace"), pos
        if kind == b"-":
            return ErrorReply(line.decode("utf-8", "replace")), pos
        if kind == b":":
            return self._int(line), pos
        if kind in (b"$", b"=", b"!"):
            length = self._int(line)
            if length < 0:
                return None, pos
            blob, pos = self._blob(pos, length)
            if kind == b"!":
                return ErrorReply(blob.decode("utf-8", "replace")), pos
            if kind == b"=":
                # Verbatim string: "txt:" prefix names the format.
                return blob[4:].decode("utf-8", "replace"), pos
            return blob, pos
        if kind in (b"*", b"~", b">"):
            count = self._int(line)
            if count < 0:
                return None, pos
            items, pos = self._items(pos, count)
            if kind == b">":
                return Push(items), pos
            return items, pos
        if kind == b"%":
            count = self._int(line)
            flat, pos = self._items(pos, 2 * count)
            mapping: Dict[Any, Any] = {}
            for i in range(0, len(flat), 2):
                mapping[_hashable(flat[i])] = flat[i + 1]
            return mapping, pos
        if kind == b"|":
            # Attributes describe the next reply; the clients have no use for them.
            count = self._int(line)
            _, pos = self._items(pos, 2 * count)
            return self._parse(pos)
        if kind == b"_":
            return None, pos
        if kind == b"#":
            return line == b"t", pos
        if kind == b",":
            try:
                return float(line), pos
            except ValueError:
                raise ProtocolError(f"bad double {line[:40]!r}") from None
        if kind == b"(":
            return self._int(line), pos
        raise ProtocolError(f"unknown RESP type byte {kind!r}")


def _hashable(key: Any) -> Any:
    if isinstance(key, bytes):
        return key.decode("utf-8", "replace")
    if isinstance(key, list):
        return tuple(key)
    return key


def decode_text(value: Any) -> Any:
    """Turns bulk strings into ``str`` all the way down (maps, arrays, pushes)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [decode_text(item) for item in value]
    if isinstance(value, dict):
        return {decode_text(k): decode_text(v) for k, v in value.items()}
    if isinstance(value, Push):
        return Push(decode_text(value.items))
    return value


def optional_int(value: Any) -> Optional[int]:
    """Reads an integer reply that a server may also send as a bulk string."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, (bytes, str)):
        return int(value)
    raise ProtocolError(f"expected an integer reply, got {value!r}")
