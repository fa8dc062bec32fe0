"""The asyncio client, twin of :class:`fencelock.Client`.

Short requests are pipelined on one shared connection; an acquire that waits gets a connection
of its own (the server blocks a waiting connection, as Redis does for BLPOP). Each connection
has a reader task, so lost-lease pushes mark leases lost as soon as they arrive.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from types import TracebackType
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Type, Union

from . import _commands as cmd
from .client import DEFAULT_HOST, DEFAULT_PORT
from .errors import ConnectionLost, FencelockError
from .lease import Lease, LeaseEvent, LeaseRegistry
from .resp import NEED_MORE, ErrorReply, Parser, ProtocolError, Push, encode_command
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
    ) -> None:
        """Creates a client; connections are made on first use."""
        self.host = host
        self.port = port
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.protocol = protocol
        self.leases = LeaseRegistry(on_event)
        self._shared: Optional[_AsyncConnection] = None
        self._shared_lock: Optional[asyncio.Lock] = None
        self._idle: List[_AsyncConnection] = []
        self._busy: "set[_AsyncConnection]" = set()
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
    ) -> Lease:
        """Takes a lease on ``name`` for ``ttl`` seconds; see :meth:`fencelock.Client.acquire`."""
        args = cmd.acquire_args(name, ttl, wait, shared, steal, owner, ephemeral)
        sent = time.monotonic()
        reply, _ = await self._call(args, extra_time=wait or 0.0, dedicated=bool(wait))
        token = cmd.read_int(reply, "ACQUIRE")
        lease = Lease(
            name=name, token=token, ttl=float(ttl), shared=shared, owner=owner,
            ephemeral=ephemeral, expires_at=sent + ttl,
        )
        self.leases.add(lease)
        return lease

    async def renew(self, name: str, token: int, ttl: float) -> float:
        """Extends the lease ``(name, token)``; returns seconds left."""
        reply, _ = await self._call(["RENEW", name, cmd.check_token(token), cmd.to_ms(ttl, "ttl")])
        return cmd.read_int(reply, "RENEW") / 1000.0

    async def release(self, name: str, token: int) -> None:
        """Releases the lease ``(name, token)``; raises Stale/Expired if it is not live."""
        reply, retried = await self._call(["RELEASE", name, cmd.check_token(token)])
        try:
            cmd.read_ok(reply, "RELEASE")
        except FencelockError as error:
            if not (retried and cmd.is_gone(error)):
                raise

    async def verify(self, name: str, token: int) -> float:
        """Returns seconds left on the lease ``(name, token)``, or raises Stale/Expired."""
        reply, _ = await self._call(["VERIFY", name, cmd.check_token(token)])
        return cmd.read_int(reply, "VERIFY") / 1000.0

    async def query(self, prefix: str = "") -> List[LockInfo]:
        """Lists locks whose name starts with ``prefix``, with holders and waiters."""
        reply, _ = await self._call(["QUERY", prefix] if prefix else ["QUERY"])
        return cmd.read_query(reply)

    async def info(self) -> Dict[str, Union[str, int, float]]:
        """Returns the server's INFO facts and counters as a flat dict."""
        reply, _ = await self._call(["INFO"])
        return cmd.read_info(reply)

    async def ping(self) -> None:
        """Round-trips a PING; raises ConnectionLost if the server is unreachable."""
        reply, _ = await self._call(["PING"])
        cmd.raise_for_error(reply)

    async def execute(self, *args: Union[str, bytes, int]) -> Any:
        """Sends any command and returns its raw reply (errors raised as exceptions)."""
        reply, _ = await self._call(list(args))
        return cmd.raise_for_error(reply)

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
    ) -> "AsyncLockContext":
        """Returns an async context manager holding a lease; twin of :meth:`fencelock.Client.lock`."""
        return AsyncLockContext(self, cmd.LockRequest(name, ttl, wait, shared, steal, owner, ephemeral, auto_renew))

    async def close(self) -> None:
        """Closes every connection (EPHEMERAL leases held through them are dropped)."""
        self._closed = True
        conns = list(self._idle) + list(self._busy)
        if self._shared is not None:
            conns.append(self._shared)
        self._idle.clear()
        self._busy.clear()
        self._shared = None
        for conn in conns:
            await conn.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncClient(host={self.host!r}, port={self.port})"

    # -- plumbing --------------------------------------------------------------------------

    async def _call(
        self, args: Sequence[Union[str, bytes, int]], extra_time: float = 0.0, dedicated: bool = False
    ) -> "tuple[Any, bool]":
        command = str(args[0]).upper()
        attempts = 2 if command in cmd.RETRYABLE else 1
        payload = encode_command(*args)
        for attempt in range(attempts):
            conn = await (self._checkout() if dedicated else self._shared_connection())
            try:
                reply = await asyncio.wait_for(conn.request(payload), self.timeout + extra_time)
            except (OSError, ProtocolError, asyncio.TimeoutError) as error:
                # A timed-out reply may still arrive: the stream is out of step, drop it.
                await conn.close()
                self._busy.discard(conn)
                if attempt + 1 < attempts:
                    log.debug("%s failed (%r); retrying on a new connection", command, error)
                    continue
                raise ConnectionLost(
                    f"{command} to {self.host}:{self.port} failed: {error or type(error).__name__}"
                ) from error
            except BaseException:
                # Cancelled: on the shared connection the reply still lands in this request's
                # slot, so the stream stays in step. A dedicated connection may hold a waiting
                # ACQUIRE; closing it makes the server drop the wait instead of granting a lease
                # nobody will use.
                if dedicated:
                    await conn.close()
                    self._busy.discard(conn)
                raise
            if dedicated:
                self._checkin(conn)
            return reply, attempt > 0
        raise AssertionError("unreachable: the loop returns or raises")

    async def _shared_connection(self) -> "_AsyncConnection":
        if self._shared is not None and not self._shared.closed:
            return self._shared
        if self._shared_lock is None:
            self._shared_lock = asyncio.Lock()
        async with self._shared_lock:
            if self._shared is None or self._shared.closed:
                self._shared = await self._connect()
            return self._shared

    async def _checkout(self) -> "_AsyncConnection":
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                self._busy.add(conn)
                return conn
        conn = await self._connect()
        self._busy.add(conn)
        return conn

    def _checkin(self, conn: "_AsyncConnection") -> None:
        self._busy.discard(conn)
        if not conn.closed and not self._closed:
            self._idle.append(conn)

    async def _connect(self) -> "_AsyncConnection":
        if self._closed:
            raise ConnectionLost("client is closed")
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.connect_timeout
            )
        except (OSError, asyncio.TimeoutError) as error:
            raise ConnectionLost(f"cannot connect to {self.host}:{self.port}: {error!r}") from error
        conn = _AsyncConnection(reader, writer, self.leases)
        if self.protocol == 3:
            try:
                reply = await asyncio.wait_for(conn.request(encode_command("HELLO", "3")), self.timeout)
            except (OSError, ProtocolError, asyncio.TimeoutError) as error:
                await conn.close()
                raise ConnectionLost(f"HELLO to {self.host}:{self.port} failed: {error!r}") from error
            conn.resp3 = not isinstance(reply, ErrorReply)
        return conn


class _AsyncConnection:
    """One stream with a reader task that matches replies to requests in order."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, leases: LeaseRegistry
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.leases = leases
        self.parser = Parser()
        self.resp3 = False
        self.closed = False
        self._waiting: Deque["asyncio.Future[Any]"] = collections.deque()
        self._task = asyncio.get_running_loop().create_task(self._read_loop())

    def pending(self) -> int:
        return len(self._waiting)

    async def request(self, payload: bytes) -> Any:
        if self.closed:
            raise ConnectionResetError("connection is closed")
        future: "asyncio.Future[Any]" = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        self.writer.write(payload)
        await self.writer.drain()
        return await future

    async def _read_loop(self) -> None:
        error: BaseException = ConnectionResetError("server closed the connection")
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                self.parser.feed(data)
                while True:
                    reply = self.parser.get()
                    if reply is NEED_MORE:
                        break
                    if isinstance(reply, Push):
                        self.leases.handle_push(reply)
                    elif self._waiting:
                        future = self._waiting.popleft()
                        if not future.done():
                            future.set_result(reply)
                    else:
                        raise ProtocolError(f"reply nobody asked for: {reply!r}")
        except (OSError, ProtocolError) as failure:
            error = failure
        except asyncio.CancelledError:
            error = ConnectionResetError("connection closed by the client")
        finally:
            self.closed = True
            while self._waiting:
                future = self._waiting.popleft()
                if not future.done():
                    future.set_exception(error)
            self.writer.close()

    async def close(self) -> None:
        if not self._task.done():
            self._task.cancel()
        self.closed = True
        try:
            await self._task
        except (asyncio.CancelledError, Exception):
            pass
        try:
            self.writer.close()
            await self.writer.wait_closed()
        except (OSError, RuntimeError):
            pass


class AsyncLockContext:
    """``async with client.lock(...) as lease``: acquire, keep alive, release, report loss."""

    def __init__(self, client: AsyncClient, request: cmd.LockRequest) -> None:
        self.client = client
        self.request = request
        self.lease: Optional[Lease] = None
        self._renewer: Optional["asyncio.Task[None]"] = None

    async def __aenter__(self) -> Lease:
        request = self.request
        lease = await self.client.acquire(request.name, request.ttl, **request.acquire_options())
        self.lease = lease
        if request.auto_renew:
            self._renewer = asyncio.get_running_loop().create_task(self._renew_loop(lease))
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
        if self._renewer is not None:
            self._renewer.cancel()
            try:
                await self._renewer
            except asyncio.CancelledError:
                pass
        if not lease.lost:
            try:
                await self.client.release(lease.name, lease.token)
            except FencelockError as error:
                cmd.release_failed(lease, error)
        self.client.leases.discard(lease)
        if lease.lost and exc_type is None:
            lease.raise_if_lost()

    async def _renew_loop(self, lease: Lease) -> None:
        schedule = cmd.RenewSchedule(lease)
        while not lease.lost:
            await asyncio.sleep(schedule.delay())
            if lease.lost:
                return
            sent = time.monotonic()
            try:
                left = await self.client.renew(lease.name, lease.token, lease.ttl)
            except ConnectionLost as error:
                if not schedule.connection_lost(error):
                    return
                continue
            except FencelockError as error:
                schedule.refused(error)
                return
            schedule.renewed(sent, left)
