"""The shared client vectors (tests/vectors/client) run through the native binding, exactly as
the Rust runner runs them: the same bytes out, typed replies and lease events, whatever the
splits of the bytes received."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from fencelock import FencelockError
from fencelock._native import NativeClient

# Tests import no sibling modules (importlib mode), so the path is computed here too.
VECTORS = Path(os.environ.get("FENCELOCK_VECTORS", Path(__file__).resolve().parents[2] / "tests" / "vectors"))
CLIENT = VECTORS / "client"
FILES = sorted(CLIENT.glob("*.json"))
CHECKED = ("outputs", "replies", "events", "result", "timeout")


def test_vectors_exist() -> None:
    assert len(FILES) >= 8


def as_bytes(text: str) -> bytes:
    return text.encode("latin-1")


def as_text(data: bytes) -> str:
    return data.decode("latin-1")


def chunks(data: bytes, splits: Optional[List[int]], how: str) -> List[bytes]:
    if how == "whole":
        return [data]
    if how == "bytes":
        return [data[i : i + 1] for i in range(len(data))]
    cuts = list(splits or []) + [len(data)]
    out, start = [], 0
    for end in cuts:
        out.append(data[start:end])
        start = end
    return out


def value_json(value: Any) -> Any:
    if isinstance(value, FencelockError):
        return {"error": str(value)}
    if isinstance(value, bool):
        return {"boolean": value}
    if isinstance(value, int):
        return {"integer": value} if -(2**63) <= value < 2**63 else {"big": str(value)}
    if isinstance(value, float):
        return {"double": value}
    if isinstance(value, str):
        return {"simple": value}
    if isinstance(value, bytes):
        return {"bulk": as_text(value)}
    if value is None:
        return None
    if isinstance(value, list):
        return {"array": [value_json(item) for item in value]}
    if isinstance(value, dict):
        return {"map": [[value_json(k), value_json(v)] for k, v in value.items()]}
    raise AssertionError(f"unexpected value {value!r}")


def reply_json(op: str, payload: Any) -> Any:
    if isinstance(payload, FencelockError):
        return {"error": str(payload)}
    if op == "acquire":
        token, deadline = payload
        return {"granted": {"token": token, "deadline": deadline}}
    if op in ("renew", "verify"):
        return {"ms_left": payload}
    if op == "release":
        assert payload is True
        return "ok"
    if op == "query":
        return {"locks": [
            {
                "name": lock.name,
                "holders": [
                    {"token": h.token, "mode": h.mode, "owner": h.owner, "ms_left": h.ms_left, "client": h.client}
                    for h in lock.holders
                ],
                "waiters": [
                    {"waiter": w.waiter, "position": w.position, "mode": w.mode, "owner": w.owner,
                     "client": w.client, "ms_left": w.ms_left}
                    for w in lock.waiters
                ],
                "delay_ms_left": lock.delay_ms_left,
            }
            for lock in payload
        ]}
    if op == "info":
        return {"info": [list(entry) for entry in payload]}
    if op == "ping":
        return {"pong": as_text(payload)}
    if op == "command":
        return {"value": value_json(payload)}
    raise AssertionError(op)


def event_json(event: Any) -> Dict[str, Any]:
    if event[0] == "lease_lost":
        _, name, token, kind, _text, by_token, refusal = event
        reason: Any = kind
        if kind == "stolen":
            reason = {"stolen": by_token}
        elif kind == "refused":
            reason = {"refused": refusal}
        return {"lease_lost": {"name": name, "token": token, "reason": reason}}
    _, kind, name, token, by_token = event
    return {"notice": {"kind": kind, "name": name, "token": token, "by_token": by_token}}


def run(vector: Dict[str, Any], how: str) -> List[Dict[str, Any]]:
    client = NativeClient(**vector.get("config", {}))
    now = 0
    kinds: Dict[int, str] = {}
    produced = []
    for step in vector["steps"]:
        now = step.get("at_ms", now)
        op = step["op"]
        got: Dict[str, Any] = {}
        conn = step.get("conn", 1)
        submitted: Any = None
        try:
            if op == "acquire":
                opts = step.get("options", {})
                submitted = client.acquire(now, step["name"], step["ttl_ms"], **opts)
            elif op == "renew":
                submitted = client.renew(now, step["name"], step["token"], step["ttl_ms"])
            elif op in ("release", "verify"):
                submitted = getattr(client, op)(now, step["name"], step["token"])
            elif op == "query":
                submitted = client.query(now, step.get("prefix", ""))
            elif op == "info":
                submitted = client.info(now, step.get("section"))
            elif op == "ping":
                submitted = client.ping(now)
            elif op == "command":
                submitted = client.command(now, [as_bytes(arg) for arg in step["argv"]])
        except FencelockError as error:
            got["result"] = {"error": str(error)}
        if submitted is not None:
            kinds[submitted] = op
            got["result"] = {"id": submitted}
        if op == "keep_alive":
            got["result"] = client.keep_alive(step["name"], step["token"])
        elif op == "forget":
            client.forget(step["name"], step["token"])
        elif op == "lease":
            status = client.lease(now, step["name"], step["token"])
            got["result"] = None if status is None else {
                "deadline": status[0], "ms_left": status[1], "kept_alive": status[2],
            }
        elif op == "cancel":
            client.cancel(now, step["id"])
        elif op == "connected":
            client.handle_connected(now, conn)
        elif op == "receive":
            for chunk in chunks(as_bytes(step["data"]), step.get("splits"), how):
                client.receive(now, conn, chunk)
        elif op == "disconnect":
            client.handle_disconnect(now, conn, step.get("reason", "reset"))
        elif op == "timeout":
            client.handle_timeout(now)
        elif op == "close":
            client.close(now)
        outputs, replies, events, timeout = client.drain()
        if outputs:
            got["outputs"] = [
                [o[0], o[1], as_text(o[2])] if o[0] == "transmit" else list(o) for o in outputs
            ]
        if replies:
            got["replies"] = [[rid, reply_json(kinds[rid], payload)] for rid, payload in replies]
        if events:
            got["events"] = [event_json(event) for event in events]
        if timeout is not None:
            got["timeout"] = timeout
        produced.append(got)
    return produced


@pytest.mark.parametrize("how", ["as_written", "whole", "bytes"])
@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_client_vector(path: Path, how: str) -> None:
    vector = json.loads(path.read_text())
    produced = run(vector, how)
    for index, (step, got) in enumerate(zip(vector["steps"], produced)):
        for key in CHECKED:
            assert step.get(key) == got.get(key), f"step {index} ({step['op']}) {key}"
