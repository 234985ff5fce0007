"""Malformed input, limits and flow control: errors are clean and one connection never hurts others."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from gearspec.spec import PacketType as T

from .conftest import Conn, start_server


def _raw(magic: bytes, code: int, payload: bytes) -> bytes:
    return struct.pack(">4sII", magic, code, len(payload)) + payload


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (_raw(b"\0RES", T.WORK_COMPLETE, b"H:x:1\0data"), b"INVALID_MAGIC"),  # response magic
        (_raw(b"\0REQ", T.NOOP, b""), b"INVALID_COMMAND"),  # a response-only type
        (_raw(b"\0REQ", T.JOB_ASSIGN, b"h\0f\0d"), b"INVALID_COMMAND"),
        (_raw(b"\0REQ", 5, b""), b"INVALID_COMMAND"),  # reserved
        (_raw(b"\0REQ", 0, b""), b"INVALID_COMMAND"),  # TEXT
        (_raw(b"\0REQ", 99, b"whatever"), b"INVALID_COMMAND"),  # unknown
        (_raw(b"\0REQ", T.SUBMIT_JOB, b"only-function"), b"INVALID_PACKET"),  # too few arguments
        (_raw(b"\0REQ", T.GRAB_JOB, b"unexpected"), b"INVALID_PACKET"),  # payload on a no-arg packet
        (_raw(b"\0REQ", T.CAN_DO, b"a\0b"), b"INVALID_PACKET"),  # NUL inside a non-data argument
        (_raw(b"\0REQ", T.WORK_STATUS, b"h\0x\0y"), b"INVALID_PACKET"),  # not numbers
        (_raw(b"\0REQ", T.SUBMIT_JOB, b"f\0" + b"u" * 65 + b"\0d"), b"ARGUMENT_TOO_LARGE"),
        (_raw(b"\0REQ", T.WORK_COMPLETE, b"H:no:such\0d"), b"JOB_NOT_FOUND"),
        (_raw(b"\0REQ", T.WORK_FAIL, b"H:no:such"), b"JOB_NOT_FOUND"),
        (_raw(b"\0REQ", T.SUBMIT_JOB_SCHED, b"f\0u\0" + b"1\0" * 5 + b"d"), b"INVALID_COMMAND"),  # refused
        (_raw(b"\0REQ", T.ALL_YOURS, b""), b"INVALID_COMMAND"),
    ],
    ids=lambda v: v.decode() if isinstance(v, bytes) and v.isupper() else None,
)
def test_bad_packets_get_error_and_the_connection_stays_usable(connect, raw: bytes, code: bytes) -> None:
    conn = connect()
    conn.send_raw(raw)
    error = conn.expect(T.ERROR)
    assert error.args[0] == code
    conn.send(T.ECHO_REQ, b"still here")
    conn.expect(T.ECHO_RES, b"still here")


def test_unique_of_64_bytes_is_accepted(connect) -> None:
    conn = connect()
    conn.send(T.SUBMIT_JOB_BG, b"u64", b"u" * 64, b"")
    conn.expect(T.JOB_CREATED)


@pytest.mark.parametrize(
    "raw",
    [b"\0BAD" + b"\0" * 8, b"\0REX\0\0\0\x07\0\0\0\0", b"x" * 9000],  # bad magic; an endless admin line
    ids=["bad-magic", "bad-magic-2", "admin-line-too-long"],
)
def test_fatal_framing_errors_close_only_that_connection(connect, raw: bytes) -> None:
    bystander = connect()
    bystander.send(T.CAN_DO, b"bystander")
    bad = connect()
    bad.send_raw(raw)
    assert bad.is_closed()
    bystander.send(T.ECHO_REQ, b"fine")
    bystander.expect(T.ECHO_RES, b"fine")


def test_max_packet_size_and_max_connections() -> None:
    server = start_server("--queue", "memory", "--max-packet-size", "1024", "--max-connections", "3")
    try:
        first, second = Conn(server), Conn(server)
        first.send(T.ECHO_REQ, b"a" * 1000)
        first.expect(T.ECHO_RES, b"a" * 1000)
        second.send_raw(_raw(b"\0REQ", T.ECHO_REQ, b"b" * 1025)[:100])  # the header is enough
        assert second.is_closed()
        conns = [Conn(server), Conn(server)]
        conns[0].send(T.ECHO_REQ, b"x")
        conns[0].expect(T.ECHO_RES, b"x")
        extra = Conn(server)  # the fourth: over --max-connections
        assert extra.is_closed()
        first.send(T.ECHO_REQ, b"still")
        first.expect(T.ECHO_RES, b"still")
    finally:
        server.stop()


def test_a_peer_that_never_reads_is_paused_not_buffered(connect) -> None:
    """Echo requests from a peer that reads nothing: the server stops reading it."""
    hog = socket.create_connection(("127.0.0.1", connect().sock.getpeername()[1]))
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    hog.setblocking(False)
    request = _raw(b"\0REQ", T.ECHO_REQ, b"z" * 65536)
    sent = 0
    deadline = time.monotonic() + 20
    stalled_since = None
    while time.monotonic() < deadline and sent < 512 * 1024 * 1024:
        try:
            offset = sent % len(request)  # keep framing across partial sends
            sent += hog.send(request[offset:])
            stalled_since = None
        except BlockingIOError:
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > 1.0:
                break
            time.sleep(0.01)
    # Kernel buffers plus the 1 MiB write high-water mark: far below what was offered.
    assert sent < 64 * 1024 * 1024, f"the server kept reading ({sent} bytes)"
    other = connect()
    other.send(T.ECHO_REQ, b"unaffected")
    other.expect(T.ECHO_RES, b"unaffected")
    hog.close()


def test_garbage_then_disconnect_never_crashes(connect, server) -> None:
    import random

    rng = random.Random(1234)
    for _ in range(30):
        conn = Conn(server)
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        conn.send_raw(b"\0REQ" + blob if rng.random() < 0.5 else blob)
        conn.close()
    alive = connect()
    alive.send(T.ECHO_REQ, b"alive")
    alive.expect(T.ECHO_RES, b"alive")
    assert server.alive()
