"""TLS (server, both clients, redis-cli as an independent client, client certificates, stalled
handshakes) and the Prometheus metrics listener, scraped over HTTP and read with
prometheus_client's parser."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fencelock import AsyncClient, Client
from fencelock.errors import ConnectionLost, Locked, Stale

REDIS_CLI = shutil.which("redis-cli")


def _tls_flags(pki: Dict[str, str], *, client_certs: bool = False) -> list:
    flags = ["--tls-cert", pki["server"], "--tls-key", pki["server-key"]]
    return flags + (["--tls-ca", pki["ca"]] if client_certs else [])


def _client_context(pki: Dict[str, str]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki["ca"])
    context.load_cert_chain(pki["client"], pki["client-key"])
    return context


# -- TLS -----------------------------------------------------------------------------------


def test_client_and_async_client_over_tls(start_server: Callable[..., Any], pki: Dict[str, str]) -> None:
    server = start_server(*_tls_flags(pki))
    assert "(TLS)" in server.output()
    with Client("127.0.0.1", server.port, tls=True, tls_ca=pki["ca"]) as client:
        lease = client.acquire("tls/a", 5)
        with pytest.raises(Locked):
            client.acquire("tls/a", 5)
        assert client.verify("tls/a", lease.token) > 0
        client.release("tls/a", lease.token)
        with client.lock("tls/b", ttl=0.3) as held:
            time.sleep(0.5)  # renewals go over TLS too
            assert not held.lost

    async def run() -> int:
        async with AsyncClient("127.0.0.1", server.port, tls=True, tls_ca=pki["ca"]) as aclient:
            lease = await aclient.acquire("tls/c", 5)
            await aclient.release("tls/c", lease.token)
            return lease.token

    assert asyncio.run(run()) > lease.token


def test_a_server_certificate_the_client_does_not_trust_is_refused(
    start_server: Callable[..., Any], pki: Dict[str, str]
) -> None:
    server = start_server(*_tls_flags(pki))
    with Client("127.0.0.1", server.port, tls=True, tls_ca=pki["other-ca"], connect_timeout=2) as client:
        with pytest.raises(ConnectionLost, match="(?i)certificate"):
            client.ping()

    async def run() -> None:
        async with AsyncClient("127.0.0.1", server.port, tls=True, tls_ca=pki["other-ca"], connect_timeout=2) as aclient:
            await aclient.ping()

    with pytest.raises(ConnectionLost, match="(?i)certificate"):
        asyncio.run(run())
    # A plaintext client gets no answer it can read, and the server goes on.
    with Client("127.0.0.1", server.port, connect_timeout=1, timeout=1) as plain:
        with pytest.raises(Exception):
            plain.ping()
    with Client("127.0.0.1", server.port, tls=True, tls_ca=pki["ca"]) as client:
        client.ping()


@pytest.mark.skipif(REDIS_CLI is None, reason="redis-cli is not installed (apt-get install redis-tools)")
def test_redis_cli_over_tls(start_server: Callable[..., Any], pki: Dict[str, str]) -> None:
    server = start_server(*_tls_flags(pki))
    assert REDIS_CLI is not None
    base = [REDIS_CLI, "--tls", "--cacert", pki["ca"], "-h", "127.0.0.1", "-p", str(server.port)]
    token = subprocess.run([*base, "ACQUIRE", "cli/a", "5000"], capture_output=True, text=True, timeout=10)
    assert token.returncode == 0, token.stderr
    assert int(token.stdout.strip()) > 0
    released = subprocess.run([*base, "RELEASE", "cli/a", token.stdout.strip()], capture_output=True, text=True, timeout=10)
    assert released.stdout.strip() == "OK"


@pytest.mark.skipif(REDIS_CLI is None, reason="redis-cli is not installed (apt-get install redis-tools)")
def test_client_certificates_are_required_with_tls_ca(start_server: Callable[..., Any], pki: Dict[str, str]) -> None:
    server = start_server(*_tls_flags(pki, client_certs=True))
    assert "client certificates required" in server.output()
    assert REDIS_CLI is not None
    base = [REDIS_CLI, "--tls", "--cacert", pki["ca"], "-h", "127.0.0.1", "-p", str(server.port)]
    with_cert = subprocess.run(
        [*base, "--cert", pki["client"], "--key", pki["client-key"], "PING"], capture_output=True, text=True, timeout=10
    )
    assert with_cert.stdout.strip() == "PONG", with_cert.stderr
    without = subprocess.run([*base, "PING"], capture_output=True, text=True, timeout=10)
    assert "PONG" not in without.stdout
    with Client("127.0.0.1", server.port, tls=True, tls_ca=pki["ca"], connect_timeout=2, timeout=2) as client:
        with pytest.raises(ConnectionLost):
            client.ping()
    with Client("127.0.0.1", server.port, tls=_client_context(pki)) as client:
        lease = client.acquire("mtls/a", 5)
        client.release("mtls/a", lease.token)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_handshake_that_never_finishes_is_closed_and_others_are_served(
    start_server: Callable[..., Any], pki: Dict[str, str], loop: str
) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    server = start_server(
        *_tls_flags(pki), "--tls-handshake-timeout-ms", "500", "--metrics", "127.0.0.1:0", "--loop", loop
    )
    stalled = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
    # Half a ClientHello: the server waits for the rest, which never comes.
    stalled[0].sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    started = time.monotonic()
    with Client("127.0.0.1", server.port, tls=True, tls_ca=pki["ca"]) as client:
        lease = client.acquire("stall/a", 5)
        client.release("stall/a", lease.token)
    for sock in stalled:
        sock.settimeout(5)
        try:
            assert sock.recv(1024) == b""  # closed by the server
        except ConnectionResetError:
            pass
        sock.close()
    elapsed = time.monotonic() - started
    assert 0.3 < elapsed < 4, elapsed
    # The stalled handshakes never reached the core.
    families = _scrape(server)
    assert _sample(families, "fencelock_connections_received_total") == 1


# -- metrics -------------------------------------------------------------------------------


def _metrics_url(server: Any) -> str:
    ready = [line for line in server.output().splitlines() if "metrics on http://" in line]
    assert ready, server.output()
    return ready[-1].split("metrics on ", 1)[1].strip()


def _scrape(server: Any) -> Dict[str, Any]:
    with urllib.request.urlopen(_metrics_url(server), timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def _sample(families: Dict[str, Any], name: str, **labels: str) -> float:
    for family in families.values():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(key) == value for key, value in labels.items()):
                return float(sample.value)
    raise AssertionError(f"no sample {name} {labels}")


def test_metrics_are_scraped_over_http_and_parse_as_prometheus_text(
    start_server: Callable[..., Any], tmp_path: Path
) -> None:
    server = start_server("--metrics", "127.0.0.1:0", data_dir=tmp_path / "data")
    with Client("127.0.0.1", server.port) as client, Client("127.0.0.1", server.port) as other:
        first = client.acquire("m/a", 5)
        with pytest.raises(Locked):
            other.acquire("m/a", 5)
        other.acquire("m/a", 5, steal=True)
        with pytest.raises(Stale):
            client.release("m/a", first.token)  # it was stolen
        client.acquire("m/b", 0.2)
        time.sleep(0.5)  # m/b expires
        families = _scrape(server)
    types = {name: family.type for name, family in families.items()}
    assert types["fencelock_grants"] == "counter"
    assert types["fencelock_live_leases"] == "gauge"
    assert types["fencelock_persist_duration_seconds"] == "histogram"
    assert _sample(families, "fencelock_grants_total") == 3
    assert _sample(families, "fencelock_steals_total") == 1
    assert _sample(families, "fencelock_expiries_total") == 1
    assert _sample(families, "fencelock_errors_total", code="LOCKED") == 1
    assert _sample(families, "fencelock_errors_total", code="STALE") == 1
    assert _sample(families, "fencelock_live_leases") == 1
    assert _sample(families, "fencelock_waiters") == 0
    assert _sample(families, "fencelock_connections") >= 2
    assert _sample(families, "fencelock_token_ceiling") >= _sample(families, "fencelock_last_token") > 0
    # The data directory got its ceiling (and horizons) durably: the host timed each write.
    persisted = _sample(families, "fencelock_persist_duration_seconds_count")
    assert persisted >= 1
    assert _sample(families, "fencelock_persist_duration_seconds_bucket", le="+Inf") == persisted
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(_metrics_url(server).replace("/metrics", "/other"), timeout=5)
    assert missing.value.code == 404
    # The ready file names the metrics address too (third field), for --metrics HOST:0.
    assert server.port > 0
