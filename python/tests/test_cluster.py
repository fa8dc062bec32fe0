"""Cluster mode against a real etcd: 3 etcd members and 3 fencelock nodes on loopback.

SIGKILL the leader: another node leads within the election TTL + 1 s, the leases granted
before are still held (or lapsed by their deadline) and every new token exceeds every earlier one.
Installs Debian's etcd-server when it is missing (like the other tests install their peers).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

redis = pytest.importorskip("redis")
pytest.importorskip("aetcd")

ELECTION_TTL_S = 3
#: Wall-time bound of each test here, etcd start and failover included, so `make test` stays
#: bounded: past it the test fails (SIGALRM) and its fixtures kill etcd and the nodes.
BUDGET_S = 60


def _etcd_binary() -> Optional[str]:
    found = shutil.which("etcd")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            "apt-get install -y -qq etcd-server >/dev/null 2>&1 || "
            "(apt-get update -qq && apt-get install -y -qq etcd-server >/dev/null 2>&1)",
            shell=True, check=False, timeout=600,
        )
        found = shutil.which("etcd")
    return found


ETCD = _etcd_binary()
if ETCD is None:
    pytest.skip("etcd-server is not installed and could not be installed with apt-get", allow_module_level=True)


def _free_ports(count: int) -> List[int]:
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.fixture(autouse=True)
def _budget() -> Iterator[None]:
    """Fails the test once it has run BUDGET_S seconds (autouse: set up before etcd)."""

    def over(signum: int, frame: Any) -> None:
        raise AssertionError(f"cluster test over its {BUDGET_S} s budget")

    previous = signal.signal(signal.SIGALRM, over)
    signal.alarm(BUDGET_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def etcd_processes() -> List[Any]:
    """The etcd member processes of ``etcd_cluster``, in the order of its URLs."""
    return []


@pytest.fixture
def etcd_cluster(tmp_path: Path, etcd_processes: List[Any]) -> Iterator[str]:
    """Three etcd members on loopback ports with temp data dirs; yields the client URLs."""
    ports = _free_ports(6)
    clients, peers = ports[:3], ports[3:]
    initial = ",".join(f"e{i}=http://127.0.0.1:{peers[i]}" for i in range(3))
    processes = []
    for i in range(3):
        log = open(tmp_path / f"etcd{i}.log", "ab")
        processes.append(subprocess.Popen(
            [
                str(ETCD), "--name", f"e{i}", "--data-dir", str(tmp_path / f"etcd{i}"),
                "--listen-client-urls", f"http://127.0.0.1:{clients[i]}",
                "--advertise-client-urls", f"http://127.0.0.1:{clients[i]}",
                "--listen-peer-urls", f"http://127.0.0.1:{peers[i]}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peers[i]}",
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--initial-cluster-token", f"fencelock-test-{os.getpid()}",
                # What docs/CLUSTER.md asks of operators: etcd forgets deleted log keys.
                "--auto-compaction-mode", "revision", "--auto-compaction-retention", "1000",
            ],
            stdout=log, stderr=subprocess.STDOUT,
        ))
    etcd_processes.extend(processes)
    urls = ",".join(f"http://127.0.0.1:{port}" for port in clients)
    try:
        _wait_etcd_healthy(clients, tmp_path)
        yield urls
    finally:
        for process in processes:
            process.kill()
        for process in processes:
            process.wait(timeout=10)


def _wait_etcd_healthy(clients: List[int], tmp_path: Path) -> None:
    import asyncio

    import aetcd

    async def probe() -> bool:
        for port in clients:
            client = aetcd.Client(host="127.0.0.1", port=port, timeout=2)
            try:
                await client.put(b"/fencelock-test/health", b"ok")
            except Exception:  # noqa: BLE001 - not up yet
                return False
            finally:
                await client.close()
        return True

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if asyncio.run(probe()):
            return
        time.sleep(0.2)
    logs = "\n".join((tmp_path / f"etcd{i}.log").read_text(errors="replace")[-2000:] for i in range(3))
    raise RuntimeError(f"etcd did not become healthy:\n{logs}")


def _info(port: int) -> Dict[str, Any]:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
    try:
        info: Dict[str, Any] = client.info("cluster")
        return info
    finally:
        client.close()


def _raw(port: int, *args: str) -> bytes:
    """Sends one RESP request and returns the first reply line (redis-py reads MOVED as Redis
    Cluster's 'MOVED slot host:port')."""
    request = f"*{len(args)}\r\n" + "".join(f"${len(arg)}\r\n{arg}\r\n" for arg in args)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request.encode())
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.strip()


def _wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_failover_keeps_leases_and_tokens_increase(etcd_cluster: str, start_server: Any) -> None:
    ports = _free_ports(3)
    nodes = [
        start_server(
            "--etcd", etcd_cluster, "--cluster", "t", "--advertise", f"127.0.0.1:{port}",
            "--election-ttl", str(ELECTION_TTL_S), port=port,
        )
        for port in ports
    ]

    def leaders(alive: List[int]) -> Optional[int]:
        roles = {port: _info(port) for port in alive}
        leading = [port for port, info in roles.items() if info.get("role") == "leader"]
        # Every follower must also name the leader before the test goes on.
        if len(leading) == 1 and all(
            info.get("leader") == f"127.0.0.1:{leading[0]}" for info in roles.values()
        ):
            return leading[0]
        return None

    leader = _wait_for(lambda: leaders(ports), 15, "a leader")
    client = redis.Redis(host="127.0.0.1", port=leader, socket_timeout=5)
    held = int(client.execute_command("ACQUIRE", "held", 60_000))
    short_ttl_ms = 1_500
    short = int(client.execute_command("ACQUIRE", "short", short_ttl_ms))
    short_deadline = time.monotonic() + short_ttl_ms / 1000
    tokens = [held, short]
    for _ in range(20):
        token = int(client.execute_command("ACQUIRE", "churn", 10_000))
        client.execute_command("RELEASE", "churn", token)
        tokens.append(token)
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)
    follower = next(port for port in ports if port != leader)
    assert _raw(follower, "ACQUIRE", "x", "1000") == f"-MOVED 127.0.0.1:{leader}".encode()
    info = _info(leader)
    assert info["log_index"] >= 1 and info["etcd_revision"] >= 1

    killed_at = time.monotonic()
    nodes[ports.index(leader)].stop(signal.SIGKILL)
    alive = [port for port in ports if port != leader]
    new_leader = _wait_for(lambda: leaders(alive), ELECTION_TTL_S + 5, "a new leader")
    took = time.monotonic() - killed_at
    assert took <= ELECTION_TTL_S + 1, f"failover took {took:.2f} s"

    client = redis.Redis(host="127.0.0.1", port=new_leader, socket_timeout=5)
    # The lease granted before the failover is still held: nobody else gets the lock.
    with pytest.raises(redis.ResponseError, match="LOCKED"):
        client.execute_command("ACQUIRE", "held", 1000)
    assert int(client.execute_command("VERIFY", "held", held)) > 0
    fresh = int(client.execute_command("ACQUIRE", "fresh", 10_000))
    assert fresh > max(tokens)
    # The short lease lapses, never before its deadline; the failover gap may lengthen it
    # (engine time resumes from the last logged instant), by at most the gap.
    def lapsed() -> bool:
        try:
            client.execute_command("VERIFY", "short", short)
            return False
        except redis.ResponseError:
            return True

    _wait_for(lapsed, short_ttl_ms / 1000 + took + 2, "the short lease to lapse")
    assert time.monotonic() >= short_deadline
    taken = int(client.execute_command("ACQUIRE", "short", 1000))
    assert taken > fresh
    # fencelock's own client, given every node, follows MOVED from a follower to the leader.
    from fencelock import Client

    first_follower = next(port for port in alive if port != new_leader)
    with Client("127.0.0.1", first_follower, fallbacks=[("127.0.0.1", p) for p in ports if p != first_follower]) as lock_client:
        lease = lock_client.acquire("via-client", 5.0)
        assert lease.token > taken
        lock_client.release("via-client", lease.token)
    other = next(port for port in alive if port != new_leader)
    assert _raw(other, "ACQUIRE", "x", "1000") == f"-MOVED 127.0.0.1:{new_leader}".encode()


def _start_nodes(start_server: Any, etcd_urls: str, count: int = 3) -> Dict[int, Any]:
    ports = _free_ports(count)
    return {
        port: start_server(
            "--etcd", etcd_urls, "--cluster", "t", "--advertise", f"127.0.0.1:{port}",
            "--election-ttl", str(ELECTION_TTL_S), "--log-level", "debug", port=port,
        )
        for port in ports
    }


def _leader_of(alive: List[int]) -> Optional[int]:
    """The one node that says it leads, once every node in ``alive`` names it."""
    roles = {port: _info(port) for port in alive}
    leading = [port for port, info in roles.items() if info.get("role") == "leader"]
    if len(leading) == 1 and all(info.get("leader") == f"127.0.0.1:{leading[0]}" for info in roles.values()):
        return leading[0]
    return None


def _send(sock: socket.socket, *args: str) -> None:
    sock.sendall((f"*{len(args)}\r\n" + "".join(f"${len(arg)}\r\n{arg}\r\n" for arg in args)).encode())


def _read_line(sock: socket.socket, timeout: float) -> bytes:
    """One reply line, or b"" when the node closed the connection first."""
    sock.settimeout(timeout)
    reply = b""
    while not reply.endswith(b"\r\n"):
        try:
            chunk = sock.recv(1)
        except ConnectionResetError:
            return b""
        if not chunk:
            break
        reply += chunk
    return reply.strip()


def test_a_paused_leader_grants_nothing_after_it_resumes(etcd_cluster: str, start_server: Any) -> None:
    """SIGSTOP the leader past its election lease: another node leads; SIGCONT it: the requests
    that waited in its socket while it was stopped get an error or a closed connection, never a grant,
    and fencelock's client, connected to it before the pause, moves on to the new leader."""
    from fencelock import Client

    nodes = _start_nodes(start_server, etcd_cluster)
    ports = list(nodes)
    leader = _wait_for(lambda: _leader_of(ports), 15, "a leader")
    others = [port for port in ports if port != leader]
    endpoints = [("127.0.0.1", port) for port in others]
    with Client("127.0.0.1", leader, fallbacks=endpoints) as client:
        before = client.acquire("before", 60.0)
        # A raw connection to the leader, opened before the pause, used after it.
        stale = socket.create_connection(("127.0.0.1", leader), timeout=5)
        nodes[leader].pause()
        try:
            paused_at = time.monotonic()
            new_leader = _wait_for(lambda: _leader_of(others), ELECTION_TTL_S + 8, "a leader among the others")
            assert time.monotonic() - paused_at <= ELECTION_TTL_S + 3
            fresh = redis.Redis(host="127.0.0.1", port=new_leader, socket_timeout=5)
            # The lease granted by the paused leader is in the log: the new leader honours it.
            with pytest.raises(redis.ResponseError, match="LOCKED"):
                fresh.execute_command("ACQUIRE", "before", 1000)
            taken = int(fresh.execute_command("ACQUIRE", "contended", 30_000))
            assert taken > before.token
            # Requests reach the paused leader's socket; it reads them only when it resumes.
            _send(stale, "ACQUIRE", "contended", "30000")
            _send(stale, "ACQUIRE", "free-on-the-old-leader", "30000")
        finally:
            nodes[leader].resume()
        answers = [_read_line(stale, 15), _read_line(stale, 15)]
        print(f"the resumed leader answered {answers}")
        stale.close()
        for answer in answers:
            # An error, or the connection closed as the node stepped down: never a token.
            assert answer == b"" or answer.startswith((b"-MOVED", b"-NOTLEADER", b"-LOCKED")), answer
        # The lock the new leader granted was never granted again.
        assert int(fresh.execute_command("VERIFY", "contended", taken)) > 0
        # The old leader rejoins as a follower naming the new one.
        try:
            _wait_for(lambda: _info(leader).get("role") == "follower" and _info(leader).get("leader") == f"127.0.0.1:{new_leader}",
                      ELECTION_TTL_S + 8, "the old leader to follow")
        except AssertionError as error:
            raise AssertionError(f"{error}: INFO {_info(leader)}\n{nodes[leader].output()[-3000:]}") from None
        # The client that was connected to the old leader moves on: MOVED or a failed
        # connection takes it to the leader, and tokens keep increasing.
        after = client.acquire("after", 5.0)
        assert after.token > taken
        client.release("after", after.token)
        assert client.verify("before", before.token) > 0


def _etcd_keys(etcd_urls: str, prefix: bytes) -> Dict[bytes, bytes]:
    """Every key under ``prefix`` as etcd holds it now (one range read)."""
    import asyncio

    import aetcd

    host, port = etcd_urls.split(",")[0].rsplit("//", 1)[1].rsplit(":", 1)

    async def read() -> Dict[bytes, bytes]:
        client = aetcd.Client(host=host, port=int(port), timeout=5)
        try:
            return {kv.key: kv.value for kv in await client.get_prefix(prefix)}
        finally:
            await client.close()

    return asyncio.run(read())


def test_snapshots_compact_the_log_and_a_late_node_takes_over(etcd_cluster: str, start_server: Any) -> None:
    """With --snapshot-every 5 the log keys before the newest snapshot are deleted; a fourth
    node started afterwards restores the snapshot, follows, and once it is the only node left
    it leads with the leases of the compacted log and tokens above every earlier one."""
    import json

    def node(port: int) -> Any:
        return start_server(
            "--etcd", etcd_cluster, "--cluster", "t", "--advertise", f"127.0.0.1:{port}",
            "--election-ttl", str(ELECTION_TTL_S), "--snapshot-every", "5", port=port,
        )

    ports = _free_ports(4)
    nodes = {port: node(port) for port in ports[:3]}
    leader = _wait_for(lambda: _leader_of(ports[:3]), 15, "a leader")
    client = redis.Redis(host="127.0.0.1", port=leader, socket_timeout=5)
    held = int(client.execute_command("ACQUIRE", "held", 60_000))
    delayed = int(client.execute_command("ACQUIRE", "delayed", 100, "LOCKDELAY", 60_000))
    tokens = [held, delayed]
    for _ in range(20):
        token = int(client.execute_command("ACQUIRE", "churn", 10_000))
        client.execute_command("RELEASE", "churn", token)
        tokens.append(token)
    keys = _etcd_keys(etcd_cluster, b"/fencelock/t/")
    snapshot = json.loads(keys[b"/fencelock/t/snapshot"])
    assert snapshot["version"] == 1 and snapshot["index"] >= 40, snapshot["index"]
    log_indexes = sorted(int(key.rsplit(b"/", 1)[1]) for key in keys if key.startswith(b"/fencelock/t/log/"))
    # The batches before the snapshot are gone (the first ones held the two leases above).
    assert log_indexes[0] == snapshot["index"], log_indexes
    assert log_indexes == list(range(snapshot["index"], log_indexes[-1] + 1))
    info = _info(leader)
    assert info["snapshot_index"] >= snapshot["index"] and info["snapshots_too_large"] == 0

    late = ports[3]
    nodes[late] = node(late)
    _wait_for(lambda: _info(late).get("role") == "follower"
              and _info(late)["log_index"] == _info(leader)["log_index"], 15, "the late node to follow")
    assert _info(late)["snapshot_index"] >= snapshot["index"]
    assert _info(late)["log_error"] in ("", None)
    # Only the late node is left: it must lead from the snapshot and the log after it.
    for port in ports[:3]:
        if port != leader:
            nodes[port].stop(signal.SIGKILL)
    nodes[leader].stop(signal.SIGKILL)
    assert _wait_for(lambda: _leader_of([late]), ELECTION_TTL_S + 8, "the late node to lead") == late
    fresh = redis.Redis(host="127.0.0.1", port=late, socket_timeout=5)
    with pytest.raises(redis.ResponseError, match="LOCKED"):
        fresh.execute_command("ACQUIRE", "held", 1000)
    assert int(fresh.execute_command("VERIFY", "held", held)) > 0
    # The lease on "delayed" lapsed long ago; its lock-delay, in the snapshot only, holds.
    with pytest.raises(redis.ResponseError, match="LOCKED"):
        fresh.execute_command("ACQUIRE", "delayed", 1000)
    token = int(fresh.execute_command("ACQUIRE", "after", 10_000))
    assert token > max(tokens)


def test_pipelined_appends_keep_the_log_whole_and_the_leases(etcd_cluster: str, start_server: Any) -> None:
    """With --pipeline-depth 4 (etcd may apply the appends in flight in any order), 40
    concurrent clients on one pipelined connection cycle locks with 250-byte owners, so that
    snapshots come by size (1 MiB of batches) while appends are in flight: the leader never
    steps down, tokens only increase, etcd's log is a gap-free run from the snapshot's batch,
    the followers apply all of it, and a failover keeps a lease taken mid-load."""
    import asyncio
    import json

    from fencelock.aio import AsyncClient

    ports = _free_ports(3)
    nodes = {
        port: start_server(
            "--etcd", etcd_cluster, "--cluster", "t", "--advertise", f"127.0.0.1:{port}",
            "--election-ttl", str(ELECTION_TTL_S), "--pipeline-depth", "4",
            port=port,
        )
        for port in ports
    }
    leader = _wait_for(lambda: _leader_of(ports), 15, "a leader")
    term = _info(leader)["term"]

    async def load() -> List[List[int]]:
        client = AsyncClient("127.0.0.1", leader, timeout=10.0)
        owner = "o" * 250
        stop = time.monotonic() + 4

        async def cycles(index: int) -> List[int]:
            tokens = []
            while time.monotonic() < stop:
                lease = await client.acquire(f"pipe:{index}", 10.0, owner=owner)
                tokens.append(lease.token)
                await client.release(f"pipe:{index}", lease.token)
            return tokens

        held = await client.acquire("held", 60.0)
        per_client = await asyncio.gather(*(cycles(index) for index in range(40)))
        await client.close()
        return [[held.token]] + list(per_client)

    per_client = asyncio.run(load())
    tokens = [token for run in per_client for token in run]
    assert len(tokens) > 200, len(tokens)
    assert all(run == sorted(run) for run in per_client)
    assert len(set(tokens)) == len(tokens)
    info = _info(leader)
    assert info["role"] == "leader" and info["term"] == term, "the leader stepped down under load"
    keys = _etcd_keys(etcd_cluster, b"/fencelock/t/")
    snapshot = json.loads(keys[b"/fencelock/t/snapshot"])
    log_indexes = sorted(int(key.rsplit(b"/", 1)[1]) for key in keys if key.startswith(b"/fencelock/t/log/"))
    assert log_indexes[0] == snapshot["index"] > 0, (snapshot["index"], log_indexes[:3])
    # (The client's disconnect may have appended a batch since INFO was read.)
    assert log_indexes == list(range(log_indexes[0], log_indexes[-1] + 1))
    assert log_indexes[-1] >= info["log_index"]
    followers = [port for port in ports if port != leader]
    _wait_for(lambda: all(_info(port)["log_index"] == _info(leader)["log_index"] for port in followers), 10,
              "the followers to apply the log")
    nodes[leader].stop(signal.SIGKILL)
    new_leader = _wait_for(lambda: _leader_of(followers), ELECTION_TTL_S + 5, "a new leader")
    client = redis.Redis(host="127.0.0.1", port=new_leader, socket_timeout=5)
    with pytest.raises(redis.ResponseError, match="LOCKED"):
        client.execute_command("ACQUIRE", "held", 1000)
    assert int(client.execute_command("ACQUIRE", "after", 1000)) > max(tokens)


def test_service_continues_when_an_etcd_member_dies(etcd_cluster: str, etcd_processes: List[Any], start_server: Any) -> None:
    """SIGKILL the etcd member listed first (the one the nodes use first): a quorum is left, so
    leases keep being granted, the ones granted before are still held and tokens keep rising."""
    from fencelock import Client

    nodes = _start_nodes(start_server, etcd_cluster)
    ports = list(nodes)
    leader = _wait_for(lambda: _leader_of(ports), 15, "a leader")
    fallbacks = [("127.0.0.1", port) for port in ports if port != leader]
    with Client("127.0.0.1", leader, fallbacks=fallbacks, timeout=5.0) as client:
        held = client.acquire("held", 60.0)
        tokens = [held.token]
        for _ in range(5):
            lease = client.acquire("churn", 10.0)
            client.release("churn", lease.token)
            tokens.append(lease.token)
        etcd_processes[0].kill()
        etcd_processes[0].wait(timeout=10)
        killed_at = time.monotonic()
        granted_after = []
        deadline = killed_at + 30
        while len(granted_after) < 5 and time.monotonic() < deadline:
            try:
                lease = client.acquire("churn", 10.0)
            except Exception:  # noqa: BLE001 - a node moving to the next etcd member
                time.sleep(0.2)
                continue
            granted_after.append((time.monotonic() - killed_at, lease.token))
            client.release("churn", lease.token)
        assert len(granted_after) == 5, f"only {len(granted_after)} grants in 30 s after the etcd member died"
        new_tokens = [token for _, token in granted_after]
        assert new_tokens == sorted(new_tokens) and new_tokens[0] > max(tokens)
        assert client.verify("held", held.token) > 0
        with pytest.raises(Exception, match="LOCKED"):
            client.acquire("held", 1.0)
        print(f"first grant {granted_after[0][0]:.2f} s after the etcd member died")


def test_cluster_nodes_with_a_password_tls_and_metrics(etcd_cluster: str, start_server: Any, pki: Dict[str, str]) -> None:
    """``--requirepass``, TLS and ``--metrics`` on every node: nothing, not even MOVED, before
    AUTH; fencelock's client (TLS, password, every node) follows MOVED and keeps its lease across
    a failover; each node's metrics say whether it leads."""
    import ssl

    from fencelock import Client
    nodes = {
        port: start_server(
            "--etcd", etcd_cluster, "--cluster", "t", "--advertise", f"127.0.0.1:{port}",
            "--election-ttl", str(ELECTION_TTL_S), "--requirepass", "s3cret", "--tls-cert", pki["server"], "--tls-key", pki["server-key"],
            "--metrics", "127.0.0.1:0", port=port,
        )
        for port in _free_ports(3)
    }
    ports = list(nodes)

    def info(port: int) -> Dict[str, Any]:
        client = redis.Redis(host="127.0.0.1", port=port, password="s3cret", ssl=True, ssl_ca_certs=pki["ca"], socket_timeout=2)
        try:
            found: Dict[str, Any] = client.info("cluster")
            return found
        finally:
            client.close()

    def leader_of(alive: List[int]) -> Optional[int]:
        roles = {port: info(port) for port in alive}
        leading = [port for port, found in roles.items() if found.get("role") == "leader"]
        if len(leading) == 1 and all(found.get("leader") == f"127.0.0.1:{leading[0]}" for found in roles.values()):
            return leading[0]
        return None

    leader = _wait_for(lambda: leader_of(ports), 15, "a leader")
    follower = next(port for port in ports if port != leader)
    # Each node's metrics: the cluster gauges beside the server's own.
    from prometheus_client.parser import text_string_to_metric_families

    def gauge(port: int, name: str) -> float:
        line = next(line for line in nodes[port].output().splitlines() if "metrics on http://" in line)
        with urllib.request.urlopen(line.split("metrics on ", 1)[1].strip(), timeout=5) as response:
            families = {family.name: family for family in text_string_to_metric_families(response.read().decode())}
        return float(families[name].samples[0].value)

    assert gauge(leader, "fencelock_cluster_leader") == 1.0
    assert gauge(follower, "fencelock_cluster_leader") == 0.0
    context = ssl.create_default_context(cafile=pki["ca"])
    with socket.create_connection(("127.0.0.1", follower), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            _send(sock, "ACQUIRE", "x", "1000")
            assert _read_line(sock, 5).startswith(b"-NOAUTH"), "a follower told an unauthenticated client where the leader is"
            _send(sock, "AUTH", "s3cret")
            assert _read_line(sock, 5) == b"+OK"
            _send(sock, "ACQUIRE", "x", "1000")
            assert _read_line(sock, 5) == f"-MOVED 127.0.0.1:{leader}".encode()
    others = [("127.0.0.1", port) for port in ports if port != follower]
    with Client("127.0.0.1", follower, fallbacks=others, password="s3cret", tls=True, tls_ca=pki["ca"]) as client:
        held = client.acquire("held", 60.0)
        # The follower's replica holds the lease too (its gauges follow the leader's log).
        _wait_for(lambda: gauge(follower, "fencelock_live_leases") == 1.0, 5, "the follower's replica to hold the lease")
        nodes[leader].stop(signal.SIGKILL)
        alive = [port for port in ports if port != leader]
        _wait_for(lambda: leader_of(alive), ELECTION_TTL_S + 5, "a new leader")
        assert client.verify("held", held.token) > 0
        after = client.acquire("after", 5.0)
        assert after.token > held.token
    with pytest.raises(Exception, match="WRONGPASS|NOAUTH"):
        with Client("127.0.0.1", alive[0], fallbacks=[("127.0.0.1", alive[1])], password="wrong", tls=True,
                    tls_ca=pki["ca"], timeout=3) as client:
            client.acquire("x", 1.0)


def test_cluster_mode_keeps_protected_mode(tmp_path: Path) -> None:
    """With no authentication, a non-loopback address needs --no-auth, as on a single server."""
    done = subprocess.run(
        [sys.executable, "-m", "fencelock", "serve", "--etcd", "http://127.0.0.1:1", "--host", "0.0.0.0", "--port", "0"],
        cwd=tmp_path, capture_output=True, timeout=20,
    )
    assert done.returncode != 0
    assert b"refusing to serve 0.0.0.0 without authentication" in done.stderr
