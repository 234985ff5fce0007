"""HOST:PORT: the one parser and formatter of server addresses, for every gearspec command.

    parse_address("10.0.0.2:4730")      -> ("10.0.0.2", 4730)
    parse_address("gearman.example")    -> ("gearman.example", 4730)   # DEFAULT_PORT
    parse_address("[::1]:4731")         -> ("::1", 4731)
    parse_address("::1")                -> ("::1", 4730)               # a bare IPv6 address
    parse_address("127.0.0.1:0", listen=True) -> ("127.0.0.1", 0)     # "pick a free port"

Port 0 is decided here once: it means "any free port", which only an address to listen on
can ask for, so it is refused unless `listen` is set. An IPv6 address with a port is written
in brackets (RFC 3986 authority form); without a port the brackets may be left out.
"""

from __future__ import annotations

import ipaddress

from gearspec.errors import GearspecError
from gearspec.spec import DEFAULT_PORT

__all__ = ["DEFAULT_PORT", "AddressError", "format_address", "parse_address"]


class AddressError(GearspecError, ValueError):
    """A HOST:PORT string that cannot be used; the message says what is wrong with it."""


def _bad(text: str, why: str) -> AddressError:
    return AddressError(f"{text!r} is not HOST:PORT: {why}")


def parse_address(text: str, default_port: int | None = DEFAULT_PORT, *, listen: bool = False) -> tuple[str, int]:
    """``HOST:PORT``, ``HOST``, ``[V6]:PORT``, ``[V6]`` or a bare V6 address -> (host, port).

    `default_port` is used when the text names no port; None makes the port required.
    Raises `AddressError` (a ValueError) with a one-line reason.
    """
    text = text.strip()
    if not text:
        raise _bad(text, "no host")
    port_text: str | None
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise _bad(text, f"write an IPv6 address as [::1]:{DEFAULT_PORT}")
        port_text = rest[1:] if rest else None
    elif text.count(":") > 1:
        try:
            ipaddress.IPv6Address(text.split("%")[0])
        except ValueError:
            raise _bad(text, f"write an IPv6 address as [::1]:{DEFAULT_PORT}") from None
        host, port_text = text, None
    else:
        host, sep, rest = text.partition(":")
        port_text = rest if sep else None
    if not host.strip():
        raise _bad(text, "no host")
    if port_text is None:
        if default_port is None:
            raise _bad(text, "no port")
        return host, default_port
    if not port_text:
        raise _bad(text, "no port after ':'")
    if not (port_text.isascii() and port_text.isdigit()):
        raise _bad(text, f"port {port_text!r} is not a number")
    port = int(port_text)
    if port == 0 and not listen:
        raise _bad(text, "port 0 ('any free port') is for listening only; name the server's port")
    if port > 65535:
        raise _bad(text, f"port {port} is not in {0 if listen else 1}-65535")
    return host, port


def format_address(host: str, port: int) -> str:
    """(host, port) -> ``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
