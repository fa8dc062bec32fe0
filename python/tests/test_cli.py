"""The `fencelock` command: help texts and the client subcommands against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import List

import pytest

from fencelock.cli import build_parser, main


def fencelock_cli(*args: str) -> subprocess.CompletedProcess:
    # cwd outside the source tree: `python -m` must import the installed package.
    return subprocess.run(
        [sys.executable, "-m", "fencelock", *args], capture_output=True, text=True, timeout=30, cwd=tempfile.gettempdir()
    )


@pytest.mark.parametrize("command", [[], ["serve"], ["acquire"], ["release"], ["renew"], ["verify"], ["query"], ["info"], ["run"]])
def test_every_command_has_help(command: List[str]) -> None:
    result = fencelock_cli(*command, "--help")
    assert result.returncode == 0 and "usage: fencelock" in result.stdout
    if command == ["serve"]:
        for flag in ("--data-dir", "--in-memory", "--max-ttl-ms", "--lock-delay-ms", "--max-lock-delay-ms", "--test-clock", "--log-level", "--max-connections"):
            assert flag in result.stdout


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "commands" in capsys.readouterr().out


def test_client_subcommands(server) -> None:
    port = ["--port", str(server.port)]
    acquired = fencelock_cli("acquire", "cli-lock", "5", "--owner", "me", *port)
    assert acquired.returncode == 0, acquired.stderr
    token = acquired.stdout.strip()
    held = fencelock_cli("acquire", "cli-lock", "5", *port)
    assert held.returncode == 1 and held.stderr.startswith("fencelock: LOCKED")
    assert fencelock_cli("verify", "cli-lock", token, *port).stdout.strip() == "5.000"
    query = fencelock_cli("query", *port)
    assert f"holder token={token} exclusive" in query.stdout and "owner=me" in query.stdout
    assert '"live_leases": 1' in fencelock_cli("info", "--json", *port).stdout
    assert fencelock_cli("release", "cli-lock", token, *port).stdout.strip() == "OK"
    stale = fencelock_cli("release", "cli-lock", token, *port)
    assert stale.returncode == 1 and "STALE" in stale.stderr


def test_run_holds_the_lock_for_a_command(server) -> None:
    result = fencelock_cli(
        "run", "cli-run", "--ttl", "5", "--port", str(server.port), "--",
        sys.executable, "-c", "import os; print(os.environ['FENCELOCK_TOKEN'])",
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) >= 1


def test_no_server_is_a_clear_error() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = fencelock_cli("info", "--port", str(port))
    assert result.returncode == 69 and "cannot connect" in result.stderr


def test_parser_builds() -> None:
    assert build_parser().prog == "fencelock"
    assert os.environ is not None


def test_acquire_with_lock_delay(start_server) -> None:
    server = start_server("--test-clock")
    port = str(server.port)
    first = fencelock_cli("acquire", "cli-delay", "1", "--lock-delay", "2", "--port", port)
    assert first.returncode == 0, first.stderr
    import redis

    redis.Redis(port=server.port).execute_command("DEBUG", "ADVANCE", 1000)
    held = fencelock_cli("acquire", "cli-delay", "1", "--port", port)
    assert held.returncode != 0 and "LOCKED" in held.stderr
