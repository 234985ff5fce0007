"""A blocking test connection that speaks through gearspec's codec, with deadlines."""

from __future__ import annotations

import socket
import time

from gearspec.codec import CLOSED, NEED_DATA, AdminLine, Decoder, Event, Packet
from gearspec.spec import Magic

TIMEOUT = 5.0


class Conn:
    """One TCP connection to a job server: send bytes, read decoded events (strictly)."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.decoder = Decoder(Magic.RES)  # strict: anything off-spec from the server fails the test
        self.closed = False

    def send(self, *items: Packet | bytes) -> None:
        self.sock.sendall(b"".join(i if isinstance(i, bytes) else i.to_bytes() for i in items))

    def events(self, count: int, timeout: float = TIMEOUT) -> list[Event]:
        """Exactly `count` events; fails if the server closes or stays silent past the deadline."""
        out: list[Event] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            event = self.decoder.next_event()
            if event is CLOSED:
                raise AssertionError(f"server closed the connection after {out}")
            if event is NEED_DATA:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no reply within {timeout}s; got {out}")
                self.sock.settimeout(remaining)
                try:
                    data = self.sock.recv(65536)
                except TimeoutError:
                    continue
                self.decoder.receive_data(data)
                continue
            out.append(event)
        return out

    def packet(self, timeout: float = TIMEOUT) -> Packet:
        (event,) = self.events(1, timeout)
        assert isinstance(event, Packet), event
        return event

    def admin_lines(self, until: bytes = b".") -> list[AdminLine]:
        """Admin reply lines up to and including a line equal to `until`, or one OK/ERR line."""
        lines: list[AdminLine] = []
        while True:
            (line,) = self.events(1)
            assert isinstance(line, AdminLine), line
            lines.append(line)
            if line.text == until or (len(lines) == 1 and line.text.split(b" ")[0] in (b"OK", b"ERR")):
                return lines

    def wait_closed(self, timeout: float = TIMEOUT) -> bytes:
        """Read until the server closes; returns whatever it sent first (usually nothing)."""
        deadline = time.monotonic() + timeout
        got = b""
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                return got
            if not data:
                return got
            got += data
        raise AssertionError(f"server kept the connection open; sent {got!r}")

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
