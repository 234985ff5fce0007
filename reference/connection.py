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
from collections.abc import Callable

from gearspec.codec import CLOSED, NEED_DATA, AdminLine, Decoder, Packet, RawPacket
from gearspec.errors import GearspecError, ProtocolError, os_reason
from gearspec.spec import DEFAULT_PORT, Magic

__all__ = [
    "ConnectFailed",
    "Connection",
    "ConnectionError_",
    "ConnectionLost",
    "ServerAddress",
    "open_connection",
    "parse_address",
]

ServerAddress = tuple[str, int]

_READ_CHUNK = 256 * 1024


def parse_address(text: str | ServerAddress, default_port: int = DEFAULT_PORT) -> ServerAddress:
    """`HOST`, `HOST:PORT`, `[V6]:PORT` or a `(host, port)` tuple → `(host, port)`."""
    if isinstance(text, tuple):
        return text[0], int(text[1])
    host, port = text, default_port
    if text.startswith("["):
        inside, _, rest = text[1:].partition("]")
        host = inside
        if rest.startswith(":"):
            port = _port(rest[1:], text)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _port(port_text, text)
    if not host:
        raise ValueError(f"no host in server address {text!r}")
    return host, port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"bad port in server address {whole!r}")
    return int(text)


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
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
        try:
            while True:
                data = await self._reader.read(_READ_CHUNK)
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
) -> Connection:
    """Connect to a job server; raises `ConnectFailed` with the reason, never a bare OSError."""
    host, port = address
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        raise ConnectFailed(f"{_where(address)}: no answer within {timeout:g}s", address) from None
    except OSError as exc:
        raise ConnectFailed(f"{_where(address)}: cannot connect: {os_reason(exc)}", address) from None
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return Connection(address, reader, writer, on_packet, on_close)
