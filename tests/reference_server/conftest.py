"""Helpers for the reference server tests: start `gearspec serve`, talk raw packets to it."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gearspec.conformance.servers import RunningServer, start_local

from gearspec.admin import AdminCommand, AdminReply, AdminReplyReader
from gearspec.codec import AdminLine, Decoder, Packet
from gearspec.spec import Magic, PacketType

SERVE = [sys.executable, "-m", "gearspec", "serve", "--host", "{host}", "--port", "0"]
TIMEOUT = 10.0


class Conn:
    """A raw Gearman connection: send packets and admin lines, read replies with deadlines."""

    def __init__(self, server: RunningServer | tuple[str, int]) -> None:
        host, port = (server.host, server.port) if isinstance(server, RunningServer) else server
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.decoder = Decoder(accept=Magic.RES)
        self.closed = False

    def send(self, type: PacketType | str, *args: object) -> None:
        self.sock.sendall(Packet.request(type, *args).to_bytes())

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _event(self, timeout: float = TIMEOUT) -> Packet | AdminLine | None:
        """The next event, or None when the server closed the connection."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.decoder.next_event()
            if isinstance(event, (Packet, AdminLine)):
                return event
            if self.closed:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from the server")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 16)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
                self.decoder.receive_data(b"")
            else:
                self.decoder.receive_data(chunk)

    def recv(self, timeout: float = TIMEOUT) -> Packet:
        event = self._event(timeout)
        assert isinstance(event, Packet), f"expected a packet, got {event!r}"
        return event

    def expect(self, type: PacketType, *args: bytes, timeout: float = TIMEOUT) -> Packet:
        packet = self.recv(timeout)
        assert packet.type == type, f"expected {type.name}, got {packet!r}"
        if args:
            assert packet.args == args, packet
        return packet

    def is_closed(self, timeout: float = TIMEOUT) -> bool:
        """True when the server closes the connection (after any pending replies)."""
        try:
            while True:
                if self._event(timeout) is None:
                    return True
        except TimeoutError:
            return False

    def barrier(self) -> list[Packet]:
        """Round-trip an ECHO: returns every packet that arrived before its ECHO_RES."""
        marker = b"barrier-%d" % time.monotonic_ns()
        self.send(PacketType.ECHO_REQ, marker)
        seen: list[Packet] = []
        while True:
            packet = self.recv()
            if packet.type == PacketType.ECHO_RES and packet.args == (marker,):
                return seen
            seen.append(packet)

    def admin(self, line: str, crlf: bool = False) -> AdminReply:
        words = line.split()
        reader = AdminReplyReader(_command_for(words))
        self.sock.sendall(line.encode("latin-1") + (b"\r\n" if crlf else b"\n"))
        while True:
            event = self._event()
            assert isinstance(event, AdminLine), f"expected an admin line, got {event!r}"
            reply = reader.feed(event.text)
            if reply is not None:
                return reply

    def close(self) -> None:
        self.sock.close()


def _command_for(words: list[str]) -> AdminCommand | None:
    from gearspec.admin import match_admin_command

    match = match_admin_command(words)
    return match[0] if match else None


def start_server(*extra: str, workdir: Path | None = None) -> RunningServer:
    return start_local([*SERVE, *extra], name="reference", workdir=workdir)


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    """One shared server (memory queue) for tests that use their own function names."""
    running = start_server("--queue", "memory")
    yield running
    running.stop()


@pytest.fixture
def connect(server: RunningServer) -> Iterator[Callable[..., Conn]]:
    """Open connections to the shared server; all are closed after the test."""
    opened: list[Conn] = []

    def make(target: RunningServer | None = None) -> Conn:
        conn = Conn(target or server)
        opened.append(conn)
        return conn

    yield make
    for conn in opened:
        conn.close()


def wait_for(predicate: Callable[[], object], what: str, timeout: float = TIMEOUT) -> None:
    """Poll a condition the server gives no event for (e.g. that it noticed a disconnect)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
