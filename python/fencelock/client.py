"""The blocking client: an I/O thread around the core's sans-IO client.

The core client (``fencelock._native.NativeClient``) decides everything a lock client decides:
request encoding, reply decoding, which connection carries a request (short requests pipelined
on one shared connection, each waiting acquire on its own), timeouts, retries, failover across
endpoints, renewals of leases kept alive and lost-lease detection. This module owns the
sockets: one background thread connects, writes, reads and keeps time, so the client also
sees the server's lost-lease pushes while the caller is idle. Caller threads queue a request
and wait for its reply.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import selectors
import socket
import ssl
import threading
from types import TracebackType
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple, Type, Union

from . import _commands as cmd
from ._native import NativeClient
from ._tls import TlsOption, TlsSession, client_context
from .errors import ConnectionLost, FencelockError
from .lease import Lease, LeaseEvent, LeaseRegistry
from .types import LockInfo

__all__ = ["Client", "LockContext", "DEFAULT_HOST", "DEFAULT_PORT"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7380

log = logging.getLogger("fencelock.client")

Endpoint = Tuple[str, int]


class Client:
    """A blocking fencelock client; thread-safe. Durations are seconds (floats)."""

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
        """Creates a client; no connection is made until the first request.

        ``username``/``password`` authenticate every connection (``HELLO 3 AUTH``, or
        ``AUTH`` with ``protocol=2``); ``password`` alone is the ``default`` user of a server
        started with ``--requirepass``. A wrong pair raises ``AuthFailed`` on the first
        request, a missing one ``AuthRequired``, a rule that forbids ``PermissionDenied``.

        ``timeout`` bounds each round trip (a waiting acquire gets its wait on top), and
        ``protocol=3`` asks for RESP3 so the server can push lost-lease notices. When a
        connect fails the client moves on to the next of ``fallbacks`` (host, port) pairs.
        ``tls=True`` speaks TLS, verifying the server against ``tls_ca`` (a PEM file) or the
        system's CAs; pass an ``ssl.SSLContext`` instead for client certificates. The TLS
        handshake counts against ``connect_timeout``.
        """
        self.host = host
        self.port = port
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.protocol = protocol
        self.endpoints: List[Endpoint] = [(host, port), *fallbacks]
        self.tls_context = client_context(tls, tls_ca)
        self.leases = LeaseRegistry(on_event)
        self._native = cmd.native_client(self.endpoints, protocol, timeout, connect_timeout, username, password)
        self._io: Optional[_IoThread] = None
        self._io_lock = threading.Lock()
        self._closed = False

    # -- lock operations -------------------------------------------------------------------

    def acquire(
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
        """Takes a lease on ``name`` for ``ttl`` seconds and returns it with its fencing token.

        ``lock_delay`` (seconds) keeps the lock from being granted again for that long if this
        lease expires instead of being released.

        Raises:
            Locked: the lock is held and ``wait`` was not given.
            LockTimeout: the lock was not granted within ``wait`` seconds.
            NotReady: the server is in its restart grace after a crash.
            ConnectionLost: the server could not be reached (the lease, if granted, will lapse).
        """
        request = cmd.AcquireRequest(name, ttl, wait, shared, steal, owner, ephemeral, lock_delay)
        lease = request.lease(self._call(request.submit))
        lease._status = self._deadline
        self.leases.add(lease)
        return lease

    def renew(self, name: str, token: int, ttl: float) -> float:
        """Extends the lease ``(name, token)`` to ``ttl`` seconds from now; returns seconds left.

        Raises:
            Stale: the token is not a live lease of the lock.
            Expired: the lease already lapsed (it stays lapsed).
        """
        ttl_ms = cmd.to_ms(ttl, "ttl")
        token = cmd.check_token(token)
        ms_left: int = self._call(lambda native, now: native.renew(now, cmd.check_name(name), token, ttl_ms))
        return ms_left / 1000.0

    def release(self, name: str, token: int) -> None:
        """Releases the lease ``(name, token)``.

        Raises:
            Stale: the token is not a live lease of the lock.
            Expired: the lease already lapsed.
        """
        token = cmd.check_token(token)
        self._call(lambda native, now: native.release(now, cmd.check_name(name), token))

    def verify(self, name: str, token: int) -> float:
        """Returns the seconds left on the lease ``(name, token)``, or raises Stale/Expired.

        Verifying is an optimisation: only the resource, comparing tokens when it writes, is safe.
        """
        token = cmd.check_token(token)
        ms_left: int = self._call(lambda native, now: native.verify(now, cmd.check_name(name), token))
        return ms_left / 1000.0

    def query(self, prefix: str = "") -> List[LockInfo]:
        """Lists locks whose name starts with ``prefix``, with holders and waiters."""
        return cmd.lock_infos(self._call(lambda native, now: native.query(now, prefix)))

    def iter_locks(self, prefix: str = "", *, page_size: int = cmd.PAGE_SIZE) -> Iterator[LockInfo]:
        """Yields every lock whose name starts with ``prefix``, in name order, a page
        (``QUERY prefix COUNT n CURSOR c``) at a time; locks changed between pages show as
        they are when their page is read."""
        cursor = ""
        while True:
            def submit(native: NativeClient, now: int, after: str = cursor) -> int:
                return native.query_page(now, prefix, page_size, after)

            next_cursor, page = self._call(submit)
            yield from cmd.lock_infos(page)
            if not next_cursor:
                return
            cursor = next_cursor

    def info(self) -> Dict[str, Union[str, int, float]]:
        """Returns the server's INFO facts and counters as a flat dict."""
        return cmd.info_dict(self._call(lambda native, now: native.info(now)))

    def ping(self) -> None:
        """Round-trips a PING; raises ConnectionLost if the server is unreachable."""
        self._call(lambda native, now: native.ping(now))

    def execute(self, *args: Union[str, bytes, int]) -> Any:
        """Sends any command and returns its raw reply (errors raised as exceptions)."""
        argv = cmd.argv_bytes(args)
        return self._call(lambda native, now: native.command(now, argv))

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
    ) -> "LockContext":
        """Returns a context manager that holds a lease for the ``with`` block.

        With ``auto_renew`` the client renews the lease every ``ttl/3`` seconds; if a renewal
        fails the lease is marked lost (``lease.lost``, ``lease.lost_reason``) and leaving the
        block raises :class:`LeaseLost`.
        """
        request = cmd.AcquireRequest(name, ttl, wait, shared, steal, owner, ephemeral, lock_delay)
        return LockContext(self, cmd.LockRequest(request, auto_renew))

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Closes every connection (EPHEMERAL leases held through them are dropped)."""
        with self._io_lock:
            self._closed = True
            io, self._io = self._io, None
        if io is not None:
            io.stop()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(host={self.host!r}, port={self.port})"

    # -- plumbing --------------------------------------------------------------------------

    def _call(self, submit: Callable[[NativeClient, int], int]) -> Any:
        """Queues one request through ``submit`` and blocks until the core client answers it
        (it always does: every request has a deadline)."""
        return cmd.result(self._thread().request(submit))

    def _thread(self) -> "_IoThread":
        with self._io_lock:
            if self._closed:
                raise ConnectionLost("client is closed")
            if self._io is None:
                self._io = _IoThread(self._native, self.endpoints, self.leases, self.tls_context)
            return self._io

    def _deadline(self, lease: Lease) -> Optional[float]:
        status = self._native.lease(cmd.now_ms(), lease.name, lease.token)
        return None if status is None else status[0] / 1000.0

    def _keep_alive(self, lease: Lease) -> None:
        if not self._native.keep_alive(lease.name, lease.token):
            lease.mark_lost("its lease time ran out before a renewal was confirmed")
        io = self._io
        if io is not None:
            io.wake()

    def _forget(self, lease: Lease) -> None:
        self._native.forget(lease.name, lease.token)
        self.leases.discard(lease)


class _Waiter:
    """A caller's slot for its reply. The event is made only when the caller must block:
    most callers read their reply themselves and never need one."""

    __slots__ = ("done", "payload", "event")

    def __init__(self) -> None:
        self.done = False
        self.payload: Any = None
        self.event: Optional[threading.Event] = None

    def finish(self, payload: Any) -> None:
        """Stores the reply; called with the client's lock held."""
        self.payload = payload
        self.done = True
        if self.event is not None:
            self.event.set()


class _IoThread:
    """Owns the sockets: connects, writes, reads and keeps the core client's time."""

    def __init__(
        self, native: NativeClient, endpoints: List[Endpoint], leases: LeaseRegistry,
        tls_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        self.native = native
        self.tls_context = tls_context
        #: TLS sessions by connection, and those still in their handshake (not yet connected
        #: as far as the core knows).
        self.tls: Dict[int, TlsSession] = {}
        self.handshaking: Set[int] = set()
        self.endpoints = endpoints
        self.leases = leases
        self.selector = selectors.DefaultSelector()
        self.socks: Dict[int, socket.socket] = {}
        self.connecting: Dict[int, Endpoint] = {}
        self.unsent: Dict[int, bytearray] = {}
        self.waiters: Dict[int, _Waiter] = {}
        #: Connections a waiting caller reads itself, out of the selector meanwhile.
        self.claimed: Set[int] = set()
        #: Claimed connections the core closed, closed once their caller lets go.
        self.doomed: Dict[int, socket.socket] = {}
        self.lock = threading.Lock()
        self.stopping = False
        #: Set when performing an output may have given the core more to say.
        self.changed = False
        #: When the I/O thread's current sleep ends (ms on the core's clock).
        self.sleep_until = 0
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)
        self.thread = threading.Thread(target=self._run, name="fencelock-client-io", daemon=True)
        self.thread.start()

    def request(self, submit: Callable[[NativeClient, int], int]) -> Any:
        waiter = _Waiter()
        with self.lock:
            if self.stopping:
                raise ConnectionLost("client is closed")
            request_id = submit(self.native, cmd.now_ms())
            self.waiters[request_id] = waiter
            # The caller writes its own request: no hand-off to the I/O thread on the way out.
            timeout_ms = self._pump()
            conn = self.native.request_conn(request_id)
            sock = None if conn is None or waiter.done else self._claim(conn)
            # The I/O thread must wake only if it sleeps past the core's new deadline.
            wake = timeout_ms is not None and timeout_ms < self.sleep_until
        if wake:
            self.wake()
        if sock is not None and conn is not None:
            # The caller reads its own reply (and whatever else shares the connection), so a
            # round trip costs no thread switch; the I/O thread keeps the other connections.
            try:
                self._read_until(waiter, conn, sock)
            finally:
                with self.lock:
                    self._unclaim(conn)
        with self.lock:
            if not waiter.done:
                waiter.event = threading.Event()
        if waiter.event is not None:
            waiter.event.wait()
        return waiter.payload

    def _claim(self, conn: int) -> Optional[socket.socket]:
        """Takes a connection away from the I/O thread's selector, or returns None if it is
        not open yet or another caller reads it."""
        sock = self.socks.get(conn)
        if sock is None or conn in self.connecting or conn in self.handshaking or conn in self.claimed:
            return None
        self.selector.unregister(sock)
        self.claimed.add(conn)
        return sock

    def _unclaim(self, conn: int) -> None:
        self.claimed.discard(conn)
        closed = self.doomed.pop(conn, None)
        if closed is not None:
            closed.close()
        sock = self.socks.get(conn)
        if sock is not None:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.unsent.get(conn) else 0)
            self.selector.register(sock, events, conn)

    def _read_until(self, waiter: _Waiter, conn: int, sock: socket.socket) -> None:
        while not waiter.done:
            with self.lock:
                if self.socks.get(conn) is not sock:
                    return  # the core closed it; the reply comes through the I/O thread
                writing = [sock] if self.unsent.get(conn) else []
            try:
                # A short cap: a close decided elsewhere (a timeout) is noticed soon.
                readable, writable, _ = select.select([sock], writing, [], 0.05)
            except (OSError, ValueError):
                return
            if not (readable or writable):
                continue
            with self.lock:
                if self.socks.get(conn) is not sock:
                    return
                if writable:
                    self._flush(conn, sock)
                if readable:
                    self._read(conn, sock)
                timeout_ms = self._pump()
                wake = timeout_ms is not None and timeout_ms < self.sleep_until
            if wake:
                self.wake()

    def wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # a wake-up is already pending, or the thread is gone

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            self.native.close(cmd.now_ms())
        self.wake()
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout=10)

    def _run(self) -> None:
        try:
            while True:
                with self.lock:
                    timeout_ms = self._pump()
                    if self.stopping and not self.socks:
                        break
                    now = cmd.now_ms()
                    # Sleep at most a second: callers that add a later deadline need not wake us.
                    self.sleep_until = min(timeout_ms, now + 1000) if timeout_ms is not None else now + 1000
                ready = self.selector.select(max(0.0, (self.sleep_until - now) / 1000.0))
                with self.lock:
                    for key, mask in ready:
                        if key.data is None:
                            self._drain_wake()
                        else:
                            self._ready(key.data, mask)
                    now = cmd.now_ms()
                    if timeout_ms is not None and now >= timeout_ms:
                        self.native.handle_timeout(now)
        except Exception:  # pragma: no cover - a bug here must not hang callers silently
            log.exception("fencelock client I/O thread failed")
        finally:
            self._shutdown()

    def _pump(self) -> Optional[int]:
        """Performs the core client's outputs and hands out replies and events, again while
        doing them (a connect, a close, a failed write) may have produced more."""
        while True:
            self.changed = False
            outputs, replies, events, timeout_ms = self.native.drain()
            for output in outputs:
                if output[0] == "transmit":
                    self._send(output[1], output[2])
                elif output[0] == "connect":
                    self._connect(output[1], output[2])
                else:
                    self._close(output[1])
            # Events first: a caller woken by a reply must already see its lease marked lost.
            if events:
                cmd.route_events(events, self.leases)
            for request_id, payload in replies:
                waiter = self.waiters.pop(request_id, None)
                if waiter is not None:
                    waiter.finish(payload)
            if not self.changed:
                return timeout_ms

    def _connect(self, conn: int, endpoint: int) -> None:
        self.changed = True
        host, port = self.endpoints[endpoint]
        try:
            family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = sock.connect_ex(address)
        except OSError as error:
            self.native.handle_disconnect(cmd.now_ms(), conn, f"cannot connect to {host}:{port}: {error}")
            return
        self.socks[conn] = sock
        self.unsent[conn] = bytearray()
        if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            sock.close()
            del self.socks[conn], self.unsent[conn]
            self.native.handle_disconnect(cmd.now_ms(), conn, f"cannot connect to {host}:{port}: {os.strerror(err)}")
            return
        if err == 0:
            self.selector.register(sock, selectors.EVENT_READ, conn)
            self._established(conn, sock, host)
        else:
            self.connecting[conn] = (host, port)
            self.selector.register(sock, selectors.EVENT_WRITE, conn)

    def _established(self, conn: int, sock: socket.socket, host: str) -> None:
        """The TCP connect succeeded: the core hears of it now, or after the TLS handshake."""
        if self.tls_context is None:
            self.native.handle_connected(cmd.now_ms(), conn)
            return
        self.tls[conn] = TlsSession(self.tls_context, host)
        self.handshaking.add(conn)
        self._handshake(conn, sock)

    def _handshake(self, conn: int, sock: socket.socket) -> None:
        session = self.tls[conn]
        try:
            done = session.handshake()
        except OSError as error:  # ssl.SSLError: a refused certificate, a peer that is not TLS
            self._fail(conn, f"TLS handshake failed: {error}")
            return
        self._send_raw(conn, sock, session.outgoing())
        if done and conn in self.socks:
            self.handshaking.discard(conn)
            self.changed = True
            self.native.handle_connected(cmd.now_ms(), conn)

    def _send(self, conn: int, data: bytes) -> None:
        sock = self.socks.get(conn)
        if sock is None:
            return
        session = self.tls.get(conn)
        if session is not None:
            session.send(data)
            data = session.outgoing()
        self._send_raw(conn, sock, data)

    def _send_raw(self, conn: int, sock: socket.socket, data: bytes) -> None:
        if not data:
            return
        buffer = self.unsent[conn]
        buffer += data
        self._flush(conn, sock)

    def _flush(self, conn: int, sock: socket.socket) -> None:
        buffer = self.unsent[conn]
        try:
            while buffer:
                sent = sock.send(buffer)
                del buffer[:sent]
        except BlockingIOError:
            pass
        except OSError as error:
            self._fail(conn, f"write failed: {error}")
            return
        if conn not in self.claimed:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if buffer else 0)
            self.selector.modify(sock, events, conn)

    def _ready(self, conn: int, mask: int) -> None:
        sock = self.socks.get(conn)
        if sock is None or conn in self.claimed:
            # A readiness reported just before a caller claimed the connection: it is the
            # caller's to read now.
            return
        address = self.connecting.pop(conn, None)
        if address is not None:
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                self._fail(conn, f"cannot connect to {address[0]}:{address[1]}: {os.strerror(error)}")
                return
            self.selector.modify(sock, selectors.EVENT_READ, conn)
            self._established(conn, sock, address[0])
            return
        if mask & selectors.EVENT_WRITE:
            self._flush(conn, sock)
        if mask & selectors.EVENT_READ and conn in self.socks:
            self._read(conn, sock)

    def _read(self, conn: int, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as error:
            self._fail(conn, f"read failed: {error}")
            return
        if not data:
            self._fail(conn, "server closed the connection")
            return
        session = self.tls.get(conn)
        if session is not None:
            try:
                data = session.receive(data)
                if conn in self.handshaking:
                    self._handshake(conn, sock)
                    if conn in self.handshaking or conn not in self.socks:
                        return
                    data = session.receive(b"")
            except OSError as error:  # ssl.SSLError: a corrupt or forged record
                self._fail(conn, f"TLS failed: {error}")
                return
            if not data:
                return
        self.native.receive(cmd.now_ms(), conn, data)

    def _fail(self, conn: int, reason: str) -> None:
        self.changed = True
        self._close(conn)
        self.native.handle_disconnect(cmd.now_ms(), conn, reason)

    def _close(self, conn: int) -> None:
        sock = self.socks.pop(conn, None)
        self.unsent.pop(conn, None)
        self.connecting.pop(conn, None)
        self.tls.pop(conn, None)
        self.handshaking.discard(conn)
        if sock is None:
            return
        if conn in self.claimed:
            # Its caller may be in select() on it: closing now could hand the descriptor to
            # a new socket under its feet. It closes when the caller lets go.
            self.doomed[conn] = sock
            return
        try:
            self.selector.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _shutdown(self) -> None:
        with self.lock:
            self.stopping = True
            for conn in list(self.socks):
                self._close(conn)
            failure = ConnectionLost("client is closed")
            for waiter in self.waiters.values():
                waiter.finish(failure)
            self.waiters.clear()
        self.selector.close()
        self._wake_r.close()
        self._wake_w.close()


class LockContext:
    """``with client.lock(...) as lease``: acquire, keep alive, release, and report loss."""

    def __init__(self, client: Client, request: cmd.LockRequest) -> None:
        self.client = client
        self.request = request
        self.lease: Optional[Lease] = None

    def __enter__(self) -> Lease:
        acquire = self.request.acquire
        lease = self.client.acquire(
            acquire.name, acquire.ttl, acquire.wait, acquire.shared, acquire.steal,
            acquire.owner, acquire.ephemeral, acquire.lock_delay,
        )
        self.lease = lease
        if self.request.auto_renew:
            self.client._keep_alive(lease)
        return lease

    def __exit__(
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
                self.client.release(lease.name, lease.token)
            except FencelockError as error:
                # STALE/EXPIRED: the core client marked it lost. Anything else leaves it held
                # until its TTL, which delays others but harms nothing.
                if not lease.lost:
                    log.warning("could not release %r token %d: %s", lease.name, lease.token, error)
        self.client._forget(lease)
        if lease.lost and exc_type is None:
            lease.raise_if_lost()
