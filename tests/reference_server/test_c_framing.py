"""The server frames through the core's Decoder; with its C core it serves exactly as with pure Python.

Two servers run side by side, one with the C loop and one with GEARSPEC_PURE_PYTHON=1. The
same seeded byte streams -- valid requests, flawed frames (wrong magic, unknown types, wrong
argument counts, non-decimal numbers), admin lines -- go to both, cut at the same points, each
on one connection; every byte each server writes back must be the same, and so must whether
it closed the connection.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from gearspec.conformance.servers import RunningServer, start_local
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gearspec import codec
from gearspec.codec import Packet
from gearspec.spec import Magic, PacketType
from gearspec.strategies import chunkings, packets

from .conftest import SERVE

pytestmark = pytest.mark.skipif(not codec.ACCELERATED, reason="gearspec._speedups is not built here")

# Types whose replies depend on time (epoch jobs, CAN_DO_TIMEOUT expiry) are left out: the
# two servers must see the same inputs and nothing else.
_TIMED = {PacketType.SUBMIT_JOB_EPOCH, PacketType.SUBMIT_JOB_SCHED, PacketType.CAN_DO_TIMEOUT}
_FUNCTIONS = [b"f1", b"f2"]


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[RunningServer, RunningServer]]:
    argv = [*SERVE, "--queue", "memory"]
    with_c = start_local(argv, name="serve-c")
    pure = start_local(argv, name="serve-py", env={"GEARSPEC_PURE_PYTHON": "1"})
    try:
        yield with_c, pure
    finally:
        with_c.stop()
        pure.stop()


def _frame(magic: bytes, code: int, payload: bytes) -> bytes:
    return magic + code.to_bytes(4, "big") + len(payload).to_bytes(4, "big") + payload


_valid = packets(Magic.REQ).filter(lambda p: p.type not in _TIMED).map(lambda p: p.to_bytes())
_jobs = st.one_of(
    st.builds(lambda f, d: Packet.request("SUBMIT_JOB", f, b"", d).to_bytes(), st.sampled_from(_FUNCTIONS),
              st.binary(max_size=64)),
    st.builds(lambda f: Packet.request("CAN_DO", f).to_bytes(), st.sampled_from(_FUNCTIONS)),
    st.just(Packet.request("GRAB_JOB_UNIQ").to_bytes()),
    st.just(Packet.request("PRE_SLEEP").to_bytes()),
    st.builds(lambda n, d: Packet.request("WORK_COMPLETE", b"H:gearspec:%d" % n, d).to_bytes(),
              st.integers(1, 40), st.binary(max_size=20)),
)
_flawed = st.builds(
    _frame,
    st.sampled_from([b"\0REQ", b"\0REQ", b"\0RES"]),
    st.sampled_from([0, 1, 5, 7, 12, 13, 16, 22, 42, 43, 99]),
    st.one_of(st.binary(max_size=24), st.sampled_from([b"a\0b", b"h\0x\0y", b"h\0", b"\0\0\0\0"])),
)
# Flaws right at the fast path's edges: each is one check the C loop must make as Python does.
_edges = st.sampled_from([
    _frame(b"\x00REQ", 12, b"H:gearspec:1\x00x\x00100"),   # WORK_STATUS, numerator not decimal
    _frame(b"\x00REQ", 12, b"H:gearspec:1\x00\x00100"),    # WORK_STATUS, empty numerator
    _frame(b"\x00REQ", 12, b"H:gearspec:1\x00001\x00002\x00003"),  # WORK_STATUS, one argument too many
    _frame(b"\x00REQ", 7, b"f1\x00"),                      # SUBMIT_JOB, one argument short
    _frame(b"\x00REQ", 1, b"f1\x00f2"),                     # CAN_DO, NUL inside the function name
    _frame(b"\x00REQ", 9, b"x"),                          # GRAB_JOB with a payload
    _frame(b"\x00RES", 7, b"f1\x00\x00data"),                # SUBMIT_JOB with RES magic
    _frame(b"\x00REQ", 8, b"H:gearspec:1"),               # JOB_CREATED sent to a server
])
_admin = st.sampled_from([b"status\n", b"prioritystatus\r\n", b"version\n", b"show jobs\n", b"nonsense\n"])
_streams = st.lists(st.one_of(_valid, _jobs, _jobs, _flawed, _edges, _admin), min_size=1, max_size=25).map(b"".join)

_MARK = Packet.request("ECHO_REQ", b"end-of-stream").to_bytes()
_MARK_REPLY = Packet.response("ECHO_RES", b"end-of-stream").to_bytes()


def _exchange(server: RunningServer, chunks: list[bytes]) -> tuple[bytes, bool]:
    """Everything the server writes back, up to the echo of the end mark or its close."""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for chunk in chunks:
                sock.sendall(chunk)
            sock.sendall(_MARK)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed after a fatal flaw: what it wrote before still counts
        received = b""
        deadline = time.monotonic() + 10
        while not received.endswith(_MARK_REPLY):
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                data = sock.recv(1 << 16)
            except ConnectionResetError:
                data = b""
            if not data:
                return received, True
            received += data
        return received, False


@settings(max_examples=150, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_c_and_python_framing_serve_the_same(servers: tuple[RunningServer, RunningServer], data: st.DataObject) -> None:
    wire = data.draw(_streams)
    chunks = data.draw(chunkings(wire))
    with_c, pure = servers
    assert _exchange(with_c, chunks) == _exchange(pure, chunks)
