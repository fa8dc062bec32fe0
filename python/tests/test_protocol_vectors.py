"""Runs every shared protocol vector (tests/vectors/protocol/*.json) through the binding.

Bytes in, exact bytes out, each input cut three ways (as given, whole, one byte at a time):
this host must answer byte for byte like every other host.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from fencelock._native import Close, NativeServer, Transmit, WriteFile


# Tests import no sibling modules (importlib mode), so the path is computed here too.
VECTORS = Path(os.environ.get("FENCELOCK_VECTORS", Path(__file__).resolve().parents[2] / "tests" / "vectors"))
FILES = sorted((VECTORS / "protocol").glob("*.json"))
CUTS = ("given", "whole", "bytewise")


def test_the_vector_set_is_there() -> None:
    assert len(FILES) >= 10, f"expected the shared protocol vectors in {VECTORS / 'protocol'}"


@pytest.mark.parametrize("cut", CUTS)
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_protocol_vector(path: Path, cut: str) -> None:
    scenario = json.loads(path.read_text())
    server = NativeServer(scenario.get("engine") or {}, scenario.get("server") or {})
    if "users" in scenario:
        # The users file is the JSON value itself; the core parses its bytes.
        server.set_users(json.dumps(scenario["users"]).encode())
    now = 0
    for index, step in enumerate(scenario["steps"]):
        now = int(step.get("at_ms", now))
        conn = int(step.get("conn", 1))
        op = step["op"]
        if op == "connect":
            assert server.connect(now) == conn, f"step {index}: connection ids go 1, 2, 3, ..."
        elif op == "send":
            for chunk in chunks(step["data"].encode("latin-1"), step.get("splits"), cut):
                server.receive(conn, chunk, now)
        elif op == "execute":
            server.execute(conn, [arg.encode("latin-1") for arg in step["argv"]], now)
        elif op == "disconnect":
            server.disconnect(conn, now)
        elif op == "timeout":
            server.handle_timeout(now)
        else:
            raise AssertionError(f"step {index}: unknown op {op!r}")
        out: Dict[str, bytes] = {}
        closed: List[int] = []
        persisted: List[int] = []
        for output in server.drain():
            if isinstance(output, Transmit):
                out[str(output.conn)] = out.get(str(output.conn), b"") + output.data
            elif isinstance(output, Close):
                closed.append(output.conn)
            else:
                assert isinstance(output, WriteFile) and output.file == "ceiling", output
                persisted.append(int(output.data))
        audit = []
        while (event := server.poll_audit()) is not None:
            audit.append(json.loads(event[2]))
        expected_out = {key: value.encode("latin-1") for key, value in (step.get("out") or {}).items()}
        where = f"{path.name} step {index} ({op}, cut {cut})"
        assert out == expected_out, f"{where}: output differs"
        assert closed == list(step.get("closed") or []), f"{where}: closes differ"
        if "audit" in step:
            assert audit == step["audit"], f"{where}: audit events differ"
        if "persist" in step:
            assert persisted == step["persist"], f"{where}: persisted ceilings differ"


def chunks(data: bytes, splits: Optional[List[int]], cut: str) -> List[bytes]:
    if cut == "whole" or not data:
        return [data]
    if cut == "bytewise":
        return [data[i : i + 1] for i in range(len(data))]
    edges = [0, *(splits or []), len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:]) if b > a]


