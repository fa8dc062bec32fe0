"""``fencelock serve --etcd URLS --cluster NAME``: the asyncio I/O loop of a cluster node.

The core's ``ClusterNode`` (``NativeCluster``) holds every rule of replication: what to log,
when a reply may leave, who leads, when to step down. This file only performs the etcd
operations it emits (through the ``aetcd`` client) and reports their results, moves bytes and
time, and arms one timer. See docs/CLUSTER.md.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from . import __version__
from ._native import Close, NativeCluster, Transmit
from .server import _Connection, _IoLoop, _loop_name, check_exposure, serve_until_stopped, start_metrics

__all__ = ["ClusterOptions", "ClusterServer", "run_cluster_server"]

log = logging.getLogger("fencelock.cluster")

#: Seconds an etcd call may take before its outcome counts as unknown.
ETCD_TIMEOUT_S = 5


@dataclass
class ClusterOptions:
    """What ``fencelock serve --etcd ...`` was asked for."""

    etcd: List[str]
    cluster: str
    advertise: str
    host: str = "127.0.0.1"
    port: int = 7380
    election_ttl_s: int = 2
    snapshot_every: int = 1000
    #: How many guarded appends the leader keeps in flight at once.
    pipeline_depth: int = 1
    max_connections: int = 10_000
    ready_file: Optional[str] = None
    engine_settings: Dict[str, int] = field(default_factory=dict)
    #: Authentication and TLS, as for a single server (docs/OPERATIONS.md).
    users_file: Optional[str] = None
    requirepass: Optional[str] = field(default=None, repr=False)
    tls_cert: Optional[str] = None
    tls_key: Optional[str] = None
    tls_ca: Optional[str] = None
    tls_handshake_timeout_ms: int = 10_000
    no_auth: bool = False
    #: ``HOST:PORT`` to serve Prometheus metrics on (``GET /metrics``), or None.
    metrics: Optional[str] = None


def parse_endpoints(text: str) -> List[str]:
    """Splits ``http://h:p,http://h:p`` into ``host:port`` strings."""
    endpoints = []
    for url in filter(None, (part.strip() for part in text.split(","))):
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.hostname is None:
            raise ValueError(f"bad etcd endpoint {url!r}")
        endpoints.append(f"{parts.hostname}:{parts.port or 2379}")
    if not endpoints:
        raise ValueError("no etcd endpoint given")
    return endpoints


class _Etcd:
    """One aetcd client at a time, moving to the next endpoint after a failure."""

    def __init__(self, endpoints: List[str]) -> None:
        self.aetcd: Any = importlib.import_module("aetcd")
        self.endpoints = endpoints
        self.current = 0
        self.client: Any = None

    async def get(self) -> Any:
        if self.client is None:
            host, port = self.endpoints[self.current].rsplit(":", 1)
            self.client = self.aetcd.Client(host=host, port=int(port), timeout=ETCD_TIMEOUT_S)
            await self.client.connect()
        return self.client

    async def failed(self) -> None:
        client, self.client = self.client, None
        self.current = (self.current + 1) % len(self.endpoints)
        if client is not None:
            try:
                await client.close()
            except Exception:  # noqa: BLE001 - the client is gone either way
                pass


class ClusterServer(_IoLoop):
    """One listening socket, its connections, and the native cluster node they share."""

    native: NativeCluster

    def __init__(self, options: ClusterOptions) -> None:
        self.options = options
        self._origin_ns = time.monotonic_ns()
        self._transports: Dict[int, asyncio.Transport] = {}
        self._timer: Optional[asyncio.TimerHandle] = None
        self._timer_at: Optional[int] = None
        self._listener: Optional[asyncio.AbstractServer] = None
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._watches: Dict[int, asyncio.Task[None]] = {}
        self._etcd = _Etcd(options.etcd)
        self._seen_role: Tuple[str, Optional[str]] = ("", None)
        self._transactions: Any = importlib.import_module("aetcd.transactions")
        self.native = NativeCluster(
            options.cluster, options.advertise, options.election_ttl_s,
            dict(options.engine_settings), {"max_connections": options.max_connections}, self.now_ms(),
            options.snapshot_every, options.pipeline_depth,
        )
        self._load_auth()
        self.tls_context = self._tls_context()
        self._metrics_listener: Optional[asyncio.AbstractServer] = None
        self.metrics_address: Optional[Tuple[str, int]] = None

    async def start(self) -> Tuple[str, int]:
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            lambda: _Connection(self), self.options.host, self.options.port, reuse_address=True, backlog=1024,
            **self._listen_tls(),
        )
        host, port = self._listener.sockets[0].getsockname()[:2]
        if self.options.metrics:
            self._metrics_listener, self.metrics_address = await start_metrics(self, self.options.metrics)
        log.info(
            "fencelock %s cluster %r node %s serving on %s:%d%s (etcd %s, election TTL %d s, %s loop)",
            __version__, self.options.cluster, self.options.advertise, host, port, self._tls_note(),
            ",".join(self.options.etcd), self.options.election_ttl_s, _loop_name(),
        )
        if self.metrics_address:
            log.info("metrics on http://%s:%d/metrics", *self.metrics_address)
        self._write_ready(host, port)
        self.flush()
        return host, port

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._stop_listening()
        self.native.shutdown(self.now_ms())
        self.flush()  # closes connections and starts the lease revoke
        pending = [task for task in self._tasks if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=2)
        for task in list(self._tasks) + list(self._watches.values()):
            task.cancel()
        for transport in list(self._transports.values()):
            transport.close()
        self._transports.clear()
        if self._etcd.client is not None:
            try:
                await self._etcd.client.close()
            except Exception:  # noqa: BLE001 - shutting down anyway
                pass

    # -- outputs ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Performs every pending output and etcd operation, then re-arms the timer."""
        for output in self.native.drain():
            if isinstance(output, Transmit):
                transport = self._transports.get(output.conn)
                if transport is not None:
                    transport.write(output.data)
            elif isinstance(output, Close):
                transport = self._transports.pop(output.conn, None)
                if transport is not None:
                    transport.close()
        for op in self.native.drain_etcd():
            self._start(op)
        self._log_role()
        self._log_audit()
        if not self._stopping:
            self._schedule()

    def _log_role(self) -> None:
        """One log line whenever the node's role or the leader it knows changes."""
        seen = (self.native.role(), self.native.leader())
        if seen == self._seen_role:
            return
        self._seen_role = seen
        role, leader = seen
        if role == "leader":
            log.info("cluster %r: this node leads (log index %d)", self.options.cluster, self.native.log_index())
        elif role in ("follower", "candidate") and leader:
            log.info("cluster %r: %s, the leader is %s", self.options.cluster, role, leader)
        else:
            log.info("cluster %r: %s, no leader known", self.options.cluster, role)

    def _start(self, op: Tuple[Any, ...]) -> None:
        kind, op_id = op[0], op[1]
        if kind == "cancel_watch":
            task = self._watches.pop(op_id, None)
            if task is not None:
                task.cancel()
            return
        if kind == "watch":
            self._watches[op_id] = asyncio.get_running_loop().create_task(self._watch(op_id, op[2], op[3]))
            return
        task = asyncio.get_running_loop().create_task(self._perform(op))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _perform(self, op: Tuple[Any, ...]) -> None:
        kind, op_id = op[0], op[1]
        log.debug("etcd %s #%d started", kind, op_id)
        try:
            client = await self._etcd.get()
            result = await self._call(client, op)
            log.debug("etcd %s #%d done", kind, op_id)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - every failure is an unknown outcome
            if kind == "revoke" and "lease not found" in str(error):
                # The lease lapsed already (a paused node): revoking it is done.
                self.native.done(op_id, self.now_ms())
                self.flush()
                return
            log.warning("etcd %s failed: %s", kind, error)
            if self._unreachable(error):
                # Only a member that did not answer is left for the next one: an answer
                # (an etcd error) says nothing against the member, and closing the client
                # would also end the watches that share it.
                await self._etcd.failed()
            self.native.failed(op_id, f"{type(error).__name__}: {error}", self.now_ms())
        else:
            result(self.now_ms())
        self.flush()

    def _unreachable(self, error: Exception) -> bool:
        """Tells whether ``error`` says the etcd member could not be reached or did not answer."""
        exceptions = self._etcd.aetcd.exceptions
        return isinstance(error, (exceptions.ConnectionFailedError, exceptions.ConnectionTimeoutError,
                                  OSError, asyncio.TimeoutError))

    async def _call(self, client: Any, op: Tuple[Any, ...]) -> Any:
        """Performs one operation; returns the call that reports its result to the core."""
        tx = self._transactions
        kind, op_id = op[0], op[1]
        native = self.native
        if kind == "grant_lease":
            lease = await client.lease(op[2])
            return lambda now: native.lease_granted(op_id, lease.id, now)
        if kind == "keep_alive":
            reply = await client.refresh_lease(op[2])
            return lambda now: native.keep_alive(op_id, int(reply.TTL), now)
        if kind == "revoke":
            await client.revoke_lease(op[2])
            return lambda now: native.done(op_id, now)
        if kind == "campaign":
            _, _, key, value, lease = op
            won, responses = await client.transaction(
                compare=[tx.Create(key) == 0],
                success=[tx.Put(key, value, lease)],
                failure=[tx.Get(key)],
            )
            if won:
                revision = int(responses[0].response_put.header.revision)
                leader = (key, value, revision, revision)
            else:
                found = responses[0][0][1] if responses and responses[0] else None
                leader = (key, found.value, found.create_revision, found.mod_revision) if found else (key, b"", 0, 0)
            return lambda now: native.campaign_result(op_id, bool(won), leader, now)
        if kind == "append":
            _, _, election_key, term, committed_key, batches, compaction = op
            # Each batch is put only if etcd does not have it yet (appends in flight together
            # carry the same batches, and etcd may apply them in any order).
            success = [
                tx.Txn(compare=[tx.Create(key) == 0], success=[tx.Put(key, value)], failure=[])
                for key, value in batches
            ]
            if compaction is not None:
                # The snapshot and the deletion of the log before it commit with the batch.
                snapshot_key, snapshot, delete_from, delete_end = compaction
                success += [tx.Put(snapshot_key, snapshot), tx.Delete(delete_from, range_end=delete_end)]
            compare = [tx.Create(election_key) == term]
            if committed_key is not None:
                compare.append(tx.Create(committed_key) > 0)
            succeeded, responses = await client.transaction(compare=compare, success=success, failure=[])
            revision = _written_revision(responses) if succeeded else 0
            return lambda now: native.append_result(op_id, bool(succeeded), revision, now)
        if kind == "range":
            found = await client.get_prefix(op[2])
            kvs = [(kv.key, kv.value, kv.create_revision, kv.mod_revision) for kv in found]
            revision = int(found.header.revision)
            return lambda now: native.range_result(op_id, revision, kvs, now)
        raise ValueError(f"unknown etcd operation {kind!r}")

    async def _watch(self, op_id: int, prefix: bytes, start_revision: int) -> None:
        client = None
        try:
            client = await self._etcd.get()
            watch = await client.watch_prefix(prefix, start_revision=start_revision)
            async for event in watch:
                put = event.kind == "PUT"
                kv = event.kv
                self.native.events(
                    op_id, [(put, kv.key, kv.value, kv.create_revision, kv.mod_revision)], self.now_ms()
                )
                self.flush()
            raise ConnectionError("watch ended")
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._stopping or (task is not None and task.cancelling()) or self._watches.get(op_id) is not task:
                raise  # cancelled by this node (cancel_watch or stop)
            # The stream was cancelled under the watch (its client was closed after another
            # call failed): the core must hear of it, or it waits for events forever.
            error = ConnectionError("the watch's etcd client was closed")
            log.warning("etcd watch failed: %s", error)
            self._watches.pop(op_id, None)
            self.native.failed(op_id, f"{type(error).__name__}: {error}", self.now_ms())
            self.flush()
        except Exception as error:  # noqa: BLE001 - the core reads the log again
            log.warning("etcd watch failed: %s", error)
            if self._etcd.client is client and self._unreachable(error):
                await self._etcd.failed()
            self._watches.pop(op_id, None)
            self.native.failed(op_id, f"{type(error).__name__}: {error}", self.now_ms())
            self.flush()


def _written_revision(responses: List[Any]) -> int:
    """The revision of a transaction that wrote something, read from its puts (0 if none)."""
    revision = 0
    for response in responses:
        kind = response.WhichOneof("response")
        if kind == "response_put":
            revision = max(revision, int(response.response_put.header.revision))
        elif kind == "response_txn":
            revision = max(revision, _written_revision(list(response.response_txn.responses)))
    return revision


async def serve_cluster(options: ClusterOptions, stop: Optional[asyncio.Event] = None) -> None:
    """Serves until ``stop`` is set (or SIGTERM/SIGINT arrives), then hands leadership over."""
    await serve_until_stopped(ClusterServer(options), stop)


def run_cluster_server(options: ClusterOptions) -> int:
    """Runs a cluster node until SIGTERM/SIGINT and returns the exit status."""
    try:
        importlib.import_module("aetcd")
    except ImportError:
        log.error("cluster mode needs the etcd client: pip install 'fencelock[cluster]' (aetcd)")
        return 1
    try:
        asyncio.run(serve_cluster(options))
    except OSError as error:
        log.error("cannot serve: %s", error)
        return 1
    return 0


def cluster_options(args: Any) -> ClusterOptions:
    """Builds the options of ``fencelock serve --etcd ...`` from its parsed arguments.

    Users (``--users``, ``--requirepass``), TLS and metrics work as on a single server, and
    so does protected mode.
    """
    options = ClusterOptions(
        etcd=parse_endpoints(args.etcd),
        cluster=args.cluster,
        advertise=args.advertise or f"{args.host}:{args.port}",
        host=args.host,
        port=args.port,
        election_ttl_s=args.election_ttl,
        snapshot_every=args.snapshot_every,
        pipeline_depth=args.pipeline_depth,
        max_connections=args.max_connections,
        ready_file=args.ready_file,
        engine_settings={
            name: value
            for name, value in (
                ("max_ttl_ms", args.max_ttl_ms),
                ("lock_delay_ms", args.lock_delay_ms),
                ("max_lock_delay_ms", getattr(args, "max_lock_delay_ms", None)),
            )
            if value is not None
        },
        users_file=args.users,
        requirepass=args.requirepass,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_ca=args.tls_ca,
        no_auth=bool(getattr(args, "no_auth", False)),
        metrics=args.metrics,
    )
    check_exposure(options)  # type: ignore[arg-type]  # the same fields as ServerOptions
    return options
