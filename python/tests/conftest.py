"""Shared fixtures: repository paths and servers started as real processes on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
VECTORS = Path(os.environ.get("FENCELOCK_VECTORS", REPO / "tests" / "vectors"))


class ServerProcess:
    """``python -m fencelock serve`` in a child process, bound to 127.0.0.1."""

    def __init__(
        self, tmp: Path, *args: str, port: int = 0, data_dir: Optional[Path] = None, env: Optional[Dict[str, str]] = None
    ) -> None:
        self.tmp = tmp
        self.env = env
        self.args = list(args)
        self.port = port
        self.data_dir = data_dir
        self.process: Optional[subprocess.Popen[bytes]] = None
        self.log_path = tmp / f"server-{time.monotonic_ns()}.log"

    def start(self) -> "ServerProcess":
        ready = self.tmp / f"ready-{time.monotonic_ns()}"
        storage = ["--data-dir", str(self.data_dir)] if self.data_dir else ["--in-memory"]
        command = [
            sys.executable, "-m", "fencelock", "serve", "--host", "127.0.0.1", "--port", str(self.port),
            "--ready-file", str(ready), "--log-level", "debug", *storage, *self.args,
        ]
        self.log = open(self.log_path, "ab")
        # cwd outside the source tree: `python -m` must import the installed package.
        environment = {**os.environ, **self.env} if self.env else None
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.tmp, env=environment
        )
        deadline = time.monotonic() + 20
        while not ready.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{self.output()}")
            time.sleep(0.02)
        self.port = int(ready.read_text().split()[1])
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=20)
        self.log.close()
        return code

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator["callable"]:
    """Returns a function starting servers; every one still running is stopped afterwards."""
    started: List[ServerProcess] = []

    def start(
        *args: str, port: int = 0, data_dir: Optional[Path] = None, env: Optional[Dict[str, str]] = None
    ) -> ServerProcess:
        server = ServerProcess(tmp_path, *args, port=port, data_dir=data_dir, env=env).start()
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process is not None and server.process.poll() is None:
            server.resume()
            server.stop(signal.SIGKILL)


@pytest.fixture(params=["asyncio", "uvloop"])
def server(request: pytest.FixtureRequest, start_server: "callable") -> ServerProcess:
    """A server in memory on a test clock (moved with DEBUG ADVANCE), on each event loop."""
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    return start_server("--test-clock", "--loop", request.param)
