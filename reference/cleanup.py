"""Drain the jobs a test or fuzz run left on a job server, by their function names.

A run that submits jobs under names of its own (the conformance suite, the fuzzers) ends by
calling `drain`: one worker connection registers every name, grabs each queued job and
answers WORK_FAIL, until the server says NO_JOB. It needs no admin command, so it works on
any server; jobs not yet due (SUBMIT_JOB_EPOCH in the future) stay, and are counted by
`leftover` where the server answers the admin `status` command.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Iterable, Iterator

from gearspec.admin import AdminReplyReader, StatusRow, encode_admin, parse_status
from gearspec.codec import NEED_DATA, Decoder, Packet
from gearspec.errors import GearspecError
from gearspec.spec import Magic, PacketType

__all__ = ["cancel", "drain", "leftover"]


def _connect(host: str, port: int, timeout: float, tls: ssl.SSLContext | None) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    return tls.wrap_socket(sock, server_hostname=host) if tls is not None else sock


def drain(host: str, port: int, names: Iterable[str | bytes], *, timeout: float = 10.0,
          tls: ssl.SSLContext | None = None) -> int:
    """Grab and fail every queued job of `names`; returns how many. Raises OSError when the
    server cannot be reached, TimeoutError when it stops answering within `timeout`."""
    wanted = sorted({n.encode() if isinstance(n, str) else n for n in names})
    if not wanted:
        return 0
    deadline = time.monotonic() + timeout
    drained = 0
    with _connect(host, port, timeout, tls) as sock:
        decoder = Decoder(accept=Magic.RES, lenient=True)
        sock.sendall(b"".join(Packet.request(PacketType.CAN_DO, name).to_bytes() for name in wanted))
        grab = PacketType.GRAB_JOB
        while time.monotonic() < deadline:
            sock.sendall(Packet.request(grab).to_bytes())
            reply = _next_packet(sock, decoder, deadline)
            while reply.type is PacketType.NOOP:  # a wake-up from an earlier sleep
                reply = _next_packet(sock, decoder, deadline)
            if reply.type is PacketType.ERROR and grab is PacketType.GRAB_JOB:
                grab = PacketType.GRAB_JOB_UNIQ  # python gear's server serves only this one
                continue
            if reply.type not in (PacketType.JOB_ASSIGN, PacketType.JOB_ASSIGN_UNIQ):
                return drained  # NO_JOB (or ERROR): nothing more to grab
            sock.sendall(Packet.request(PacketType.WORK_FAIL, reply["handle"]).to_bytes())
            drained += 1
    raise TimeoutError(f"{host}:{port} was still handing out jobs after {timeout:g} s")


def _next_packet(sock: socket.socket, decoder: Decoder, deadline: float) -> Packet:
    while True:
        event = decoder.next_event()
        if isinstance(event, Packet):
            return event
        if event is not NEED_DATA:
            raise ConnectionError("the server closed the connection while draining")
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection while draining")
        decoder.receive_data(data)


def cancel(host: str, port: int, handles: Iterable[bytes], *, timeout: float = 10.0,
           tls: ssl.SSLContext | None = None) -> int:
    """Send the admin `cancel job H` for each handle (for jobs not due yet, which cannot be
    grabbed); returns how many the server answered OK. Servers without the command answer
    ERR, which is fine: nothing more can be done there."""
    cancelled = 0
    with _connect(host, port, timeout, tls) as sock:
        lines = sock.makefile("rb")
        for handle in sorted(handles):
            sock.sendall(b"cancel job " + handle + b"\n")
            answer = lines.readline()
            if not answer:
                break
            cancelled += answer.startswith(b"OK")
    return cancelled


def _rows(lines: Iterable[str]) -> Iterator[StatusRow]:
    for line in lines:
        with contextlib.suppress(GearspecError):  # a name with a newline breaks its row
            yield from parse_status([line])


def leftover(host: str, port: int, names: Iterable[str | bytes], *, timeout: float = 5.0,
             tls: ssl.SSLContext | None = None) -> int | None:
    """Jobs still queued under `names` per the admin `status` command; None when the server
    does not answer it."""
    wanted = {n.decode("latin-1") if isinstance(n, bytes) else n for n in names}
    try:
        with _connect(host, port, timeout, tls) as sock:
            sock.sendall(encode_admin("status"))
            reader = AdminReplyReader("status")
            buffer = b""
            while True:
                data = sock.recv(65536)
                if not data:
                    return None
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    reply = reader.feed(line)
                    if reply is not None:
                        return sum(row.total for row in _rows(reply.lines) if row.function in wanted)
    except (OSError, GearspecError):
        return None
