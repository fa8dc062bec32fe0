"""Fencing end to end: a writer paused past its lease (SIGSTOP) has its late write refused by
SQLite itself, through ``UPDATE ... WHERE fence <= :token``, even though it had verified first."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import fencelock

WRITER = textwrap.dedent(
    """
    import sqlite3, sys, time
    import fencelock

    port, db, value = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    client = fencelock.Client(port=port)
    lease = client.acquire("account-7", 1.0)
    client.verify("account-7", lease.token)   # verifying is not enough: the pause comes next
    print(lease.token, flush=True)
    sys.stdin.readline()                       # the test stops this process in here
    with sqlite3.connect(db) as conn:
        cursor = conn.execute(
            "UPDATE account SET balance = :value, fence = :token WHERE id = 7 AND fence <= :token",
            {"value": value, "token": lease.token},
        )
    print(cursor.rowcount, flush=True)
    """
)


def fenced_update(db: Path, value: str, token: int) -> int:
    with sqlite3.connect(db) as conn:
        cursor = conn.execute(
            "UPDATE account SET balance = :value, fence = :token WHERE id = 7 AND fence <= :token",
            {"value": value, "token": token},
        )
        return cursor.rowcount


def process_state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


def test_paused_writer_is_fenced_off(start_server, tmp_path: Path) -> None:
    server = start_server()
    db = tmp_path / "bank.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE account (id INTEGER PRIMARY KEY, balance TEXT, fence INTEGER NOT NULL)")
        conn.execute("INSERT INTO account VALUES (7, 'initial', 0)")
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    slow = subprocess.Popen(
        [sys.executable, str(script), str(server.port), str(db), "from-paused-writer"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert slow.stdout is not None
        old_token = int(slow.stdout.readline())
        slow.send_signal(signal.SIGSTOP)
        _wait_for(lambda: process_state(slow.pid) == "T")
        time.sleep(1.3)  # its 1 s lease lapses while it is stopped

        with fencelock.Client(port=server.port) as client:
            with client.lock("account-7", ttl=5.0, wait=2.0) as lease:
                assert lease.token > old_token
                assert fenced_update(db, "from-new-holder", lease.token) == 1

        slow.send_signal(signal.SIGCONT)
        assert slow.stdin is not None
        slow.stdin.write("resume\n")  # the writer goes on to its late write only now
        slow.stdin.flush()
        late_rows = int(slow.stdout.readline())
        assert slow.wait(10) == 0
    finally:
        if slow.poll() is None:
            slow.send_signal(signal.SIGCONT)
            slow.kill()
    assert late_rows == 0, "the late write of the paused writer must be refused"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT balance, fence FROM account WHERE id = 7").fetchone() == (
            "from-new-holder", lease.token,
        )


def _wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)
