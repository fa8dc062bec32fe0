"""redis-cli, the stock Redis command-line client, as an independent client of the server:
one-shot commands, error replies, RESP3, pipelined input and the test clock over TCP."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import List

import pytest

REDIS_CLI = shutil.which("redis-cli")

if REDIS_CLI is None:
    if os.environ.get("CI"):
        # `make test` installs redis-tools; in CI a missing redis-cli is a setup failure.
        raise RuntimeError("redis-cli is not installed (make test's setup installs redis-tools)")
    pytest.skip("redis-cli is not installed (apt-get install redis-tools)", allow_module_level=True)


def cli(port: int, *args: str, stdin: str | None = None) -> List[str]:
    assert REDIS_CLI is not None
    result = subprocess.run(
        [REDIS_CLI, "-h", "127.0.0.1", "-p", str(port), *args],
        input=stdin, capture_output=True, text=True, timeout=20, check=True,
    )
    # redis-cli follows each error reply with an empty line when stdout is not a terminal.
    return [line for line in result.stdout.splitlines() if line]


def test_lock_lifecycle_through_redis_cli(start_server) -> None:
    server = start_server("--test-clock")
    assert cli(server.port, "PING") == ["PONG"]
    assert cli(server.port, "ACQUIRE", "orders", "10000", "OWNER", "cli") == ["1"]
    assert cli(server.port, "ACQUIRE", "orders", "10000") == [
        "LOCKED lock is held, free in at most 10000 ms"
    ]
    assert cli(server.port, "VERIFY", "orders", "1") == ["10000"]
    assert cli(server.port, "RENEW", "orders", "1", "20000") == ["20000"]
    assert cli(server.port, "RELEASE", "orders", "2") == [
        "STALE token 2 is not a live lease of this lock (released, superseded or unknown)"
    ]
    # The test clock moves only on DEBUG ADVANCE, so expiry over TCP is deterministic.
    cli(server.port, "DEBUG", "ADVANCE", "20000")
    assert cli(server.port, "VERIFY", "orders", "1") == ["EXPIRED the lease of token 1 expired"]
    assert cli(server.port, "ACQUIRE", "orders", "500") == ["2"]
    assert cli(server.port, "RELEASE", "orders", "2") == ["OK"]


def test_errors_for_bad_input_leave_the_connection_usable(start_server) -> None:
    server = start_server()
    out = cli(server.port, stdin="ACQUIRE\nACQUIRE x -5\nNOSUCHCOMMAND\nACQUIRE x 1000\nPING\n")
    assert len(out) == 5
    assert out[0].startswith("ERR") and "acquire" in out[0].lower()
    assert out[1].startswith("ERR")
    assert out[2].startswith("ERR") and "nosuchcommand" in out[2].lower()
    assert out[3:] == ["1", "PONG"]


def test_query_info_and_resp3(start_server) -> None:
    server = start_server()
    cli(server.port, "ACQUIRE", "jobs/a", "60000", "SHARED", "OWNER", "r1")
    cli(server.port, "ACQUIRE", "jobs/a", "60000", "SHARED", "OWNER", "r2")
    query = cli(server.port, "QUERY", "jobs/")
    assert "jobs/a" in query and "r1" in query and "r2" in query and "shared" in query
    info = cli(server.port, "INFO")
    assert any(line.startswith("fencelock_version:") for line in info)
    assert "connected_clients:1" in info
    hello = cli(server.port, "-3", "HELLO", "3")
    assert "server fencelock" in hello and "proto 3" in hello
