"""ECHO_REQ / ECHO_RES: the server sends the payload back unchanged.

Sources: gearmand `PROTOCOL` (ECHO_REQ: "The server will send back an ECHO_RES packet with
the same data"; sent by clients and workers); `libgearman-server/server.cc`
`gearman_server_run_command` (ECHO_REQ reuses the packet's data).
"""

from __future__ import annotations

from gearspec.conformance.cases._jobs import PROTOCOL, RUN
from gearspec.conformance.harness import Session
from gearspec.conformance.registry import MUST, SHOULD, Level, case

from gearspec.codec import Packet
from gearspec.spec import PacketType as T

_RULE = f"{PROTOCOL} (ECHO_REQ, ECHO_RES); {RUN} (ECHO_REQ)"


def _echo_case(number: int, requirement: str, data: bytes, level: Level = MUST) -> None:
    @case(f"echo/data/{number}", requirement, level=level, packets=["ECHO_REQ", "ECHO_RES"], source=_RULE)
    def echo(s: Session) -> None:
        conn = s.client()
        conn.send(T.ECHO_REQ, data)
        got = conn.expect(T.ECHO_RES, timeout=max(s.wait, 5.0))["data"]
        s.check(got == data, f"ECHO_RES with the {len(data)} bytes sent", f"{len(got)} bytes, differing")

    echo.__name__ = echo.__qualname__ = f"echo_{number}"


_echo_case(1, "ECHO_REQ is answered with ECHO_RES carrying the same data", b"hello gearman")
_echo_case(2, "ECHO data with NUL bytes and every byte value comes back unchanged", bytes(range(256)) * 2)
_echo_case(3, "An empty ECHO_REQ gets an empty ECHO_RES", b"")
_echo_case(4, "A 1 MiB ECHO_REQ comes back unchanged", bytes(range(256)) * 4096, level=SHOULD)


@case(
    "echo/pipeline/1",
    "Twenty ECHO_REQ sent in one write are answered in order",
    packets=["ECHO_REQ", "ECHO_RES"],
    source=f"{_RULE} (replies in request order)",
)
def pipelined(s: Session) -> None:
    conn = s.client()
    payloads = [b"echo-%02d" % i for i in range(20)]
    conn.send_raw(b"".join(Packet.request(T.ECHO_REQ, p).to_bytes() for p in payloads), "20 x ECHO_REQ")
    s.check_equal([conn.expect(T.ECHO_RES)["data"] for _ in payloads], payloads, "ECHO_RES order")


@case(
    "echo/split/1",
    "An ECHO_REQ delivered one byte per write is answered once, unchanged",
    packets=["ECHO_REQ", "ECHO_RES"],
    source=f"{PROTOCOL} (Binary Packet: a byte stream); gearmand libgearman-server/io.cc gearmand_io_recv",
)
def byte_by_byte(s: Session) -> None:
    conn = s.client()
    wire = Packet.request(T.ECHO_REQ, b"slowly").to_bytes()
    for i in range(len(wire)):
        conn.send_raw(wire[i : i + 1], f"byte {i}")
    s.check_equal(conn.expect(T.ECHO_RES)["data"], b"slowly", "ECHO_RES data")
    conn.expect_silence("a single ECHO_RES")


@case(
    "echo/worker/1",
    "A worker connection (after CAN_DO) gets ECHO_RES for ECHO_REQ as well",
    packets=["CAN_DO", "ECHO_REQ", "ECHO_RES"],
    source=f"{_RULE} (ECHO_REQ is a client and worker request)",
)
def worker_echo(s: Session) -> None:
    worker = s.worker(s.name("fn"))
    worker.send(T.ECHO_REQ, b"from a worker")
    s.check_equal(worker.expect(T.ECHO_RES)["data"], b"from a worker", "ECHO_RES data")


@case(
    "echo/between/1",
    "ECHO_REQ between a SUBMIT_JOB and its JOB_CREATED keeps the reply order",
    packets=["SUBMIT_JOB", "ECHO_REQ", "JOB_CREATED", "ECHO_RES"],
    source=f"{_RULE}; {PROTOCOL} (replies in request order)",
)
def ordered_with_submit(s: Session) -> None:
    conn = s.client()
    fn = s.name("fn")
    batch = Packet.request(T.SUBMIT_JOB_BG, fn, b"", b"x").to_bytes() + Packet.request(T.ECHO_REQ, b"after").to_bytes()
    conn.send_raw(batch, "SUBMIT_JOB_BG + ECHO_REQ")
    conn.expect(T.JOB_CREATED)
    s.check_equal(conn.expect(T.ECHO_RES)["data"], b"after", "ECHO_RES data")
