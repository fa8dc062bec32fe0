"""Shared fixtures: repository paths and servers started as real processes on 127.0.0.1."""

from __future__ import annotations

import datetime
import ipaddress
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO = Path(__file__).resolve().parents[2]
VECTORS = Path(os.environ.get("FENCELOCK_VECTORS", REPO / "tests" / "vectors"))


class ServerProcess:
    """``python -m fencelock serve`` in a child process, bound to 127.0.0.1."""

    def __init__(
        self, tmp: Path, *args: str, port: int = 0, data_dir: Optional[Path] = None, env: Optional[Dict[str, str]] = None
    ) -> None:
        self.tmp = tmp
        self.env = env
        self.args = list(args)
        self.port = port
        self.data_dir = data_dir
        self.process: Optional[subprocess.Popen[bytes]] = None
        self.log_path = tmp / f"server-{time.monotonic_ns()}.log"

    def start(self) -> "ServerProcess":
        ready = self.tmp / f"ready-{time.monotonic_ns()}"
        storage = ["--data-dir", str(self.data_dir)] if self.data_dir else ["--in-memory"]
        command = [
            sys.executable, "-m", "fencelock", "serve", "--host", "127.0.0.1", "--port", str(self.port),
            "--ready-file", str(ready), "--log-level", "debug", *storage, *self.args,
        ]
        self.log = open(self.log_path, "ab")
        # cwd outside the source tree: `python -m` must import the installed package.
        environment = {**os.environ, **self.env} if self.env else None
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.tmp, env=environment
        )
        deadline = time.monotonic() + 20
        while not ready.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{self.output()}")
            time.sleep(0.02)
        self.port = int(ready.read_text().split()[1])
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=20)
        self.log.close()
        return code

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator["callable"]:
    """Returns a function starting servers; every one still running is stopped afterwards."""
    started: List[ServerProcess] = []

    def start(
        *args: str, port: int = 0, data_dir: Optional[Path] = None, env: Optional[Dict[str, str]] = None
    ) -> ServerProcess:
        server = ServerProcess(tmp_path, *args, port=port, data_dir=data_dir, env=env).start()
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process is not None and server.process.poll() is None:
            server.resume()
            server.stop(signal.SIGKILL)


@pytest.fixture(params=["asyncio", "uvloop"])
def server(request: pytest.FixtureRequest, start_server: "callable") -> ServerProcess:
    """A server in memory on a test clock (moved with DEBUG ADVANCE), on each event loop."""
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    return start_server("--test-clock", "--loop", request.param)


# -- certificates made by the test ---------------------------------------------------------


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))


def _issue(
    ca_key: ec.EllipticCurvePrivateKey, ca_name: x509.Name, common: str, *, server: bool
) -> Tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder().subject_name(_name(common)).issuer_name(ca_name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _make_ca(directory: Path, stem: str) -> Tuple[ec.EllipticCurvePrivateKey, x509.Name]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"fencelock test CA {stem}")
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
        ), critical=True)
        .sign(key, hashes.SHA256())
    )
    (directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, name


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    return make_pki(tmp_path_factory.mktemp("pki"))


def make_pki(directory: Path) -> Dict[str, str]:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate it signed,
    plus another CA that signed nothing the server uses, in ``directory``."""
    ca_key, ca_name = _make_ca(directory, "ca")
    _make_ca(directory, "other-ca")
    for stem, server in (("server", True), ("client", False)):
        cert, key = _issue(ca_key, ca_name, "127.0.0.1" if server else "fencelock-test-client", server=server)
        (directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, directory / f"{stem}-key.pem")
    return {name: str(directory / f"{name}.pem") for name in ("ca", "other-ca", "server", "server-key", "client", "client-key")}
