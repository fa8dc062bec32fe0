"""The asyncio client against a real server: the twins of the sync round trips."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import pytest

import fencelock

from typing import Any as ServerProcess  # the conftest fixture type (tests import no siblings)


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))  # type: ignore[arg-type]


def test_round_trip_and_errors(server: ServerProcess) -> None:
    async def scenario() -> None:
        async with fencelock.AsyncClient(port=server.port) as client:
            lease = await client.acquire("a", 5.0)
            with pytest.raises(fencelock.Locked):
                await client.acquire("a", 5.0)
            # Pipelined on one connection, answered in order.
            lefts = await asyncio.gather(*(client.verify("a", lease.token) for _ in range(50)))
            # Seconds left by the server's clock: the same or a little less than the TTL.
            assert len(lefts) == 50 and all(4.0 < left <= 5.0 for left in lefts), lefts
            assert await client.renew("a", lease.token, 6.0) == 6.0
            (lock,) = await client.query("a")
            assert lock.holders[0].token == lease.token
            assert (await client.info())["live_leases"] == 1
            await client.release("a", lease.token)
            with pytest.raises(fencelock.Stale):
                await client.release("a", lease.token)

    run(scenario())


def test_requests_made_in_one_loop_iteration_go_out_in_one_write(server: ServerProcess) -> None:
    async def scenario() -> None:
        async with fencelock.AsyncClient(port=server.port) as client:
            lease = await client.acquire("batched", 5.0)
            driver = client._driver
            assert driver is not None
            (transport,) = driver.transports.values()
            writes: list[bytes] = []
            write = transport.write

            def counting_write(data: Any) -> None:
                writes.append(bytes(data))
                write(data)

            transport.write = counting_write  # type: ignore[method-assign]
            # 50 coroutines that each send a request in the same turn of the loop: one write
            # (one syscall, one segment for the server to read) carries them all.
            lefts = await asyncio.gather(*(client.verify("batched", lease.token) for _ in range(50)))
            # Seconds left by the server's clock: the same or a little less than the TTL.
            assert len(lefts) == 50 and all(4.0 < left <= 5.0 for left in lefts), lefts
            assert len(writes) == 1, [len(data) for data in writes]
            assert writes[0].count(b"VERIFY") == 50
            # A request alone still goes at once, in a write of its own.
            await client.release("batched", lease.token)
            assert len(writes) == 2 and b"RELEASE" in writes[1]

    run(scenario())


def test_wait_does_not_block_other_requests(server: ServerProcess) -> None:
    async def scenario() -> None:
        async with fencelock.AsyncClient(port=server.port) as client:
            holder = await client.acquire("w", 10.0)
            waiting = asyncio.ensure_future(client.acquire("w", 10.0, wait=10.0))
            await _until(lambda: _waiters(client, "w", 1))
            # The shared connection stays free while the waiter has its own.
            assert await client.verify("w", holder.token) > 0
            await client.release("w", holder.token)
            granted = await waiting
            assert granted.token > holder.token

    run(scenario())


def test_cancelled_wait_leaves_the_queue(server: ServerProcess) -> None:
    async def scenario() -> None:
        async with fencelock.AsyncClient(port=server.port) as client:
            await client.acquire("c", 10.0)
            waiting = asyncio.ensure_future(client.acquire("c", 10.0, wait=10.0))
            await _until(lambda: _waiters(client, "c", 1))
            waiting.cancel()
            await _until(lambda: _waiters(client, "c", 0))

    run(scenario())


def test_lock_block_and_lost_lease_push(server: ServerProcess) -> None:
    async def scenario() -> None:
        async with fencelock.AsyncClient(port=server.port) as client:
            with pytest.raises(fencelock.LeaseLost):
                async with client.lock("job", ttl=3.0) as lease:
                    await client.execute("DEBUG", "ADVANCE", "3000")
                    # The reader task applies the RESP3 push without any request of ours.
                    await _until(lambda: _is_lost(lease))
                    assert "expired" in (lease.lost_reason or "")

    run(scenario())


def test_async_lock_renews_on_real_time(start_server) -> None:
    real = start_server()

    async def scenario() -> None:
        async with fencelock.AsyncClient(port=real.port) as client:
            async with client.lock("job", ttl=0.6) as lease:
                await asyncio.sleep(1.5)  # 2.5 TTLs: only renewals keep it alive
                assert not lease.lost
                assert await client.verify("job", lease.token) > 0
            assert await client.query("job") == []

    run(scenario())


def test_async_client_reconnects_after_a_restart(start_server, tmp_path) -> None:
    data = tmp_path / "data"
    first = start_server(data_dir=data)

    async def before() -> Any:
        client = fencelock.AsyncClient(port=first.port)
        lease = await client.acquire("r", 60.0)
        return lease.token, client

    async def scenario() -> None:
        token, client = await before()
        assert first.stop() == 0
        second = start_server(port=first.port, data_dir=data)
        try:
            assert await client.verify("r", token) > 0  # a new connection, transparently
            assert (await client.acquire("r2", 5.0)).token > token
        finally:
            await client.close()
            second.stop()

    run(scenario())


async def _waiters(client: fencelock.AsyncClient, name: str, count: int) -> bool:
    locks = await client.query(name)
    return bool(locks) and len(locks[0].waiters) == count or (not locks and count == 0)


async def _is_lost(lease: fencelock.Lease) -> bool:
    return lease.lost


async def _until(condition: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def test_lock_delay_and_idle_steal_push(server: ServerProcess) -> None:
    async def scenario() -> None:
        async with fencelock.AsyncClient(port=server.port) as client, \
                fencelock.AsyncClient(port=server.port) as thief:
            lease = await client.acquire("d", 1.0, lock_delay=2.0)
            await client.execute("DEBUG", "ADVANCE", 1000)
            with pytest.raises(fencelock.Locked) as held:
                await client.acquire("d", 1.0)
            assert held.value.ms_left == 2000
            await client.execute("DEBUG", "ADVANCE", 2000)
            kept = await client.acquire("d", 60.0)
            assert kept.token > lease.token
            taken = await thief.acquire("d", 60.0, steal=True)
            # The victim sends nothing: its connection's reader sees the push.
            for _ in range(200):
                if kept.lost:
                    break
                await asyncio.sleep(0.01)
            assert kept.lost_reason == f"server push: stolen by token {taken.token}"

    run(scenario())
