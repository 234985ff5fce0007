"""Start the reference server with TLS and talk to it over raw TLS sockets."""

from __future__ import annotations

import socket
import ssl
import sys
from pathlib import Path

import pytest
from gearspec.conformance.impls import load_registry
from gearspec.conformance.servers import RunningServer, start_local
from gearspec.conformance.tls import suite_acl

from gearspec.codec import Decoder
from gearspec.spec import Magic
from gearspec.wire.tls import client_context
from tests.reference_server.conftest import TIMEOUT, Conn
from tests.tls.certs import Pki

SERVE = [sys.executable, "-m", "gearspec", "serve", "--host", "{host}", "--port", "0", "--queue", "memory"]

SUITE_ACL = suite_acl()  # the ACL the tests and the suite's ACL cases run the server with


def start_registry_server(name: str, *flags: str) -> RunningServer:
    """The registry's local server `name` (e.g. gear, gearmand) with `flags` added; skips the
    test when it is not installed (scripts/install-peers.sh installs them)."""
    impl, argv = load_registry().local_server(name)
    if not impl.local_available():
        pytest.skip(f"{name} is not installed here (scripts/install-peers.sh)")
    return start_local([*argv, *flags], name=f"{name}-tls")


def start_tls_server(pki: Pki, *extra: str, acl: str | None = None, folder: Path | None = None) -> RunningServer:
    argv = [*SERVE, "--tls-cert", str(pki.server), "--tls-ca", str(pki.ca), "--log-level", "INFO", *extra]
    if acl is not None:
        path = (folder or pki.folder) / f"acl-{abs(hash(acl))}.ini"
        path.write_text(acl)
        argv += ["--acl", str(path)]
    return start_local(argv, name="reference-tls")


class TlsConn(Conn):
    """A raw Gearman connection over TLS, as `identity` (a client certificate PEM) or none."""

    def __init__(self, server: RunningServer, pki: Pki, identity: Path | None) -> None:
        context = client_context(str(pki.ca), str(identity) if identity else None)
        raw = socket.create_connection((server.host, server.port), timeout=TIMEOUT)
        # Conn's state, with the socket wrapped (Conn.__init__ would open a plaintext one).
        self.sock = context.wrap_socket(raw, server_hostname=server.host)
        self.decoder = Decoder(accept=Magic.RES)
        self.closed = False


def handshake_refused(server: RunningServer, context: ssl.SSLContext) -> str | None:
    """None when a TLS connection with `context` carries an ECHO; else how it was refused."""
    try:
        with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as raw:
            with context.wrap_socket(raw, server_hostname=server.host) as sock:
                sock.sendall(b"\0REQ\0\0\0\x10\0\0\0\x02hi")
                reply = sock.recv(100)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as exc:
        return type(exc).__name__
    return None if reply.startswith(b"\0RES") else f"closed ({reply!r})"
