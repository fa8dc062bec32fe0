"""The lease horizon (issue 14) with real processes: after kill -9 on the same boot the restart
grace ends at the stored horizon, not after the full max TTL; a forged boot identity, a data
dir from before horizons or no boot identity at all give the full grace."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Dict

import pytest

import fencelock

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")

pytestmark = pytest.mark.skipif(not BOOT_ID.exists(), reason="needs Linux's boot id")


def boot_env(tmp_path: Path, boot_id: str) -> Dict[str, str]:
    """A boot id file the server reads instead of the kernel's (FENCELOCK_BOOT_ID_PATH)."""
    path = tmp_path / f"boot-id-{boot_id}"
    path.write_text(boot_id + "\n")
    return {"FENCELOCK_BOOT_ID_PATH": str(path)}


def first_grant_time(client: fencelock.Client, name: str, ttl: float, give_up: float) -> float:
    """Asks for `name` until granted; returns the monotonic time just before the granting call."""
    deadline = time.monotonic() + give_up
    while True:
        asked = time.monotonic()
        try:
            client.acquire(name, ttl)
            return asked
        except fencelock.NotReady:
            assert time.monotonic() < deadline, f"no grant within {give_up} s"
            time.sleep(0.02)


def test_kill_9_after_every_lease_lapsed_grants_within_a_second(start_server, tmp_path: Path) -> None:
    data = tmp_path / "data"
    flags = ("--horizon-slack-ms", "300")
    server = start_server(*flags, data_dir=data)
    with fencelock.Client(port=server.port) as client:
        client.acquire("short", 0.5)
    horizon = json.loads((data / "horizon").read_text())
    assert horizon["boot_id"] == BOOT_ID.read_text().strip() and horizon["version"] == 1
    time.sleep(1.0)  # the lease (0.5 s) and the slack (0.3 s) are over
    server.stop(signal.SIGKILL)

    started = time.monotonic()
    again = start_server(*flags, data_dir=data)
    with fencelock.Client(port=again.port) as client:
        granted_at = first_grant_time(client, "next", 1.0, 5.0)
        info = client.info()
    assert granted_at - started < 1.0 + 0.5, "a grant within a second of the restart (plus start-up)"
    assert "recovered from a crash" in again.output() and "case horizon" in again.output()
    assert info["restart_grace_case"] == "horizon"
    assert info["restart_grace_ms"] < 1000


def test_kill_9_with_a_live_lease_grants_nothing_before_its_deadline(start_server, tmp_path: Path) -> None:
    data = tmp_path / "data"
    flags = ("--horizon-slack-ms", "1000")
    server = start_server(*flags, data_dir=data)
    with fencelock.Client(port=server.port) as client:
        sent = time.monotonic()
        lease = client.acquire("held", 8.0)
        replied = time.monotonic()
    server.stop(signal.SIGKILL)

    again = start_server(*flags, data_dir=data)
    with fencelock.Client(port=again.port) as client:
        with pytest.raises(fencelock.NotReady):
            client.acquire("held", 1.0)
        granted_at = first_grant_time(client, "other", 1.0, 15.0)
        info = client.info()
        after = client.acquire("held", 1.0)
    # Nothing before the lease's deadline (as its holder counts it, from before it asked) ...
    assert granted_at >= sent + 8.0 - 0.05, f"granted {granted_at - sent:.3f} s after the lease was asked for"
    # ... and grants resume within the slack after it.
    assert granted_at <= replied + 8.0 + 1.0 + 0.5, f"granted only {granted_at - replied:.3f} s after"
    assert after.token > lease.token
    assert info["restart_grace_case"] == "horizon"
    assert 6_000 < info["restart_grace_ms"] <= 9_100
    assert "case horizon" in again.output()


def test_a_forged_boot_identity_gives_the_full_grace(start_server, tmp_path: Path) -> None:
    data = tmp_path / "data"
    # The full grace: the longest lease, then the longest lock-delay a client may ask for.
    flags = ("--max-ttl-ms", "3000", "--max-lock-delay-ms", "500", "--horizon-slack-ms", "100")
    server = start_server(*flags, data_dir=data, env=boot_env(tmp_path, "boot-a"))
    with fencelock.Client(port=server.port) as client:
        client.acquire("a", 0.1)
    assert json.loads((data / "horizon").read_text())["boot_id"] == "boot-a"
    server.stop(signal.SIGKILL)

    again = start_server(*flags, data_dir=data, env=boot_env(tmp_path, "boot-b"))
    assert "case rebooted" in again.output()
    with fencelock.Client(port=again.port) as client:
        info = client.info()
        assert info["restart_grace_case"] == "rebooted" and info["restart_grace_ms"] == 3500
        with pytest.raises(fencelock.NotReady):
            client.acquire("b", 1.0)


def test_without_a_boot_identity_the_grace_is_full_and_no_horizon_is_kept(start_server, tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"FENCELOCK_BOOT_ID_PATH": str(tmp_path / "missing")}
    server = start_server("--max-ttl-ms", "2000", data_dir=data, env=env)
    with fencelock.Client(port=server.port) as client:
        client.acquire("a", 0.1)
        assert client.info()["lease_horizon_ms_left"] == -1
    assert not (data / "horizon").exists()
    server.stop(signal.SIGKILL)
    again = start_server("--max-ttl-ms", "2000", data_dir=data, env=env)
    assert "case no-boot-id" in again.output()


def test_a_data_dir_from_before_horizons_starts_with_the_full_grace(start_server, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "ceiling").write_text("1048576\n")
    server = start_server("--max-ttl-ms", "2000", "--max-lock-delay-ms", "0", data_dir=data)
    assert "case no-horizon" in server.output()
    with fencelock.Client(port=server.port) as client:
        assert client.info()["restart_grace_case"] == "no-horizon"
        with pytest.raises(fencelock.NotReady):
            client.acquire("a", 1.0)
        first_grant_time(client, "a", 1.0, 5.0)
    assert json.loads((data / "horizon").read_text())["ceiling"] == 2 * 1048576


def test_a_clean_stop_removes_the_horizon_and_the_restart_covers_restored_leases(start_server, tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data_dir=data)
    with fencelock.Client(port=server.port) as client:
        client.acquire("kept", 60.0)
    assert (data / "horizon").exists()
    assert server.stop(signal.SIGTERM) == 0
    assert (data / "snapshot.json").exists() and not (data / "horizon").exists()
    again = start_server(data_dir=data)
    assert "recovered from a clean shutdown" in again.output()
    # Written before serving: a crash now still waits for the restored lease.
    assert json.loads((data / "horizon").read_text())["monotonic_ms"] > 0
    again.stop(signal.SIGKILL)
    third = start_server(data_dir=data)
    with fencelock.Client(port=third.port) as client:
        info = client.info()
    assert info["restart_grace_case"] == "horizon" and info["restart_grace_ms"] > 55_000


def test_a_corrupt_horizon_refuses_to_start(tmp_path: Path) -> None:
    from fencelock.server import FencelockServer, ServerOptions

    (tmp_path / "ceiling").write_text("40\n")
    (tmp_path / "horizon").write_text('{"version": 1, "boot')
    with pytest.raises(SystemExit) as refused:
        FencelockServer(ServerOptions(data_dir=str(tmp_path)))
    message = str(refused.value)
    assert "horizon is corrupt" in message and "refusing to start" in message
    assert "full restart grace" in message
