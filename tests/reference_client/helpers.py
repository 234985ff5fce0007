"""Small helpers for the reference client tests: run coroutines with a deadline, and tiny
raw-socket servers that misbehave on purpose (garbage, closing mid-job, never answering)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from gearspec.codec import AdminLine, Decoder, Packet
from gearspec.spec import Magic

R = TypeVar("R")


def run(coro: Coroutine[Any, Any, R], timeout: float = 20.0) -> R:
    """asyncio.run with an overall deadline, so a hang fails the test instead of CI."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Wait for state that has no event of its own (e.g. a counter in another object)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class FakeServer:
    """A TCP server on an ephemeral port (a thread per connection): `on_packet(conn, event)`
    runs for each decoded packet or admin line and may answer on `conn`; returning False
    closes the connection. Every decoded packet is kept in `packets`."""

    def __init__(self, on_packet: Callable[[socket.socket, Any], bool | None]) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.packets: list[Packet] = []
        self._on_packet = on_packet
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        decoder = Decoder(Magic.REQ)
        try:
            while not self._stop.is_set():
                data = conn.recv(65536)
                decoder.receive_data(data)
                for event in decoder:
                    if isinstance(event, Packet):
                        self.packets.append(event)
                    if isinstance(event, (Packet, AdminLine)) and self._on_packet(conn, event) is False:
                        conn.close()
                        return
                if not data:
                    return
        except OSError:
            return

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        for conn in self._conns:
            try:
                conn.close()
            except OSError:
                pass
        self._thread.join(2)

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def gather_with_timeout(*aws: Awaitable[Any], timeout: float = 10.0) -> list[Any]:
    return list(await asyncio.wait_for(asyncio.gather(*aws), timeout))
