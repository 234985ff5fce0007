"""A plaintext-to-TLS relay, so that every fuzzer reaches a `tls://HOST:PORT` target unchanged.

`gearspec fuzz --target tls://...` starts a `TlsRelay`: a listener on 127.0.0.1 (a port of
its own) that opens one TLS connection to the target for each connection it accepts and
copies bytes both ways. The byte-level fuzzer, the stateful model and replays then connect to
the relay in plaintext, and what reaches the target is exactly what they sent, inside TLS.

What the relay changes, so findings read right: TLS has no half-close, and an end of input
from the fuzzer cannot tell a half-close from a close, so the relay keeps the TLS connection
open for `grace` seconds of replies (the byte fuzzer's SHUT_WR) or closes it at once (grace 0:
the model's "this client is gone"); a target that refuses connections shows as a connection
closed unanswered (use --pid to tell a crash from a refusal).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading

__all__ = ["TlsRelay"]


class TlsRelay:
    """`with TlsRelay(host, port, context) as (relay_host, relay_port): ...` (a thread of its own)."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext, grace: float = 2.0) -> None:
        self.target = (host, port)
        self.context = context
        self.grace = grace  # seconds replies may still come after the fuzzer's half-close
        self.address: tuple[str, int] = ("127.0.0.1", 0)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._relays: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._run, name="gearspec-tls-relay", daemon=True)

    def __enter__(self) -> tuple[str, int]:
        self._thread.start()
        self._ready.wait(10)
        return self.address

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.address = server.sockets[0].getsockname()[:2]
        self._ready.set()
        async with server:
            await self._stop.wait()
        for task in self._relays:
            task.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)

    async def _relay(self, plain_r: asyncio.StreamReader, plain_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        try:
            # Cancelled only when the relay stops: end quietly (asyncio's start_server would
            # otherwise log the cancellation of every open connection as an error).
            with contextlib.suppress(asyncio.CancelledError):
                await self._carry(plain_r, plain_w)
        finally:
            self._relays.discard(task)
            plain_w.close()

    async def _carry(self, plain_r: asyncio.StreamReader, plain_w: asyncio.StreamWriter) -> None:
        host, port = self.target
        try:
            tls_r, tls_w = await asyncio.open_connection(host, port, ssl=self.context, server_hostname=host)
        except (OSError, ssl.SSLError):
            return
        upstream = asyncio.ensure_future(self._copy(tls_r, plain_w))
        try:
            await self._copy(plain_r, tls_w, half_close=False)
            # The fuzzer half-closed (or closed): let the target's replies through for a while.
            if self.grace > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(upstream), self.grace)
        finally:
            upstream.cancel()
            await asyncio.gather(upstream, return_exceptions=True)
            tls_w.close()

    @staticmethod
    async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, half_close: bool = True) -> None:
        with contextlib.suppress(OSError, ssl.SSLError, RuntimeError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            if half_close and writer.can_write_eof():
                writer.write_eof()
