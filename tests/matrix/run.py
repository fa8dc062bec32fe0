#!/usr/bin/env python3
"""The cross-language matrix: every server x every client, one scenario suite written as data.

Each scenario (tests/matrix/scenarios/*.json) is run once per (server, client) cell where the
client's transport allows it. A cell starts its own server (with a test clock, in memory) and
one driver process per logical client of the scenario; drivers speak JSON lines (see
README.md). The run ends with a table of server x client -> passed / failed / n/a, printed and
written to tests/matrix/RESULTS.md, and exits 1 if any applicable cell failed. Then the data
directory interchange: a data dir written by one server is served by the other.

    python tests/matrix/run.py [--servers python,node] [--clients sync,asyncio,...] [-k NAME]

Needs: `fencelock` importable by this Python (the package's venv), redis-py, redis-cli, node
with the fencelock package (FENCELOCK_NODE: a directory holding it; default <repo>/node).
"""

from __future__ import annotations

import argparse
import atexit
import glob
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
#: How much real time a cluster scenario's steps may take before a VERIFY (no test clock there).
CLUSTER_CLOCK_MS = 3000
REPO = os.path.dirname(os.path.dirname(HERE))
STEP_TIMEOUT = 10.0

# What each client's transport allows: `events` (RESP3 lost-lease pushes reach the caller),
# `connection` (one long-lived connection per client, so EPHEMERAL leases and waits live on it),
# `query` (the client can read QUERY's nested reply).
CLIENTS: Dict[str, Tuple[str, ...]] = {
    "sync": ("events", "connection", "query"),
    "asyncio": ("events", "connection", "query"),
    "node": ("events", "connection", "query"),
    "redis-cli": (),
    "redis-py": ("connection", "query"),
    "ioredis": ("connection", "query"),
    "browser": ("events", "connection", "query"),
}
SERVERS = ("python", "node", "browser", "cluster")
LABELS = {
    "sync": "Python Client",
    "asyncio": "Python AsyncClient",
    "node": "Node client",
    "browser": "browser page",
}


def applicable(server: str, client: str) -> bool:
    """The browser's SharedWorker serves only pages; pages reach no TCP server."""
    return (server == "browser") == (client == "browser")


def runs_on(server: str, scenario: "Scenario") -> bool:
    """A cluster's engine time is the hosts' clocks (no ``--test-clock``): scenarios that move
    time with DEBUG ADVANCE do not apply to it."""
    return not (server == "cluster" and scenario.advances)


# -- a minimal RESP client for the orchestrator's own control connection ----------------------


class Control:
    """The orchestrator's connection to a server: DEBUG ADVANCE and QUERY, RESP2."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=STEP_TIMEOUT)
        self.buf = b""

    def call(self, *args: Any) -> Any:
        parts = [str(a).encode() if not isinstance(a, bytes) else a for a in args]
        self.sock.sendall(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
        return self._reply()

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the control connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _reply(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(65536)
            data, self.buf = self.buf[:n], self.buf[n + 2 :]
            return data.decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError(f"unexpected reply line {line!r}")

    def lock(self, name: str) -> Dict[str, Any]:
        for entry in self.call("QUERY", name):
            lock = dict(zip(entry[::2], entry[1::2]))
            if lock["name"] == name:
                lock["holders"] = [dict(zip(h[::2], h[1::2])) for h in lock["holders"]]
                lock["waiters"] = [dict(zip(w[::2], w[1::2])) for w in lock["waiters"]]
                return lock
        return {"name": name, "holders": [], "waiters": []}

    def close(self) -> None:
        self.sock.close()


# -- servers ----------------------------------------------------------------------------------


def python_bin(name: str) -> str:
    return os.path.join(os.path.dirname(sys.executable), name)


def node_package() -> str:
    return os.environ.get("FENCELOCK_NODE", os.path.join(REPO, "node"))


class ServerProcess:
    def __init__(self, kind: str, work: str, data_dir: Optional[str] = None, extra: Tuple[str, ...] = (),
                 cluster: bool = False) -> None:
        self.kind = kind
        ready = os.path.join(work, f"ready-{kind}-{time.monotonic_ns()}")
        flags = ["serve", "--host", "127.0.0.1", "--ready-file", ready, "--log-level", "warning", *extra]
        if not cluster:
            # A cluster node keeps its state in etcd and is given its own --port.
            flags += ["--port", "0", *(["--data-dir", data_dir] if data_dir else ["--in-memory"])]
        if kind == "python":
            argv = [python_bin("fencelock"), *flags]
        elif kind == "node":
            argv = ["node", os.path.join(node_package(), "bin", "fencelock.js"), *flags]
        else:
            raise ValueError(kind)
        self.log = open(os.path.join(work, f"server-{kind}.log"), "ab")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 20
        while not (os.path.exists(ready) and open(ready).read().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{kind} server did not start (exit {self.proc.poll()}); log: {self.log.name}")
            time.sleep(0.02)
        self.port = int(open(ready).read().split()[1])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# -- drivers ----------------------------------------------------------------------------------


class Driver:
    """One logical client: send requests, collect results by id, and lost-lease events."""

    def __init__(self) -> None:
        self.results: Dict[int, Dict[str, Any]] = {}
        self.events: List[Dict[str, Any]] = []
        self.cond = threading.Condition()
        self.next_id = 1

    def deliver(self, message: Dict[str, Any]) -> None:
        with self.cond:
            if "event" in message:
                self.events.append(message)
            elif "id" in message:
                self.results[message["id"]] = message
            self.cond.notify_all()

    def result(self, rid: int, timeout: float = STEP_TIMEOUT) -> Dict[str, Any]:
        with self.cond:
            if not self.cond.wait_for(lambda: rid in self.results, timeout):
                raise AssertionError(f"no result for request {rid} within {timeout} s")
            return self.results.pop(rid)

    def wait_event(self, match: Callable[[Dict[str, Any]], bool], timeout: float = STEP_TIMEOUT) -> Dict[str, Any]:
        with self.cond:
            found: List[Dict[str, Any]] = []

            def seen() -> bool:
                found[:] = [e for e in self.events if match(e)]
                return bool(found)

            if not self.cond.wait_for(seen, timeout):
                raise AssertionError(f"no matching event within {timeout} s; events: {self.events}")
            return found[0]


class ProcessDriver(Driver):
    def __init__(self, argv: List[str], env: Dict[str, str], log_path: str) -> None:
        super().__init__()
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env)
        self.ready = threading.Event()
        self.fatal: Optional[str] = None
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(20):
            raise RuntimeError(f"driver {argv} not ready: {self.fatal or 'timeout'} (log {log_path})")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            if "ready" in message:
                self.ready.set()
            elif "fatal" in message:
                self.fatal = message["fatal"]
            else:
                self.deliver(message)
        self.ready.set()

    def send(self, request: Dict[str, Any]) -> int:
        rid = self.next_id
        self.next_id += 1
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({**request, "id": rid}) + "\n").encode())
        self.proc.stdin.flush()
        return rid

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.result(self.send({"op": "close"}), timeout=5)
            except (AssertionError, BrokenPipeError, OSError):
                pass
        self.kill()


class RedisCliDriver(Driver):
    """redis-cli, one process (and one connection) per request, as people use it in scripts."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port
        self.procs: List[subprocess.Popen[bytes]] = []

    def send(self, request: Dict[str, Any]) -> int:
        rid = self.next_id
        self.next_id += 1
        r = request
        op = r["op"]
        if op == "acquire":
            argv = ["ACQUIRE", r["name"], str(r["ttl"])]
            if r.get("wait") is not None:
                argv += ["WAIT", str(r["wait"])]
            argv += ["SHARED"] if r.get("shared") else []
            argv += ["STEAL"] if r.get("steal") else []
            argv += ["OWNER", r["owner"]] if r.get("owner") is not None else []
            argv += ["LOCKDELAY", str(r["lock_delay"])] if r.get("lock_delay") is not None else []
        elif op in ("renew", "verify", "release"):
            argv = [op.upper(), r["name"], str(r["token"])] + ([str(r["ttl"])] if op == "renew" else [])
        else:
            raise ValueError(f"redis-cli cannot run {op}")
        proc = subprocess.Popen(["redis-cli", "-p", str(self.port), "--no-raw", *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        threading.Thread(target=self._collect, args=(rid, op, proc), daemon=True).start()
        return rid

    def _collect(self, rid: int, op: str, proc: "subprocess.Popen[bytes]") -> None:
        out = proc.communicate()[0].decode().strip()
        if out.startswith("(error) "):
            text = out[len("(error) ") :]
            self.deliver({"id": rid, "error": text.split(" ", 1)[0], "text": text})
        elif out.startswith("(integer) "):
            value = int(out[len("(integer) ") :])
            self.deliver({"id": rid, "ok": {"token": value} if op == "acquire" else {"ms_left": value}})
        elif out == "OK":
            self.deliver({"id": rid, "ok": {}})
        else:
            self.deliver({"id": rid, "error": "UNPARSED", "text": out})

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        self.kill()


class BrowserHub(ProcessDriver):
    """tests/matrix/drivers/browser_driver.mjs: headless Chromium, one page per logical client,
    all sharing the package's SharedWorker (in memory, test clock), fresh for each scenario."""

    def __init__(self, work: str) -> None:
        web = os.environ.get("FENCELOCK_WEB", os.path.join(REPO, "web"))
        env = dict(os.environ, FENCELOCK_WEB=web)
        argv = ["node", os.path.join(HERE, "drivers", "browser_driver.mjs")]
        super().__init__(argv, env, os.path.join(work, "driver-browser.log"))
        self.scenarios = 0

    def begin(self, scenario: str) -> None:
        self.scenarios += 1
        self.expect_ok(self.send({"op": "scenario", "worker": f"matrix-{self.scenarios}-{scenario}"}))

    def expect_ok(self, rid: int) -> Dict[str, Any]:
        result = self.result(rid)
        if "ok" not in result:
            raise Failure(f"browser driver: {result}")
        return dict(result["ok"])


class PageClient(Driver):
    """One logical client of a scenario: a page of the hub."""

    def __init__(self, hub: BrowserHub, who: str) -> None:
        super().__init__()
        self.hub = hub
        self.who = who

    def send(self, request: Dict[str, Any]) -> int:
        return self.hub.send({**request, "client": self.who})

    def result(self, rid: int, timeout: float = STEP_TIMEOUT) -> Dict[str, Any]:
        return self.hub.result(rid, timeout)

    def wait_event(self, match: Callable[[Dict[str, Any]], bool], timeout: float = STEP_TIMEOUT) -> Dict[str, Any]:
        return self.hub.wait_event(lambda e: e.get("client") == self.who and match(e), timeout)

    def kill(self) -> None:
        self.hub.expect_ok(self.hub.send({"op": "kill", "client": self.who}))

    def close(self) -> None:
        self.kill()


class BrowserControl:
    """The orchestrator's control through its own page: DEBUG ADVANCE and QUERY."""

    def __init__(self, hub: BrowserHub) -> None:
        self.hub = hub

    def call(self, *args: Any) -> Any:
        if args[:2] != ("DEBUG", "ADVANCE"):
            raise ValueError(f"browser control runs DEBUG ADVANCE only, not {args}")
        return self.hub.expect_ok(self.hub.send({"op": "control", "request": {"op": "advance", "ms": args[2]}}))

    def lock(self, name: str) -> Dict[str, Any]:
        ok = self.hub.expect_ok(self.hub.send({"op": "control", "request": {"op": "query", "prefix": name}}))
        for lock in ok["locks"]:
            if lock["name"] == name:
                return dict(lock)
        return {"name": name, "holders": [], "waiters": []}

    def close(self) -> None:
        pass


class Cell:
    """Where a scenario runs: a server and how to reach it (control, one driver per client)."""

    def __init__(self, server_kind: str, client: str, work: str) -> None:
        self.client = client
        self.work = work
        self.server: Optional[ServerProcess] = None
        self.hub: Optional[BrowserHub] = None
        self.cluster: Optional[ClusterUnderTest] = None
        if server_kind == "browser":
            self.hub = BrowserHub(work)
        elif server_kind == "cluster":
            self.cluster = ClusterUnderTest(work)
        else:
            self.server = ServerProcess(server_kind, work, None, ("--test-clock",))

    def begin(self, scenario: str) -> None:
        if self.hub is not None:
            self.hub.begin(scenario)

    def control(self) -> Any:
        if self.hub is not None:
            return BrowserControl(self.hub)
        if self.cluster is not None:
            return Control(self.cluster.leader)
        assert self.server is not None
        return Control(self.server.port)

    def driver(self, who: str, label: str) -> Driver:
        if self.hub is not None:
            return PageClient(self.hub, who)
        if self.cluster is not None:
            # fencelock's clients get every node, a follower first (they follow MOVED); the
            # Redis tools talk to the leader, as a Redis client talks to one server.
            fencelock_client = self.client in ("sync", "asyncio", "node")
            ports = self.cluster.follower_first() if fencelock_client else [self.cluster.leader]
            return start_driver(self.client, ",".join(map(str, ports)), self.work, label)
        assert self.server is not None
        return start_driver(self.client, self.server.port, self.work, label)

    def stop(self) -> None:
        if self.hub is not None:
            self.hub.close()
        if self.server is not None:
            self.server.stop()
        if self.cluster is not None:
            self.cluster.stop()


class ClusterUnderTest:
    """Three cluster nodes (two Python, one Node) of a cluster of their own on the run's etcd
    (three members, started once, shared by every cell under its own cluster name)."""

    etcd: Any = None
    count = 0

    def __init__(self, work: str) -> None:
        if ClusterUnderTest.etcd is None:
            sys.path.insert(0, os.path.join(REPO, "tests", "safety"))
            from etcd import Etcd  # the safety run's three loopback members

            ClusterUnderTest.etcd = Etcd(Path(work) / "etcd").__enter__()
            atexit.register(ClusterUnderTest.etcd.__exit__, None, None, None)
        ClusterUnderTest.count += 1
        name = f"matrix{ClusterUnderTest.count}"
        self.nodes: List[ServerProcess] = []
        try:
            for index in range(3):
                port = _free_port()
                extra = ("--port", str(port), "--etcd", ClusterUnderTest.etcd.urls, "--cluster", name,
                         "--advertise", f"127.0.0.1:{port}")
                self.nodes.append(ServerProcess("node" if index == 1 else "python", work, None, extra, cluster=True))
                if index == 0:
                    self._wait_leader([self.nodes[0].port])
            self.leader = self._wait_leader([node.port for node in self.nodes])
        except BaseException:
            self.stop()
            raise

    def _wait_leader(self, ports: List[int]) -> int:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            roles = {port: _info_cluster(port) for port in ports}
            leading = [port for port, info in roles.items() if info.get("role") == "leader"]
            if len(leading) == 1 and all(info.get("leader") == f"127.0.0.1:{leading[0]}" for info in roles.values()):
                return leading[0]
            time.sleep(0.05)
        raise RuntimeError(f"no cluster leader among {ports} within 20 s")

    def follower_first(self) -> List[int]:
        ports = [node.port for node in self.nodes]
        followers = [port for port in ports if port != self.leader]
        return [*followers, self.leader]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _info_cluster(port: int) -> Dict[str, str]:
    try:
        control = Control(port)
    except OSError:
        return {}
    try:
        text = control.call("INFO", "cluster")
    except Exception:  # noqa: BLE001 - not up yet
        return {}
    finally:
        control.close()
    if isinstance(text, bytes):
        text = text.decode()
    return dict(line.split(":", 1) for line in str(text).splitlines() if ":" in line)


def start_driver(client: str, port: Any, work: str, label: str) -> Driver:
    """``port``: one server's, or ``p1,p2,p3`` for the nodes of a cluster (fencelock's clients)."""
    if client == "redis-cli":
        return RedisCliDriver(int(port))
    env = dict(os.environ, FENCELOCK_NODE=node_package(), PYTHONUNBUFFERED="1")
    log = os.path.join(work, f"driver-{client}-{label}.log")
    if client in ("sync", "asyncio", "redis-py"):
        argv = [sys.executable, os.path.join(HERE, "drivers", "py_driver.py"), client, str(port)]
    elif client in ("node", "ioredis"):
        argv = ["node", os.path.join(HERE, "drivers", "node_driver.js"), "fencelock" if client == "node" else "ioredis", str(port)]
    else:
        raise ValueError(client)
    return ProcessDriver(argv, env, log)


# -- scenarios --------------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    description: str
    needs: Tuple[str, ...]
    steps: List[Dict[str, Any]]
    clients: List[str] = field(default_factory=list)

    @property
    def advances(self) -> bool:
        """Tells whether the scenario moves the server's test clock (DEBUG ADVANCE)."""
        return any(step.get("op") == "advance" for step in self.steps)

    @classmethod
    def load(cls, path: str) -> "Scenario":
        with open(path) as f:
            data = json.load(f)
        steps = data["steps"]
        clients = sorted({s["client"] for s in steps if "client" in s})
        return cls(os.path.basename(path)[:-5], data["description"], tuple(data.get("needs", ())), steps, clients)


class Failure(AssertionError):
    pass


def run_scenario(scenario: Scenario, cell: Cell) -> None:
    prefix = f"{scenario.name}:"
    cell.begin(scenario.name)
    control = cell.control()
    drivers: Dict[str, Driver] = {}
    background: Dict[str, Tuple[str, int]] = {}
    tokens: Dict[str, int] = {}

    def resolve(value: Any) -> Any:
        return tokens[value[1:]] if isinstance(value, str) and value.startswith("$") else value

    def check(step: Dict[str, Any], where: str, result: Dict[str, Any]) -> None:
        expect = step.get("expect", "ok")
        if expect == "ok":
            if "ok" not in result:
                raise Failure(f"{where}: expected success, got {result.get('error')}: {result.get('text')}")
            ok = result["ok"]
            if "save" in step:
                tokens[step["save"]] = ok["token"]
            for var in step.get("token_gt", []):
                if not ok["token"] > tokens[var]:
                    raise Failure(f"{where}: token {ok['token']} is not above ${var} = {tokens[var]}")
            if "ms_left" in step:
                got, expected = ok.get("ms_left"), step["ms_left"]
                if cell.cluster is None and got != expected:
                    raise Failure(f"{where}: ms_left {got}, expected {expected}")
                # A cluster's clock runs (no test clock): the time the steps took is gone, never more.
                if cell.cluster is not None and not (isinstance(got, int) and expected - CLUSTER_CLOCK_MS <= got <= expected):
                    raise Failure(f"{where}: ms_left {got}, expected {expected} minus at most {CLUSTER_CLOCK_MS} ms of real time")
            if "locks" in step:
                got = [
                    {
                        "name": lock["name"][len(prefix) :],
                        "holders": sorted([resolve_back(h["token"]), h["mode"], h["owner"]] for h in lock["holders"]),
                        "waiters": [[w["mode"], w["owner"]] for w in lock["waiters"]],
                    }
                    for lock in ok["locks"]
                ]
                want = [
                    {
                        "name": lock["name"],
                        "holders": sorted([h[0], h[1], h[2]] for h in lock["holders"]),
                        "waiters": lock.get("waiters", []),
                    }
                    for lock in step["locks"]
                ]
                if got != want:
                    raise Failure(f"{where}: query gave {got}, expected {want}")
        else:
            code = expect["error"]
            if result.get("error") != code:
                raise Failure(f"{where}: expected error {code}, got {result}")

    def resolve_back(token: int) -> str:
        for var, value in tokens.items():
            if value == token:
                return "$" + var
        return str(token)

    try:
        for index, step in enumerate(scenario.steps):
            where = f"step {index + 1} ({json.dumps(step)})"
            op = step["op"]
            name = (prefix + step["name"] if step["name"] else "") if "name" in step else None
            if op == "advance":
                control.call("DEBUG", "ADVANCE", step["ms"])
            elif op == "waiters":
                deadline = time.monotonic() + STEP_TIMEOUT
                while len(control.lock(name)["waiters"]) != step["count"]:
                    if time.monotonic() > deadline:
                        raise Failure(f"{where}: waiters stayed {control.lock(name)['waiters']}")
                    time.sleep(0.01)
            elif op == "holders":
                deadline = time.monotonic() + STEP_TIMEOUT
                want = sorted(resolve(t) for t in step["tokens"])
                while sorted(h["token"] for h in control.lock(name)["holders"]) != want:
                    if time.monotonic() > deadline:
                        raise Failure(f"{where}: holders {control.lock(name)['holders']}, expected tokens {want}")
                    time.sleep(0.01)
            elif op == "await":
                who, rid = background.pop(step["request"])
                check(step, where, drivers[who].result(rid))
            elif op == "kill":
                drivers[step["client"]].kill()
                # What the dead client was waiting for has no answer to check.
                for label in [k for k, (who, _) in background.items() if who == step["client"]]:
                    del background[label]
            elif op == "lost":
                driver = drivers[step["client"]]
                token = resolve(step["token"])
                event = driver.wait_event(lambda e: e["name"] == name and e["token"] == token)
                if step.get("reason") and event["reason"] != step["reason"]:
                    raise Failure(f"{where}: lost-lease reason {event['reason']!r}, expected {step['reason']!r}")
            else:
                who = step["client"]
                if who not in drivers:
                    drivers[who] = cell.driver(who, f"{scenario.name}-{who}")
                request = {k: resolve(v) for k, v in step.items() if k not in ("client", "expect", "save", "token_gt", "background", "ms_left", "locks")}
                if name is not None:
                    request["name"] = name
                if op == "query":
                    request["prefix"] = prefix + step.get("prefix", "")
                rid = drivers[who].send(request)
                if "background" in step:
                    background[step["background"]] = (who, rid)
                else:
                    check(step, where, drivers[who].result(rid))
        if background:
            raise Failure(f"requests never awaited: {sorted(background)}")
    finally:
        for driver in drivers.values():
            driver.close()
        control.close()


# -- data-dir interchange ---------------------------------------------------------------------


def interchange(first: str, second: str, work: str) -> None:
    """A data dir written by `first` is served by `second`: a clean shutdown's snapshot keeps
    its leases, and after a crash the ceiling keeps tokens increasing."""
    data = tempfile.mkdtemp(prefix=f"data-{first}-{second}-", dir=work)
    a = ServerProcess(first, work, data, ("--max-ttl-ms", "2000"))
    c = Control(a.port)
    held = c.call("ACQUIRE", "kept", 2000)
    top = c.call("ACQUIRE", "other", 1000)
    c.close()
    a.stop(signal.SIGTERM)
    b = ServerProcess(second, work, data, ("--max-ttl-ms", "2000"))
    c = Control(b.port)
    holders = [h["token"] for h in c.lock("kept")["holders"]]
    if holders != [held]:
        raise Failure(f"{second} serving {first}'s clean data dir: holders of 'kept' {holders}, expected [{held}]")
    try:
        c.call("ACQUIRE", "kept", 1000)
        raise Failure(f"{second} granted 'kept' although {first}'s snapshot holds it")
    except RuntimeError as error:
        if not str(error).startswith("LOCKED"):
            raise
    after = c.call("ACQUIRE", "fresh", 1000)
    if not after > max(held, top):
        raise Failure(f"{second} issued token {after} after {first} issued {max(held, top)}")
    c.close()
    b.stop(signal.SIGKILL)
    a2 = ServerProcess(first, work, data, ("--max-ttl-ms", "2000"))
    c = Control(a2.port)
    deadline = time.monotonic() + 10
    while True:
        try:
            crashed = c.call("ACQUIRE", "after-crash", 1000)
            break
        except RuntimeError as error:
            if not str(error).startswith("NOTREADY") or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    if not crashed > after:
        raise Failure(f"{first} after {second} crashed issued token {crashed}, not above {after}")
    c.close()
    a2.stop()


# -- the run ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated: " + ",".join(SERVERS))
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated: " + ",".join(CLIENTS))
    parser.add_argument("-k", dest="only", default=None, help="run only scenarios whose name contains this")
    parser.add_argument("--results", default=os.path.join(HERE, "RESULTS.md"), help="where to write the table")
    args = parser.parse_args()
    servers = [s for s in args.servers.split(",") if s]
    clients = [c for c in args.clients.split(",") if c]
    for name in servers:
        if name not in SERVERS:
            parser.error(f"unknown server {name!r}; servers: {', '.join(SERVERS)}")
    for name in clients:
        if name not in CLIENTS:
            parser.error(f"unknown client {name!r}; clients: {', '.join(CLIENTS)}")
    scenarios = [Scenario.load(p) for p in sorted(glob.glob(os.path.join(HERE, "scenarios", "*.json")))]
    if args.only:
        scenarios = [s for s in scenarios if args.only in s.name]
    if not scenarios:
        parser.error("no scenarios")
    work = tempfile.mkdtemp(prefix="fencelock-matrix-")
    cells: Dict[Tuple[str, str], List[str]] = {}
    failures: List[str] = []
    started = time.monotonic()
    for server_kind in servers:
        for client in clients:
            outcome: List[str] = []
            if not applicable(server_kind, client):
                cells[(server_kind, client)] = ["n/a"] * len(scenarios)
                continue
            runnable = [s for s in scenarios if set(s.needs) <= set(CLIENTS[client]) and runs_on(server_kind, s)]
            try:
                cell = Cell(server_kind, client, work)
            except Exception as error:
                failures.append(f"{server_kind} server x {client} client: could not start: {error}")
                cells[(server_kind, client)] = ["fail"] * len(runnable)
                continue
            try:
                for scenario in runnable:
                    t0 = time.monotonic()
                    try:
                        run_scenario(scenario, cell)
                        outcome.append("pass")
                        status = "ok"
                    except Exception as error:  # a failed cell is reported, the run goes on
                        outcome.append("fail")
                        status = f"FAILED: {error}"
                        failures.append(f"{server_kind} server x {client} client, {scenario.name}: {error}")
                    print(f"  {server_kind:>6} x {client:<9} {scenario.name:<22} {status} ({time.monotonic() - t0:.1f} s)", flush=True)
            finally:
                cell.stop()
            cells[(server_kind, client)] = outcome + ["n/a"] * (len(scenarios) - len(runnable))
    extra: List[Tuple[str, str]] = []
    tcp = [s for s in servers if s not in ("browser", "cluster")]
    for first, second in [(a, b) for a in tcp for b in tcp if a != b]:
        label = f"data dir written by the {first} server, served by the {second} server"
        try:
            interchange(first, second, work)
            extra.append((label, "passed"))
            print(f"  {label}: ok", flush=True)
        except Exception as error:
            extra.append((label, "FAILED"))
            failures.append(f"{label}: {error}")
            print(f"  {label}: FAILED: {error}", flush=True)
    table = render(servers, clients, cells, scenarios, extra, time.monotonic() - started)
    print(table)
    with open(args.results, "w") as f:
        f.write(table)
    if failures:
        print("failures:\n  " + "\n  ".join(failures), file=sys.stderr)
        print(f"logs kept in {work}", file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    return 0


def render(servers: List[str], clients: List[str], cells: Dict[Tuple[str, str], List[str]], scenarios: List[Scenario], extra: List[Tuple[str, str]], seconds: float) -> str:
    def cell(outcome: List[str]) -> str:
        ran = [o for o in outcome if o != "n/a"]
        if not ran:
            return "n/a"
        passed = ran.count("pass")
        return f"{'passed' if passed == len(ran) else 'FAILED'} {passed}/{len(ran)}"

    lines = [
        "# Cross-language matrix",
        "",
        f"Written by `tests/matrix/run.py` ({time.strftime('%Y-%m-%d')}, {seconds:.0f} s): each cell is one server with",
        f"one client library running the {len(scenarios)} scenarios of `tests/matrix/scenarios/` that its transport allows",
        "(passed / applicable; redis-cli opens one connection per command and reads no pushes, redis-py and ioredis",
        "speak RESP2 without pushes). The browser's SharedWorker serves only pages (headless Chromium), and pages reach no",
        "TCP server: those cells are n/a. The cluster is three nodes on three etcd members; fencelock's clients are given",
        "every node, a follower first (they follow MOVED), the Redis tools the leader; the scenarios that move time with",
        "DEBUG ADVANCE do not apply to it (a cluster has no test clock).",
        "",
        "| server \\ client | " + " | ".join(LABELS.get(c, c) for c in clients) + " |",
        "|---|" + "---|" * len(clients),
    ]
    for server in servers:
        label = {"python": "Python", "node": "Node", "browser": "browser SharedWorker",
                 "cluster": "cluster (2 Python + 1 Node nodes, etcd)"}.get(server, server)
        lines.append(f"| {label} | " + " | ".join(cell(cells[(server, c)]) for c in clients) + " |")
    lines += ["", "| scenario | what it checks | not applicable to |", "|---|---|---|"]
    for s in scenarios:
        na = [c for c in clients if not set(s.needs) <= set(CLIENTS[c])]
        lines.append(f"| {s.name} | {s.description} | {', '.join(na) or '-'} |")
    if extra:
        lines += ["", "| data directory interchange | result |", "|---|---|"]
        lines += [f"| {label} | {result} |" for label, result in extra]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
