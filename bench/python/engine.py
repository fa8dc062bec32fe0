"""The in-process engine from Python: acquire + release pairs per second through the package's
``Engine`` (a lock, a clock read and the native call per operation) and through the raw native
class, the same loop as bench/node/engine.js. Prints one JSON line per case.

    PAIRS=pairs per run (default 200000)   RUNS=runs, the median is printed (default 5)
"""

from __future__ import annotations

import json
import os
import statistics
import time

import fencelock
from fencelock import _native

PAIRS = int(os.environ.get("PAIRS", "200000"))
RUNS = int(os.environ.get("RUNS", "5"))
NAMES = [f"lock:{index}" for index in range(1024)]


def wrapper() -> float:
    engine = fencelock.Engine()
    start = time.perf_counter()
    for index in range(PAIRS):
        name = NAMES[index & 1023]
        granted = engine.acquire(name, 30.0)
        engine.release(name, granted.token)
    return PAIRS / (time.perf_counter() - start)


def raw() -> float:
    engine = _native.NativeEngine()
    clock = time.monotonic
    start = time.perf_counter()
    for index in range(PAIRS):
        name = NAMES[index & 1023]
        now = int(clock() * 1000)
        token = engine.acquire(now, name, 30000).token
        engine.release(now, name, token)
        engine.poll_persist()
    return PAIRS / (time.perf_counter() - start)


def main() -> None:
    for label, run in (("python Engine (wrapper)", wrapper), ("python NativeEngine (raw)", raw)):
        run()  # warm up
        rate = statistics.median(run() for _ in range(RUNS))
        print(json.dumps({"engine": label, "pairs_per_s": round(rate), "us_per_pair": round(1e6 / rate, 3)}))


if __name__ == "__main__":
    main()
