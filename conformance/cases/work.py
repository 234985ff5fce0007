"""Work updates: WORK_DATA, WORK_WARNING, WORK_STATUS, WORK_COMPLETE and WORK_FAIL.

A foreground job's updates go to every client attached to it, in the order the worker sent
them, and the job ends with exactly one WORK_COMPLETE or WORK_FAIL. Sources: gearmand
`PROTOCOL` ("Worker Requests": WORK_*; "Client Responses": forwarded for non-background
jobs); `libgearman-server/server.cc` `gearman_server_run_command` (WORK_* cases) and
`_server_queue_work_data` (one copy per attached client).
"""

from __future__ import annotations

from gearspec.conformance.cases._jobs import (
    PROTOCOL,
    QUEUE_WORK_DATA,
    RUN,
    require_coalesced,
    settle,
    start_job,
    status_of,
)
from gearspec.conformance.harness import Conn, Session
from gearspec.conformance.registry import SHOULD, case

from gearspec.codec import Packet
from gearspec.spec import PacketType as T

_FORWARD = f"{PROTOCOL} (Client Responses: WORK_*); {RUN} (WORK_*); {QUEUE_WORK_DATA}"

# (type, extra arguments the worker sends, what the client must see after the handle)
_UPDATES: list[tuple[T, tuple[object, ...], tuple[bytes, ...]]] = [
    (T.WORK_DATA, (b"chunk\0with nul",), (b"chunk\0with nul",)),
    (T.WORK_WARNING, (b"careful",), (b"careful",)),
    (T.WORK_STATUS, (3, 7), (b"3", b"7")),
    (T.WORK_COMPLETE, (b"result\xff\0",), (b"result\xff\0",)),
    (T.WORK_FAIL, (), ()),
]


def _forward_case(number: int, type: T, args: tuple[object, ...], expected: tuple[bytes, ...]) -> None:
    @case(
        f"work/forward/{number}",
        f"{type.name} from the worker reaches the foreground client with the handle and arguments unchanged",
        packets=["SUBMIT_JOB", type.name],
        source=_FORWARD,
    )
    def forward(s: Session) -> None:
        fn = s.name("fn")
        client, worker, handle, _job = start_job(s, fn, b"x")
        worker.work(type, handle, *args)
        got = client.expect(type)
        s.check_equal(tuple(got.args), (handle, *expected), f"{type.name} arguments")
        settle(worker)
        client.expect_silence(f"exactly one {type.name} for one sent")  # a duplicate is a second update (or ending)

    forward.__name__ = forward.__qualname__ = f"forward_{type.name.lower()}"


def _listeners_case(number: int, type: T, args: tuple[object, ...], expected: tuple[bytes, ...]) -> None:
    @case(
        f"work/listeners/{number}",
        f"{type.name} is forwarded to every client coalesced onto the job (three listeners)",
        level=SHOULD,
        packets=["SUBMIT_JOB", type.name],
        source=f"{_FORWARD}; {PROTOCOL} (coalescing)",
    )
    def listeners(s: Session) -> None:
        fn, unique = s.name("fn"), s.name("u")
        clients = [s.client() for _ in range(3)]
        handle = require_coalesced(s, [c.submit(fn, b"x", unique) for c in clients])
        worker = s.worker(fn)
        worker.grab()
        worker.work(type, handle, *args)
        for c in clients:
            got = c.expect(type)
            s.check_equal(tuple(got.args), (handle, *expected), f"{c.label} {type.name} arguments")
        settle(worker)
        for c in clients:
            c.expect_silence(f"exactly one {type.name} per listener")

    listeners.__name__ = listeners.__qualname__ = f"listeners_{type.name.lower()}"


for _n, (_type, _args, _expected) in enumerate(_UPDATES, start=1):
    _forward_case(_n, _type, _args, _expected)
    _listeners_case(_n, _type, _args, _expected)


@case(
    "work/order/1",
    "Updates arrive in the order the worker sent them: DATA, WARNING, STATUS, DATA, COMPLETE",
    packets=["WORK_DATA", "WORK_WARNING", "WORK_STATUS", "WORK_COMPLETE"],
    source=f"{_FORWARD} (one connection, packets in order)",
)
def order_kept(s: Session) -> None:
    fn = s.name("fn")
    client, worker, handle, _job = start_job(s, fn)
    worker.work(T.WORK_DATA, handle, b"d1")
    worker.work(T.WORK_WARNING, handle, b"w1")
    worker.work(T.WORK_STATUS, handle, 1, 2)
    worker.work(T.WORK_DATA, handle, b"d2")
    worker.work(T.WORK_COMPLETE, handle, b"end")
    got = [client.expect(T.WORK_DATA, T.WORK_WARNING, T.WORK_STATUS, T.WORK_COMPLETE) for _ in range(5)]
    names = [p.name for p in got]
    s.check_equal(names, ["WORK_DATA", "WORK_WARNING", "WORK_STATUS", "WORK_DATA", "WORK_COMPLETE"], "packet order")
    s.check_equal([got[0]["data"], got[3]["data"], got[4]["data"]], [b"d1", b"d2", b"end"], "data in order")


@case(
    "work/order/2",
    "Fifty WORK_DATA packets sent back to back all arrive, in order",
    packets=["WORK_DATA", "WORK_COMPLETE"],
    source=_FORWARD,
)
def many_data(s: Session) -> None:
    fn = s.name("fn")
    client, worker, handle, _job = start_job(s, fn)
    chunks = [b"chunk-%03d" % i for i in range(50)]
    batch = b"".join(Packet.request(T.WORK_DATA, handle, c).to_bytes() for c in chunks)
    worker.send_raw(batch + Packet.request(T.WORK_COMPLETE, handle, b"").to_bytes(), "50 x WORK_DATA + WORK_COMPLETE")
    got = [client.expect(T.WORK_DATA)["data"] for _ in chunks]
    s.check_equal(got, chunks, "WORK_DATA payloads")
    client.expect(T.WORK_COMPLETE)


def _ends_case(number: int, type: T, args: tuple[object, ...]) -> None:
    @case(
        f"work/ends/{number}",
        f"{type.name} ends the job: GET_STATUS then reports it unknown and a new grab gets NO_JOB",
        packets=[type.name, "GET_STATUS", "STATUS_RES", "NO_JOB"],
        source=f"{PROTOCOL} ({type.name}); {RUN} ({type.name}: gearman_server_job_free)",
    )
    def ends(s: Session) -> None:
        fn = s.name("fn")
        client, worker, handle, _job = start_job(s, fn)
        worker.work(type, handle, *args)
        client.expect(type)
        s.check_equal(status_of(s, client, handle)[:2], (b"0", b"0"), "known, running after the end")
        worker.grab_nothing()

    ends.__name__ = ends.__qualname__ = f"ends_{type.name.lower()}"


_ends_case(1, T.WORK_COMPLETE, (b"done",))
_ends_case(2, T.WORK_FAIL, ())


@case(
    "work/empty/1",
    "Empty WORK_DATA and empty WORK_COMPLETE payloads are forwarded as empty",
    packets=["WORK_DATA", "WORK_COMPLETE"],
    source=f"{_FORWARD}; {PROTOCOL} (Binary Packet: empty arguments)",
)
def empty_payloads(s: Session) -> None:
    fn = s.name("fn")
    client, worker, handle, _job = start_job(s, fn)
    worker.work(T.WORK_DATA, handle, b"")
    worker.work(T.WORK_COMPLETE, handle, b"")
    s.check_equal(client.expect(T.WORK_DATA)["data"], b"", "WORK_DATA data")
    s.check_equal(client.expect(T.WORK_COMPLETE)["data"], b"", "WORK_COMPLETE data")


@case(
    "work/large/1",
    "A 512 KiB WORK_COMPLETE result reaches the client intact",
    level=SHOULD,
    packets=["WORK_COMPLETE"],
    source=f"{_FORWARD}; {PROTOCOL} (Binary Packet: 32-bit size)",
)
def large_result(s: Session) -> None:
    fn = s.name("fn")
    client, worker, handle, _job = start_job(s, fn)
    data = s.rng.randbytes(512 * 1024)
    worker.work(T.WORK_COMPLETE, handle, data)
    got = client.expect(T.WORK_COMPLETE, timeout=5)
    s.check(got["data"] == data, "the 512 KiB result unchanged", f"{len(got['data'])} bytes, differing")


@case(
    "work/quiet/1",
    "The worker gets no reply to valid WORK_* updates for its own job",
    packets=["WORK_DATA", "WORK_WARNING", "WORK_STATUS", "WORK_COMPLETE"],
    source=f"{PROTOCOL} (WORK_* are notifications; no response type exists)",
)
def worker_not_answered(s: Session) -> None:
    fn = s.name("fn")
    client, worker, handle, _job = start_job(s, fn)
    worker.work(T.WORK_DATA, handle, b"d")
    worker.work(T.WORK_WARNING, handle, b"w")
    worker.work(T.WORK_STATUS, handle, 1, 1)
    worker.work(T.WORK_COMPLETE, handle, b"c")
    worker.expect_silence("no reply to the worker's updates")
    client.expect(T.WORK_COMPLETE, ignore=[T.WORK_DATA, T.WORK_WARNING, T.WORK_STATUS])


@case(
    "work/status/1",
    "WORK_STATUS numbers are stored: GET_STATUS of the running job reports them",
    packets=["WORK_STATUS", "GET_STATUS", "STATUS_RES"],
    source=f"{PROTOCOL} (WORK_STATUS: 'The job server should store this information'); {RUN}",
)
def status_stored(s: Session) -> None:
    fn = s.name("fn")
    client, worker, handle, _job = start_job(s, fn)
    worker.work(T.WORK_STATUS, handle, 25, 100)
    client.expect(T.WORK_STATUS)
    s.check_equal(status_of(s, s.client(), handle), (b"1", b"1", b"25", b"100"), "known, running, numerator, denominator")


@case(
    "work/status/2",
    "The latest of several WORK_STATUS updates is what GET_STATUS reports",
    packets=["WORK_STATUS", "GET_STATUS", "STATUS_RES"],
    source=f"{PROTOCOL} (WORK_STATUS); {RUN} (numerator/denominator overwritten)",
)
def status_latest(s: Session) -> None:
    fn = s.name("fn")
    handle = s.client().submit(fn, b"", b"", T.SUBMIT_JOB_BG)
    worker = s.worker(fn)
    worker.grab()
    for n in (1, 5, 9):
        worker.work(T.WORK_STATUS, handle, n, 10)
    settle(worker)
    s.check_equal(status_of(s, s.client(), handle)[2:], (b"9", b"10"), "numerator, denominator")


def _bystander(s: Session) -> Conn:
    conn = s.client()
    conn.submit(s.name("other"), b"unrelated")
    return conn


@case(
    "work/bystander/1",
    "A client not attached to the job receives none of its updates",
    packets=["WORK_DATA", "WORK_STATUS", "WORK_COMPLETE"],
    source=_FORWARD,
)
def bystander_silent(s: Session) -> None:
    fn = s.name("fn")
    bystander = _bystander(s)
    client, worker, handle, _job = start_job(s, fn)
    worker.work(T.WORK_DATA, handle, b"d")
    worker.work(T.WORK_STATUS, handle, 1, 2)
    worker.work(T.WORK_COMPLETE, handle, b"c")
    client.expect(T.WORK_COMPLETE, ignore=[T.WORK_DATA, T.WORK_STATUS])
    bystander.expect_silence("nothing about another client's job")
