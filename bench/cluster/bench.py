"""A fencelock cluster beside etcd's own lock recipe, on the same 3-member loopback etcd.

    python bench/cluster/bench.py [--seconds S] [--runs R] [--pipeline-depth N] [--out bench/cluster/RESULTS.md]

Starts 3 etcd members (Debian's etcd-server) and 3 fencelock cluster nodes (`fencelock serve
--etcd ...`, default election TTL), then measures, in interleaved runs (medians reported):

- acquire+release cycles per second and cycle latency p50/p99 with 1 and 50 concurrent
  clients: fencelock through one `fencelock.aio.AsyncClient` given every node (the 50
  coroutines' requests share its pipelined connection, so the leader can commit them to etcd
  in groups), and etcd's mutex through one `aetcd.Client` with `aetcd.Lock` (a lease grant and
  a guarded put to acquire, a guarded delete to release). Each coroutine cycles on its own
  lock name, so both measure the cost of a lock, not contention.
- one etcd transaction's round trip (a guarded put, as a lock takes) beside one fencelock
  ACQUIRE and one RELEASE, from one client.
- failover: SIGKILL of the leader under no load, then the time until a client given every
  node is granted a lease again.

Both sides are driven by the same asyncio loop in this process, so the driver costs alike;
the machine is shared (2 cores), so compare the ratios, not the absolute numbers. The results
say how busy the machine's CPUs were over the measured runs (everything on it counted) and the
load average when the run started. `--pipeline-depth` is passed to the nodes (default: theirs).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "safety"))

from etcd import Etcd, free_ports  # noqa: E402

import aetcd  # noqa: E402
import fencelock  # noqa: E402
from fencelock.aio import AsyncClient  # noqa: E402


def start_nodes(work: Path, urls: str, election_ttl: Optional[int],
                pipeline_depth: Optional[int] = None) -> Dict[int, subprocess.Popen]:
    nodes = {}
    for port in free_ports(3):
        ready = work / f"node-{port}.ready"
        command = [sys.executable, "-m", "fencelock", "serve", "--port", str(port), "--etcd", urls,
                   "--cluster", "bench", "--advertise", f"127.0.0.1:{port}", "--ready-file", str(ready),
                   "--log-level", "warning"]
        if election_ttl is not None:
            command += ["--election-ttl", str(election_ttl)]
        if pipeline_depth is not None:
            command += ["--pipeline-depth", str(pipeline_depth)]
        log = open(work / f"node-{port}.log", "ab")
        nodes[port] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 30
        while not ready.exists():
            if nodes[port].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"cluster node {port} did not start; see {work}/node-{port}.log")
            time.sleep(0.02)
    return nodes


def role(port: int) -> Optional[str]:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"*2\r\n$4\r\nINFO\r\n$7\r\ncluster\r\n")
            sock.settimeout(1)
            data = b""
            while b"role:" not in data or not data.endswith(b"\r\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("role:"):
            return line.split(":", 1)[1].strip()
    return None


def wait_leader(ports: List[int], timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for port in ports:
            if role(port) == "leader":
                return port
        time.sleep(0.05)
    raise RuntimeError("no leader")


def cpu_jiffies() -> Optional[Tuple[int, int]]:
    """(total, idle) CPU time of the whole machine from /proc/stat, or None where there is none."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(field) for field in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(fields), fields[3] + fields[4]


def percentile(samples: List[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def fencelock_cycles(ports: List[int], clients: int, seconds: float, tag: str) -> Tuple[float, List[float]]:
    client = AsyncClient("127.0.0.1", ports[0], fallbacks=[("127.0.0.1", p) for p in ports[1:]], timeout=10.0)
    latencies: List[float] = []
    stop = time.monotonic() + seconds

    async def worker(index: int) -> None:
        name = f"bench:{tag}:{index}"
        while time.monotonic() < stop:
            start = time.perf_counter()
            lease = await client.acquire(name, 10.0)
            await client.release(name, lease.token)
            latencies.append((time.perf_counter() - start) * 1000)

    # Warm up the connection (and find the leader) before the clock starts.
    lease = await client.acquire(f"bench:{tag}:warm", 1.0)
    await client.release(f"bench:{tag}:warm", lease.token)
    began = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    elapsed = time.monotonic() - began
    await client.close()
    return len(latencies) / elapsed, latencies


async def etcd_cycles(endpoint: Tuple[str, int], clients: int, seconds: float, tag: str) -> Tuple[float, List[float]]:
    client = aetcd.Client(host=endpoint[0], port=endpoint[1], timeout=10)
    await client.connect()
    latencies: List[float] = []
    stop = time.monotonic() + seconds

    async def worker(index: int) -> None:
        key = f"/bench/{tag}/{index}".encode()
        while time.monotonic() < stop:
            start = time.perf_counter()
            lock = client.lock(key, ttl=10)
            if not await lock.acquire(timeout=10):
                raise RuntimeError("etcd lock not acquired within 10 s")
            await lock.release()
            latencies.append((time.perf_counter() - start) * 1000)

    await client.put(f"/bench/{tag}/warm".encode(), b"x")
    began = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    elapsed = time.monotonic() - began
    await client.close()
    return len(latencies) / elapsed, latencies


async def round_trips(ports: List[int], endpoint: Tuple[str, int], count: int) -> Dict[str, List[float]]:
    """One client, one request at a time: an etcd guarded put, a fencelock ACQUIRE, a RELEASE."""
    etcd = aetcd.Client(host=endpoint[0], port=endpoint[1], timeout=10)
    await etcd.connect()
    lock = AsyncClient("127.0.0.1", ports[0], fallbacks=[("127.0.0.1", p) for p in ports[1:]], timeout=10.0)
    out: Dict[str, List[float]] = {"etcd txn": [], "fencelock ACQUIRE": [], "fencelock RELEASE": []}
    tx = etcd.transactions
    for i in range(count):
        key = f"/bench/rtt/{i}".encode()
        start = time.perf_counter()
        await etcd.transaction(compare=[tx.create(key) == 0], success=[tx.put(key, b"x")], failure=[])
        out["etcd txn"].append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        lease = await lock.acquire("bench:rtt", 10.0)
        out["fencelock ACQUIRE"].append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        await lock.release("bench:rtt", lease.token)
        out["fencelock RELEASE"].append((time.perf_counter() - start) * 1000)
    await etcd.close()
    await lock.close()
    return out


def failover(nodes: Dict[int, subprocess.Popen], work: Path, urls: str) -> float:
    ports = list(nodes)
    leader = wait_leader(ports)
    client = fencelock.Client("127.0.0.1", ports[0], fallbacks=[("127.0.0.1", p) for p in ports[1:]],
                              timeout=1.0, connect_timeout=0.5)
    lease = client.acquire("bench:failover", 1.0)
    client.release("bench:failover", lease.token)
    nodes[leader].send_signal(signal.SIGKILL)
    nodes[leader].wait()
    killed = time.monotonic()
    while True:
        try:
            lease = client.acquire("bench:failover", 1.0)
            break
        except fencelock.FencelockError:
            if time.monotonic() - killed > 60:
                raise RuntimeError("no grant within 60 s of the leader's death") from None
            time.sleep(0.01)
    took = time.monotonic() - killed
    client.close()
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SECONDS_PER_RUN", "6")))
    parser.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", "3")))
    parser.add_argument("--pipeline-depth", type=int, default=None,
                        help="appends each node keeps in flight (default: the nodes' own)")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    load_at_start = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="fencelock-bench-cluster-"))
    results: Dict[str, List[Tuple[float, List[float]]]] = {}
    with Etcd(work / "etcd") as etcd:
        nodes = start_nodes(work, etcd.urls, None, args.pipeline_depth)
        try:
            ports = list(nodes)
            wait_leader(ports)
            endpoint = ("127.0.0.1", etcd.client_ports[0])
            cpu_before = cpu_jiffies()
            for run in range(args.runs):
                for clients in (1, 50):
                    for side in ("fencelock", "etcd mutex"):
                        tag = f"r{run}c{clients}"
                        if side == "fencelock":
                            outcome = asyncio.run(fencelock_cycles(ports, clients, args.seconds, tag))
                        else:
                            outcome = asyncio.run(etcd_cycles(endpoint, clients, args.seconds, tag))
                        results.setdefault(f"{side}|{clients}", []).append(outcome)
                        print(f"run {run + 1}/{args.runs}: {side:<10} {clients:>2} clients: "
                              f"{outcome[0]:8.0f} cycles/s, p50 {percentile(outcome[1], 0.5):6.2f} ms, "
                              f"p99 {percentile(outcome[1], 0.99):6.2f} ms", flush=True)
            cpu_after = cpu_jiffies()
            rtts = asyncio.run(round_trips(ports, endpoint, 300))
            took = [failover(nodes, work, etcd.urls)]
        finally:
            for node in nodes.values():
                if node.poll() is None:
                    node.kill()
                    node.wait()
    subprocess.run(["rm", "-rf", str(work)], check=False)

    def median_run(key: str) -> Tuple[float, List[float]]:
        runs = sorted(results[key], key=lambda r: r[0])
        return runs[len(runs) // 2]

    lines = [
        "# fencelock cluster beside etcd's lock recipe",
        "",
        f"`bench/cluster/bench.py` ({args.runs} interleaved runs of {args.seconds:g} s, the median run's numbers; "
        "3 etcd members and 3 fencelock nodes on loopback"
        + (f" with `--pipeline-depth {args.pipeline_depth}`" if args.pipeline_depth is not None else "")
        + ", one shared 2-core VM; see the script's docstring).",
        "",
        "| clients | fencelock cycles/s | etcd mutex cycles/s | ratio | fencelock p50 / p99 ms | etcd mutex p50 / p99 ms |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for clients in (1, 50):
        ours, theirs = median_run(f"fencelock|{clients}"), median_run(f"etcd mutex|{clients}")
        lines.append(
            f"| {clients} | {ours[0]:,.0f} | {theirs[0]:,.0f} | {ours[0] / theirs[0]:.2f}x | "
            f"{percentile(ours[1], 0.5):.2f} / {percentile(ours[1], 0.99):.2f} | "
            f"{percentile(theirs[1], 0.5):.2f} / {percentile(theirs[1], 0.99):.2f} |"
        )
    txn = statistics.median(rtts["etcd txn"])
    acquire = statistics.median(rtts["fencelock ACQUIRE"])
    release = statistics.median(rtts["fencelock RELEASE"])
    lines += [
        "",
        "| one client, one request at a time (300 each) | p50 ms | vs one etcd txn |",
        "|---|---:|---:|",
        f"| etcd guarded put (a transaction) | {txn:.2f} | 1.00x |",
        f"| fencelock ACQUIRE | {acquire:.2f} | {acquire / txn:.2f}x |",
        f"| fencelock RELEASE | {release:.2f} | {release / txn:.2f}x |",
        "",
        f"Failover with the default election TTL (2 s): SIGKILL of the leader to the next grant to a "
        f"client given every node: {took[0]:.2f} s (the dead leader's etcd lease lapses within one TTL "
        f"of its last keep-alive, then a follower campaigns).",
        "",
    ]
    if cpu_before is not None and cpu_after is not None:
        total, idle = cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1]
        busy = 100 * (1 - idle / total) if total else 0.0
        lines += [
            f"Machine: the CPUs were {busy:.0f}% busy over the measured runs (this benchmark's etcd, "
            f"nodes and driver included); load average {load_at_start:.2f} when the run started.",
            "",
        ]
    text = "\n".join(lines)
    print("\n" + text)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
