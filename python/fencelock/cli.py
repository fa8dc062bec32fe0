"""The ``fencelock`` command: run a server, or talk to one.

Client subcommands take durations in seconds, like the Python API; server flags keep the
``-ms`` names of the wire and the other hosts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import subprocess
import sys
from typing import Any, List, Optional, Sequence

from ._tls import client_context
from .client import DEFAULT_HOST, DEFAULT_PORT, Client
from .errors import ConnectionLost, FencelockError, LeaseLost

__all__ = ["main", "build_parser"]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_LOST = 75  # EX_TEMPFAIL: the lease was lost while the command ran
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: no server


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the CLI and returns its exit status."""
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    # Everything after "--" is the command for `run`; argparse's subparsers mangle it otherwise.
    trailing: List[str] = []
    if "--" in words:
        cut = words.index("--")
        words, trailing = words[:cut], words[cut + 1 :]
    args = parser.parse_args(words)
    if trailing and getattr(args, "handler", None) is not _run:
        parser.error("only 'run' takes a command after --")
    args.command = trailing
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args) or 0)
    except ConnectionLost as error:
        print(f"fencelock: {error.message}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except LeaseLost as error:
        print(f"fencelock: {error.message}", file=sys.stderr)
        return EXIT_LOST
    except FencelockError as error:
        print(f"fencelock: {error}", file=sys.stderr)
        return EXIT_ERROR
    except (ValueError, TypeError) as error:
        print(f"fencelock: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    """Builds the argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="fencelock",
        description="A lock service with fencing tokens. Run a server with 'fencelock serve', "
        "or use the client subcommands against a running server.",
        epilog="Examples:\n"
        "  fencelock serve --data-dir ./.fencelock\n"
        "  TOKEN=$(fencelock acquire jobs/nightly 30 --wait 5)\n"
        "  fencelock release jobs/nightly $TOKEN\n"
        "  fencelock run jobs/nightly --ttl 30 -- ./nightly.sh   # token in $FENCELOCK_TOKEN\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="run the lock server (asyncio; RESP2/RESP3 on TCP)",
        description="Run the fencelock server. Speaks RESP2/RESP3, so redis-cli and Redis "
        "client libraries can talk to it.",
    )
    serve.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default %(default)s)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to bind, 0 for any free port (default %(default)s)")
    storage = serve.add_mutually_exclusive_group()
    storage.add_argument("--data-dir", metavar="DIR", help="directory for the token ceiling and the clean-shutdown snapshot (default ./.fencelock)")
    storage.add_argument("--in-memory", action="store_true", help="keep nothing on disk (tokens restart after a restart: for tests only)")
    serve.add_argument("--max-ttl-ms", type=_positive_int, metavar="N", help="longest lease a client may ask for (default 300000 = 5 min; with --max-lock-delay-ms, the restart grace after a crash when no lease horizon can be trusted)")
    serve.add_argument("--lock-delay-ms", type=_nonnegative_int, metavar="N", help="lock-delay after a lease expires (default 0 = off)")
    serve.add_argument("--max-lock-delay-ms", type=_nonnegative_int, metavar="N", help="longest lock-delay a client may ask for (default 60000; 0 if no client asks for one: the restart grace without a trusted lease horizon is --max-ttl-ms plus this)")
    serve.add_argument("--token-block", type=_positive_int, metavar="N", help="tokens reserved per durable write of the token ceiling (default 1048576)")
    serve.add_argument("--horizon-slack-ms", type=_nonnegative_int, metavar="N", help="how far past a lease deadline each durable lease horizon reaches: about one fsync per N ms under load, and a crash restart waits at most N ms past the last deadline (default 5000)")
    serve.add_argument("--max-connections", type=_positive_int, default=10000, metavar="N", help="connection cap; extra connections get an error and are closed (default %(default)s)")
    serve.add_argument("--test-clock", action="store_true", help="use a manual clock moved by 'DEBUG ADVANCE ms' (tests only)")
    serve.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"], help="event loop; auto uses uvloop when installed (pip install 'fencelock[fast]') (default %(default)s)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"], help="log level (default %(default)s)")
    serve.add_argument("--ready-file", metavar="PATH", help="once listening, write 'HOST PORT' to this file (handy with --port 0)")
    serve.add_argument("--tls-cert", metavar="FILE", help="serve TLS with this certificate chain (PEM); needs --tls-key")
    serve.add_argument("--tls-key", metavar="FILE", help="the private key of --tls-cert (PEM)")
    serve.add_argument("--tls-ca", metavar="FILE", help="require client certificates signed by this CA (PEM)")
    serve.add_argument("--tls-handshake-timeout-ms", type=_positive_int, default=10000, metavar="N", help="close a TLS connection whose handshake is not done after N ms (default %(default)s)")
    serve.add_argument("--metrics", metavar="HOST:PORT", help="serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9380)")
    auth = serve.add_mutually_exclusive_group()
    auth.add_argument("--users", metavar="FILE", help="users file (JSON: names, password hashes from 'fencelock hash-password', lock-name prefix rules); reloaded on SIGHUP")
    auth.add_argument("--requirepass", metavar="PASSWORD", default=os.environ.get("FENCELOCK_REQUIREPASS") or None, help="one password for a single user 'default' with every right (or set FENCELOCK_REQUIREPASS, which 'ps' does not show)")
    serve.add_argument("--no-auth", action="store_true", help="serve a non-loopback address without authentication anyway (protected mode refuses otherwise)")
    serve.add_argument("--log-format", default="text", choices=["text", "json"], help="log lines as text or as one JSON object each (default %(default)s)")
    cluster = serve.add_argument_group("cluster mode (replicated through etcd; see docs/CLUSTER.md)")
    cluster.add_argument("--etcd", metavar="URLS", help="etcd endpoints, comma-separated (e.g. http://127.0.0.1:2379): run as a node of a cluster")
    cluster.add_argument("--cluster", metavar="NAME", default="default", help="cluster name: its keys live under /fencelock/NAME/ (default %(default)s)")
    cluster.add_argument("--advertise", metavar="HOST:PORT", help="address clients reach this node at, sent in MOVED (default HOST:PORT)")
    cluster.add_argument("--election-ttl", type=_positive_int, default=2, metavar="S", help="election lease TTL in seconds: a dead leader is replaced after about this long; raise it where a node can stall longer (default %(default)s)")
    cluster.add_argument("--pipeline-depth", type=_positive_int, default=1, metavar="N", help="the leader keeps up to N log appends in flight to etcd at once (default %(default)s: one at a time)")
    cluster.add_argument("--snapshot-every", type=_positive_int, default=1000, metavar="N", help="every N log batches the leader also stores a snapshot of the lock state and deletes the log before it (default %(default)s)")
    serve.set_defaults(handler=_serve)

    hash_password = commands.add_parser(
        "hash-password", help="print a password hash for a users file",
        description="Read a password (from stdin, or prompted) and print its users-file hash "
        "(PBKDF2-HMAC-SHA256 with a random salt).",
    )
    hash_password.add_argument("--iterations", type=_positive_int, default=None, metavar="N", help="PBKDF2 iterations (default 100000; fewer only for tests)")
    hash_password.set_defaults(handler=_hash_password)

    def client_command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--host", default=DEFAULT_HOST, help="server address (default %(default)s)")
        sub.add_argument("--port", type=int, default=DEFAULT_PORT, help="server port (default %(default)s)")
        sub.add_argument("--tls", action="store_true", help="connect with TLS (verified against the system's CAs, or --tls-ca)")
        sub.add_argument("--tls-ca", metavar="FILE", help="trust the server certificate this CA signed (PEM); implies --tls")
        sub.add_argument("--tls-cert", metavar="FILE", help="present this client certificate (PEM), with --tls-key")
        sub.add_argument("--tls-key", metavar="FILE", help="the private key of --tls-cert (PEM)")
        sub.add_argument("--user", default=os.environ.get("FENCELOCK_USER") or None, help="user to authenticate as (default 'default'; or FENCELOCK_USER)")
        sub.add_argument("--password", default=os.environ.get("FENCELOCK_PASSWORD") or None, help="password (better: FENCELOCK_PASSWORD, which 'ps' does not show)")
        return sub

    acquire = client_command("acquire", "take a lease and print its fencing token")
    acquire.add_argument("name", help="lock name")
    acquire.add_argument("ttl", type=float, help="lease length in seconds")
    acquire.add_argument("--wait", type=float, metavar="SECONDS", help="wait up to this long for the lock (default: fail at once if held)")
    acquire.add_argument("--shared", action="store_true", help="take a shared lease (readers)")
    acquire.add_argument("--steal", action="store_true", help="take the lock even if held; the old holder is fenced off")
    acquire.add_argument("--owner", help="a label shown by 'query'")
    acquire.add_argument("--lock-delay", type=float, metavar="SECONDS", help="if this lease expires instead of being released, keep the lock from being granted again for this long")
    acquire.set_defaults(handler=_acquire)

    renew = client_command("renew", "extend a lease; prints seconds left")
    renew.add_argument("name")
    renew.add_argument("token", type=int)
    renew.add_argument("ttl", type=float, help="new lease length in seconds from now")
    renew.set_defaults(handler=_renew)

    release = client_command("release", "release a lease")
    release.add_argument("name")
    release.add_argument("token", type=int)
    release.set_defaults(handler=_release)

    verify = client_command("verify", "check a lease; prints seconds left (exit 1 if not live)")
    verify.add_argument("name")
    verify.add_argument("token", type=int)
    verify.set_defaults(handler=_verify)

    query = client_command("query", "list locks with their holders and waiters")
    query.add_argument("prefix", nargs="?", default="", help="only locks whose name starts with this")
    query.add_argument("--json", action="store_true", help="print JSON")
    query.set_defaults(handler=_query)

    info = client_command("info", "print server facts and counters")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(handler=_info)

    run = client_command("run", "hold a lock (auto-renewed) while a command runs: fencelock run NAME [options] -- COMMAND...; its token is in $FENCELOCK_TOKEN")
    run.add_argument("name")
    run.add_argument("--ttl", type=float, default=30.0, help="lease length in seconds (default %(default)s)")
    run.add_argument("--wait", type=float, default=None, metavar="SECONDS", help="wait up to this long for the lock")
    run.add_argument("--shared", action="store_true")
    run.add_argument("--lock-delay", type=float, metavar="SECONDS", help="if the lease expires (the command hung past renewals), keep the lock from being granted again for this long")
    run.set_defaults(handler=_run)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per line; audit records carry the core's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        audit = getattr(record, "audit", None)
        if isinstance(audit, str):
            line.update(json.loads(audit))
        return json.dumps(line)


def _serve(args: argparse.Namespace) -> int:
    handler = logging.StreamHandler()
    if args.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), handlers=[handler])
    if args.etcd:
        from .cluster import cluster_options, run_cluster_server

        return run_cluster_server(cluster_options(args))
    from .server import ServerOptions, run_server

    options = ServerOptions(
        host=args.host,
        port=args.port,
        data_dir=None if args.in_memory else (args.data_dir or ".fencelock"),
        max_ttl_ms=args.max_ttl_ms,
        lock_delay_ms=args.lock_delay_ms,
        max_connections=args.max_connections,
        test_clock=args.test_clock,
        ready_file=args.ready_file,
        loop=args.loop,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_ca=args.tls_ca,
        tls_handshake_timeout_ms=args.tls_handshake_timeout_ms,
        metrics=args.metrics,
        engine_settings={
            name: value
            for name, value in (
                ("token_block", args.token_block),
                ("horizon_slack_ms", args.horizon_slack_ms),
                ("max_lock_delay_ms", args.max_lock_delay_ms),
            )
            if value is not None
        },
        users_file=args.users,
        requirepass=args.requirepass,
        no_auth=args.no_auth,
    )
    return run_server(options)


def _hash_password(args: argparse.Namespace) -> int:
    import getpass

    from ._native import DEFAULT_ITERATIONS, hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise ValueError("the passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise ValueError("empty password")
    print(hash_password(password.encode(), os.urandom(16), args.iterations or DEFAULT_ITERATIONS))
    return 0


def _client(args: argparse.Namespace) -> Client:
    tls: Any = args.tls or None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            raise ValueError("--tls-cert and --tls-key go together")
        tls = client_context(True, args.tls_ca)
        assert tls is not None
        tls.load_cert_chain(args.tls_cert, args.tls_key)
        return Client(args.host, args.port, tls=tls, username=args.user, password=args.password)
    return Client(args.host, args.port, tls=tls, tls_ca=args.tls_ca, username=args.user, password=args.password)


def _acquire(args: argparse.Namespace) -> int:
    with _client(args) as client:
        lease = client.acquire(
            args.name, args.ttl, wait=args.wait, shared=args.shared, steal=args.steal, owner=args.owner,
            lock_delay=args.lock_delay,
        )
    print(lease.token)
    return 0


def _renew(args: argparse.Namespace) -> int:
    with _client(args) as client:
        print(f"{client.renew(args.name, args.token, args.ttl):.3f}")
    return 0


def _release(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.release(args.name, args.token)
    print("OK")
    return 0


def _verify(args: argparse.Namespace) -> int:
    with _client(args) as client:
        print(f"{client.verify(args.name, args.token):.3f}")
    return 0


def _query(args: argparse.Namespace) -> int:
    with _client(args) as client:
        locks = client.query(args.prefix)
    if args.json:
        print(json.dumps([dataclasses.asdict(lock) for lock in locks], indent=2))
        return 0
    if not locks:
        print("(no locks)")
    for lock in locks:
        delay = f"  lock-delay {lock.delay_ms_left} ms" if lock.delay_ms_left else ""
        print(f"{lock.name}{delay}")
        for holder in lock.holders:
            owner = f" owner={holder.owner}" if holder.owner else ""
            print(f"  holder token={holder.token} {holder.mode} {holder.ms_left} ms left{owner}")
        for waiter in lock.waiters:
            owner = f" owner={waiter.owner}" if waiter.owner else ""
            print(f"  waiter #{waiter.position} {waiter.mode} {waiter.ms_left} ms left{owner}")
    return 0


def _info(args: argparse.Namespace) -> int:
    with _client(args) as client:
        facts = client.info()
    if args.json:
        print(json.dumps(facts, indent=2))
    else:
        for key, value in facts.items():
            print(f"{key}:{value}")
    return 0


def _run(args: argparse.Namespace) -> int:
    command: List[str] = list(args.command)
    if not command:
        raise ValueError("run: give the command after --")
    with _client(args) as client:
        with client.lock(args.name, ttl=args.ttl, wait=args.wait, shared=args.shared, lock_delay=args.lock_delay) as lease:
            env: Any = dict(os.environ, FENCELOCK_TOKEN=str(lease.token), FENCELOCK_LOCK=args.name)
            status = subprocess.call(command, env=env)
    return status
