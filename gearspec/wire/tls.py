"""TLS for every gearspec connection: `tls://HOST:PORT` addresses and the SSL contexts behind them.

It lives with the wire tools (which do I/O) rather than the sans-IO core, whose modules never
import ssl; every outer package imports it from here.

One place for the rules every part follows (server, client, worker, admin client, suite,
fuzzer, proxy): a `tls://` prefix on a server address means TLS; a client verifies the server
against `--tls-ca` (or the system's CAs) and its host name, and shows `--tls-cert`/`--tls-key`
when given; a server with a CA requires and verifies client certificates, and names each peer
by its certificate's subject common name (as python gear's geard does, gear/__init__.py
`ServerConnection.__init__`). Files that cannot be used raise `TlsError` with one line.
"""

from __future__ import annotations

import argparse
import ssl
from typing import Any

__all__ = [
    "TLS_SCHEME",
    "TlsError",
    "add_client_options",
    "client_context",
    "context_from_options",
    "server_context",
    "split_scheme",
    "subject_name",
]

TLS_SCHEME = "tls://"


class TlsError(ValueError):
    """A certificate, key or CA file that cannot be used; the message says which and why."""


def split_scheme(address: str) -> tuple[bool, str]:
    """`tls://HOST:PORT` -> (True, "HOST:PORT"); any other address -> (False, address)."""
    if address[: len(TLS_SCHEME)].lower() == TLS_SCHEME:
        return True, address[len(TLS_SCHEME):]
    return False, address


def _load(what: str, action: Any, *paths: str | None) -> Any:
    try:
        return action()
    except FileNotFoundError as exc:
        raise TlsError(f"{what}: no such file {exc.filename or paths[0]}") from None
    except ssl.SSLError as exc:
        files = " / ".join(p for p in paths if p)
        raise TlsError(f"{what} {files}: not usable ({exc.reason or exc})") from None
    except OSError as exc:
        raise TlsError(f"{what}: cannot read {exc.filename or paths[0]}: {exc.strerror or exc}") from None


def _pair(cert: str | None, key: str | None) -> None:
    if key and not cert:
        raise TlsError("--tls-key needs --tls-cert (the certificate the key belongs to)")


def server_context(cert: str, key: str | None = None, ca: str | None = None) -> ssl.SSLContext:
    """A server context; with `ca`, client certificates are required and checked against it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _load("--tls-cert/--tls-key", lambda: context.load_cert_chain(cert, key), cert, key)
    if ca:
        _load("--tls-ca", lambda: context.load_verify_locations(ca), ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(
    ca: str | None = None, cert: str | None = None, key: str | None = None, *, check_hostname: bool = True
) -> ssl.SSLContext:
    """A client context: trust `ca` (else the system's CAs), present `cert`/`key` when given."""
    _pair(cert, key)
    # With a CA file only that CA is trusted; without one, the system's.
    context: ssl.SSLContext = _load("--tls-ca", lambda: ssl.create_default_context(cafile=ca), ca)
    if cert:
        _load("--tls-cert/--tls-key", lambda: context.load_cert_chain(cert, key), cert, key)
    context.check_hostname = check_hostname
    return context


def subject_name(peercert: dict[str, Any] | None) -> str | None:
    """The subject common name of a certificate as `SSLSocket.getpeercert()` gives it."""
    if not peercert:
        return None
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def add_client_options(parser: argparse.ArgumentParser, scope: str) -> Any:
    """`--tls-ca`, `--tls-cert`, `--tls-key` for a tool that connects to `scope` (e.g. "a
    tls://HOST:PORT target"); returns the argument group, for a tool's own TLS options."""
    group = parser.add_argument_group(f"TLS (for {scope})")
    group.add_argument("--tls-ca", metavar="FILE", help="trust the server's certificate from this CA (default: the system's CAs)")
    group.add_argument("--tls-cert", metavar="FILE", help="client certificate (PEM) to present")
    group.add_argument("--tls-key", metavar="FILE", help="its private key (default: in --tls-cert)")
    return group


def context_from_options(args: argparse.Namespace, is_tls: bool, scope: str) -> ssl.SSLContext | None:
    """The client context the `add_client_options` flags describe; None for a plaintext
    `scope`, where the flags are an error (ValueError/TlsError, one line)."""
    if not is_tls:
        if args.tls_ca or args.tls_cert or args.tls_key:
            raise ValueError(f"--tls-ca/--tls-cert/--tls-key apply to {scope}")
        return None
    return client_context(args.tls_ca, args.tls_cert, args.tls_key)
