"""CAN_DO_TIMEOUT: a function registered with a time limit for each job.

Sources: gearmand `PROTOCOL` (CAN_DO_TIMEOUT: "After the timeout value, the job server will
mark the job as failed and notify any listening clients"; the value is in milliseconds);
`libgearman-server/server.cc` `gearman_server_run_command` (CAN_DO_TIMEOUT registers like
CAN_DO); `libgearman-server/connection.cc` `gearman_server_con_add_job_timeout` (at least
1000 ms) and `_server_job_timeout` (gearmand *requeues* the job instead of failing it);
Perl Gearman::Server `Client.pm` `CMD_grab_job` (timer in seconds, then WORK_FAIL).
The expiry case sends a timeout of "1": 1 s for Perl (seconds), raised to 1000 ms by
gearmand, 1 ms for a server taking the value literally; in every reading it expires fast.
"""

from __future__ import annotations

import time

from gearspec.conformance.cases._jobs import (
    ASSIGN_TYPES,
    PERL_CLIENT,
    PROTOCOL,
    RUN,
    first_to_speak,
    grab_any,
    settle,
    sleeping_worker,
)
from gearspec.conformance.harness import Conn, Session, describe
from gearspec.conformance.registry import MUST, SHOULD, case

from gearspec.codec import Packet
from gearspec.spec import PacketType as T

_RULE = f"{PROTOCOL} (CAN_DO_TIMEOUT); {RUN} (CAN_DO_TIMEOUT)"
_EXPIRY = "gearmand libgearman-server/connection.cc _server_job_timeout (requeue)"


def _grab_timed(s: Session, worker: Conn) -> Packet:
    """Grab on a CAN_DO_TIMEOUT worker; unsupported when the registration did not take."""
    worker.send(s.grab_type)
    reply = worker.expect(T.NO_JOB, *ASSIGN_TYPES, ignore=[T.NOOP])
    if reply.type is T.NO_JOB:
        s.unsupported("CAN_DO_TIMEOUT did not register the function (GRAB got NO_JOB); see timeout/register/1")
    return reply


def _overrun(s: Session) -> tuple[Conn, Conn, bytes, Packet, Conn, Conn | None]:
    """A job held past a 1 s CAN_DO_TIMEOUT while a standby worker sleeps on its function.

    Returns the timed worker, the client, the job's handle, the assignment, the standby
    worker, and which of client and standby spoke first within 3 s (None: neither).
    """
    fn = s.name("fn")
    slow = s.connect("worker")
    slow.send(T.CAN_DO_TIMEOUT, fn, 1)
    client = s.client()
    handle = client.submit(fn, b"too slow")
    assigned = _grab_timed(s, slow)
    standby = sleeping_worker(s, fn)
    return slow, client, handle, assigned, standby, first_to_speak(s, [client, standby], timeout=3.0)


def _nothing_after_expiry(s: Session, standby: Conn, handle: bytes, grade_wakeup: bool = True) -> None:
    """Neither WORK_FAIL nor a wake-up came: was the job requeued without waking anyone?"""
    standby.send(s.grab_type)
    reply = standby.expect(T.NO_JOB, *ASSIGN_TYPES, ignore=[T.NOOP])
    if reply.type is not T.NO_JOB and reply.handle == handle:
        if not grade_wakeup:  # timeout/expiry/1 grades the missing NOOP
            s.non_strict("requeue", "requeued without a NOOP to the sleeping worker")
        s.fail("NOOP to the sleeping worker when the expired job was requeued", "no NOOP; a GRAB found the job")
    s.fail("WORK_FAIL to the client (or the job requeued) within 3 s of a 1 s timeout", "nothing")


def _late_complete_reaches_nobody(s: Session, slow: Conn, client: Conn, handle: bytes) -> None:
    """The expired job was requeued: it is no longer the timed-out worker's, so that worker's
    late WORK_COMPLETE must not end it under the client (gearmand answers ERROR JOB_NOT_FOUND)."""
    slow.work(T.WORK_COMPLETE, handle, b"late")
    settle(slow)
    extra = client.sync()
    if extra:
        s.fail("nothing for the client from the worker whose job was requeued", "; ".join(describe(e) for e in extra))


@case(
    "timeout/register/1",
    "CAN_DO_TIMEOUT registers the function like CAN_DO: the worker is assigned its jobs",
    packets=["CAN_DO_TIMEOUT", "SUBMIT_JOB", "GRAB_JOB", "JOB_ASSIGN"],
    source=_RULE,
)
def registers(s: Session) -> None:
    fn = s.name("fn")
    worker = s.connect("worker")
    worker.send(T.CAN_DO_TIMEOUT, fn, 60000)
    handle = s.client().submit(fn, b"x")
    s.check_equal(worker.grab().handle, handle, "assigned handle")


@case(
    "timeout/register/2",
    "CAN_DO_TIMEOUT gets no reply",
    packets=["CAN_DO_TIMEOUT"],
    source=f"{_RULE} (no response type exists)",
)
def silent(s: Session) -> None:
    worker = s.connect("worker")
    worker.send(T.CAN_DO_TIMEOUT, s.name("fn"), 60000)
    worker.expect_silence("no reply to CAN_DO_TIMEOUT")


@case(
    "timeout/complete/1",
    "A job completed within its CAN_DO_TIMEOUT limit ends normally, with one WORK_COMPLETE",
    packets=["CAN_DO_TIMEOUT", "JOB_ASSIGN", "WORK_COMPLETE"],
    source=_RULE,
)
def completes_in_time(s: Session) -> None:
    fn = s.name("fn")
    worker = s.connect("worker")
    worker.send(T.CAN_DO_TIMEOUT, fn, 60000)
    client = s.client()
    handle = client.submit(fn, b"x")
    _grab_timed(s, worker)
    worker.work(T.WORK_COMPLETE, handle, b"in time")
    s.check_equal(client.expect(T.WORK_COMPLETE)["data"], b"in time", "result")
    worker.expect_silence("no error for a job completed in time")


@case(
    "timeout/complete/2",
    "A background job completed within its 1 s CAN_DO_TIMEOUT is not run again once the second has passed",
    level=SHOULD,
    packets=["CAN_DO_TIMEOUT", "SUBMIT_JOB_BG", "JOB_ASSIGN", "WORK_COMPLETE", "GRAB_JOB", "NO_JOB"],
    source=f"{_RULE}; {_EXPIRY} (only a job still held expires)",
    timeout=10,
    # gearmand 1.1.20's timer fires on the freed job and, in 2 full runs of 3, leaves the
    # server running but answering no one: every case after it would be blamed.
    destructive=True,
)
def completed_does_not_expire(s: Session) -> None:
    fn = s.name("fn")
    worker = s.connect("worker")
    worker.send(T.CAN_DO_TIMEOUT, fn, 1)
    handle = s.client().submit(fn, b"quick", type=T.SUBMIT_JOB_BG)
    s.check_equal(_grab_timed(s, worker).handle, handle, "assigned handle")
    worker.work(T.WORK_COMPLETE, handle, b"done")
    worker.sync()
    event = worker.receive(timeout=2.0)  # past the limit (1 s, or 1000 ms as gearmand raises it)
    if event is not None:
        s.fail("nothing for the worker after its job completed", describe(event))
    worker.send(s.grab_type)
    reply = worker.expect(T.NO_JOB, *ASSIGN_TYPES, ignore=[T.NOOP])
    if reply.type is not T.NO_JOB:
        s.fail("NO_JOB (the completed job is not run again)", describe(reply))


@case(
    "timeout/expiry/1",
    "When a job outlives its CAN_DO_TIMEOUT, the server fails it: the client gets WORK_FAIL",
    level=SHOULD,
    packets=["CAN_DO_TIMEOUT", "SUBMIT_JOB", "JOB_ASSIGN", "WORK_FAIL", "PRE_SLEEP", "NOOP"],
    source=f"{_RULE}; {_EXPIRY}; {PERL_CLIENT} CMD_grab_job (timer -> WORK_FAIL)",
    alternatives={"requeue": "the job was put back in the queue for another worker (gearmand 1.1)"},
    timeout=15,
)
def expiry(s: Session) -> None:
    _slow, client, handle, assigned, standby, first = _overrun(s)
    s.check_equal(assigned.handle, handle, "assigned handle")
    if first is None:
        _nothing_after_expiry(s, standby, handle)
    elif first is standby:
        standby.expect(T.NOOP)
        again = standby.grab()
        s.check_equal(again.handle, handle, "requeued handle")
        s.non_strict("requeue", "a standby worker was woken and given the same job")
    event = client.receive()
    if not (isinstance(event, Packet) and event.type is T.WORK_FAIL):
        s.fail("WORK_FAIL", describe(event) if event is not None else "nothing")
    s.check_equal(event.handle, handle, "WORK_FAIL handle")


@case(
    "timeout/expiry/2",
    "A late WORK_COMPLETE after the timeout does not give the client a second ending",
    level=SHOULD,
    packets=["CAN_DO_TIMEOUT", "WORK_FAIL", "WORK_COMPLETE"],
    source=f"{_RULE}; {_EXPIRY}",
    alternatives={"requeue": "the job was requeued rather than failed (gearmand 1.1); the late WORK_COMPLETE still reached nobody"},
    timeout=15,
)
def late_complete(s: Session) -> None:
    slow, client, handle, _, standby, first = _overrun(s)
    if first is None:
        standby.send(s.grab_type)
        reply = standby.expect(T.NO_JOB, *ASSIGN_TYPES, ignore=[T.NOOP])
        if reply.type is T.NO_JOB or reply.handle != handle:
            _nothing_after_expiry(s, standby, handle, grade_wakeup=False)
        _late_complete_reaches_nobody(s, slow, client, handle)
        s.non_strict("requeue", "requeued without a NOOP to the sleeping worker")
    elif first is standby:
        _late_complete_reaches_nobody(s, slow, client, handle)
        s.non_strict("requeue", "a standby worker was woken instead of the client getting WORK_FAIL")
    event = client.receive()
    if not (isinstance(event, Packet) and event.type is T.WORK_FAIL):
        s.fail("WORK_FAIL", describe(event))
    slow.work(T.WORK_COMPLETE, handle, b"late")
    settle(slow)
    extra = client.sync()
    if extra:
        s.fail("nothing after WORK_FAIL", "; ".join(describe(e) for e in extra))


@case(
    "timeout/register/3",
    "CANT_DO removes a function registered with CAN_DO_TIMEOUT",
    level=SHOULD,
    packets=["CAN_DO_TIMEOUT", "CANT_DO", "GRAB_JOB", "NO_JOB"],
    source=f"{_RULE}; {PROTOCOL} (CANT_DO)",
)
def cant_do_after_timeout(s: Session) -> None:
    fn = s.name("fn")
    worker = s.connect("worker")
    worker.send(T.CAN_DO_TIMEOUT, fn, 60000)
    worker.send(T.CANT_DO, fn)
    s.client().submit(fn, b"x")
    worker.grab_nothing()


@case(
    "timeout/attempt/1",
    "A job requeued when its worker left gets a fresh CAN_DO_TIMEOUT limit with its next worker: the old worker's deadline does not end it",
    level=SHOULD,
    packets=["CAN_DO_TIMEOUT", "SUBMIT_JOB", "JOB_ASSIGN", "WORK_COMPLETE"],
    source=f"{_RULE}; gearmand libgearman-server/connection.cc gearman_server_con_add_job_timeout (one timer per assignment)",
    timeout=10,
)
def fresh_limit_after_requeue(s: Session) -> None:
    fn = s.name("fn")
    first, second = s.connect("first"), s.connect("second")
    for worker in (first, second):
        worker.send(T.CAN_DO_TIMEOUT, fn, 1)  # 1 s, or 1 ms that gearmand raises to 1000 ms
    client = s.client()
    handle = client.submit(fn, b"twice")
    started = time.monotonic()
    s.check_equal(_grab_timed(s, first).handle, handle, "assigned handle")
    first.receive(timeout=0.5)  # pacing: half the first limit gone
    first.close()
    while True:  # until the server has processed the close and requeued the job
        job = grab_any(s, second)
        regrabbed = time.monotonic()
        if job.type is not T.NO_JOB or regrabbed > started + 0.9:
            break
        second.receive(timeout=0.05)  # pacing between polls
    if job.type is T.NO_JOB or regrabbed > started + 0.9:
        s.unsupported(f"the requeue took over 0.9 s ({describe(job)}): too late to tell the two deadlines apart")
    s.check_equal(job.handle, handle, "the requeued job for the second worker")
    # Past the first assignment's deadline, well within the second's.
    second.receive(timeout=max(0.0, started + 1.25 - time.monotonic()))
    if time.monotonic() > regrabbed + 0.9:
        s.unsupported("a slow turn: no margin left in the second worker's limit to tell the deadlines apart")
    second.work(T.WORK_COMPLETE, handle, b"in time")
    event = client.receive()
    s.check(isinstance(event, Packet) and event.type is T.WORK_COMPLETE and event["data"] == b"in time",
            "WORK_COMPLETE from the second worker", describe(event) if event else "nothing")


@case(
    "timeout/register/4",
    "A CAN_DO_TIMEOUT worker that sends two GRAB_JOB in one write gets two jobs (two limits start at the same instant)",
    level=SHOULD,
    packets=["CAN_DO_TIMEOUT", "SUBMIT_JOB_BG", "GRAB_JOB", "JOB_ASSIGN", "WORK_COMPLETE"],
    source=f"{_RULE}; gearmand libgearman-server/connection.cc gearman_server_con_add_job_timeout (one timer per assignment)",
    # Alone, with a short limit: its two deadlines are then the earliest a server has pending,
    # so a server that cannot keep two equal deadlines apart meets them side by side.
    serial=True,
)
def two_grabs_one_write(s: Session) -> None:
    fn = s.name("fn")
    worker = s.connect("worker")
    worker.send(T.CAN_DO_TIMEOUT, fn, 2)  # 2 s, or 2 ms that gearmand raises to 1000 ms; completed at once
    client = s.client()
    handles = {client.submit(fn, b"job-%d" % i, type=T.SUBMIT_JOB_BG) for i in range(2)}
    grab = Packet.request(s.grab_type).to_bytes()
    worker.send_raw(grab + grab, f"two {s.grab_type.name} in one write")
    got = [worker.expect(T.NO_JOB, *ASSIGN_TYPES, ignore=[T.NOOP]) for _ in range(2)]
    if got[0].type is T.NO_JOB:
        s.unsupported("CAN_DO_TIMEOUT did not register the function (GRAB got NO_JOB); see timeout/register/1")
    s.check_equal({p.handle for p in got if p.type is not T.NO_JOB}, handles, "the handles assigned")
    for handle in handles:
        worker.work(T.WORK_COMPLETE, handle, b"")


@case(
    "timeout/none/1",
    "A worker registered with plain CAN_DO has no time limit: a job it holds for 1.5 s ends with its WORK_COMPLETE",
    level=MUST,
    packets=["CAN_DO", "SUBMIT_JOB", "JOB_ASSIGN", "WORK_COMPLETE"],
    source=f"{PROTOCOL} (CAN_DO: no timeout; CAN_DO_TIMEOUT sets one); {RUN} (CAN_DO: gearman_server_worker_add with timeout 0)",
)
def no_limit_without_timeout(s: Session) -> None:
    fn = s.name("fn")
    client = s.client()
    handle = client.submit(fn, b"take your time", s.name("u"))
    worker = s.worker(fn)
    s.check_equal(worker.grab().handle, handle, "assigned handle")
    worker.receive(timeout=1.5)  # holding the job past the 1 s a CAN_DO_TIMEOUT minimum would allow
    worker.work(T.WORK_COMPLETE, handle, b"done")
    event = client.receive()
    s.check(isinstance(event, Packet) and event.type is T.WORK_COMPLETE and event["data"] == b"done",
            "WORK_COMPLETE after 1.5 s", describe(event) if event else "nothing")
