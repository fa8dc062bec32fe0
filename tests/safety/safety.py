"""The safety run: fencelock servers killed and restarted, clients paused, a fenced PostgreSQL store.

For each TCP server (Python, Node): a fresh data dir; Python and Node client processes loop
acquire -> fenced write(s) -> release on a few hot locks; meanwhile this orchestrator sends the
server SIGKILL and restarts it on the same data dir and port at random moments, and stops
random clients with SIGSTOP (their whole process group) for random spans, some longer than any
lease, before SIGCONT. Then the checks of checks.py run over the recorded history and the
store's accepted writes. Exit status 0 when every check passed, 1 otherwise. The cluster round
does the same against three cluster nodes (two Python, one Node) on three etcd members, the clients given every node,
with the leader killed (and restarted) or paused past its election lease instead.

    python safety.py --profile short|long [--seed N] [--servers python,node,cluster] [--duration S]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

import store  # noqa: E402
from checks import Report, load_history, run_checks  # noqa: E402
from etcd import Etcd  # noqa: E402
from postgres import Postgres  # noqa: E402

PROFILES = {
    # seconds per server, python workers, node workers, locks, kill every (s), pause every (s)
    "short": dict(duration=18.0, python_workers=2, node_workers=2, locks=3, kill_every=(1.5, 4.0), pause_every=(0.3, 1.2)),
    "long": dict(duration=90.0, python_workers=3, node_workers=3, locks=3, kill_every=(1.5, 6.0), pause_every=(0.3, 1.5)),
}
MAX_TTL_MS = 1000  # also the restart grace after a crash, so it is kept short
TOKEN_BLOCK = 32   # small: the ceiling is persisted often, and restarts land between blocks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="short")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SEED", "0")) or None)
    parser.add_argument("--servers", default="python,node,cluster",
                        help="python, node, cluster (2 Python + 1 Node nodes on 3 etcd members); default all")
    parser.add_argument("--duration", type=float, help="seconds per server (default: the profile's)")
    parser.add_argument("--locks", type=int, help="number of hot locks (default: the profile's)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (histories, logs)")
    args = parser.parse_args()
    # SIGTERM (make interrupted, CI timeout) unwinds like Ctrl-C: every finally block runs, so
    # paused clients are continued and killed, the server is killed and PostgreSQL is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    settings = dict(PROFILES[args.profile])
    if args.duration:
        settings["duration"] = args.duration
    if args.locks:
        settings["locks"] = args.locks
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    replay = replay_command(args, seed)
    fault = store.fault()
    print(f"safety: seed {seed}{' (fault: ' + fault + ')' if fault else ''}; replay with: {replay}", flush=True)

    work = Path(tempfile.mkdtemp(prefix="fencelock-safety-"))
    reports: Dict[str, Report] = {}
    started = time.monotonic()
    with Postgres(work) as database:
        for index, server_kind in enumerate(args.servers.split(",")):
            round_seed = seed * 10 + index
            print(f"==> {server_kind} server: {settings['duration']:.0f} s, "
                  f"{settings['python_workers']} Python + {settings['node_workers']} Node clients, "
                  f"{settings['locks']} locks, seed {round_seed}", flush=True)
            kind_class = ClusterRound if server_kind == "cluster" else Round
            round_ = kind_class(server_kind, work / server_kind, database, settings, round_seed)
            reports[server_kind] = round_.run()
            print_summary(server_kind, reports[server_kind], round_)
    failed = [name for name, report in reports.items() if report.failures]
    elapsed = time.monotonic() - started
    if failed:
        for name in failed:
            print(f"\n==> FAILED checks against the {name} server:")
            for failure in reports[name].failures:
                print(failure)
        print(f"\nsafety: FAILED ({', '.join(failed)}) after {elapsed:.0f} s; seed {seed}; replay with: {replay}")
        print(f"histories and logs kept in {work}")
        return 1
    print(f"safety: all checks passed against {', '.join(reports)} in {elapsed:.0f} s (seed {seed})")
    if not args.keep:
        _remove(work)
    else:
        print(f"histories and logs kept in {work}")
    return 0


class Round:
    """One server, its clients and the chaos, then the checks."""

    def __init__(self, kind: str, work: Path, database: Postgres, settings: Dict, seed: int) -> None:
        self.kind = kind
        self.work = work
        self.database = database
        self.settings = settings
        self.rng = random.Random(seed)
        self.seed = seed
        self.locks = [f"{kind}-lock-{i}" for i in range(settings["locks"])]
        self.port = _free_port()
        self.server: Optional[subprocess.Popen] = None
        self.workers: List[subprocess.Popen] = []
        self.paused: Dict[int, float] = {}  # worker pid -> resume time
        self.kills: List[float] = []
        self.restarts = 0
        self.pauses = 0
        self.long_pauses = 0
        self.server_log = None

    def run(self) -> Report:
        self.work.mkdir(parents=True)
        return self._run_in_work_dir()

    def _run_in_work_dir(self) -> Report:
        store.reset(self.database.conninfo, self.locks)
        try:
            self._start_server()
            self._start_workers()
            self._chaos()
            self._stop_workers()
        finally:
            self._cleanup()
        round_end = _now_ms()
        records, notes = load_history(sorted(self.work.glob("history-*.jsonl")))
        self.client_long_pauses = sum(1 for n in notes if n.get("what") == "long-pause")
        accepted = store.accepted_rows(self.database.conninfo)
        self.elapsed = None
        return run_checks(records, accepted, self.kills, round_end, **self.check_options())

    def check_options(self) -> Dict:
        """How the checks read this round: a lone server's kills bound unknown outcomes."""
        return {}

    # -- the server ----------------------------------------------------------------------

    def _server_command(self, ready: Path) -> List[str]:
        # A short horizon slack keeps the restart grace after each SIGKILL close to the leases
        # that could still be live, so a round grants (and can go wrong) between kills instead
        # of answering NOTREADY for most of it; it also makes the horizon writes frequent.
        flags = ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", str(self.work / "data"),
                 "--ready-file", str(ready), "--log-level", "info", "--max-ttl-ms", str(MAX_TTL_MS),
                 "--token-block", str(TOKEN_BLOCK), "--horizon-slack-ms", "200"]
        if self.kind == "python":
            return [sys.executable, "-m", "fencelock", *flags]
        if self.kind == "node":
            return ["node", str(REPO / "node" / "bin" / "fencelock.js"), *flags]
        raise SystemExit(f"unknown server {self.kind!r}: python or node")

    def _start_server(self) -> None:
        ready = self.work / "server.ready"
        if ready.exists():
            ready.unlink()
        if self.server_log is None:
            self.server_log = open(self.work / "server.log", "ab")
        self.server = subprocess.Popen(self._server_command(ready), stdout=self.server_log, stderr=subprocess.STDOUT,
                                       cwd=self.work, start_new_session=True)
        deadline = time.monotonic() + 30
        while not ready.exists():
            if self.server.poll() is not None:
                raise RuntimeError(f"{self.kind} server exited with {self.server.returncode}; see {self.work / 'server.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind} server did not become ready; see {self.work / 'server.log'}")
            time.sleep(0.01)

    def _kill_server(self) -> None:
        assert self.server is not None
        self.server.send_signal(signal.SIGKILL)
        self.server.wait()
        self.kills.append(_now_ms())  # certainly dead from here on

    # -- the clients ---------------------------------------------------------------------

    def _start_workers(self) -> None:
        stop_file = self.work / "stop"
        node_path = self.work / "node_modules"
        node_path.mkdir()
        (node_path / "fencelock").symlink_to(REPO / "node")
        common = [*self._worker_endpoints(), "--locks", ",".join(self.locks), "--stop-file", str(stop_file),
                  "--conninfo", self.database.conninfo]
        plan = ["py"] * self.settings["python_workers"] + ["js"] * self.settings["node_workers"]
        for index, language in enumerate(plan):
            name = f"{language}{index}"
            history = str(self.work / f"history-{name}.jsonl")
            seed = str(self.seed * 100 + index)
            if language == "py":
                command = [sys.executable, str(HERE / "worker.py"), "--client", name, "--seed", seed, "--history", history, *common]
            else:
                command = ["node", str(HERE / "worker.js"), "--client", name, "--seed", seed, "--history", history,
                           "--python", sys.executable, *common]
            log = open(self.work / f"worker-{name}.log", "ab")
            env = dict(os.environ, NODE_PATH=str(node_path), PYTHONPATH=str(HERE))
            # Its own process group: a pause stops the worker and its store gateway together.
            self.workers.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.work,
                                                 env=env, start_new_session=True))

    def _worker_endpoints(self) -> List[str]:
        return ["--port", str(self.port)]

    def _pause(self, worker: subprocess.Popen, ms: float) -> None:
        os.killpg(worker.pid, signal.SIGSTOP)
        self.paused[worker.pid] = time.monotonic() + ms / 1000.0
        self.pauses += 1
        self.long_pauses += ms > 500  # longer than every lease a client asks for

    def _resume_due(self, everyone: bool = False) -> None:
        now = time.monotonic()
        for pid, resume_at in list(self.paused.items()):
            if everyone or now >= resume_at:
                try:
                    os.killpg(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
                del self.paused[pid]

    # -- the chaos -----------------------------------------------------------------------

    def _chaos(self) -> None:
        settings = self.settings
        end = time.monotonic() + settings["duration"]
        next_kill = time.monotonic() + self.rng.uniform(*settings["kill_every"])
        next_pause = time.monotonic() + self.rng.uniform(*settings["pause_every"])
        while time.monotonic() < end:
            for worker in self.workers:
                if worker.poll() is not None:
                    raise RuntimeError(f"a worker exited early ({worker.returncode}); see {self.work}/worker-*.log")
            self._resume_due()
            now = time.monotonic()
            self._server_tick()
            if now >= next_kill:
                self._server_fault()
                next_kill = time.monotonic() + self.rng.uniform(*settings["kill_every"])
            if now >= next_pause:
                running = [w for w in self.workers if w.pid not in self.paused]
                if running:
                    worker = self.rng.choice(running)
                    ms = self.rng.choice([self.rng.uniform(20, 250), self.rng.uniform(20, 250), self.rng.uniform(600, 1800)])
                    self._pause(worker, ms)
                next_pause = time.monotonic() + self.rng.uniform(*settings["pause_every"])
            time.sleep(0.005)

    def _server_fault(self) -> None:
        self._kill_server()
        time.sleep(self.rng.choice([0.0, 0.0, self.rng.uniform(0.05, 0.4)]))  # sometimes down a while
        self._start_server()
        self.restarts += 1

    def _server_tick(self) -> None:
        """Called every turn of the chaos loop (the cluster resumes paused nodes here)."""

    def _stop_workers(self) -> None:
        (self.work / "stop").write_text("stop\n")
        self._resume_due(everyone=True)
        deadline = time.monotonic() + 30
        for worker in self.workers:
            try:
                worker.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        stuck = [w for w in self.workers if w.poll() is None]
        if stuck:
            raise RuntimeError(f"{len(stuck)} workers did not stop within 30 s; see {self.work}/worker-*.log")
        failed = [w.returncode for w in self.workers if w.returncode != 0]
        if failed:
            raise RuntimeError(f"workers exited with {failed}; see {self.work}/worker-*.log")
        self._kill_server()

    def _cleanup(self) -> None:
        """Every process this round started goes, by PID: paused ones get SIGCONT first."""
        self._resume_due(everyone=True)
        for worker in self.workers:
            if worker.poll() is None:
                _signal_group(worker.pid, signal.SIGCONT)
                _signal_group(worker.pid, signal.SIGKILL)
                worker.wait()
            else:
                _signal_group(worker.pid, signal.SIGKILL)  # a gateway child left behind, if any
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGKILL)
            self.server.wait()
        if self.server_log is not None:
            self.server_log.close()


class ClusterRound(Round):
    """Three cluster nodes (two Python, one Node) on three etcd members. The faults: SIGKILL of the leader
    (restarted at once or a little later), or SIGSTOP of the leader past its election lease,
    then SIGCONT. Clients are given every node."""

    ELECTION_TTL_S = 2

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ports = [_free_port() for _ in range(3)]
        self.port = self.ports[0]
        self.nodes: Dict[int, subprocess.Popen] = {}
        self.node_paused: Dict[int, float] = {}  # port -> resume time
        self.node_pauses = 0
        self.etcd: Optional[Etcd] = None
        self.leaders_hit = [0, 0]  # faults that hit a Python leader, a Node leader
        self.snapshot_index = 0  # the newest snapshot's log index a node knew of at the end

    def run(self) -> Report:
        self.work.mkdir(parents=True)
        with Etcd(self.work / "etcd") as etcd:
            self.etcd = etcd
            return self._run_in_work_dir()

    def check_options(self) -> Dict:
        # A request held by a leader may commit until that leader is deposed, which a kill of
        # another node does not bound: unknown outcomes may take effect until the round ends.
        # A failover stops engine time from the old leader's last entry until the new one
        # leads, lengthening every lease by at most that gap (election TTL + a campaign, more
        # while a paused leader still held its lease): leases may be live that long past
        # their TTL, so a LOCKED answer or a release then is not a violation. Grants are
        # checked as strictly as against one server.
        return {"unknowns_end_at_kills": False, "linger_ms": 2 * (self.ELECTION_TTL_S * 1000 + 2000)}

    def _node_command(self, port: int) -> List[str]:
        assert self.etcd is not None
        # Two Python nodes and one Node node: leadership moves between the hosts.
        host = ([sys.executable, "-m", "fencelock"] if port != self.ports[1]
                else ["node", str(REPO / "node" / "bin" / "fencelock.js")])
        return [*host, "serve", "--host", "127.0.0.1", "--port", str(port),
                "--etcd", self.etcd.urls, "--cluster", "safety", "--advertise", f"127.0.0.1:{port}",
                "--election-ttl", str(self.ELECTION_TTL_S), "--max-ttl-ms", str(MAX_TTL_MS),
                # Snapshots every few batches: restarted nodes start from one, mid-chaos.
                "--snapshot-every", "25",
                "--ready-file", str(self.work / f"node-{port}.ready"), "--log-level", "info"]

    def _start_node(self, port: int) -> None:
        ready = self.work / f"node-{port}.ready"
        if ready.exists():
            ready.unlink()
        log = open(self.work / f"node-{port}.log", "ab")
        self.nodes[port] = subprocess.Popen(self._node_command(port), stdout=log, stderr=subprocess.STDOUT,
                                            cwd=self.work, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 30
        while not ready.exists():
            if self.nodes[port].poll() is not None:
                raise RuntimeError(f"cluster node {port} exited with {self.nodes[port].returncode}; see {self.work}/node-{port}.log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster node {port} did not become ready; see {self.work}/node-{port}.log")
            time.sleep(0.01)

    def _start_server(self) -> None:
        for port in self.ports:
            self._start_node(port)
        deadline = time.monotonic() + 30
        while self._leader() is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no cluster leader within 30 s; see {self.work}/node-*.log")
            time.sleep(0.05)

    def _leader(self) -> Optional[int]:
        """The node that says it leads (paused nodes are not asked)."""
        for port in self.ports:
            if port in self.node_paused or self.nodes.get(port) is None or self.nodes[port].poll() is not None:
                continue
            if _info_field(port, "role") == "leader":
                return port
        return None

    def _worker_endpoints(self) -> List[str]:
        return ["--ports", ",".join(str(port) for port in self.ports)]

    def _server_fault(self) -> None:
        leader = self._leader()
        if leader is None:
            return  # a failover is under way: let it finish
        self.leaders_hit[leader == self.ports[1]] += 1
        if self.rng.random() < 0.6:
            node = self.nodes[leader]
            node.send_signal(signal.SIGKILL)
            node.wait()
            self.kills.append(_now_ms())
            time.sleep(self.rng.choice([0.0, self.rng.uniform(0.05, 0.5)]))
            self._start_node(leader)
            self.restarts += 1
        else:
            # Longer than the election lease: another node takes over before it resumes.
            seconds = self.ELECTION_TTL_S + self.rng.uniform(0.3, 1.5)
            os.killpg(self.nodes[leader].pid, signal.SIGSTOP)
            self.node_paused[leader] = time.monotonic() + seconds
            self.node_pauses += 1

    def _server_tick(self) -> None:
        now = time.monotonic()
        for port, resume_at in list(self.node_paused.items()):
            if now >= resume_at:
                _signal_group(self.nodes[port].pid, signal.SIGCONT)
                del self.node_paused[port]

    def _kill_server(self) -> None:
        """The end of the round: every node goes (after saying how far its snapshots reached)."""
        for port in self.ports:
            if port not in self.node_paused and self.nodes.get(port) is not None and self.nodes[port].poll() is None:
                index = _info_field(port, "snapshot_index")
                if index is not None and index.isdigit():
                    self.snapshot_index = max(self.snapshot_index, int(index))
        for port, node in self.nodes.items():
            _signal_group(node.pid, signal.SIGCONT)
            if node.poll() is None:
                node.send_signal(signal.SIGKILL)
                node.wait()
        self.node_paused.clear()

    def _cleanup(self) -> None:
        super()._cleanup()
        self._kill_server()


def _info_field(port: int, field: str) -> Optional[str]:
    """One field of ``INFO cluster`` read over a raw socket, or None if the node did not answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.settimeout(0.5)
            sock.sendall(b"*2\r\n$4\r\nINFO\r\n$7\r\ncluster\r\n")
            data = b""
            while b"\r\n" not in data or len(data) < _bulk_length(data):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    for line in data.decode(errors="replace").splitlines():
        if line.startswith(f"{field}:"):
            return line.split(":", 1)[1].strip()
    return None


def _bulk_length(data: bytes) -> int:
    """The whole length of a RESP bulk string reply once its header has arrived."""
    if not data.startswith(b"$") or b"\r\n" not in data:
        return 0
    header, _ = data.split(b"\r\n", 1)
    try:
        return len(header) + 2 + int(header[1:]) + 2
    except ValueError:
        return 0


def print_summary(kind: str, report: Report, round_: Round) -> None:
    c = report.counts
    print(f"    ops {c['ops']}, grants {c['grants']}, acquires refused {c['acquire_refused']} "
          f"(NOTREADY {c['notready']}), outcomes unknown {c['unknown']}")
    print(f"    writes accepted {c['writes_accepted']}, refused by the fence {c['writes_refused']}, "
          f"rows in the store {c['store_rows']}")
    if isinstance(round_, ClusterRound):
        print(f"    leader kills (SIGKILL, restarted) {round_.restarts}, leader pauses past the election lease "
              f"(SIGSTOP) {round_.node_pauses}; the leader hit was Python {round_.leaders_hit[0]} times, "
              f"Node {round_.leaders_hit[1]} times; newest snapshot at log index {round_.snapshot_index}")
    print(f"    server restarts (SIGKILL) {round_.restarts}, client pauses (SIGSTOP) {round_.pauses} "
          f"({round_.long_pauses} longer than any lease), in-client pauses longer than the lease {round_.client_long_pauses}")
    print(f"    checks passed {len(report.passed)}, failed {len(report.failures)}")
    for line in report.passed:
        print(f"      ok  {line}")
    for line in report.failures:
        print(f"      FAIL {line.splitlines()[0]}")
    sys.stdout.flush()


def replay_command(args: argparse.Namespace, seed: int) -> str:
    fault = store.fault()
    parts = [f"SAFETY_FAULT={fault}"] if fault else []
    parts += [f"SEED={seed}", "bash", "tests/safety/run.sh", args.profile]
    if args.servers != "python,node,cluster":
        parts += ["--servers", args.servers]
    if args.duration:
        parts += ["--duration", str(args.duration)]
    if args.locks:
        parts += ["--locks", str(args.locks)]
    return " ".join(shlex.quote(p) for p in parts)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _now_ms() -> float:
    return time.monotonic_ns() / 1e6


def _remove(path: Path) -> None:
    subprocess.run(["rm", "-rf", str(path)], check=False)


if __name__ == "__main__":
    sys.exit(main())
