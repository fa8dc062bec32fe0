"""TLS for the hosts: contexts from options, and a memory-BIO session for the blocking client.

TLS is purely host I/O: the core client and server see the same plaintext RESP bytes either way.
The blocking client keeps its raw, non-blocking sockets in its selector and runs TLS through an
``ssl.SSLObject`` over memory buffers, so readiness and buffering stay exactly as without TLS.
"""

from __future__ import annotations

import ssl
from typing import List, Optional, Union

__all__ = ["TlsOption", "client_context", "server_context", "TlsSession"]

#: What a client's ``tls`` argument may be: off, on with the system's (or ``tls_ca``'s) trust
#: store, or a context the caller built (client certificates, pinned versions).
TlsOption = Union[None, bool, ssl.SSLContext]


def client_context(tls: TlsOption, tls_ca: Optional[str] = None) -> Optional[ssl.SSLContext]:
    """Returns the client's TLS context, or None for plain TCP.

    ``tls=True`` verifies the server against ``tls_ca`` (a PEM file) or the system's CAs, and
    checks its name; an ``ssl.SSLContext`` is used as given (``tls_ca``, if also given, is added
    to its trusted CAs). ``tls_ca`` alone turns TLS on.
    """
    if isinstance(tls, ssl.SSLContext):
        if tls_ca is not None:
            tls.load_verify_locations(cafile=tls_ca)
        return tls
    if not tls and tls_ca is None:
        return None
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls_ca)


def server_context(cert: str, key: str, ca: Optional[str] = None) -> ssl.SSLContext:
    """Returns the server's TLS context; with ``ca``, clients must present a certificate it signed."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=cert, keyfile=key)
    if ca is not None:
        context.load_verify_locations(cafile=ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class TlsSession:
    """One client-side TLS session over memory buffers: raw bytes in and out, plaintext between."""

    def __init__(self, context: ssl.SSLContext, server_hostname: str) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=False, server_hostname=server_hostname)
        self.established = False

    def handshake(self) -> bool:
        """Advances the handshake; returns True once it is done.

        Raises ``ssl.SSLError`` (an ``OSError``) if the peer or its certificate is refused.
        """
        if not self.established:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                return False
            self.established = True
        return True

    def receive(self, raw: bytes) -> bytes:
        """Takes raw bytes from the socket; returns the plaintext they completed (maybe none)."""
        self._incoming.write(raw)
        if not self.established:
            return b""
        chunks: List[bytes] = []
        while True:
            try:
                chunk = self._tls.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def send(self, plaintext: bytes) -> None:
        """Encrypts plaintext; take the result with :meth:`outgoing`."""
        self._tls.write(plaintext)

    def outgoing(self) -> bytes:
        """Returns the raw bytes waiting to go to the socket (handshake or records)."""
        return self._outgoing.read()
