"""Users, rules, protected mode, audit lines and QUERY paging through the real Python server
(issue 11), plus a hostile-client pass: wrong passwords in a loop, commands before AUTH, a
user on another's prefix, huge AUTH arguments."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest

from fencelock import AuthFailed, AuthRequired, Client, PermissionDenied
from fencelock._native import hash_password, verify_password
from fencelock.server import is_loopback

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "root": "root-pw"}


def users_file(path: Path, extra: str = "") -> Path:
    # Few iterations keep the tests fast; the server takes the count from each hash.
    def h(name: str) -> str:
        return hash_password(PASSWORDS[name].encode(), os.urandom(16), 1000)

    users = [
        {"name": "alice", "password": h("alice"), "acquire": ["alice/"], "read": ["shared/"]},
        {"name": "bob", "password": h("bob"), "acquire": ["bob/", "shared/"]},
        {"name": "root", "password": h("root"), "acquire": [""], "steal": True, "debug": True},
    ]
    if extra:
        users.append({"name": extra, "password": hash_password(b"new-pw", os.urandom(16), 1000), "acquire": [""]})
    path.write_text(json.dumps({"users": users}))
    return path


def command(*args: bytes) -> bytes:
    out = b"*%d\r\n" % len(args)
    for arg in args:
        out += b"$%d\r\n%s\r\n" % (len(arg), arg)
    return out


def exchange(sock: socket.socket, data: bytes, replies: int) -> List[bytes]:
    """Sends `data` and reads `replies` simple/error lines (no bulk replies)."""
    sock.sendall(data)
    buffer = b""
    sock.settimeout(5)
    while buffer.count(b"\r\n") < replies:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buffer += chunk
    return buffer.split(b"\r\n")[:replies]


@pytest.fixture
def secured(start_server, tmp_path: Path):
    return start_server("--users", str(users_file(tmp_path / "users.json")))


def test_hash_password_cli_makes_a_hash_the_core_accepts(tmp_path: Path) -> None:
    # cwd outside the source tree: `python -m` must import the installed package.
    result = subprocess.run(
        [sys.executable, "-m", "fencelock", "hash-password", "--iterations", "1000"],
        input=b"s3cret\n", capture_output=True, check=True, cwd=tmp_path,
    )
    hashed = result.stdout.decode().strip()
    assert hashed.startswith("pbkdf2-sha256$1000$")
    assert verify_password(hashed, b"s3cret") and not verify_password(hashed, b"s3cre")


def test_every_rule_end_to_end(secured) -> None:
    with Client("127.0.0.1", secured.port) as anonymous:
        with pytest.raises(AuthRequired):
            anonymous.query("alice/")
    with Client("127.0.0.1", secured.port, username="alice", password="wrong") as wrong:
        with pytest.raises(AuthFailed):
            wrong.query("alice/")
    with Client("127.0.0.1", secured.port, username="alice", password="alice-pw") as alice, \
            Client("127.0.0.1", secured.port, username="bob", password="bob-pw", protocol=2) as bob, \
            Client("127.0.0.1", secured.port, username="root", password="root-pw") as root:
        lease = alice.acquire("alice/job", 30)
        assert alice.verify("alice/job", lease.token) > 0
        with pytest.raises(PermissionDenied, match="acquire"):
            alice.acquire("bob/job", 30)
        shared = bob.acquire("shared/report", 30)
        assert alice.verify("shared/report", shared.token) > 0  # read-only prefix
        with pytest.raises(PermissionDenied, match="acquire"):
            alice.release("shared/report", shared.token)
        with pytest.raises(PermissionDenied, match="acquire"):
            bob.release("alice/job", lease.token)  # a user touching another's prefix
        with pytest.raises(PermissionDenied, match="read"):
            bob.verify("alice/job", lease.token)
        with pytest.raises(PermissionDenied, match="query"):
            bob.query("")
        with pytest.raises(PermissionDenied, match="STEAL"):
            bob.acquire("bob/x", 30, steal=True)
        stolen = root.acquire("alice/job", 30, steal=True)
        assert stolen.token > lease.token
        assert [lock.name for lock in alice.query("alice/")] == ["alice/job"]
        # The connection stays usable after every refusal.
        assert alice.verify("alice/job", stolen.token) > 0
    log = secured.output()
    assert "audit stolen" in log and "user=root" in log and "lock=alice/job" in log
    assert "audit auth_failed" in log and "user=alice" in log


def test_requirepass_and_secrets_stay_out_of_logs_info_and_replies(start_server) -> None:
    server = start_server("--requirepass", "Very$ecretPassw0rd")
    with Client("127.0.0.1", server.port, password="Very$ecretPassw0rd") as client:
        client.acquire("any/lock", 30)
        info = json.dumps(client.info())
        locks = json.dumps([lock.name for lock in client.query("")])
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        replies = exchange(sock, command(b"AUTH", b"default", b"Other$ecret") + command(b"AUTH", b"Other$ecret"), 2)
    assert all(reply.startswith(b"-WRONGPASS") for reply in replies), replies
    time.sleep(0.2)
    output = server.output()
    for secret in ("Very$ecretPassw0rd", "Other$ecret"):
        assert secret not in output and secret not in info and secret not in locks
        assert secret.encode() not in b"".join(replies)
    assert "one user 'default'" in output


def test_hostile_wrong_passwords_close_the_connection_and_others_stay_fast(secured) -> None:
    with socket.create_connection(("127.0.0.1", secured.port)) as sock:
        replies = exchange(sock, b"".join(command(b"AUTH", b"root", b"guess%d" % n) for n in range(8)), 5)
        assert replies == [b"-WRONGPASS invalid username-password pair or user is disabled."] * 5
        sock.settimeout(5)
        assert sock.recv(100) == b""  # closed after the fifth failure
    with Client("127.0.0.1", secured.port, username="root", password="root-pw") as root:
        started = time.monotonic()
        for _ in range(20):
            root.ping()
        assert time.monotonic() - started < 2
    with Client("127.0.0.1", secured.port, username="alice", password="alice-pw") as alice:
        alice.ping()
    # Many connections guessing in a loop: each is cut off after five, and together they
    # spend the server's budget of slow checks (10 a second) ...
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", secured.port)) as sock:
            exchange(sock, b"".join(command(b"AUTH", b"alice", b"x") for _ in range(5)), 5)
    # ... yet a password that passed before is known by its keyed fast hash: no wait.
    with Client("127.0.0.1", secured.port, username="alice", password="alice-pw") as alice:
        started = time.monotonic()
        alice.acquire("alice/fast", 5)
        assert time.monotonic() - started < 2
    # A first-time user during the flood is told to retry, and gets in a second later.
    with Client("127.0.0.1", secured.port, username="bob", password="bob-pw") as bob:
        with pytest.raises(AuthFailed, match="too many password checks"):
            bob.query("bob/")
    time.sleep(1.1)
    with Client("127.0.0.1", secured.port, username="bob", password="bob-pw") as bob:
        bob.query("bob/")
    assert secured.output().count("closed=true") >= 6


def test_hostile_commands_before_auth_get_noauth(secured) -> None:
    with socket.create_connection(("127.0.0.1", secured.port)) as sock:
        replies = exchange(
            sock,
            command(b"ACQUIRE", b"alice/x", b"1000") + command(b"QUERY") + command(b"INFO")
            + command(b"NOSUCH") + command(b"PING"),
            5,
        )
    assert replies[:4] == [b"-NOAUTH Authentication required."] * 4
    assert replies[4] == b"+PONG"


def test_hostile_huge_auth_arguments(secured) -> None:
    with socket.create_connection(("127.0.0.1", secured.port)) as sock:
        # Within the request limit: an ordinary failure.
        replies = exchange(sock, command(b"AUTH", b"root", b"x" * 200_000), 1)
        assert replies[0].startswith(b"-WRONGPASS")
    with socket.create_connection(("127.0.0.1", secured.port)) as sock:
        # Past the 1 MiB request limit: the parser's clear error, then the connection closes.
        try:
            sock.sendall(command(b"AUTH", b"root", b"x" * (2 << 20)))
        except OSError:
            pass
        sock.settimeout(5)
        reply = sock.recv(1000)
        assert reply.startswith(b"-ERR Protocol error"), reply
        assert b"xxxx" not in reply


def test_sighup_reloads_the_users_file(start_server, tmp_path: Path) -> None:
    path = users_file(tmp_path / "users.json")
    server = start_server("--users", str(path))
    users_file(path, extra="carol")
    assert server.process is not None
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "users reloaded" not in server.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    with Client("127.0.0.1", server.port, username="carol", password="new-pw") as carol:
        carol.acquire("anything", 5)
    path.write_text("{not json")
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "not reloaded" not in server.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "not reloaded" in server.output()
    with Client("127.0.0.1", server.port, username="carol", password="new-pw") as carol:
        carol.query("")


def test_json_log_lines_carry_audit_fields(start_server, tmp_path: Path) -> None:
    server = start_server("--users", str(users_file(tmp_path / "users.json")), "--log-format", "json")
    with Client("127.0.0.1", server.port, username="bob", password="nope") as bob:
        with pytest.raises(AuthFailed):
            bob.query("bob/")
    time.sleep(0.2)
    lines = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    audits = [line for line in lines if line.get("audit") == "auth_failed"]
    assert audits and audits[0]["user"] == "bob" and audits[0]["failures"] == 1
    assert all("nope" not in json.dumps(line) for line in lines)


def test_protected_mode_refuses_a_public_address_without_auth(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fencelock", "serve", "--host", "0.0.0.0", "--port", "0", "--in-memory"],
        capture_output=True, cwd=tmp_path, timeout=30,
    )
    assert result.returncode != 0
    assert b"refusing to serve 0.0.0.0 without authentication" in result.stderr
    assert b"--no-auth" in result.stderr
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1") and not is_loopback("example.com")


def test_iter_locks_pages_through_every_lock(server) -> None:
    with Client("127.0.0.1", server.port) as client:
        names = [f"page/{n:03d}" for n in range(45)]
        for name in reversed(names):
            client.acquire(name, 30)
        client.acquire("other", 30)
        assert [lock.name for lock in client.iter_locks("page/", page_size=7)] == names
        assert len(list(client.iter_locks(""))) == 46


def test_async_client_authenticates_and_pages(secured) -> None:
    import asyncio

    from fencelock import AsyncClient

    async def main() -> List[str]:
        async with AsyncClient("127.0.0.1", secured.port, username="root", password="root-pw") as client:
            for n in range(5):
                await client.acquire(f"a/{n}", 30)
            return [lock.name async for lock in client.iter_locks("a/", page_size=2)]

    assert asyncio.run(main()) == [f"a/{n}" for n in range(5)]
