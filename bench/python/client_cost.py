"""The Python clients' own cost per acquire+release round trip, before and after the client
moved into core (issue 7). Not a test: prints a table.

"before" is the pure-Python client of commit BEFORE (RESP codec, retry and renewal rules in
Python), extracted with `git archive` and run against the same native module; "after" is the
installed package, whose clients are I/O loops around the core client. Both drive the same
fencelock server (pinned to CPU 0, the clients to CPU 1), in interleaved runs; the table gives
medians of wall time and of the client process's CPU time (all its threads) per cycle.

    python bench/python/client_cost.py [--runs 5] [--cycles 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BEFORE = "1155a0e"  # the last commit with the pure-Python client
REPO = Path(__file__).resolve().parents[2]

WORKER = r'''
import asyncio, json, os, sys, time
import fencelock

mode, port, cycles = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def sync_run(n):
    with fencelock.Client(port=port) as client:
        for i in range(50):
            client.release(f"warm/{i}", client.acquire(f"warm/{i}", 10.0).token)
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(n):
            lease = client.acquire(f"bench/{i}", 10.0)
            client.release(lease.name, lease.token)
        return time.perf_counter() - wall, time.process_time() - cpu

async def async_run(n):
    async with fencelock.AsyncClient(port=port) as client:
        for i in range(50):
            await client.release(f"warm/{i}", (await client.acquire(f"warm/{i}", 10.0)).token)
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(n):
            lease = await client.acquire(f"bench/{i}", 10.0)
            await client.release(lease.name, lease.token)
        return time.perf_counter() - wall, time.process_time() - cpu

wall, cpu = sync_run(cycles) if mode == "sync" else asyncio.run(async_run(cycles))
print(json.dumps({"wall_us": wall / cycles * 1e6, "cpu_us": cpu / cycles * 1e6, "file": fencelock.__file__}))
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=3000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fencelock-client-cost-"))
    try:
        before = extract_before(work)
        server, port = start_server(work)
        try:
            results: dict = {}
            for run in range(args.runs):
                for mode in ("sync", "async"):
                    for variant, path in (("before", before), ("after", None)):
                        result = measure(work, mode, variant, path, port, args.cycles)
                        results.setdefault((mode, variant), []).append(result)
            report(results, args)
        finally:
            server.terminate()
            server.wait(timeout=20)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def extract_before(work: Path) -> Path:
    """The old package beside the installed native module."""
    target = work / "before"
    target.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", BEFORE, "python/fencelock"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    import fencelock._native as native

    shutil.copy(native.__file__, target / "python" / "fencelock")
    return target / "python"


def start_server(work: Path) -> "tuple[subprocess.Popen[bytes], int]":
    ready = work / "ready"
    server = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-m", "fencelock", "serve", "--in-memory", "--port", "0",
         "--ready-file", str(ready), "--log-level", "warning"],
        cwd=work,
    )
    deadline = time.monotonic() + 20
    while not ready.exists():
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit("the server did not start")
        time.sleep(0.05)
    return server, int(ready.read_text().split()[1])


def measure(work: Path, mode: str, variant: str, path: "Path | None", port: int, cycles: int) -> dict:
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = str(path)
    out = subprocess.run(
        ["taskset", "-c", "1", sys.executable, "-c", WORKER, mode, str(port), str(cycles)],
        cwd=work, env=env, check=True, capture_output=True, text=True,
    ).stdout
    result = json.loads(out)
    expected_before = path is not None
    assert (str(work) in result["file"]) == expected_before, f"{variant} imported {result['file']}"
    return result


def report(results: dict, args: argparse.Namespace) -> None:
    print(f"Python client cost per acquire+release round trip (medians of {args.runs} runs of {args.cycles} cycles)")
    print("| client | before: wall µs | after: wall µs | wall ratio | before: CPU µs | after: CPU µs | CPU ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for mode in ("sync", "async"):
        before = results[(mode, "before")]
        after = results[(mode, "after")]
        wb = statistics.median(r["wall_us"] for r in before)
        wa = statistics.median(r["wall_us"] for r in after)
        cb = statistics.median(r["cpu_us"] for r in before)
        ca = statistics.median(r["cpu_us"] for r in after)
        print(f"| {mode} | {wb:.1f} | {wa:.1f} | {wa / wb:.2f}x | {cb:.1f} | {ca:.1f} | {ca / cb:.2f}x |")


if __name__ == "__main__":
    main()
