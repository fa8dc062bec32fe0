"""The blocking client: a small pool of sockets speaking RESP to a fencelock server.

Every request takes a connection from the pool for its round trip, so a blocking
``ACQUIRE ... WAIT`` on one thread never delays the auto-renewal of another lease.
Connections stay open while idle because an EPHEMERAL lease lives as long as the
connection that acquired it.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from types import TracebackType
from typing import Any, Callable, Dict, List, Optional, Sequence, Type, Union

from . import _commands as cmd
from .errors import ConnectionLost, FencelockError
from .lease import Lease, LeaseEvent, LeaseRegistry
from .resp import NEED_MORE, ErrorReply, Parser, ProtocolError, Push, encode_command
from .types import LockInfo

__all__ = ["Client", "LockContext", "DEFAULT_HOST", "DEFAULT_PORT"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7380

log = logging.getLogger("fencelock.client")


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
    ) -> None:
        """Creates a client; no connection is made until the first request.

        ``timeout`` bounds each round trip (a waiting acquire gets its wait on top), and
        ``protocol=3`` asks for RESP3 so the server can push lost-lease notices.
        """
        self.host = host
        self.port = port
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.protocol = protocol
        self.leases = LeaseRegistry(on_event)
        self._idle: List[_Connection] = []
        self._pool_lock = threading.Lock()
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
    ) -> Lease:
        """Takes a lease on ``name`` for ``ttl`` seconds and returns it with its fencing token.

        Raises:
            Locked: the lock is held and ``wait`` was not given.
            LockTimeout: the lock was not granted within ``wait`` seconds.
            NotReady: the server is in its restart grace after a crash.
            ConnectionLost: the server could not be reached (the lease, if granted, will lapse).
        """
        args = cmd.acquire_args(name, ttl, wait, shared, steal, owner, ephemeral)
        sent = time.monotonic()
        reply, _ = self._call(args, extra_time=wait or 0.0)
        token = cmd.read_int(reply, "ACQUIRE")
        lease = Lease(
            name=name, token=token, ttl=float(ttl), shared=shared, owner=owner,
            ephemeral=ephemeral, expires_at=sent + ttl,
        )
        self.leases.add(lease)
        return lease

    def renew(self, name: str, token: int, ttl: float) -> float:
        """Extends the lease ``(name, token)`` to ``ttl`` seconds from now; returns seconds left.

        Raises:
            Stale: the token is not a live lease of the lock.
            Expired: the lease already lapsed (it stays lapsed).
        """
        reply, _ = self._call(["RENEW", name, cmd.check_token(token), cmd.to_ms(ttl, "ttl")])
        return cmd.read_int(reply, "RENEW") / 1000.0

    def release(self, name: str, token: int) -> None:
        """Releases the lease ``(name, token)``.

        Raises:
            Stale: the token is not a live lease of the lock.
            Expired: the lease already lapsed.
        """
        reply, retried = self._call(["RELEASE", name, cmd.check_token(token)])
        try:
            cmd.read_ok(reply, "RELEASE")
        except FencelockError as error:
            # The first attempt may have released it before the connection broke.
            if not (retried and cmd.is_gone(error)):
                raise

    def verify(self, name: str, token: int) -> float:
        """Returns the seconds left on the lease ``(name, token)``, or raises Stale/Expired.

        Verifying is an optimisation: only the resource, comparing tokens when it writes, is safe.
        """
        reply, _ = self._call(["VERIFY", name, cmd.check_token(token)])
        return cmd.read_int(reply, "VERIFY") / 1000.0

    def query(self, prefix: str = "") -> List[LockInfo]:
        """Lists locks whose name starts with ``prefix``, with holders and waiters."""
        reply, _ = self._call(["QUERY", prefix] if prefix else ["QUERY"])
        return cmd.read_query(reply)

    def info(self) -> Dict[str, Union[str, int, float]]:
        """Returns the server's INFO facts and counters as a flat dict."""
        reply, _ = self._call(["INFO"])
        return cmd.read_info(reply)

    def ping(self) -> None:
        """Round-trips a PING; raises ConnectionLost if the server is unreachable."""
        reply, _ = self._call(["PING"])
        cmd.raise_for_error(reply)

    def execute(self, *args: Union[str, bytes, int]) -> Any:
        """Sends any command and returns its raw reply (errors raised as exceptions)."""
        reply, _ = self._call(list(args))
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
    ) -> "LockContext":
        """Returns a context manager that holds a lease for the ``with`` block.

        With ``auto_renew`` a background thread renews the lease every ``ttl/3`` seconds; if a
        renewal fails the lease is marked lost (``lease.lost``, ``lease.lost_reason``) and
        leaving the block raises :class:`LeaseLost`.
        """
        return LockContext(self, cmd.LockRequest(name, ttl, wait, shared, steal, owner, ephemeral, auto_renew))

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Closes every pooled connection (EPHEMERAL leases held through them are dropped)."""
        with self._pool_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(host={self.host!r}, port={self.port})"

    # -- plumbing --------------------------------------------------------------------------

    def _call(self, args: Sequence[Union[str, bytes, int]], extra_time: float = 0.0) -> "tuple[Any, bool]":
        """Runs one round trip; returns the reply and whether it came from a retry."""
        command = str(args[0]).upper()
        attempts = 2 if command in cmd.RETRYABLE else 1
        payload = encode_command(*args)
        for attempt in range(attempts):
            conn = self._checkout()
            try:
                reply = conn.request(payload, self.timeout + extra_time)
            except (OSError, ProtocolError) as error:
                conn.close()
                if attempt + 1 < attempts:
                    log.debug("%s failed (%s); retrying on a new connection", command, error)
                    continue
                raise ConnectionLost(
                    f"{command} to {self.host}:{self.port} failed: {error or type(error).__name__}"
                ) from error
            self._checkin(conn)
            return reply, attempt > 0
        raise AssertionError("unreachable: the loop returns or raises")

    def _checkout(self) -> "_Connection":
        while True:
            with self._pool_lock:
                if self._closed:
                    raise ConnectionLost("client is closed")
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._connect()
            if conn.usable():
                return conn
            conn.close()

    def _checkin(self, conn: "_Connection") -> None:
        with self._pool_lock:
            if not self._closed:
                self._idle.append(conn)
                return
        conn.close()

    def _connect(self) -> "_Connection":
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as error:
            raise ConnectionLost(f"cannot connect to {self.host}:{self.port}: {error}") from error
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Connection(sock, self.leases)
        if self.protocol == 3:
            try:
                reply = conn.request(encode_command("HELLO", "3"), self.timeout)
            except (OSError, ProtocolError) as error:
                conn.close()
                raise ConnectionLost(f"HELLO to {self.host}:{self.port} failed: {error}") from error
            # A server without RESP3 answers an error; the connection stays usable on RESP2.
            conn.resp3 = not isinstance(reply, ErrorReply)
        return conn


class _Connection:
    """One socket with its reply parser; pushes are routed to the lease registry."""

    def __init__(self, sock: socket.socket, leases: LeaseRegistry) -> None:
        self.sock = sock
        self.parser = Parser()
        self.leases = leases
        self.resp3 = False
        self.closed = False

    def request(self, payload: bytes, timeout: float) -> Any:
        self.sock.settimeout(timeout)
        self.sock.sendall(payload)
        deadline = time.monotonic() + timeout
        while True:
            reply = self.parser.get()
            if reply is NEED_MORE:
                self._read(deadline)
                continue
            if isinstance(reply, Push):
                self.leases.handle_push(reply)
                continue
            return reply

    def usable(self) -> bool:
        """Reads whatever arrived while idle (pushes); False if the peer closed."""
        if self.closed:
            return False
        try:
            while select.select([self.sock], [], [], 0)[0]:
                data = self.sock.recv(65536)
                if not data:
                    return False
                self.parser.feed(data)
                while True:
                    reply = self.parser.get()
                    if reply is NEED_MORE:
                        break
                    if isinstance(reply, Push):
                        self.leases.handle_push(reply)
                    else:
                        return False  # a reply nobody asked for: the stream is out of step
        except (OSError, ProtocolError, ValueError):
            return False
        return True

    def _read(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out waiting for the reply")
        self.sock.settimeout(left)
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionResetError("server closed the connection")
        self.parser.feed(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass


class LockContext:
    """``with client.lock(...) as lease``: acquire, keep alive, release, and report loss."""

    def __init__(self, client: Client, request: cmd.LockRequest) -> None:
        self.client = client
        self.request = request
        self.lease: Optional[Lease] = None
        self._stop = threading.Event()
        self._renewer: Optional[threading.Thread] = None

    def __enter__(self) -> Lease:
        request = self.request
        lease = self.client.acquire(request.name, request.ttl, **request.acquire_options())
        self.lease = lease
        if request.auto_renew:
            self._renewer = threading.Thread(
                target=self._renew_loop, args=(lease,), name=f"fencelock-renew-{request.name}", daemon=True
            )
            self._renewer.start()
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
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        if not lease.lost:
            try:
                self.client.release(lease.name, lease.token)
            except FencelockError as error:
                cmd.release_failed(lease, error)
        self.client.leases.discard(lease)
        if lease.lost and exc_type is None:
            lease.raise_if_lost()

    def _renew_loop(self, lease: Lease) -> None:
        schedule = cmd.RenewSchedule(lease)
        while not lease.lost:
            if self._stop.wait(schedule.delay()) or lease.lost:
                return
            sent = time.monotonic()
            try:
                left = self.client.renew(lease.name, lease.token, lease.ttl)
            except ConnectionLost as error:
                if not schedule.connection_lost(error):
                    return
                continue
            except FencelockError as error:
                schedule.refused(error)
                return
            schedule.renewed(sent, left)
