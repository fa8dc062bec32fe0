"""kill -9 under load, restart on the same data dir: every new token exceeds every earlier one;
a clean stop keeps live leases and restarts without a grace."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import List

import pytest

import fencelock


def test_kill_9_under_load_never_reissues_tokens(start_server, tmp_path: Path) -> None:
    data = tmp_path / "data"
    # Small blocks make the server persist its ceiling many times during the load.
    server = start_server("--max-ttl-ms", "1000", "--token-block", "50", data_dir=data)
    seen: List[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load(worker: int) -> None:
        client = fencelock.Client(port=server.port, timeout=2.0)
        n = 0
        while not stop.is_set():
            n += 1
            try:
                lease = client.acquire(f"job-{worker}-{n % 7}", 0.5)
                with lock:
                    seen.append(lease.token)
                client.release(lease.name, lease.token)
            except fencelock.FencelockError:
                if stop.is_set():
                    break
        client.close()

    workers = [threading.Thread(target=load, args=(i,)) for i in range(4)]
    for thread in workers:
        thread.start()
    _wait_until(lambda: len(seen) >= 500, 20)
    server.stop(signal.SIGKILL)
    stop.set()
    for thread in workers:
        thread.join(10)
    before = max(seen)
    assert len(seen) >= 500 and before >= 500

    restarted = start_server("--max-ttl-ms", "1000", "--token-block", "50", data_dir=data)
    assert "recovered from a crash" in restarted.output() and "restart grace" in restarted.output()
    with fencelock.Client(port=restarted.port) as client:
        with pytest.raises(fencelock.NotReady):
            client.acquire("job-0-1", 0.5)
        # The grace ends at the lease horizon: the last deadline plus the slack (5 s).
        deadline = time.monotonic() + 10
        while True:
            try:
                first = client.acquire("after", 0.5)
                break
            except fencelock.NotReady:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        later = [client.acquire(f"after-{i}", 0.5).token for i in range(100)]
    assert first.token > before, f"token {first.token} reissued after a crash (had seen {before})"
    assert min(later) > before and later == sorted(later)


def test_clean_stop_keeps_leases_and_skips_the_grace(start_server, tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data_dir=data)
    with fencelock.Client(port=server.port) as client:
        lease = client.acquire("kept", 60.0)
        ephemeral = client.acquire("gone", 60.0, ephemeral=True)
    assert server.stop(signal.SIGTERM) == 0
    assert (data / "snapshot.json").exists()
    assert "stopped" in server.output()

    again = start_server(data_dir=data)
    # The snapshot is used once: deleted before serving, so a later crash cannot revive it.
    assert not (data / "snapshot.json").exists()
    assert "recovered from a clean shutdown" in again.output()
    with fencelock.Client(port=again.port) as client:
        assert client.verify("kept", lease.token) > 50
        with pytest.raises(fencelock.Locked):
            client.acquire("kept", 1.0)
        assert client.acquire("gone", 1.0).token > ephemeral.token


def _wait_until(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_a_snapshot_from_another_run_is_not_trusted(start_server, tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server("--max-ttl-ms", "500", data_dir=data)
    with fencelock.Client(port=server.port) as client:
        client.acquire("a", 0.4)
    assert server.stop() == 0
    # A ceiling that moved on after the snapshot was written (as if another run had used it).
    (data / "ceiling").write_text(str(int((data / "ceiling").read_text()) + 1000) + "\n")
    again = start_server("--max-ttl-ms", "500", data_dir=data)
    assert "recovering as from a crash" in again.output()
    with fencelock.Client(port=again.port) as client:
        with pytest.raises(fencelock.NotReady):
            client.acquire("b", 0.4)


def test_a_corrupt_ceiling_refuses_to_start(tmp_path: Path) -> None:
    from fencelock.server import FencelockServer, ServerOptions

    (tmp_path / "ceiling").write_text("12x\n")
    with pytest.raises(SystemExit) as refused:
        FencelockServer(ServerOptions(data_dir=str(tmp_path)))
    assert "ceiling is corrupt" in str(refused.value) and "refusing to start" in str(refused.value)


def test_a_corrupt_snapshot_is_removed_and_the_start_is_a_crash(tmp_path: Path) -> None:
    from fencelock.server import FencelockServer, ServerOptions

    (tmp_path / "ceiling").write_text("40\n")
    (tmp_path / "snapshot.json").write_text("{broken")
    server = FencelockServer(ServerOptions(data_dir=str(tmp_path), max_ttl_ms=1000))
    assert server.start_kind == "snapshot-refused"
    assert not (tmp_path / "snapshot.json").exists()
    assert server.native.grace_left(server.now_ms()) > 0
