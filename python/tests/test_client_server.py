"""Client/server round trips over TCP: the sync client against a real `fencelock serve`."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import fencelock

from typing import Any as ServerProcess  # the conftest fixture type (tests import no siblings)


def advance(client: fencelock.Client, ms: int) -> None:
    client.execute("DEBUG", "ADVANCE", str(ms))


def test_acquire_renew_verify_release(server: ServerProcess) -> None:
    with fencelock.Client(port=server.port) as client:
        client.ping()
        lease = client.acquire("orders", 5.0, owner="worker-1")
        assert lease.token >= 1 and lease.owner == "worker-1"
        with pytest.raises(fencelock.Locked) as held:
            client.acquire("orders", 5.0)
        assert held.value.ms_left == 5000
        assert client.verify("orders", lease.token) == 5.0
        assert client.renew("orders", lease.token, 8.0) == 8.0
        (lock,) = client.query("ord")
        assert lock.name == "orders" and lock.holders[0].token == lease.token
        assert lock.holders[0].owner == "worker-1" and lock.holders[0].mode == "exclusive"
        info = client.info()
        assert info["live_leases"] == 1 and info["last_token"] == lease.token
        client.release("orders", lease.token)
        with pytest.raises(fencelock.Stale):
            client.release("orders", lease.token)
        again = client.acquire("orders", 5.0)
        assert again.token > lease.token


def test_expiry_on_the_test_clock(server: ServerProcess) -> None:
    with fencelock.Client(port=server.port) as client:
        lease = client.acquire("a", 1.0)
        advance(client, 1000)
        with pytest.raises(fencelock.Expired):
            client.renew("a", lease.token, 1.0)
        with pytest.raises(fencelock.BadRequest):
            client.acquire("a", 10_000.0)


def test_wait_is_granted_first_come_first_served(server: ServerProcess) -> None:
    with fencelock.Client(port=server.port) as client:
        holder = client.acquire("q", 10.0)
        order: list = []

        def waiter(tag: str) -> None:
            lease = client.acquire("q", 10.0, wait=10.0)
            order.append((tag, lease.token))
            client.release("q", lease.token)

        first = threading.Thread(target=waiter, args=("first",))
        first.start()
        _wait_until(lambda: len(client.query("q")[0].waiters) == 1)
        second = threading.Thread(target=waiter, args=("second",))
        second.start()
        _wait_until(lambda: len(client.query("q")[0].waiters) == 2)
        client.release("q", holder.token)
        first.join(5)
        second.join(5)
        assert [tag for tag, _ in order] == ["first", "second"]
        assert order[0][1] < order[1][1]


def test_wait_times_out(server: ServerProcess) -> None:
    with fencelock.Client(port=server.port) as client:
        client.acquire("t", 10.0)
        result: list = []

        def waiter() -> None:
            try:
                client.acquire("t", 1.0, wait=0.5)
            except fencelock.LockTimeout as error:
                result.append(error)

        thread = threading.Thread(target=waiter)
        thread.start()
        _wait_until(lambda: len(client.query("t")[0].waiters) == 1)
        advance(client, 500)
        thread.join(5)
        assert len(result) == 1 and result[0].code == "TIMEOUT"


def test_shared_holders_exclude_writers(server: ServerProcess) -> None:
    with fencelock.Client(port=server.port) as client:
        first = client.acquire("doc", 5.0, shared=True)
        second = client.acquire("doc", 5.0, shared=True)
        assert second.token > first.token
        with pytest.raises(fencelock.Locked):
            client.acquire("doc", 5.0)
        (lock,) = client.query("doc")
        assert [h.mode for h in lock.holders] == ["shared", "shared"]


def test_steal_fences_the_old_holder(server: ServerProcess) -> None:
    with fencelock.Client(port=server.port) as client:
        old = client.acquire("s", 5.0)
        new = client.acquire("s", 5.0, steal=True)
        assert new.token > old.token
        with pytest.raises(fencelock.Stale):
            client.renew("s", old.token, 5.0)
        assert client.verify("s", new.token) > 0


def test_ephemeral_lease_ends_with_its_connection(server: ServerProcess) -> None:
    with fencelock.Client(port=server.port) as observer:
        holder = fencelock.Client(port=server.port)
        lease = holder.acquire("e", 60.0, ephemeral=True)
        with pytest.raises(fencelock.Locked):
            observer.acquire("e", 5.0)
        holder.close()
        _wait_until(lambda: not observer.query("e"))
        with pytest.raises(fencelock.Stale):
            observer.verify("e", lease.token)
        assert observer.acquire("e", 5.0).token > lease.token


def test_lock_block_auto_renews(start_server) -> None:
    server = start_server()  # real clock: renewals must really keep the lease alive
    with fencelock.Client(port=server.port) as client:
        with client.lock("job", ttl=0.6, wait=1.0) as lease:
            time.sleep(1.5)  # 2.5 TTLs: only renewals (every 0.2 s) keep it alive
            assert not lease.lost
            assert client.verify("job", lease.token) > 0
        assert not client.query("job")


def test_leaving_a_lost_lock_raises_lease_lost(server: ServerProcess) -> None:
    with fencelock.Client(port=server.port) as client:
        with pytest.raises(fencelock.LeaseLost) as lost:
            with client.lock("job", ttl=3.0, wait=1.0) as lease:
                client.acquire("job", 3.0, steal=True)
                assert lease.wait_lost(5.0), "the renewer or the push should mark it lost"
        assert lost.value.token == lease.token
        assert "stale" in (lease.lost_reason or "").lower() or "stolen" in (lease.lost_reason or "")


def test_lost_lease_push_over_resp3(server: ServerProcess) -> None:
    events: list = []
    with fencelock.Client(port=server.port, on_event=events.append) as client:
        lease = client.acquire("p", 1.0)
        advance(client, 1000)
        client.ping()  # the push arrives before the reply on the same connection
        assert lease.lost and "expired" in (lease.lost_reason or "")
        assert [(e.kind, e.name, e.token) for e in events] == [("expired", "p", lease.token)]


def test_stolen_push_names_the_new_token(server: ServerProcess) -> None:
    events: list = []
    with fencelock.Client(port=server.port, on_event=events.append) as victim, \
            fencelock.Client(port=server.port) as thief:
        lease = victim.acquire("s", 60.0)
        taken = thief.acquire("s", 60.0, steal=True)
        victim.ping()  # the push arrives before the reply on the victim's connection
        assert lease.lost and lease.lost_reason == f"server push: stolen by token {taken.token}"
        assert [(e.kind, e.name, e.token, e.by_token) for e in events] == [
            ("stolen", "s", lease.token, taken.token)
        ]
        with pytest.raises(fencelock.Stale):
            victim.renew("s", lease.token, 60.0)


def test_reconnects_after_the_server_restarts(start_server, tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = start_server(data_dir=data)
    client = fencelock.Client(port=first.port)
    lease = client.acquire("r", 60.0)
    assert first.stop() == 0
    second = start_server(port=first.port, data_dir=data)
    # The pooled connection is dead; the client notices and reconnects.
    assert client.verify("r", lease.token) > 0
    later = client.acquire("r2", 5.0)
    assert later.token > lease.token
    client.close()
    second.stop()


def test_unreachable_server_raises_connection_lost() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with fencelock.Client(port=port, connect_timeout=1.0) as client:
        with pytest.raises(fencelock.ConnectionLost):
            client.acquire("x", 1.0)


def _wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def test_a_client_that_never_reads_does_not_grow_the_server(server: ServerProcess) -> None:
    import socket

    request = b"*1\r\n$4\r\nPING\r\n" * 20_000
    with socket.create_connection(("127.0.0.1", server.port)) as greedy:
        greedy.setblocking(False)
        sent = 0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # write until the server stops reading from us
            try:
                sent += greedy.send(request)
            except BlockingIOError:
                time.sleep(0.05)
            except (ConnectionResetError, BrokenPipeError):
                break  # the server cut it off as a client that does not read: also fine
        # Others are still served while it stalls.
        with fencelock.Client(port=server.port) as client:
            client.ping()
            assert client.acquire("still-served", 1.0).token >= 1
    rss_kib = int(next(line for line in open(f"/proc/{server.process.pid}/status") if line.startswith("VmRSS")).split()[1])
    assert rss_kib < 300_000, f"server grew to {rss_kib} KiB for a client that never reads"


def test_connection_cap_refuses_the_extra_connection(start_server) -> None:
    import socket

    capped = start_server("--max-connections", "2")
    first = socket.create_connection(("127.0.0.1", capped.port))
    second = socket.create_connection(("127.0.0.1", capped.port))
    try:
        for sock in (first, second):
            sock.sendall(b"PING\r\n")
            assert sock.recv(100) == b"+PONG\r\n"
        with socket.create_connection(("127.0.0.1", capped.port)) as third:
            third.settimeout(5)
            reply = b""
            while chunk := third.recv(100):
                reply += chunk
            assert reply.startswith(b"-ERR max number of clients reached")
    finally:
        first.close()
        second.close()


def test_sigint_is_a_clean_shutdown_too(start_server, tmp_path: Path) -> None:
    import signal

    data = tmp_path / "data"
    server = start_server(data_dir=data)
    with fencelock.Client(port=server.port) as client:
        client.acquire("kept", 60.0)
    assert server.stop(signal.SIGINT) == 0
    assert (data / "snapshot.json").exists()
    assert "stopped: 1 live leases kept in the snapshot" in server.output()


def test_idle_client_learns_of_a_steal_without_a_request(server: ServerProcess) -> None:
    # The sync client's I/O thread reads pushes while the caller does nothing at all.
    with fencelock.Client(port=server.port) as victim, fencelock.Client(port=server.port) as thief:
        lease = victim.acquire("idle", 60.0)
        taken = thief.acquire("idle", 60.0, steal=True)
        assert lease.wait_lost(5.0), "the push should reach an idle client"
        assert lease.lost_reason == f"server push: stolen by token {taken.token}"


def test_lock_delay_from_the_client(server: ServerProcess) -> None:
    with fencelock.Client(port=server.port) as client:
        lease = client.acquire("delayed", 1.0, lock_delay=2.0)
        advance(client, 1000)  # the lease expires: the lock stays closed for 2 s
        with pytest.raises(fencelock.Locked) as held:
            client.acquire("delayed", 1.0)
        assert held.value.ms_left == 2000
        (lock,) = client.query("delayed")
        assert lock.delay_ms_left == 2000 and not lock.holders
        advance(client, 2000)
        assert client.acquire("delayed", 1.0).token > lease.token


def test_fails_over_to_the_next_endpoint(server: ServerProcess) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    with fencelock.Client(port=dead, fallbacks=[("127.0.0.1", server.port)]) as client:
        assert client.acquire("failover", 5.0).token > 0
    with fencelock.Client(port=dead, fallbacks=[("127.0.0.1", dead)], connect_timeout=1.0) as client:
        with pytest.raises(fencelock.ConnectionLost, match="cannot connect"):
            client.ping()
