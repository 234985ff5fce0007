"""Errors for work packets about jobs the sender does not hold (foreign or unknown handles).

A worker may only report on jobs assigned to it; anything else must not reach a client or
end a job. Sources: gearmand `libgearman-server/server.cc` `gearman_server_run_command`
(WORK_* look the job up with `gearman_server_job_get(..., server_con)`, which only finds
jobs held by that connection, else ERROR JOB_NOT_FOUND); Perl Gearman::Server
`lib/Gearman/Server/Client.pm` `CMD_work_*` (ERROR not_worker unless the job's worker is the
sender); `libgearman-server/server.cc` SUBMIT_JOB (unique > 64 bytes: ARGUMENT_TOO_LARGE).
"""

from __future__ import annotations

from gearspec.conformance.cases._jobs import PERL_CLIENT, PROTOCOL, RUN, probe, settle, start_job, status_of
from gearspec.conformance.harness import Session, describe
from gearspec.conformance.registry import INFO, SHOULD, case

from gearspec.admin import parse_status
from gearspec.codec import Packet
from gearspec.spec import PacketType as T

_RULE = f"{RUN} (WORK_*: gearman_server_job_get by connection, ERROR JOB_NOT_FOUND); {PERL_CLIENT} CMD_work_*"

_WORK: list[tuple[T, tuple[object, ...]]] = [
    (T.WORK_DATA, (b"data",)),
    (T.WORK_WARNING, (b"warning",)),
    (T.WORK_STATUS, (1, 2)),
    (T.WORK_COMPLETE, (b"result",)),
    (T.WORK_FAIL, ()),
    (T.WORK_EXCEPTION, (b"exception",)),
]


def _unknown_case(number: int, type: T, args: tuple[object, ...]) -> None:
    @case(
        f"errors/unknown/{number}",
        f"{type.name} for a handle the server never issued is answered with ERROR",
        level=SHOULD,
        packets=[type.name, "ERROR"],
        source=_RULE,
    )
    def unknown(s: Session) -> None:
        worker = s.worker(s.name("fn"))
        events = probe(s, worker, type, s.name("no-such-handle"), *args)
        if events is None:
            s.fail(f"ERROR for {type.name} of an unknown handle", "the connection was closed")
        if not events:
            s.fail(f"ERROR for {type.name} of an unknown handle", "nothing (silently ignored)")
        first = events[0]
        s.check(isinstance(first, Packet) and first.type is T.ERROR, "ERROR", describe(first))
        # One request, one ERROR: anything more (a second ERROR) a client would take as the
        # answer to its next request.
        if len(events) > 1:
            s.fail(f"one ERROR for {type.name} of an unknown handle", "; ".join(describe(e) for e in events))

    unknown.__name__ = unknown.__qualname__ = f"unknown_{type.name.lower()}"


for _n, (_type, _args) in enumerate(_WORK, start=1):
    _unknown_case(_n, _type, _args)


@case(
    "errors/code/1",
    "The ERROR for a work packet about an unknown job has the code JOB_NOT_FOUND",
    level=SHOULD,
    packets=["WORK_COMPLETE", "ERROR"],
    source=_RULE,
    alternatives={"other-code": "ERROR with another code (Perl Gearman::Server: not_worker)"},
)
def job_not_found_code(s: Session) -> None:
    worker = s.worker(s.name("fn"))
    events = probe(s, worker, T.WORK_COMPLETE, s.name("no-such-handle"), b"")
    first = events[0] if events else None
    if not isinstance(first, Packet) or first.type is not T.ERROR:
        s.unsupported("no ERROR to read a code from; see errors/unknown/4")
    assert first is not None
    code = first["code"]
    if code != b"JOB_NOT_FOUND":
        s.non_strict("other-code", code.decode("latin-1"))


@case(
    "errors/foreign/1",
    "WORK_COMPLETE from a worker that does not hold the job is not forwarded, and the real worker can still finish it",
    packets=["SUBMIT_JOB", "JOB_ASSIGN", "WORK_COMPLETE"],
    source=_RULE,
)
def foreign_complete(s: Session) -> None:
    fn = s.name("fn")
    client, owner, handle, _job = start_job(s, fn)
    intruder = s.worker(fn)
    intruder.work(T.WORK_COMPLETE, handle, b"forged")
    settle(intruder)
    intruder.drop_unread()  # its ERROR (if any) is graded by errors/foreign/2
    extra = client.sync()
    if extra:
        s.fail("nothing for the client from a foreign worker", "; ".join(describe(e) for e in extra))
    owner.work(T.WORK_COMPLETE, handle, b"genuine")
    s.check_equal(client.expect(T.WORK_COMPLETE)["data"], b"genuine", "result")


@case(
    "errors/foreign/2",
    "WORK_COMPLETE from a worker that does not hold the job is answered with ERROR",
    level=SHOULD,
    packets=["WORK_COMPLETE", "ERROR"],
    source=_RULE,
)
def foreign_complete_error(s: Session) -> None:
    fn = s.name("fn")
    _client, _owner, handle, _job = start_job(s, fn)
    intruder = s.worker(fn)
    intruder.work(T.WORK_COMPLETE, handle, b"forged")
    intruder.expect(T.ERROR)
    intruder.expect_silence("one ERROR for one WORK_COMPLETE")


@case(
    "errors/foreign/3",
    "WORK_DATA and WORK_STATUS from a worker that does not hold the job are not forwarded",
    packets=["WORK_DATA", "WORK_STATUS", "ERROR"],
    source=_RULE,
)
def foreign_updates(s: Session) -> None:
    fn = s.name("fn")
    client, _owner, handle, _job = start_job(s, fn)
    intruder = s.worker(fn)
    intruder.work(T.WORK_DATA, handle, b"forged")
    intruder.work(T.WORK_STATUS, handle, 9, 9)
    settle(intruder)
    extra = client.sync()
    if extra:
        s.fail("nothing for the client from a foreign worker", "; ".join(describe(e) for e in extra))
    numbers = status_of(s, client, handle)[2:]
    s.check(numbers != (b"9", b"9"), "the forged WORK_STATUS not stored", f"numerator, denominator {numbers!r}")


@case(
    "errors/queued/1",
    "WORK_COMPLETE for a job that is still queued (assigned to nobody) does not end it",
    packets=["SUBMIT_JOB", "WORK_COMPLETE", "JOB_ASSIGN"],
    source=_RULE,
)
def complete_while_queued(s: Session) -> None:
    fn = s.name("fn")
    client = s.client()
    handle = client.submit(fn, b"x")
    worker = s.worker(fn)
    worker.work(T.WORK_COMPLETE, handle, b"too early")
    settle(worker)
    worker.drop_unread()
    extra = client.sync()
    if extra:
        s.fail("nothing for the client", "; ".join(describe(e) for e in extra))
    s.check_equal(worker.grab().handle, handle, "the job, still queued")


@case(
    "errors/client/1",
    "A client cannot complete its own job: its WORK_COMPLETE is not forwarded and the job still runs",
    packets=["SUBMIT_JOB", "WORK_COMPLETE", "JOB_ASSIGN"],
    source=_RULE,
)
def client_completes(s: Session) -> None:
    fn = s.name("fn")
    client = s.client()
    handle = client.submit(fn, b"x")
    client.work(T.WORK_COMPLETE, handle, b"self-served")
    extra = client.sync()
    for event in extra:
        if isinstance(event, Packet) and event.type is T.WORK_COMPLETE:
            s.fail("no WORK_COMPLETE from the client's own packet", describe(event))
    # Nothing, or one ERROR (gearmand: JOB_NOT_FOUND, the client holds no job) both conform:
    # WORK_COMPLETE has no reply, and an ERROR is the refusal errors/unknown/* ask for.
    errors = [e for e in extra if isinstance(e, Packet) and e.type is T.ERROR]
    if extra and (len(extra) > 1 or len(errors) != 1):
        s.fail("nothing, or one ERROR, for the client's WORK_COMPLETE", "; ".join(describe(e) for e in extra))
    s.check_equal(s.worker(fn).grab().handle, handle, "the job, still queued")


@case(
    "errors/twice/1",
    "A second WORK_COMPLETE for a finished job is not forwarded: the client sees exactly one",
    packets=["WORK_COMPLETE", "ERROR"],
    source=f"{_RULE}; {PROTOCOL} (WORK_COMPLETE ends the job)",
)
def complete_twice(s: Session) -> None:
    fn = s.name("fn")
    client, worker, handle, _job = start_job(s, fn)
    worker.work(T.WORK_COMPLETE, handle, b"first")
    worker.work(T.WORK_COMPLETE, handle, b"second")
    s.check_equal(client.expect(T.WORK_COMPLETE)["data"], b"first", "result")
    settle(worker)
    extra = client.sync()
    if extra:
        s.fail("exactly one WORK_COMPLETE", "then " + "; ".join(describe(e) for e in extra))


@case(
    "errors/twice/2",
    "WORK_FAIL after WORK_COMPLETE is not forwarded (one ending per job)",
    packets=["WORK_COMPLETE", "WORK_FAIL"],
    source=f"{_RULE}; {PROTOCOL} (WORK_COMPLETE ends the job)",
)
def fail_after_complete(s: Session) -> None:
    fn = s.name("fn")
    client, worker, handle, _job = start_job(s, fn)
    worker.work(T.WORK_COMPLETE, handle, b"done")
    worker.work(T.WORK_FAIL, handle)
    client.expect(T.WORK_COMPLETE)
    settle(worker)
    extra = client.sync()
    if extra:
        s.fail("nothing after WORK_COMPLETE", "; ".join(describe(e) for e in extra))


@case(
    "errors/usable/1",
    "After WORK_DATA for an unknown handle (and its ERROR) the worker's connection still works",
    level=SHOULD,
    packets=["WORK_DATA", "ERROR", "JOB_ASSIGN"],
    source=f"{RUN} (ERROR is not fatal)",
)
def usable_after_error(s: Session) -> None:
    fn = s.name("fn")
    worker = s.worker(fn)
    events = probe(s, worker, T.WORK_DATA, s.name("no-such-handle"), b"x")
    if events is None:
        s.fail("the connection kept open", "closed after WORK_DATA for an unknown handle")
    handle = s.client().submit(fn, b"x")
    s.check_equal(worker.grab().handle, handle, "job after the ERROR")


@case(
    "errors/unique_size/1",
    "How the server answers a SUBMIT_JOB with a 200-byte unique id (gearmand: ERROR ARGUMENT_TOO_LARGE over 64)",
    level=INFO,
    packets=["SUBMIT_JOB", "JOB_CREATED", "ERROR"],
    source=f"{RUN} (SUBMIT_JOB: GEARMAN_UNIQUE_SIZE)",
)
def long_unique(s: Session) -> None:
    conn = s.client()
    unique = (s.name("u") + "-" * 200)[:200]
    events = probe(s, conn, T.SUBMIT_JOB_BG, s.name("fn"), unique, b"x")
    if events is None:
        s.info("closed the connection")
    s.info("answered: " + ("; ".join(describe(e) for e in events) or "nothing"))


@case(
    "errors/empty_function/1",
    "How the server answers a SUBMIT_JOB with an empty function name",
    level=INFO,
    packets=["SUBMIT_JOB", "JOB_CREATED", "ERROR"],
    source=f"{PROTOCOL} (function name: no rule for empty); {RUN}",
)
def empty_function(s: Session) -> None:
    conn = s.client()
    events = probe(s, conn, T.SUBMIT_JOB_BG, b"", s.name("u"), b"x")
    if events is None:
        s.info("closed the connection")
    s.info("answered: " + ("; ".join(describe(e) for e in events) or "nothing"))


@case(
    "errors/twice/3",
    "A second WORK_FAIL for a job that already failed is not forwarded, and 'status' then counts no job of its function",
    packets=["WORK_FAIL"],
    admin=["status"],
    source=f"{_RULE}; {PROTOCOL} (WORK_FAIL ends the job); gearmand libgearman-server/text.cc (status)",
)
def fail_twice(s: Session) -> None:
    fn = s.name("fn")
    client, worker, handle, _job = start_job(s, fn)
    worker.work(T.WORK_FAIL, handle)
    worker.work(T.WORK_FAIL, handle)
    client.expect(T.WORK_FAIL)
    settle(worker)
    extra = client.sync()
    if extra:
        s.fail("one WORK_FAIL", "then " + "; ".join(describe(e) for e in extra))
    if s.capabilities.admin:
        rows = [r for r in parse_status(client.admin("status")) if r.function == fn]
        s.check_equal([(r.total, r.running) for r in rows][:1], [(0, 0)], f"status TOTAL and RUNNING of {fn}")
