"""TLS targets for the suite: settings from the command line, and the pre-run handshake check.

`gearspec test --target tls://HOST:PORT [--tls-ca F --tls-cert F --tls-key F]` opens every
connection of every case over TLS (`harness.Session.connect`). Before any case runs,
`check_tls` makes one handshake and one ECHO round trip: a server that takes a TLS option but
answers the ClientHello in plaintext or closes (Debian's gearmand 1.1.20 answers "invalid
magic value"), a server certificate the CA does not vouch for, or a server that drops a
connection without a client certificate is said in one line, and nothing runs.

The ACL cases (conformance/cases/tls.py, `tls/acl/*`) connect as four identities with known
rights, given by `--tls-acl-identities DIR` (DIR/ROLE.pem, certificate and key, for each role
in `ACL_ROLES`); docs/conformance.md gives the ACL the target must be configured with.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gearspec.codec import Packet
from gearspec.spec import PacketType
from gearspec.wire.tls import client_context

__all__ = [
    "ACL_PREFIX",
    "ACL_ROLES",
    "TLS_DRIVERS",
    "InteropTls",
    "TlsSettings",
    "check_tls",
    "client_hello",
    "load_tls",
    "suite_acl",
]

# Function names the ACL cases use all start with this; the target's ACL grants by it.
ACL_PREFIX = "gs-acl-"
# Role -> what the target's ACL must let that certificate do (docs/conformance.md).
ACL_ROLES = {
    "worker": f"register {ACL_PREFIX}* (nothing else)",
    "client": f"submit to {ACL_PREFIX}* (nothing else)",
    "admin": f"administer (cancel jobs of) {ACL_PREFIX}*",
    "nobody": "nothing (a verified certificate the ACL does not name)",
}


# `gearspec interop --tls-*`: the drivers that can connect over TLS (conformance/drivers/README.md).
# How a server is told to serve TLS is its impl.toml's `tls` flags; servers without (Debian's
# gearmand takes --ssl but has no TLS; Perl Gearman::Server has none) are left out of a TLS matrix.
TLS_DRIVERS = ("reference", "gear")


@dataclass(frozen=True)
class InteropTls:
    """The files of a TLS interop matrix: one CA, the servers' certificate, the clients' one."""

    ca: str
    server_cert: str
    client_cert: str
    server_key: str | None = None  # default: in server_cert
    client_key: str | None = None  # default: in client_cert

    def server_flags(self, flags: Sequence[str]) -> list[str] | None:
        """A server's `tls` flags (impl.toml) with these files filled in; None when it has none."""
        if not flags:
            return None
        key = self.server_key or self.server_cert
        return [f.format(cert=self.server_cert, key=key, ca=self.ca) for f in flags]

    def driver_flags(self) -> list[str]:
        return ["--tls-ca", self.ca, "--tls-cert", self.client_cert, *(["--tls-key", self.client_key] if self.client_key else [])]

    def context(self) -> ssl.SSLContext:
        return client_context(self.ca, self.client_cert, self.client_key)


def suite_acl(server: str = "gearspec") -> str:
    """The ACL the target needs for the ACL cases, for identities whose CN is gearspec-ROLE.

    `server`: "gearspec" (`gearspec serve --acl`, globs) or "geard" (python gear's `--acl`,
    regular expressions; `invoke` covers submit and cancel, gear/acl.py `ACLEntry`).
    """
    if server == "geard":
        grants = {"worker": "register = gs-acl-.*", "client": "invoke = gs-acl-.*", "admin": "invoke = gs-acl-.*"}
    else:
        grants = {"worker": "register = gs-acl-*", "client": "submit = gs-acl-*", "admin": "admin = gs-acl-*"}
    # "nobody" has no entry: deny by default.
    return "".join(f"[gearspec-{role}]\n{grant}\n\n" for role, grant in grants.items())


@dataclass
class TlsSettings:
    """How the suite speaks TLS to a target: the files, the context, the ACL identities."""

    context: ssl.SSLContext
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    identities: dict[str, ssl.SSLContext] = field(default_factory=dict)  # role -> context

    def without_certificate(self) -> ssl.SSLContext:
        """The same trust, presenting no client certificate."""
        return client_context(self.ca)


def load_tls(ca: str | None, cert: str | None, key: str | None, identities: str | None) -> TlsSettings:
    """Settings from the --tls-* options; ValueError (one line) for unusable files."""
    settings = TlsSettings(client_context(ca, cert, key), ca, cert, key)
    if identities:
        folder = Path(identities)
        if not folder.is_dir():
            raise ValueError(f"--tls-acl-identities {identities}: not a folder")
        missing = [f"{role}.pem" for role in ACL_ROLES if not (folder / f"{role}.pem").is_file()]
        if missing:
            raise ValueError(f"--tls-acl-identities {identities}: missing {', '.join(missing)} "
                             f"(one certificate and key per role: {', '.join(ACL_ROLES)})")
        settings.identities = {role: client_context(ca, str(folder / f"{role}.pem")) for role in ACL_ROLES}
    return settings


def client_hello(context: ssl.SSLContext, host: str) -> bytes:
    """The bytes of a TLS ClientHello this context would send (no socket involved)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=host)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def _handshake_problem(host: str, port: int, context: ssl.SSLContext, timeout: float) -> str | None:
    # The handshake through memory buffers, so that what the server answered can be quoted.
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=host)
    first = b""
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as sock:
        while True:
            try:
                tls.do_handshake()
                sock.sendall(outgoing.read())
                return None
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
            except ssl.SSLCertVerificationError as exc:
                return f"the server's certificate is not trusted: {exc.verify_message} (see --tls-ca)"
            except ssl.SSLError as exc:
                if first and first[:1] not in (b"\x15", b"\x16"):  # not a TLS alert or handshake record
                    return _plaintext(first)
                return f"the TLS handshake failed: {exc.reason or exc}"
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return f"no answer to a TLS ClientHello within {timeout:g} s: it does not speak TLS on this port"
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                if first:
                    return _plaintext(first) if first[:1] not in (b"\x15", b"\x16") else "it closed the connection mid-handshake"
                return "it closed the connection when sent a TLS ClientHello: it does not speak TLS on this port"
            if not first:
                first = chunk[:64]
            if first[:1] not in (b"\x15", b"\x16"):
                return _plaintext(first)
            incoming.write(chunk)


def _plaintext(first: bytes) -> str:
    what = "a Gearman packet" if first[:4] in (b"\0RES", b"\0REQ") else "bytes that are not TLS"
    return f"it answered a TLS ClientHello with {what} ({first[:40]!r}): it does not speak TLS on this port"


def _echo_problem(host: str, port: int, context: ssl.SSLContext, timeout: float, barrier: str | None) -> str | None:
    # ECHO_REQ and GET_STATUS in one write: any answer proves the round trip, also from a
    # server that ignores ECHO (python gear's geard); a profile's barrier = "status" sends only GET_STATUS.
    kinds = [PacketType.GET_STATUS] if barrier == "status" else [PacketType.ECHO_REQ, PacketType.GET_STATUS]
    request = b"".join(Packet.request(kind, b"gearspec-tls-probe").to_bytes() for kind in kinds)
    asked = " or ".join(kind.name for kind in kinds)
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host) as sock:
                sock.sendall(request)
                reply = b""
                while len(reply) < 12:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    reply += chunk
    except TimeoutError:
        return f"the TLS connection works but {asked} got no answer within {timeout:g} s"
    except (ssl.SSLError, OSError) as exc:
        reply, detail = b"", getattr(exc, "reason", None) or exc
        return f"it ended the TLS connection before answering {asked} ({detail}): does it require a client " \
            "certificate the suite did not give (--tls-cert/--tls-key)?"
    if reply[:4] == b"\0RES":
        return None
    return f"it ended the TLS connection before answering {asked}: does it require a client certificate " \
        "the suite did not give (--tls-cert/--tls-key)?"


def check_tls(host: str, port: int, settings: TlsSettings, timeout: float, barrier: str | None = None) -> str | None:
    """None when the target completes a handshake and answers a round trip over TLS; else why not."""
    try:
        return _handshake_problem(host, port, settings.context, timeout) or _echo_problem(
            host, port, settings.context, timeout, barrier
        )
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as exc:
        return f"cannot connect: {exc.strerror or exc}"
