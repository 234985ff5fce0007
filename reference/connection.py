"""One asyncio TCP connection to a job server, speaking binary packets through gearspec.codec.

Shared by the reference client and worker. A `Connection` owns a reader task that decodes
every packet the server sends (RES magic, lenient) and hands it to the `on_packet`
callback in arrival order. Anything that ends the connection (EOF, a reset, garbage bytes)
ends the reader once and calls `on_close` with a `ConnectionLost` that says why, so callers
never see a raw socket error or a codec traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable

from gearspec.address import format_address
from gearspec.address import parse_address as core_parse_address
from gearspec.codec import CLOSED, NEED_DATA, AdminLine, Decoder, Packet, RawPacket
from gearspec.errors import GearspecError, ProtocolError, os_reason
from gearspec.spec import DEFAULT_PORT, Magic
from gearspec.wire.tls import client_context, split_scheme

__all__ = [
    "TLS_CLOSED_HINT",
    "ConnectFailed",
    "Connection",
    "ConnectionError_",
    "ConnectionLost",
    "ServerAddress",
    "open_connection",
    "parse_address",
    "server_address",
]

ServerAddress = tuple[str, int]

_READ_CHUNK = 256 * 1024
# Under TLS 1.3 a server refuses a client certificate after the client's handshake is done,
# and often just closes: the first read sees the end, and this says what it most likely means.
_CERT_HINT = "a TLS server that requires a client certificate does this: see --tls-cert"
TLS_CLOSED_HINT = f" before a first reply ({_CERT_HINT})"


def parse_address(text: str | ServerAddress, default_port: int = DEFAULT_PORT) -> ServerAddress:
    """`HOST`, `HOST:PORT`, `[V6]:PORT` (gearspec.address) or a `(host, port)` tuple → `(host, port)`."""
    if isinstance(text, tuple):
        return text[0], int(text[1])
    return core_parse_address(text, default_port)


def server_address(
    server: str | ServerAddress, tls: ssl.SSLContext | None = None, default_port: int = DEFAULT_PORT
) -> tuple[ServerAddress, ssl.SSLContext | None]:
    """A server as a client, worker or admin client is given it → its address and SSL context.

    `tls://HOST:PORT` is TLS, with `tls` (from `gearspec.wire.tls.client_context`) or
    the system's CAs; anything else is plaintext.
    """
    if isinstance(server, tuple):
        return parse_address(server, default_port), None
    is_tls, rest = split_scheme(server)
    address = parse_address(rest, default_port)
    return address, ((tls or client_context()) if is_tls else None)


class ConnectionError_(GearspecError):
    """Base of connection problems (named with a trailing _ to avoid the builtin)."""

    def __init__(self, message: str, address: ServerAddress | None = None) -> None:
        self.address = address
        super().__init__(message)


class ConnectFailed(ConnectionError_):
    """The server could not be reached: refused, unreachable, or no answer in time."""


class ConnectionLost(ConnectionError_):
    """An open connection ended: the server closed it, reset it, or sent bytes we cannot read."""


def _where(address: ServerAddress) -> str:
    return format_address(*address)


class Connection:
    """A connected job-server socket: `send` packets, receive them through `on_packet`."""

    def __init__(
        self,
        address: ServerAddress,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_packet: Callable[[Packet | RawPacket], None],
        on_close: Callable[[ConnectionLost], None],
    ) -> None:
        self.address = address
        self._reader = reader
        self._writer = writer
        self._on_packet = on_packet
        self._on_close = on_close
        # Lenient: a packet that breaks a rule but keeps the framing (e.g. Perl Gearman::Server's
        # STATUS_RES with empty numbers) reaches the owner as a RawPacket to judge; lost framing
        # (bad magic, text) still ends the connection.
        self._decoder = Decoder(Magic.RES, admin=False, lenient=True)
        self.closed: ConnectionLost | None = None
        self._task = asyncio.get_running_loop().create_task(self._read_loop(), name=f"gearspec-read-{_where(address)}")

    @property
    def name(self) -> str:
        return _where(self.address)

    def send(self, *packets: Packet) -> None:
        """Queue packets for the server; raises `ConnectionLost` once the connection ended."""
        if self.closed is not None:
            raise self.closed
        self._writer.write(b"".join(p.to_bytes() for p in packets))

    async def drain(self) -> None:
        """Wait until the send buffer is below its high-water mark."""
        if self.closed is not None:
            raise self.closed
        try:
            await self._writer.drain()
        except (OSError, RuntimeError) as exc:
            self._finish(f"writing failed: {exc}")
            assert self.closed is not None
            raise self.closed from None

    async def _read_loop(self) -> None:
        reason = "the server closed the connection"
        if self._writer.get_extra_info("sslcontext") is not None:
            reason += TLS_CLOSED_HINT  # until a first byte arrives
        try:
            while True:
                data = await self._reader.read(_READ_CHUNK)
                reason = "the server closed the connection"
                self._decoder.receive_data(data)
                while True:
                    event = self._decoder.next_event()
                    if event is NEED_DATA:
                        break
                    if event is CLOSED:
                        return
                    if isinstance(event, AdminLine):  # pragma: no cover - admin=False raises instead
                        reason = f"unexpected text from the server: {event.text[:40]!r}"
                        return
                    self._on_packet(event)
                if not data:
                    return
        except ProtocolError as exc:
            reason = f"the server sent bytes that are not Gearman: {exc}"
        except ssl.SSLError as exc:
            reason = connect_problem(exc)
        except (OSError, asyncio.IncompleteReadError) as exc:
            reason = f"connection error: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}"
        except asyncio.CancelledError:
            reason = "connection closed by this side"
            raise
        finally:
            self._finish(reason)

    def _finish(self, reason: str) -> None:
        if self.closed is not None:
            return
        self.closed = ConnectionLost(f"{self.name}: {reason}", self.address)
        with contextlib.suppress(Exception):
            self._writer.close()
        self._on_close(self.closed)

    async def close(self) -> None:
        """Close the socket and stop the reader (idempotent)."""
        if self._task is not asyncio.current_task():
            self._task.cancel()
            # gather: the reader's own cancellation is a result here, ours still propagates.
            await asyncio.gather(self._task, return_exceptions=True)
        self._finish("connection closed by this side")
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()


async def open_connection(
    address: ServerAddress,
    on_packet: Callable[[Packet | RawPacket], None],
    on_close: Callable[[ConnectionLost], None],
    *,
    timeout: float = 5.0,
    tls: ssl.SSLContext | None = None,
) -> Connection:
    """Connect to a job server (over TLS with `tls`); raises `ConnectFailed` with the reason,
    never a bare OSError."""
    host, port = address
    try:
        reader, writer = await asyncio.wait_for(open_stream(host, port, tls), timeout)
    except TimeoutError:
        raise ConnectFailed(f"{_where(address)}: no answer within {timeout:g}s", address) from None
    except OSError as exc:
        raise ConnectFailed(f"{_where(address)}: cannot connect: {connect_problem(exc)}", address) from None
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return Connection(address, reader, writer, on_packet, on_close)


def open_stream(
    host: str, port: int, tls: ssl.SSLContext | None, **kwargs: int
) -> asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """`asyncio.open_connection`, over TLS (verifying `host`) when `tls` is a context."""
    if tls is None:
        return asyncio.ensure_future(asyncio.open_connection(host, port, **kwargs))
    return asyncio.ensure_future(asyncio.open_connection(host, port, ssl=tls, server_hostname=host, **kwargs))


def connect_problem(exc: OSError) -> str:
    """Why a connect (or TLS handshake) failed, in a few words."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS handshake failed: the server's certificate is not trusted ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        if exc.reason in ("TLSV13_ALERT_CERTIFICATE_REQUIRED", "SSLV3_ALERT_HANDSHAKE_FAILURE") or (
            exc.reason or ""
        ).startswith(("SSLV3_ALERT_BAD_CERTIFICATE", "TLSV1_ALERT_UNKNOWN_CA")):
            return f"the server ended the TLS session ({exc.reason}; {_CERT_HINT})"
        return f"TLS handshake failed: {exc.reason or exc} (is it a TLS port? is a client certificate required?)"
    return os_reason(exc)
