"""``fencelock serve``: an asyncio I/O loop around the core's sans-IO protocol server.

This file moves bytes, time and durable writes; the Rust ``Server`` parses, runs and encodes
every request, so this host answers byte for byte like every other host. Order matters: each
output is handled in the order polled, and a token ceiling is made durable (fsync) before
any later bytes are written, since they may carry tokens up to it.

Data directory: ``ceiling`` (the highest token that may have been revealed) and, after a clean
shutdown only, ``snapshot.json`` (live leases with their time left).
"""

from __future__ import annotations

import asyncio
import importlib
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
from ._native import NativeServer

__all__ = ["ServerOptions", "FencelockServer", "run_server", "serve"]

log = logging.getLogger("fencelock.server")

CEILING_FILE = "ceiling"
SNAPSHOT_FILE = "snapshot.json"
EXIT_DURABILITY = 3


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


class FencelockServer:
    """One listening socket, its connections, and the native server they share."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.data_dir = Path(options.data_dir) if options.data_dir else None
        self._origin = time.monotonic()
        self._transports: Dict[int, asyncio.Transport] = {}
        self._timer: Optional[asyncio.TimerHandle] = None
        self._timer_at: Optional[int] = None
        self._listener: Optional[asyncio.AbstractServer] = None
        self._stopping = False
        self.start_kind, self.native = self._start_native()

    # -- start -----------------------------------------------------------------------------

    def _start_native(self) -> Tuple[str, NativeServer]:
        engine_config: Dict[str, int] = dict(self.options.engine_settings)
        if self.options.max_ttl_ms is not None:
            engine_config["max_ttl_ms"] = self.options.max_ttl_ms
        if self.options.lock_delay_ms is not None:
            engine_config["lock_delay_ms"] = self.options.lock_delay_ms
        server_config = {
            "max_connections": self.options.max_connections,
            "test_clock": self.options.test_clock,
        }
        now = self.now_ms()
        if self.data_dir is None:
            return "in-memory", NativeServer(engine_config, server_config, "fresh", 0, None, now)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ceiling = self._read_ceiling()
        snapshot_path = self.data_dir / SNAPSHOT_FILE
        if snapshot_path.exists():
            snapshot = snapshot_path.read_bytes()
            native = NativeServer(engine_config, server_config, "clean", ceiling or 0, snapshot, now)
            # A snapshot is valid once: a crash after this start must not bring back its leases.
            remove_durable(snapshot_path)
            grace = native.grace_left(now)
            if grace:
                # The core refused the snapshot (taken under another ceiling than the one on
                # disk, so not from the last run) and started as after a crash.
                log.warning(
                    "snapshot does not match the token ceiling %s: recovering as from a crash; "
                    "restart grace %d ms (no grants until every earlier lease has lapsed)", ceiling, grace,
                )
                return "crashed", native
            log.info(
                "recovered from a clean shutdown: %d leases restored, tokens resume above %d",
                native.live_leases(), native.last_token(),
            )
            return "clean", native
        if ceiling is not None:
            native = NativeServer(engine_config, server_config, "crashed", ceiling, None, now)
            grace = native.grace_left(now)
            log.warning(
                "recovered from a crash: tokens resume above %d; restart grace %d ms "
                "(no grants until every lease of the last run has lapsed)", ceiling, grace,
            )
            return "crashed", native
        return "fresh", NativeServer(engine_config, server_config, "fresh", 0, None, now)

    def _read_ceiling(self) -> Optional[int]:
        assert self.data_dir is not None
        path = self.data_dir / CEILING_FILE
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            return None
        try:
            return int(text)
        except ValueError:
            # Guessing a ceiling could reissue tokens: refuse to start instead.
            raise SystemExit(f"fencelock: {path} is corrupt ({text[:40]!r}); refusing to start") from None

    # -- serving ---------------------------------------------------------------------------

    def now_ms(self) -> int:
        return int((time.monotonic() - self._origin) * 1000)

    async def start(self) -> Tuple[str, int]:
        """Binds the socket; returns the bound (host, port)."""
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            lambda: _Connection(self), self.options.host, self.options.port, reuse_address=True, backlog=1024
        )
        host, port = self._listener.sockets[0].getsockname()[:2]
        where = f"data dir {self.data_dir}" if self.data_dir else "in memory (nothing on disk)"
        log.info(
            "fencelock %s serving on %s:%d, %s, start %s, %s loop%s", __version__, host, port, where,
            self.start_kind, _loop_name(), ", test clock" if self.options.test_clock else "",
        )
        if self.options.ready_file:
            write_atomic(self.options.ready_file, f"{host} {port}\n".encode())
        self._schedule()
        return host, port

    async def stop(self) -> None:
        """Stops accepting, drops every connection, and writes the clean-shutdown snapshot."""
        if self._stopping:
            return
        self._stopping = True
        if self._listener is not None:
            self._listener.close()
        if self._timer is not None:
            self._timer.cancel()
        now = self.now_ms()
        # EPHEMERAL leases end with their connections, so drop those before the snapshot.
        for conn in list(self._transports):
            self.native.disconnect(conn, now)
        self.flush()
        for transport in list(self._transports.values()):
            transport.close()
        self._transports.clear()
        leases = self.native.live_leases()
        if self.data_dir is not None:
            snapshot = self.native.snapshot(self.now_ms())
            self.flush()
            write_atomic(self.data_dir / SNAPSHOT_FILE, snapshot)
        log.info("stopped: %d live leases %s", leases,
                 "kept in the snapshot" if self.data_dir is not None else "dropped (in memory)")

    def flush(self) -> None:
        """Performs every pending output, in order, then re-arms the timer."""
        for output in self.native.drain():
            kind = output[0]
            if kind == "transmit":
                transport = self._transports.get(output[1])
                if transport is not None:
                    transport.write(output[2])
            elif kind == "persist":
                self._persist_ceiling(output[1])
            else:  # "close": the bytes written before it are flushed by the transport first
                transport = self._transports.pop(output[1], None)
                if transport is not None:
                    transport.close()
        if not self._stopping:
            self._schedule()

    def _persist_ceiling(self, ceiling: int) -> None:
        if self.data_dir is None:
            return
        try:
            write_atomic(self.data_dir / CEILING_FILE, b"%d\n" % ceiling)
        except DurabilityError as error:
            # After a failed fsync nothing on disk can be trusted; going on could reissue tokens.
            log.critical("cannot persist the token ceiling %d: %s; exiting", ceiling, error)
            os._exit(EXIT_DURABILITY)

    def _schedule(self) -> None:
        deadline = self.native.poll_timeout()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(self._loop_time(loop, deadline), self._on_timer)

    def _loop_time(self, loop: asyncio.AbstractEventLoop, deadline_ms: int) -> float:
        # The loop clock is monotonic but has its own origin; +1 ms so the engine sees it due.
        return loop.time() + (deadline_ms + 1) / 1000.0 - (time.monotonic() - self._origin)

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


class _Connection(asyncio.Protocol):
    """Feeds one socket's bytes to the native server; all decisions are the server's."""

    def __init__(self, server: FencelockServer) -> None:
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


def _loop_name() -> str:
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"


async def serve(options: ServerOptions, stop: Optional[asyncio.Event] = None) -> None:
    """Serves until ``stop`` is set (or SIGTERM/SIGINT arrives), then shuts down cleanly."""
    server = FencelockServer(options)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):
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
