"""A validating proxy: forwards Gearman traffic unchanged and checks every packet on the way.

    proxy = ValidatingProxy("127.0.0.1", 0, "127.0.0.1", 4730, report=print)
    host, port = await proxy.start()
    ...                     # point clients and workers at host:port
    await proxy.close()
    proxy.violations        # [(connection number, Violation), ...]

Bytes are written to the other side first and decoded afterwards, so the proxy never
changes, delays for parsing or drops what the peers send, even bytes it cannot decode.
Each connection gets its own `ConnectionChecker`; optional outputs are a JSON-lines trace
of every event and violation and a pcap file with one synthetic TCP stream per connection
(readable by `gearspec dissect` and Wireshark).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO, cast

from gearspec.errors import os_reason
from gearspec.wire.checker import ConnectionChecker, Observed, Violation
from gearspec.wire.pcap import FROM_SERVER, TO_SERVER, PcapWriter, TcpConversation

__all__ = ["ValidatingProxy"]

_HIGH_WATER = 1024 * 1024

_READ_SIZE = 256 * 1024
_PCAP_SEGMENT = 16 * 1024


def _v4(host: str) -> str:
    # The pcap writer speaks IPv4 only; IPv6 peers are shown as loopback.
    return host if host.count(".") == 3 else "127.0.0.1"


class ValidatingProxy:
    """Listens, connects each accepted peer to the upstream server, forwards and checks."""

    def __init__(
        self,
        listen_host: str,
        listen_port: int,
        upstream_host: str,
        upstream_port: int,
        *,
        trace: str | Path | None = None,
        pcap: str | Path | None = None,
        report: Callable[[str], None] | None = None,
        connect_timeout: float = 10.0,
        upstream_tls: ssl.SSLContext | None = None,
    ) -> None:
        self.listen = (listen_host, listen_port)
        self.upstream = (upstream_host, upstream_port)
        self.upstream_tls = upstream_tls  # TLS to the upstream server (peers still speak plaintext here)
        self.connect_timeout = connect_timeout
        self.report = report
        self.violations: list[tuple[int, Violation]] = []
        self.connections = 0
        self.bytes_forwarded = {TO_SERVER: 0, FROM_SERVER: 0}
        self._trace_path, self._pcap_path = trace, pcap
        self._trace: TextIO | None = None
        self._pcap: PcapWriter | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._links: set[_Link] = set()

    @property
    def errors(self) -> int:
        return sum(1 for _, v in self.violations if v.severity == "error")

    async def start(self) -> tuple[str, int]:
        """Open the outputs and the listening socket; returns the bound (host, port)."""
        if self._trace_path is not None:
            self._trace = open(self._trace_path, "w", encoding="utf-8")
        if self._pcap_path is not None:
            self._pcap = PcapWriter(self._pcap_path)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._make_peer_protocol, self.listen[0], self.listen[1])
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def serve_forever(self) -> None:
        assert self._server is not None, "call start() first"
        await self._server.serve_forever()

    async def close(self) -> None:
        """Stop listening, end open connections, flush the outputs."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for link in list(self._links):
            link.abort()
        if self._trace is not None:
            self._trace.close()
            self._trace = None
        if self._pcap is not None:
            self._pcap.close()
            self._pcap = None

    # -- one connection -------------------------------------------------------------------
    # Plain asyncio protocols rather than streams: every chunk is written to the other side
    # from data_received at once, and reading pauses while the other side's buffer is full.
    def _make_peer_protocol(self) -> _PeerSide:
        return _PeerSide(self)

    async def _open_upstream(self, link: _Link) -> None:
        loop = asyncio.get_running_loop()
        try:
            upstream, _ = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _UpstreamSide(link), *self.upstream, ssl=self.upstream_tls,
                    server_hostname=self.upstream[0] if self.upstream_tls else None,
                ),
                self.connect_timeout,
            )
        except (TimeoutError, OSError) as exc:
            why = f"no answer within {self.connect_timeout:g} s" if isinstance(exc, TimeoutError) else os_reason(exc)
            self._say(f"conn {link.number}: cannot reach upstream {self.upstream[0]}:{self.upstream[1]}: {why}")
            self._write_trace({"conn": link.number, "event": "upstream-failed", "error": why})
            link.abort()
            return
        link.upstream_ready(upstream)

    def _observe(self, number: int, checker: ConnectionChecker, events: list[Observed]) -> None:
        if self._trace is not None:
            for obs in events:
                self._write_trace({"conn": number, **obs.as_data()})
        for violation in checker.take_violations():
            self._violation(number, violation)

    def _violation(self, number: int, violation: Violation) -> None:
        self.violations.append((number, violation))
        self._write_trace({"conn": number, "violation": violation.as_data()})
        self._say(f"conn {number}: {violation.describe()}")

    def _say(self, text: str) -> None:
        if self.report is not None:
            self.report(text)

    def _write_trace(self, record: dict[str, Any]) -> None:
        if self._trace is not None:
            self._trace.write(json.dumps(record) + "\n")


class _Link:
    """One proxied connection: the peer side, the upstream side, the checker, the outputs."""

    def __init__(self, proxy: ValidatingProxy, peer: asyncio.Transport) -> None:
        self.proxy = proxy
        self.number = proxy.connections
        proxy.connections += 1
        proxy._links.add(self)
        self.peer = peer
        self.upstream: asyncio.Transport | None = None
        self.pending: list[bytes] = []  # peer bytes that arrived before upstream connected
        self.peer_eof = False
        self.checker = ConnectionChecker()
        self.ended: set[str] = set()
        self.closed = False
        address = peer.get_extra_info("peername") or ("?", 0)
        self.conversation: TcpConversation | None = None
        if proxy._pcap is not None:
            self.conversation = TcpConversation(
                proxy._pcap, (_v4(address[0]), address[1]), (_v4(proxy.upstream[0]), proxy.upstream[1]),
                start=time.time(), step=0.0,
            )
        proxy._write_trace({"conn": self.number, "event": "open", "peer": f"{address[0]}:{address[1]}", "time": time.time()})
        task = asyncio.ensure_future(proxy._open_upstream(self))
        proxy._tasks.add(task)
        task.add_done_callback(proxy._tasks.discard)

    def upstream_ready(self, upstream: asyncio.Transport) -> None:
        self.upstream = upstream
        if self.closed:
            upstream.close()
            return
        for data in self.pending:
            upstream.write(data)
        self.pending.clear()
        if self.peer_eof:
            self._half_close(upstream)

    def data(self, direction: str, data: bytes) -> None:
        target = self.upstream if direction == TO_SERVER else self.peer
        if target is None:
            self.pending.append(data)
        else:
            target.write(data)  # forward first: checking never holds bytes back
        self.proxy.bytes_forwarded[direction] += len(data)
        now = time.time()
        if self.conversation is not None:
            self.conversation.send(direction, data, segment_size=_PCAP_SEGMENT, ack=False, time=now)
        self.proxy._observe(self.number, self.checker, self.checker.feed(direction, data, now))

    def eof(self, direction: str) -> None:
        if direction in self.ended:
            return
        self.ended.add(direction)
        self.proxy._observe(self.number, self.checker, self.checker.feed(direction, b"", time.time()))
        if direction == TO_SERVER:
            self.peer_eof = True
            if self.upstream is not None:
                self._half_close(self.upstream)
        else:
            self._half_close(self.peer)
        if len(self.ended) == 2:
            self.finish()

    @staticmethod
    def _half_close(transport: asyncio.Transport) -> None:
        if transport.can_write_eof() and not transport.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                transport.write_eof()

    def abort(self) -> None:
        """Close both sides now (upstream unreachable, or the proxy stops)."""
        self.peer.close()
        if self.upstream is not None:
            self.upstream.close()
        self.ended.update((TO_SERVER, FROM_SERVER))
        self.finish()

    def finish(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.peer.close()
        if self.upstream is not None:
            self.upstream.close()
        for violation in self.checker.close():
            self.proxy._violation(self.number, violation)
        if self.conversation is not None:
            self.conversation.close()
        self.proxy._write_trace({"conn": self.number, "event": "close", "time": time.time()})
        self.proxy._links.discard(self)

    def pause(self, direction: str, paused: bool) -> None:
        """The side receiving `direction`'s bytes is full (or has room again)."""
        source = self.peer if direction == TO_SERVER else self.upstream
        if source is None or source.is_closing():
            return
        if paused:
            source.pause_reading()
        else:
            source.resume_reading()


class _PeerSide(asyncio.Protocol):
    def __init__(self, proxy: ValidatingProxy) -> None:
        self.proxy = proxy
        self.link: _Link | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        transport.set_write_buffer_limits(high=_HIGH_WATER)
        self.link = _Link(self.proxy, transport)

    def data_received(self, data: bytes) -> None:
        assert self.link is not None
        self.link.data(TO_SERVER, data)

    def eof_received(self) -> bool:
        assert self.link is not None
        self.link.eof(TO_SERVER)
        return True  # keep the write side open for the server's last replies

    def connection_lost(self, exc: Exception | None) -> None:
        if self.link is not None:
            self.link.eof(TO_SERVER)
            self.link.eof(FROM_SERVER)

    def pause_writing(self) -> None:
        if self.link is not None:
            self.link.pause(FROM_SERVER, True)

    def resume_writing(self) -> None:
        if self.link is not None:
            self.link.pause(FROM_SERVER, False)


class _UpstreamSide(asyncio.Protocol):
    def __init__(self, link: _Link) -> None:
        self.link = link

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.Transport, transport).set_write_buffer_limits(high=_HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        self.link.data(FROM_SERVER, data)

    def eof_received(self) -> bool:
        self.link.eof(FROM_SERVER)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.link.eof(FROM_SERVER)
        self.link.eof(TO_SERVER)

    def pause_writing(self) -> None:
        self.link.pause(TO_SERVER, True)

    def resume_writing(self) -> None:
        self.link.pause(TO_SERVER, False)
