"""Three etcd members on loopback ports, each in its own temp data dir (Debian's etcd-server).

Used by the safety run's cluster round; installs the package with apt-get when it is missing
and this is a root shell (as the other peers of the tests are installed).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import List, Optional


def etcd_binary() -> Optional[str]:
    found = shutil.which("etcd")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            "apt-get install -y -qq etcd-server >/dev/null 2>&1 || "
            "(apt-get update -qq && apt-get install -y -qq etcd-server >/dev/null 2>&1)",
            shell=True, check=False, timeout=600,
        )
        found = shutil.which("etcd")
    return found


def free_ports(count: int) -> List[int]:
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


class Etcd:
    """``with Etcd(work) as etcd:`` starts three members; ``etcd.urls`` is their client URLs."""

    def __init__(self, work: Path) -> None:
        binary = etcd_binary()
        if binary is None:
            raise RuntimeError("etcd-server is not installed and could not be installed with apt-get")
        self.binary = binary
        self.work = work
        ports = free_ports(6)
        self.client_ports, self.peer_ports = ports[:3], ports[3:]
        self.urls = ",".join(f"http://127.0.0.1:{port}" for port in self.client_ports)
        self.processes: List[subprocess.Popen] = []

    def __enter__(self) -> "Etcd":
        initial = ",".join(f"e{i}=http://127.0.0.1:{port}" for i, port in enumerate(self.peer_ports))
        self.work.mkdir(parents=True, exist_ok=True)
        for i in range(3):
            log = open(self.work / f"etcd{i}.log", "ab")
            self.processes.append(subprocess.Popen(
                [
                    self.binary, "--name", f"e{i}", "--data-dir", str(self.work / f"etcd{i}"),
                    "--listen-client-urls", f"http://127.0.0.1:{self.client_ports[i]}",
                    "--advertise-client-urls", f"http://127.0.0.1:{self.client_ports[i]}",
                    "--listen-peer-urls", f"http://127.0.0.1:{self.peer_ports[i]}",
                    "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer_ports[i]}",
                    "--initial-cluster", initial, "--initial-cluster-state", "new",
                    "--initial-cluster-token", f"fencelock-safety-{os.getpid()}",
                    # What docs/CLUSTER.md asks of operators: etcd forgets deleted log keys.
                    "--auto-compaction-mode", "revision", "--auto-compaction-retention", "1000",
                ],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            ))
            log.close()
        try:
            self._wait_healthy()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(self._healthy(port) for port in self.client_ports):
                return
            time.sleep(0.2)
        raise RuntimeError(f"etcd did not become healthy; see {self.work}/etcd*.log")

    @staticmethod
    def _healthy(port: int) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
                return b'"health":"true"' in reply.read()
        except OSError:
            return False

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
        for process in self.processes:
            process.wait(timeout=10)
