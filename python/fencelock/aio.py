"""The asyncio client, twin of :class:`fencelock.Client`: asyncio transports around the core's
sans-IO client.

The core client decides which connection carries a request (short requests pipelined on one
shared connection, each waiting acquire on its own), timeouts, retries, failover, renewals and
lost-lease detection; this module only opens transports, writes, feeds received bytes back and
keeps one timer armed at the core's next deadline.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from types import TracebackType
from typing import Any, AsyncIterator, Callable, Dict, List, Optional, Sequence, Tuple, Type, Union

from . import _commands as cmd
from ._native import NativeClient
from ._tls import TlsOption, client_context
from .client import DEFAULT_HOST, DEFAULT_PORT, Endpoint
from .errors import ConnectionLost, FencelockError
from .lease import Lease, LeaseEvent, LeaseRegistry
from .types import LockInfo

__all__ = ["AsyncClient", "AsyncLockContext"]

log = logging.getLogger("fencelock.client")


class AsyncClient:
    """An asyncio fencelock client. Durations are seconds (floats)."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        protocol: int = 3,
        on_event: Optional[Callable[[LeaseEvent], None]] = None,
        fallbacks: Sequence[Endpoint] = (),
        tls: TlsOption = None,
        tls_ca: Optional[str] = None,
        username: Optional[str] = None,
        password: Optional[str] = None,
    ) -> None:
        """Creates a client; connections are made on first use. ``tls`` and ``tls_ca`` are as
        for :class:`fencelock.Client`."""
        self.host = host
        self.port = port
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.protocol = protocol
        self.endpoints: List[Endpoint] = [(host, port), *fallbacks]
        self.tls_context = client_context(tls, tls_ca)
        self.leases = LeaseRegistry(on_event)
        self._native = cmd.native_client(self.endpoints, protocol, timeout, connect_timeout, username, password)
        self._driver: Optional[_Driver] = None
        self._closed = False

    async def acquire(
        self,
        name: str,
        ttl: float,
        wait: Optional[float] = None,
        shared: bool = False,
        steal: bool = False,
        owner: Optional[str] = None,
        ephemeral: bool = False,
        lock_delay: Optional[float] = None,
    ) -> Lease:
        """Takes a lease on ``name`` for ``ttl`` seconds; see :meth:`fencelock.Client.acquire`."""
        request = cmd.AcquireRequest(name, ttl, wait, shared, steal, owner, ephemeral, lock_delay)
        lease = request.lease(await self._call(request.submit))
        lease._status = self._deadline
        self.leases.add(lease)
        return lease

    async def renew(self, name: str, token: int, ttl: float) -> float:
        """Extends the lease ``(name, token)``; returns seconds left."""
        ttl_ms = cmd.to_ms(ttl, "ttl")
        token = cmd.check_token(token)
        ms_left: int = await self._call(lambda native, now: native.renew(now, cmd.check_name(name), token, ttl_ms))
        return ms_left / 1000.0

    async def release(self, name: str, token: int) -> None:
        """Releases the lease ``(name, token)``; raises Stale/Expired if it is not live."""
        token = cmd.check_token(token)
        await self._call(lambda native, now: native.release(now, cmd.check_name(name), token))

    async def verify(self, name: str, token: int) -> float:
        """Returns seconds left on the lease ``(name, token)``, or raises Stale/Expired."""
        token = cmd.check_token(token)
        ms_left: int = await self._call(lambda native, now: native.verify(now, cmd.check_name(name), token))
        return ms_left / 1000.0

    async def query(self, prefix: str = "") -> List[LockInfo]:
        """Lists locks whose name starts with ``prefix``, with holders and waiters."""
        return cmd.lock_infos(await self._call(lambda native, now: native.query(now, prefix)))

    async def iter_locks(self, prefix: str = "", *, page_size: int = cmd.PAGE_SIZE) -> AsyncIterator[LockInfo]:
        """Yields every lock whose name starts with ``prefix``, a page at a time; see
        :meth:`fencelock.Client.iter_locks`."""
        cursor = ""
        while True:
            def submit(native: NativeClient, now: int, after: str = cursor) -> int:
                return native.query_page(now, prefix, page_size, after)

            next_cursor, page = await self._call(submit)
            for lock in cmd.lock_infos(page):
                yield lock
            if not next_cursor:
                return
            cursor = next_cursor

    async def info(self) -> Dict[str, Union[str, int, float]]:
        """Returns the server's INFO facts and counters as a flat dict."""
        return cmd.info_dict(await self._call(lambda native, now: native.info(now)))

    async def ping(self) -> None:
        """Round-trips a PING; raises ConnectionLost if the server is unreachable."""
        await self._call(lambda native, now: native.ping(now))

    async def execute(self, *args: Union[str, bytes, int]) -> Any:
        """Sends any command and returns its raw reply (errors raised as exceptions)."""
        argv = cmd.argv_bytes(args)
        return await self._call(lambda native, now: native.command(now, argv))

    def lock(
        self,
        name: str,
        ttl: float = 10.0,
        wait: Optional[float] = 5.0,
        shared: bool = False,
        auto_renew: bool = True,
        owner: Optional[str] = None,
        ephemeral: bool = False,
        steal: bool = False,
        lock_delay: Optional[float] = None,
    ) -> "AsyncLockContext":
        """Returns an async context manager holding a lease; twin of :meth:`fencelock.Client.lock`."""
        request = cmd.AcquireRequest(name, ttl, wait, shared, steal, owner, ephemeral, lock_delay)
        return AsyncLockContext(self, cmd.LockRequest(request, auto_renew))

    async def close(self) -> None:
        """Closes every connection (EPHEMERAL leases held through them are dropped)."""
        self._closed = True
        driver, self._driver = self._driver, None
        if driver is not None:
            await driver.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncClient(host={self.host!r}, port={self.port})"

    # -- plumbing --------------------------------------------------------------------------

    async def _call(self, submit: Callable[[NativeClient, int], int]) -> Any:
        if self._closed:
            raise ConnectionLost("client is closed")
        loop = asyncio.get_running_loop()
        if self._driver is None or self._driver.loop is not loop:
            self._driver = _Driver(self._native, self.endpoints, self.leases, loop, self.tls_context)
        return cmd.result(await self._driver.request(submit))

    def _deadline(self, lease: Lease) -> Optional[float]:
        status = self._native.lease(cmd.now_ms(), lease.name, lease.token)
        return None if status is None else status[0] / 1000.0

    def _keep_alive(self, lease: Lease) -> None:
        if not self._native.keep_alive(lease.name, lease.token):
            lease.mark_lost("its lease time ran out before a renewal was confirmed")
        if self._driver is not None:
            self._driver.pump()

    def _forget(self, lease: Lease) -> None:
        self._native.forget(lease.name, lease.token)
        self.leases.discard(lease)


class _Driver:
    """Performs the core client's outputs on one event loop."""

    def __init__(
        self, native: NativeClient, endpoints: List[Endpoint], leases: LeaseRegistry, loop: asyncio.AbstractEventLoop,
        tls_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        self.native = native
        self.tls_context = tls_context
        self.endpoints = endpoints
        self.leases = leases
        self.loop = loop
        self.transports: Dict[int, asyncio.Transport] = {}
        self.connecting: Dict[int, "asyncio.Task[None]"] = {}
        self.futures: Dict[int, "asyncio.Future[Any]"] = {}
        self.timer: Optional[asyncio.TimerHandle] = None
        #: The core's deadline the timer is armed for (ms), while it is armed.
        self.timer_at: Optional[int] = None
        self.pump_scheduled = False

    async def request(self, submit: Callable[[NativeClient, int], int]) -> Any:
        future: "asyncio.Future[Any]" = self.loop.create_future()
        request_id = submit(self.native, cmd.now_ms())
        self.futures[request_id] = future
        # Written once the loop's current callbacks have run: the core client queues the
        # requests of every coroutine that runs meanwhile on the same connection, so they go
        # out in one write (one syscall, one segment) instead of one each.
        if not self.pump_scheduled:
            self.pump_scheduled = True
            self.loop.call_soon(self._scheduled_pump)
        try:
            return await future
        except asyncio.CancelledError:
            # The core closes a waiting acquire's connection so the server drops the wait;
            # a short request keeps its place in the pipeline and its reply is dropped.
            self.futures.pop(request_id, None)
            self.native.cancel(cmd.now_ms(), request_id)
            self.pump()
            raise

    def _scheduled_pump(self) -> None:
        self.pump_scheduled = False
        self.pump()

    def pump(self) -> None:
        """Does every pending output, resolves replies, routes events and re-arms the timer."""
        while True:
            outputs, replies, events, timeout_ms = self.native.drain()
            for output in outputs:
                if output[0] == "connect":
                    conn, endpoint = output[1], output[2]
                    self.connecting[conn] = self.loop.create_task(self._open(conn, endpoint))
                elif output[0] == "transmit":
                    transport = self.transports.get(output[1])
                    if transport is not None:
                        transport.write(output[2])
                else:
                    self._close(output[1])
            cmd.route_events(events, self.leases)
            for request_id, payload in replies:
                future = self.futures.pop(request_id, None)
                if future is not None and not future.done():
                    future.set_result(payload)
            if not (outputs or replies or events):
                break
        self._arm(timeout_ms)

    def _arm(self, timeout_ms: Optional[int]) -> None:
        if timeout_ms is not None and self.timer_at is not None and self.timer_at <= timeout_ms:
            # Armed for this deadline or an earlier one: the core's timeout may be handled
            # early (it only does what is due, and the pump after it re-arms for the rest).
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
            self.timer_at = None
        if timeout_ms is not None:
            delay = max(0.0, (timeout_ms - cmd.now_ms()) / 1000.0)
            self.timer = self.loop.call_later(delay, self._on_timer)
            self.timer_at = timeout_ms

    def _on_timer(self) -> None:
        self.timer = None
        self.timer_at = None
        self.native.handle_timeout(cmd.now_ms())
        self.pump()

    async def _open(self, conn: int, endpoint: int) -> None:
        host, port = self.endpoints[endpoint]
        try:
            # With TLS, connection_made comes after the handshake: the core's connect timeout
            # covers both.
            await self.loop.create_connection(
                lambda: _Connection(self, conn), host, port,
                ssl=self.tls_context, server_hostname=host if self.tls_context is not None else None,
            )
        except asyncio.CancelledError:
            return
        except OSError as error:
            self.connecting.pop(conn, None)
            self.native.handle_disconnect(cmd.now_ms(), conn, f"cannot connect to {host}:{port}: {error}")
            self.pump()

    def connection_made(self, conn: int, transport: asyncio.Transport) -> None:
        self.connecting.pop(conn, None)
        self.transports[conn] = transport
        self.native.handle_connected(cmd.now_ms(), conn)
        self.pump()

    def data_received(self, conn: int, data: bytes) -> None:
        self.native.receive(cmd.now_ms(), conn, data)
        self.pump()

    def connection_lost(self, conn: int, reason: str) -> None:
        if self.transports.pop(conn, None) is not None:
            self.native.handle_disconnect(cmd.now_ms(), conn, reason)
            self.pump()

    def _close(self, conn: int) -> None:
        task = self.connecting.pop(conn, None)
        if task is not None:
            task.cancel()
        transport = self.transports.pop(conn, None)
        if transport is not None:
            transport.close()

    async def close(self) -> None:
        self.native.close(cmd.now_ms())
        self.pump()
        for conn in list(self.transports) + list(self.connecting):
            self._close(conn)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
            self.timer_at = None
        failure = ConnectionLost("client is closed")
        for future in self.futures.values():
            if not future.done():
                future.set_result(failure)
        self.futures.clear()
        # Let transports finish closing before the loop may end.
        await asyncio.sleep(0)


class _Connection(asyncio.Protocol):
    def __init__(self, driver: _Driver, conn: int) -> None:
        self.driver = driver
        self.conn = conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self.driver.connection_made(self.conn, transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self.driver.data_received(self.conn, data)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.driver.connection_lost(self.conn, str(exc) if exc else "server closed the connection")


class AsyncLockContext:
    """``async with client.lock(...) as lease``: acquire, keep alive, release, report loss."""

    def __init__(self, client: AsyncClient, request: cmd.LockRequest) -> None:
        self.client = client
        self.request = request
        self.lease: Optional[Lease] = None

    async def __aenter__(self) -> Lease:
        acquire = self.request.acquire
        lease = await self.client.acquire(
            acquire.name, acquire.ttl, acquire.wait, acquire.shared, acquire.steal,
            acquire.owner, acquire.ephemeral, acquire.lock_delay,
        )
        self.lease = lease
        if self.request.auto_renew:
            self.client._keep_alive(lease)
        return lease

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        lease = self.lease
        if lease is None:
            return
        if not lease.lost:
            try:
                await self.client.release(lease.name, lease.token)
            except FencelockError as error:
                if not lease.lost:
                    log.warning("could not release %r token %d: %s", lease.name, lease.token, error)
        self.client._forget(lease)
        if lease.lost and exc_type is None:
            lease.raise_if_lost()
