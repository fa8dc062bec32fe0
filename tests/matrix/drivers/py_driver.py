"""A matrix driver: one client of the scenario, over one of Python's clients.

Reads one JSON request per line on stdin and writes one JSON line per result or event on
stdout (see tests/matrix/README.md). Modes: ``sync`` (fencelock.Client), ``asyncio``
(fencelock.aio.AsyncClient) and ``redis-py`` (redis.Redis sending raw fencelock commands).
Durations on the wire of this driver are milliseconds; the fencelock clients take seconds.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

_out_lock = threading.Lock()


def emit(message: Dict[str, Any]) -> None:
    with _out_lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def error_code(error: BaseException) -> str:
    code = getattr(error, "code", None)
    if isinstance(code, str) and code:
        return code
    if isinstance(error, (ValueError, TypeError, OverflowError)):
        return "ERR"  # refused by the client's own checks (the core's rules) before sending
    text = str(error)
    first = text.split(" ", 1)[0]
    if first.isupper():
        return first
    if type(error).__name__ == "ResponseError":
        return "ERR"  # redis-py strips the "ERR " prefix of generic errors
    return type(error).__name__


def raw_acquire(request: Dict[str, Any]) -> List[Any]:
    argv: List[Any] = ["ACQUIRE", request["name"], request["ttl"]]
    if request.get("wait") is not None:
        argv += ["WAIT", request["wait"]]
    if request.get("shared"):
        argv.append("SHARED")
    if request.get("steal"):
        argv.append("STEAL")
    if request.get("owner") is not None:
        argv += ["OWNER", request["owner"]]
    if request.get("ephemeral"):
        argv.append("EPHEMERAL")
    if request.get("lock_delay") is not None:
        argv += ["LOCKDELAY", request["lock_delay"]]
    return argv


def pairs(flat: Any) -> Dict[str, Any]:
    """A RESP2 flat key/value array (or a RESP3 map) as a dict with text keys."""
    if isinstance(flat, dict):
        items = list(flat.items())
    else:
        items = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in items}


def text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def raw_locks(reply: Any) -> List[Dict[str, Any]]:
    locks = []
    for entry in reply:
        lock = pairs(entry)
        locks.append(
            {
                "name": text(lock["name"]),
                "holders": [
                    {"token": int(h["token"]), "mode": text(h["mode"]), "owner": text(h["owner"])}
                    for h in map(pairs, lock["holders"])
                ],
                "waiters": [{"mode": text(w["mode"]), "owner": text(w["owner"])} for w in map(pairs, lock["waiters"])],
            }
        )
    return locks


def lib_locks(infos: Any) -> List[Dict[str, Any]]:
    return [
        {
            "name": info.name,
            "holders": [{"token": h.token, "mode": h.mode, "owner": h.owner} for h in info.holders],
            "waiters": [{"mode": w.mode, "owner": w.owner} for w in info.waiters],
        }
        for info in infos
    ]


def seconds(request: Dict[str, Any], key: str) -> Optional[float]:
    value = request.get(key)
    return None if value is None else value / 1000.0


class SyncDriver:
    """fencelock.Client, or redis.Redis with ``raw=True``: each request in its own thread."""

    def __init__(self, port: int, raw: bool) -> None:
        self.raw = raw
        if raw:
            import redis

            # One connection, like the other clients: EPHEMERAL leases live on it.
            self.client: Any = redis.Redis(host="127.0.0.1", port=port, single_connection_client=True)
            self.lock = threading.Lock()
        else:
            import fencelock

            self.client = fencelock.Client(
                "127.0.0.1", port, fallbacks=FALLBACKS,
                on_event=lambda e: emit({"event": "lost", "reason": e.kind, "name": e.name, "token": e.token}),
            )

    def run(self, request: Dict[str, Any]) -> Dict[str, Any]:
        op = request["op"]
        if self.raw:
            with self.lock:
                if op == "acquire":
                    return {"token": int(self.client.execute_command(*raw_acquire(request)))}
                if op in ("renew", "verify"):
                    args = [request["name"], request["token"]] + ([request["ttl"]] if op == "renew" else [])
                    return {"ms_left": int(self.client.execute_command(op.upper(), *args))}
                if op == "release":
                    self.client.execute_command("RELEASE", request["name"], request["token"])
                    return {}
                if op == "query":
                    return {"locks": raw_locks(self.client.execute_command("QUERY", request.get("prefix", "")))}
        else:
            c = self.client
            if op == "acquire":
                lease = c.acquire(
                    request["name"],
                    request["ttl"] / 1000.0,
                    wait=seconds(request, "wait"),
                    shared=bool(request.get("shared")),
                    steal=bool(request.get("steal")),
                    owner=request.get("owner"),
                    ephemeral=bool(request.get("ephemeral")),
                    lock_delay=seconds(request, "lock_delay"),
                )
                return {"token": lease.token}
            if op == "renew":
                return {"ms_left": round(c.renew(request["name"], request["token"], request["ttl"] / 1000.0) * 1000)}
            if op == "verify":
                return {"ms_left": round(c.verify(request["name"], request["token"]) * 1000)}
            if op == "release":
                c.release(request["name"], request["token"])
                return {}
            if op == "query":
                return {"locks": lib_locks(c.query(request.get("prefix", "")))}
        raise ValueError(f"unknown op {op!r}")

    def serve(self) -> None:
        for line in sys.stdin:
            request = json.loads(line)
            if request["op"] == "close":
                self.client.close()
                emit({"id": request["id"], "ok": {}})
                return
            threading.Thread(target=self.answer, args=(request,), daemon=True).start()

    def answer(self, request: Dict[str, Any]) -> None:
        try:
            emit({"id": request["id"], "ok": self.run(request)})
        except Exception as error:  # every failure is a result for the orchestrator to judge
            emit({"id": request["id"], "error": error_code(error), "text": str(error)})


class AsyncDriver:
    """fencelock.aio.AsyncClient: each request a task on one event loop."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def main(self) -> None:
        from fencelock.aio import AsyncClient

        self.client = AsyncClient(
            "127.0.0.1", self.port, fallbacks=FALLBACKS,
            on_event=lambda e: emit({"event": "lost", "reason": e.kind, "name": e.name, "token": e.token}),
        )
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[Optional[str]] = asyncio.Queue()

        def reader() -> None:
            for line in sys.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(lines.put_nowait, None)

        threading.Thread(target=reader, daemon=True).start()
        tasks = set()
        while True:
            line = await lines.get()
            if line is None:
                return
            request = json.loads(line)
            if request["op"] == "close":
                await self.client.close()
                emit({"id": request["id"], "ok": {}})
                return
            task = asyncio.ensure_future(self.answer(request))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def answer(self, request: Dict[str, Any]) -> None:
        c = self.client
        op = request["op"]
        try:
            if op == "acquire":
                lease = await c.acquire(
                    request["name"],
                    request["ttl"] / 1000.0,
                    wait=seconds(request, "wait"),
                    shared=bool(request.get("shared")),
                    steal=bool(request.get("steal")),
                    owner=request.get("owner"),
                    ephemeral=bool(request.get("ephemeral")),
                    lock_delay=seconds(request, "lock_delay"),
                )
                result: Dict[str, Any] = {"token": lease.token}
            elif op == "renew":
                result = {"ms_left": round(await c.renew(request["name"], request["token"], request["ttl"] / 1000.0) * 1000)}
            elif op == "verify":
                result = {"ms_left": round(await c.verify(request["name"], request["token"]) * 1000)}
            elif op == "release":
                await c.release(request["name"], request["token"])
                result = {}
            elif op == "query":
                result = {"locks": lib_locks(await c.query(request.get("prefix", "")))}
            else:
                raise ValueError(f"unknown op {op!r}")
            emit({"id": request["id"], "ok": result})
        except Exception as error:
            emit({"id": request["id"], "error": error_code(error), "text": str(error)})


#: The nodes after the first when the driver is given a cluster's ports (``p1,p2,p3``).
FALLBACKS: List[Tuple[str, int]] = []


def main(argv: List[str]) -> None:
    mode, ports = argv[1], [int(part) for part in argv[2].split(",")]
    port = ports[0]
    FALLBACKS[:] = [("127.0.0.1", other) for other in ports[1:]]
    runners: Dict[str, Callable[[], None]] = {
        "sync": lambda: SyncDriver(port, raw=False).serve(),
        "redis-py": lambda: SyncDriver(port, raw=True).serve(),
        "asyncio": lambda: asyncio.run(AsyncDriver(port).main()),
    }
    emit({"ready": mode})
    runners[mode]()


if __name__ == "__main__":
    main(sys.argv)
