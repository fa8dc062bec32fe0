"""A Python client process of the safety run: acquire -> fenced write(s) -> release, in a loop.

Every operation is logged twice, at invoke and at return, as JSON lines with CLOCK_MONOTONIC
milliseconds (the same clock as the Node workers and the orchestrator), so an operation cut
short still shows as invoked. Outcomes: ok, fail (with the server's error code: it certainly
did not take effect) or unknown (no answer: it may or may not have).

Also the store gateway of the Node workers: ``worker.py --gateway CONNINFO`` reads write
requests as JSON lines on stdin and answers each on stdout, so both languages write through the
one fenced statement in store.py.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from typing import Any, Dict, Optional

from store import Store

CERTAIN_FAILURES = ("LOCKED", "NOTREADY", "TIMEOUT", "STALE", "EXPIRED")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gateway", metavar="CONNINFO", help="serve fenced writes on stdin/stdout (for the Node workers)")
    parser.add_argument("--port", type=int)
    parser.add_argument("--ports", help="every node of a cluster, comma-separated (instead of --port)")
    parser.add_argument("--locks")
    parser.add_argument("--client")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--history")
    parser.add_argument("--stop-file")
    parser.add_argument("--conninfo")
    parser.add_argument("--ttls", default="150,300,500")
    args = parser.parse_args()
    if args.gateway:
        return gateway(args.gateway)
    return run(args)


def gateway(conninfo: str) -> int:
    store = Store(conninfo)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            accepted = store.write(request["lock"], request["token"], request["client"], request["write_id"])
            reply: Dict[str, Any] = {"result": "accepted" if accepted else "refused"}
        except Exception as error:  # the outcome is unknown; the run records it as such
            reply = {"result": "unknown", "error": repr(error)}
            store = _reconnect(conninfo, store)
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    return 0


def run(args: argparse.Namespace) -> int:
    import fencelock

    rng = random.Random(args.seed)
    locks = args.locks.split(",")
    ttls = [int(t) for t in args.ttls.split(",")]
    log = History(args.history, args.client)
    store = Store(args.conninfo)
    ports = [int(port) for port in args.ports.split(",")] if args.ports else [args.port]
    first = rng.randrange(len(ports)) if len(ports) > 1 else 0  # cluster clients start at different nodes
    ports = ports[first:] + ports[:first]
    client = fencelock.Client("127.0.0.1", ports[0], fallbacks=[("127.0.0.1", port) for port in ports[1:]],
                              timeout=2.0, connect_timeout=1.0)
    writes = 0
    while not os.path.exists(args.stop_file):
        lock = rng.choice(locks)
        ttl = rng.choice(ttls)
        wait = rng.choice([None, None, rng.randint(50, 600)])
        op = log.invoke("acquire", lock=lock, ttl=ttl, wait=wait)
        try:
            lease = client.acquire(lock, ttl / 1000.0, wait=None if wait is None else wait / 1000.0)
        except fencelock.FencelockError as error:
            log.fail_or_unknown(op, error.code, str(error))
            time.sleep(rng.uniform(0.002, 0.03))
            continue
        except Exception as error:
            log.ret(op, "unknown", error=repr(error))
            time.sleep(rng.uniform(0.002, 0.03))
            continue
        log.ret(op, "ok", token=lease.token)
        for _ in range(rng.randint(1, 3)):
            _client_pause(rng, ttl, log)
            writes += 1
            write_id = f"{args.client}-w{writes}"
            op = log.invoke("write", lock=lock, token=lease.token, write_id=write_id)
            try:
                accepted = store.write(lock, lease.token, args.client, write_id)
                log.ret(op, "accepted" if accepted else "refused")
            except Exception as error:
                log.ret(op, "unknown", error=repr(error))
                store = _reconnect(args.conninfo, store)
        if rng.random() < 0.9:  # else the lease is left to expire
            op = log.invoke("release", lock=lock, token=lease.token)
            try:
                client.release(lock, lease.token)
                log.ret(op, "ok")
            except fencelock.FencelockError as error:
                log.fail_or_unknown(op, error.code, str(error))
            except Exception as error:
                log.ret(op, "unknown", error=repr(error))
    client.close()
    store.close()
    return 0


def _client_pause(rng: random.Random, ttl: int, log: "History") -> None:
    """Mostly short; sometimes longer than the lease, as a GC pause or a slow disk would be."""
    roll = rng.random()
    if roll < 0.8:
        delay = rng.uniform(0, 0.02)
    elif roll < 0.95:
        delay = rng.uniform(0.05, ttl / 1000.0 * 0.8)
    else:
        delay = rng.uniform(ttl / 1000.0 * 1.1, ttl / 1000.0 * 2.5)
        log.note("long-pause", ms=round(delay * 1000))
    time.sleep(delay)


def _reconnect(conninfo: str, store: Store) -> Store:
    try:
        store.close()
    except Exception:
        pass
    return Store(conninfo)


class History:
    """Appends JSON lines, flushed at once, so a stopped or killed process loses nothing logged."""

    def __init__(self, path: str, client: str) -> None:
        self.file = open(path, "a", buffering=1)
        self.client = client
        self.count = 0

    def invoke(self, op: str, **fields: Any) -> str:
        self.count += 1
        op_id = f"{self.client}-{self.count}"
        self._emit({"ev": "inv", "id": op_id, "client": self.client, "op": op, "t": now_ms(), **fields})
        return op_id

    def ret(self, op_id: str, out: str, **fields: Any) -> None:
        self._emit({"ev": "ret", "id": op_id, "t": now_ms(), "out": out, **fields})

    def fail_or_unknown(self, op_id: str, code: Optional[str], text: str = "") -> None:
        if code in CERTAIN_FAILURES:
            self.ret(op_id, "fail", code=code)
        elif code == "CONNECTION" and " not sent: " in text:
            # The core client says the request never left it (no connection opened): no effect.
            self.ret(op_id, "fail", code="NOTSENT", error=text)
        else:
            self.ret(op_id, "unknown", code=code)

    def note(self, what: str, **fields: Any) -> None:
        self._emit({"ev": "note", "client": self.client, "what": what, "t": now_ms(), **fields})

    def _emit(self, record: Dict[str, Any]) -> None:
        self.file.write(json.dumps(record) + "\n")


def now_ms() -> float:
    return time.monotonic_ns() / 1e6


if __name__ == "__main__":
    sys.exit(main())
