"""``fencelock serve``: an asyncio I/O loop around the core's sans-IO protocol server.

This file moves bytes, time and durable writes; the Rust ``Server`` parses, runs and encodes
every request, so this host answers byte for byte like every other host. Order matters: each
output is handled in the order polled, and a file write is made durable (fsync) before any
later output is handled, since later bytes may carry tokens up to the ceiling it wrote.

The data directory's rules (file names, formats, which start to take, what to remove before
serving, what to write at shutdown) are the core's: this host reads the files the core names
(``DATA_FILES``) and performs the writes and removals it is given, atomically and durably.
"""

from __future__ import annotations

import asyncio
import importlib
import ipaddress
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, cast

from . import __version__
from ._durable import DurabilityError, remove_durable, write_atomic
from ._tls import server_context
from ._native import DATA_FILES, Close, FencelockError, NativeServer, RemoveFile, Transmit, WriteFile, hash_password

__all__ = ["ServerOptions", "FencelockServer", "run_server", "serve", "is_loopback"]

log = logging.getLogger("fencelock.server")
#: Audit events (failed authentications, steals): one record each, with the core's JSON in
#: the record's ``audit`` attribute for ``--log-format json``.
audit_log = logging.getLogger("fencelock.audit")

EXIT_DURABILITY = 3

#: Where Linux names the current boot; ``FENCELOCK_BOOT_ID_PATH`` overrides it (tests forge
#: another boot with it).
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


@dataclass
class ServerOptions:
    """What ``fencelock serve`` was asked for; ``None`` keeps the core default."""

    host: str = "127.0.0.1"
    port: int = 7380
    data_dir: Optional[str] = ".fencelock"
    max_ttl_ms: Optional[int] = None
    lock_delay_ms: Optional[int] = None
    max_connections: int = 10_000
    test_clock: bool = False
    ready_file: Optional[str] = None
    loop: str = "auto"
    engine_settings: Dict[str, int] = field(default_factory=dict)
    #: TLS: the server's certificate chain and key (PEM); with ``tls_ca``, clients must
    #: present a certificate that CA signed.
    tls_cert: Optional[str] = None
    tls_key: Optional[str] = None
    tls_ca: Optional[str] = None
    #: A TLS handshake not finished by then is closed; it never reaches the core.
    tls_handshake_timeout_ms: int = 10_000
    #: ``HOST:PORT`` to serve Prometheus metrics on (``GET /metrics``), or None.
    metrics: Optional[str] = None
    #: A users file (JSON, see docs/PROTOCOL.md); reloaded on SIGHUP.
    users_file: Optional[str] = None
    #: One password for a single ``default`` user with every right.
    requirepass: Optional[str] = field(default=None, repr=False)
    #: Serve without authentication on a non-loopback address anyway.
    no_auth: bool = False
    server_settings: Dict[str, int] = field(default_factory=dict)


class _IoLoop:
    """The I/O loop both servers share around their native core (docs/HOSTS.md): the clock, one
    timer re-armed from ``poll_timeout()``, and the connection callbacks of ``_Connection``.
    Subclasses set the attributes below and define ``flush`` (perform every pending output)."""

    native: Any
    options: Any
    tls_context: Any
    metrics_address: Optional[Tuple[str, int]]
    _listener: Optional[asyncio.AbstractServer]
    _metrics_listener: Optional[asyncio.AbstractServer]
    _origin_ns: int
    _transports: Dict[int, asyncio.Transport]
    _timer: Optional[asyncio.TimerHandle]
    _timer_at: Optional[int]

    def flush(self) -> None:
        raise NotImplementedError

    # -- what a single server and a cluster node share: users, TLS, audit ---------------------

    def _tls_context(self) -> Any:
        """The TLS context ``options`` ask for (``tls_cert``, ``tls_key``, ``tls_ca``), or None."""
        options = self.options
        if not (options.tls_cert or options.tls_key or options.tls_ca):
            return None
        if not (options.tls_cert and options.tls_key):
            raise SystemExit("fencelock: --tls-cert and --tls-key go together (--tls-ca needs both)")
        try:
            return server_context(options.tls_cert, options.tls_key, options.tls_ca)
        except (OSError, ValueError) as error:
            raise SystemExit(f"fencelock: cannot load the TLS certificate or key: {error}") from None

    def _listen_tls(self) -> Dict[str, Any]:
        """``create_server`` arguments for TLS: with it, connection_made comes only after the
        handshake, so a client that never finishes one is closed at the timeout and never
        takes a core connection."""
        if self.tls_context is None:
            return {}
        return {"ssl": self.tls_context, "ssl_handshake_timeout": self.options.tls_handshake_timeout_ms / 1000}

    def _tls_note(self) -> str:
        """What the start line says of TLS."""
        if self.tls_context is None:
            return ""
        return " (TLS, client certificates required)" if self.options.tls_ca else " (TLS)"

    def _write_ready(self, host: str, port: int) -> None:
        """Writes ``--ready-file``: host and port, and with --metrics a third field saying where
        they are served (for --metrics HOST:0)."""
        if not self.options.ready_file:
            return
        address = self.metrics_address
        metrics = f" {address[0]}:{address[1]}" if address else ""
        write_atomic(self.options.ready_file, f"{host} {port}{metrics}\n".encode())

    def _stop_listening(self) -> None:
        """Closes the listening sockets (connections stay) and the timer."""
        if self._listener is not None:
            self._listener.close()
        if self._metrics_listener is not None:
            self._metrics_listener.close()
        if self._timer is not None:
            self._timer.cancel()

    def _log_audit(self) -> None:
        while (event := self.native.poll_audit()) is not None:
            kind, text, as_json = event
            audit_log.warning("%s", text, extra={"audit": as_json, "audit_kind": kind})

    def _load_auth(self) -> None:
        """Gives the core its users: the users file, or one user for ``requirepass``."""
        if self.options.users_file and self.options.requirepass:
            raise SystemExit("fencelock: give --users or --requirepass, not both")
        if self.options.users_file:
            try:
                self.native.set_users(Path(self.options.users_file).read_bytes())
            except (OSError, FencelockError) as error:
                raise SystemExit(f"fencelock: users file {self.options.users_file}: {_reason(error)}; refusing to start") from None
            log.info("authentication on: users from %s", self.options.users_file)
        elif self.options.requirepass:
            # Hashed at once with a fresh salt: the plain password is not kept by the core.
            self.native.set_password_hash(hash_password(self.options.requirepass.encode(), os.urandom(16)))
            log.info("authentication on: one user 'default' (--requirepass)")
        else:
            log.info("authentication off: every client may take, steal and release every lock")

    def reload_users(self) -> bool:
        """Reads the users file again (SIGHUP); on any error the users in force stay."""
        if not self.options.users_file:
            log.info("SIGHUP: no users file to reload")
            return False
        try:
            self.native.set_users(Path(self.options.users_file).read_bytes())
        except (OSError, FencelockError) as error:
            log.error("SIGHUP: users file %s not reloaded, the users in force stay: %s",
                      self.options.users_file, _reason(error))
            return False
        log.info("SIGHUP: users reloaded from %s", self.options.users_file)
        return True

    def now_ms(self) -> int:
        """Returns the server's clock in whole ms, truncated (the core's timer rule)."""
        return (time.monotonic_ns() - self._origin_ns) // 1_000_000

    def _schedule(self) -> None:
        deadline = self.native.poll_timeout()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            # Armed for exactly the deadline: a call at or after it always makes progress.
            # A timer that fires early (ms-granular loops) finds the deadline unchanged in
            # _on_timer and is re-armed for it, never for a guessed margin.
            delay_ns = deadline * 1_000_000 - (time.monotonic_ns() - self._origin_ns)
            self._timer = asyncio.get_running_loop().call_later(max(0, delay_ns) / 1e9, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.native.handle_timeout(self.now_ms())
        self.flush()

    # -- connection callbacks ---------------------------------------------------------------

    def connected(self, transport: asyncio.Transport) -> int:
        conn: int = self.native.connect(self.now_ms())
        self._transports[conn] = transport
        self.flush()
        return conn

    def received(self, conn: int, data: bytes) -> None:
        self.native.receive(conn, data, self.now_ms())
        self.flush()

    def lost(self, conn: int) -> None:
        if self._transports.pop(conn, None) is not None:
            self.native.disconnect(conn, self.now_ms())
            self.flush()

    def backlog(self, conn: int, unsent: int) -> None:
        self.native.handle_unsent(conn, unsent, self.now_ms())
        self.flush()


class FencelockServer(_IoLoop):
    """One listening socket, its connections, and the native server they share."""

    native: NativeServer

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.data_dir = Path(options.data_dir) if options.data_dir else None
        # A whole millisecond, so that the engine's instants plus the origin's ms are exactly
        # the system monotonic clock's ms (the lease horizon is stored on that clock).
        self._origin_ns = time.monotonic_ns() // 1_000_000 * 1_000_000
        self._transports: Dict[int, asyncio.Transport] = {}
        self._timer: Optional[asyncio.TimerHandle] = None
        self._timer_at: Optional[int] = None
        self._listener: Optional[asyncio.AbstractServer] = None
        self._metrics_listener: Optional[asyncio.AbstractServer] = None
        #: Where metrics are served, once listening.
        self.metrics_address: Optional[Tuple[str, int]] = None
        self._stopping = False
        check_exposure(options)
        self._native: Optional[NativeServer] = None
        self.start_kind, self.native = self._start_native()
        self._native = self.native
        self._load_auth()
        self.tls_context = self._tls_context()

    # -- start -----------------------------------------------------------------------------

    def _start_native(self) -> Tuple[str, NativeServer]:
        engine_config: Dict[str, int] = dict(self.options.engine_settings)
        if self.options.max_ttl_ms is not None:
            engine_config["max_ttl_ms"] = self.options.max_ttl_ms
        if self.options.lock_delay_ms is not None:
            engine_config["lock_delay_ms"] = self.options.lock_delay_ms
        server_config: Dict[str, Any] = {
            **self.options.server_settings,
            "max_connections": self.options.max_connections,
            "test_clock": self.options.test_clock,
        }
        now = self.now_ms()
        if self.data_dir is None:
            return "in-memory", NativeServer(engine_config, server_config, "fresh", 0, None, now)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        files: Dict[str, Optional[bytes]] = {}
        for name in DATA_FILES:
            try:
                files[name] = (self.data_dir / name).read_bytes()
            except FileNotFoundError:
                files[name] = None
        boot_id = None if self.options.test_clock else read_boot_id()
        try:
            native = NativeServer.recover(
                files, engine_config, server_config, now,
                boot_id=boot_id, monotonic_ms=self._origin_ns // 1_000_000 + now,
            )
        except ValueError as error:
            raise SystemExit(f"fencelock: {self.data_dir}: {error}; refusing to start") from None
        recovery = native.recovery()
        assert recovery is not None
        for action in recovery.actions:
            # Before serving anyone: e.g. a snapshot is valid for one start only.
            self._perform(action)
        if recovery.has_grace:
            log.warning("%s", recovery.summary)
        else:
            log.info("%s", recovery.summary)
        return recovery.kind, native

    # -- serving ---------------------------------------------------------------------------

    async def start(self) -> Tuple[str, int]:
        """Binds the socket; returns the bound (host, port)."""
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            lambda: _Connection(self), self.options.host, self.options.port, reuse_address=True, backlog=1024,
            **self._listen_tls(),
        )
        host, port = self._listener.sockets[0].getsockname()[:2]
        if self.options.metrics:
            self._metrics_listener, self.metrics_address = await start_metrics(self, self.options.metrics)
        where = f"data dir {self.data_dir}" if self.data_dir else "in memory (nothing on disk)"
        log.info(
            "fencelock %s serving on %s:%d%s, %s, start %s, %s loop%s%s", __version__, host, port,
            self._tls_note(),
            where, self.start_kind, _loop_name(), ", test clock" if self.options.test_clock else "",
            f", metrics on http://{self.metrics_address[0]}:{self.metrics_address[1]}/metrics" if self.metrics_address else "",
        )
        self._write_ready(host, port)
        self._schedule()
        return host, port

    async def stop(self) -> None:
        """Stops accepting, drops every connection, and writes the clean-shutdown snapshot."""
        if self._stopping:
            return
        self._stopping = True
        self._stop_listening()
        # The core closes every connection (EPHEMERAL leases end with them) and yields the
        # ceiling write, the last bytes and closes, then the snapshot write, in that order.
        self.native.shutdown(self.now_ms())
        leases = self.native.live_leases()
        self.flush()
        for transport in list(self._transports.values()):
            transport.close()
        self._transports.clear()
        log.info("stopped: %d live leases %s", leases,
                 "kept in the snapshot" if self.data_dir is not None else "dropped (in memory)")

    def flush(self) -> None:
        """Performs every pending output, in order, then re-arms the timer."""
        for output in self.native.drain():
            if isinstance(output, Transmit):
                transport = self._transports.get(output.conn)
                if transport is not None:
                    transport.write(output.data)
            elif isinstance(output, Close):
                # The bytes written before it are flushed by the transport first.
                transport = self._transports.pop(output.conn, None)
                if transport is not None:
                    transport.close()
            else:
                self._perform(output)
        self._log_audit()
        if not self._stopping:
            self._schedule()

    def _perform(self, action: "WriteFile | RemoveFile") -> None:
        """Makes a data-directory change durable, or exits: after a failed fsync nothing on
        disk can be trusted, and going on could reissue tokens."""
        if self.data_dir is None:
            return
        try:
            started = time.perf_counter_ns()
            if isinstance(action, WriteFile):
                write_atomic(self.data_dir / action.file, action.data)
            else:
                remove_durable(self.data_dir / action.file)
            if self._native is not None:
                self._native.record_persist((time.perf_counter_ns() - started) // 1000)
        except DurabilityError as error:
            log.critical("cannot %s %s durably: %s; exiting", action.kind, action.file, error)
            os._exit(EXIT_DURABILITY)


class _Connection(asyncio.Protocol):
    """Feeds one socket's bytes to the native server; all decisions are the server's."""

    def __init__(self, server: _IoLoop) -> None:
        self.server = server
        self.conn = 0
        self.transport: Optional[asyncio.Transport] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the Transport API without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self.conn = self.server.connected(self.transport)

    def data_received(self, data: bytes) -> None:
        self.server.received(self.conn, data)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.server.lost(self.conn)

    def pause_writing(self) -> None:
        # The client is not reading its replies: stop reading its requests (so the replies we
        # hold stay bounded) and tell the core how much waits, so it can cut the connection.
        if self.transport is not None:
            self.transport.pause_reading()
            self.server.backlog(self.conn, self.transport.get_write_buffer_size())

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
        self.server.backlog(self.conn, 0)


def _metrics_bytes(server: _IoLoop) -> bytes:
    """Returns the Prometheus exposition, rendered by the core."""
    body: bytes = server.native.metrics(server.now_ms())
    return body


METRICS_REQUEST_LIMIT = 8192
METRICS_READ_TIMEOUT_S = 10.0


async def start_metrics(server: _IoLoop, address: str) -> Tuple[asyncio.AbstractServer, Tuple[str, int]]:
    """Serves ``GET /metrics`` (HTTP/1.1, one request per connection) on ``HOST:PORT``."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), METRICS_READ_TIMEOUT_S)
            method, target, _ = (head.split(b"\r\n", 1)[0].decode("latin-1") + "  ").split(" ", 2)
            path = target.split("?", 1)[0]
            if method not in ("GET", "HEAD"):
                status, body, kind = "405 Method Not Allowed", b"only GET\n", "text/plain; charset=utf-8"
            elif path != "/metrics":
                status, body, kind = "404 Not Found", b"metrics are at /metrics\n", "text/plain; charset=utf-8"
            else:
                status, body, kind = "200 OK", _metrics_bytes(server), "text/plain; version=0.0.4; charset=utf-8"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode() + (body if method != "HEAD" else b"")
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    listener = await asyncio.start_server(handle, host, int(port), limit=METRICS_REQUEST_LIMIT, reuse_address=True)
    bound = listener.sockets[0].getsockname()[:2]
    return listener, (str(bound[0]), int(bound[1]))


def read_boot_id() -> Optional[str]:
    """Returns this boot's identity, or None where it cannot be trusted to name the clock.

    The lease horizon is stored on ``time.monotonic()``'s clock, which must then run across
    process restarts: on Linux it is ``CLOCK_MONOTONIC``, system-wide since boot. Elsewhere, or
    without a boot identity, the server keeps no horizon and a crash restart waits the full grace.
    """
    if time.get_clock_info("monotonic").implementation != "clock_gettime(CLOCK_MONOTONIC)":
        return None
    try:
        text = Path(os.environ.get("FENCELOCK_BOOT_ID_PATH") or BOOT_ID_PATH).read_text("ascii").strip()
    except (OSError, UnicodeDecodeError) as error:
        log.debug("no boot id (%s): a crash restart waits the full grace", error)
        return None
    if not text or len(text) > 128 or not all(33 <= ord(char) <= 126 for char in text):
        log.warning("boot id %r is not printable ASCII: a crash restart waits the full grace", text[:40])
        return None
    return text


def is_loopback(host: str) -> bool:
    """Tells whether ``host`` reaches only this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        # A host name other than localhost may resolve anywhere: treat it as exposed.
        return False


def check_exposure(options: ServerOptions) -> None:
    """Protected mode: refuses to serve a non-loopback address with no authentication."""
    if is_loopback(options.host) or options.users_file or options.requirepass:
        return
    if options.no_auth:
        log.warning("serving %s with no authentication (--no-auth): anyone who reaches the port "
                    "can take, steal and release every lock", options.host)
        return
    raise SystemExit(
        f"fencelock: refusing to serve {options.host} without authentication: anyone who reaches "
        "the port could take, steal and release every lock. Give --users FILE or --requirepass "
        "(or FENCELOCK_REQUIREPASS), bind 127.0.0.1, or pass --no-auth to insist."
    )


def _reason(error: BaseException) -> str:
    message = getattr(error, "message", None)
    return str(message) if message else str(error)


def _loop_name() -> str:
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"


async def serve(options: ServerOptions, stop: Optional[asyncio.Event] = None) -> None:
    """Serves until ``stop`` is set (or SIGTERM/SIGINT arrives), then shuts down cleanly."""
    await serve_until_stopped(FencelockServer(options), stop)


async def serve_until_stopped(server: Any, stop: Optional[asyncio.Event] = None) -> None:
    """Starts ``server`` (a single server or a cluster node), reloads its users on SIGHUP, and
    stops it once ``stop`` is set or SIGTERM/SIGINT arrives. The handlers come before the socket
    (and the ready file), so no signal meets the default action once the server is up."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        loop.add_signal_handler(signal.SIGHUP, server.reload_users)
    except (NotImplementedError, RuntimeError, AttributeError):
        pass
    await server.start()
    try:
        await stop.wait()
    finally:
        await server.stop()


def run_server(options: ServerOptions) -> int:
    """Runs the server until SIGTERM/SIGINT and returns the exit status.

    ``options.loop``: ``"uvloop"`` (``fencelock[fast]``), ``"asyncio"``, or ``"auto"`` for
    uvloop when it is installed.
    """
    uvloop: Any = None
    if options.loop in ("auto", "uvloop"):
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            if options.loop == "uvloop":
                log.error("--loop uvloop: uvloop is not installed (pip install 'fencelock[fast]')")
                return 1
    try:
        if uvloop is not None:
            log.debug("event loop: uvloop")
            uvloop.run(serve(options))
        else:
            log.debug("event loop: asyncio")
            asyncio.run(serve(options))
    except OSError as error:
        log.error("cannot serve: %s", error)
        return 1
    return 0
