"""The client codec: requests out, RESP2/RESP3 replies in, split at every byte."""

from __future__ import annotations

import pytest

from fencelock.resp import NEED_MORE, ErrorReply, Parser, ProtocolError, Push, encode_command


def test_encodes_arrays_of_bulk_strings() -> None:
    assert encode_command("ACQUIRE", "a", 1000) == b"*3\r\n$7\r\nACQUIRE\r\n$1\r\na\r\n$4\r\n1000\r\n"
    assert encode_command("ECHO", "é") == b"*2\r\n$4\r\nECHO\r\n$2\r\n\xc3\xa9\r\n"
    with pytest.raises(TypeError):
        encode_command("X", True)  # type: ignore[arg-type]


REPLIES = (
    b"+OK\r\n-LOCKED lock is held, free in at most 5 ms\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*-1\r\n"
    b"*2\r\n:1\r\n$1\r\nx\r\n%1\r\n$4\r\nname\r\n$1\r\na\r\n_\r\n#t\r\n,1.5\r\n(99\r\n"
    b">3\r\n$7\r\nexpired\r\n$1\r\na\r\n:7\r\n=8\r\ntxt:hi!!\r\n!5\r\nERR x\r\n|1\r\n+k\r\n+v\r\n:5\r\n~1\r\n:3\r\n"
)
EXPECTED = [
    "OK", ErrorReply("LOCKED lock is held, free in at most 5 ms"), 42, b"abc", None, None,
    [1, b"x"], {"name": b"a"}, None, True, 1.5, 99,
    Push([b"expired", b"a", 7]), "hi!!", ErrorReply("ERR x"), 5, [3],
]


def drain(parser: Parser) -> list:
    out = []
    while (reply := parser.get()) is not NEED_MORE:
        out.append(reply)
    return out


def test_parses_every_type_whole() -> None:
    parser = Parser()
    parser.feed(REPLIES)
    assert drain(parser) == EXPECTED
    assert parser.buffered() == 0


def test_parses_every_type_split_at_every_byte() -> None:
    parser = Parser()
    got = []
    for i in range(len(REPLIES)):
        parser.feed(REPLIES[i : i + 1])
        got += drain(parser)
    assert got == EXPECTED


def test_refuses_garbage() -> None:
    parser = Parser()
    parser.feed(b"?what\r\n")
    with pytest.raises(ProtocolError):
        parser.get()
