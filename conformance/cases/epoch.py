"""SUBMIT_JOB_EPOCH: background jobs that wait for a Unix time (gearmand extension).

Sources: gearmand `PROTOCOL` (SUBMIT_JOB_EPOCH: "Just like SUBMIT_JOB_BG, but run job at
given time"); `libgearman-server/server.cc` `gearman_server_run_command` (epoch parsed with
strtoll, job added as background with `when`); `libgearman-server/gearmand_con.cc`
`gearman_server_job_take` / `gearman_server_job_peek` (skip jobs whose `when` is in the
future); `libgearman-server/job.cc` `_schedule_epoch_wakeup` (newer gearmand: NOOP to
sleepers when the time comes; 1.1.20 has no such timer).
Timed cases use an epoch 2 s ahead at most and wait on events with deadlines.
"""

from __future__ import annotations

import time

from gearspec.conformance.cases._jobs import (
    JOB_TAKE,
    PROTOCOL,
    RUN,
    grab_any,
    routed_variant,
    settle,
    sleeping_worker,
    status_of,
    submit_or_unsupported,
    submit_variant,
)
from gearspec.conformance.harness import Conn, Session, describe
from gearspec.conformance.registry import EXTENSION, SHOULD, case

from gearspec.codec import Packet
from gearspec.spec import PacketType as T

_RULE = f"{PROTOCOL} (SUBMIT_JOB_EPOCH); {RUN} (SUBMIT_JOB_EPOCH); {JOB_TAKE} (when > now: skipped)"


def _submit_epoch(s: Session, client: Conn, fn: str, when: int, data: bytes = b"epoch") -> bytes:
    return submit_or_unsupported(s, client, T.SUBMIT_JOB_EPOCH, fn, s.name("u"), when, data)


@case(
    "epoch/past/1",
    "A SUBMIT_JOB_EPOCH job whose time has passed gets JOB_CREATED and is assigned at once",
    level=EXTENSION,
    packets=["SUBMIT_JOB_EPOCH", "JOB_CREATED", "GRAB_JOB", "JOB_ASSIGN"],
    source=_RULE,
)
def epoch_in_past(s: Session) -> None:
    fn = s.name("fn")
    handle = _submit_epoch(s, s.client(), fn, int(time.time()) - 60, b"late")
    job = s.worker(fn).grab()
    s.check_equal((job.handle, job["data"]), (handle, b"late"), "assigned job")


@case(
    "epoch/future/1",
    "A SUBMIT_JOB_EPOCH job for a later time is not assigned before then (GRAB gets NO_JOB)",
    level=EXTENSION,
    packets=["SUBMIT_JOB_EPOCH", "GRAB_JOB", "NO_JOB"],
    source=_RULE,
)
def not_before_time(s: Session) -> None:
    fn = s.name("fn")
    _submit_epoch(s, s.client(), fn, int(time.time()) + 3600)
    s.worker(fn).grab_nothing()


@case(
    "epoch/future/2",
    "A pending epoch job is known to GET_STATUS (known 1, running 0)",
    level=EXTENSION,
    packets=["SUBMIT_JOB_EPOCH", "GET_STATUS", "STATUS_RES"],
    source=f"{_RULE}; {RUN} (GET_STATUS)",
)
def pending_status(s: Session) -> None:
    client = s.client()
    handle = _submit_epoch(s, client, s.name("fn"), int(time.time()) + 3600)
    s.check_equal(status_of(s, client, handle)[:2], (b"1", b"0"), "known, running")


@case(
    "epoch/future/3",
    "A pending epoch job does not hold up a normal job of the same function",
    level=EXTENSION,
    packets=["SUBMIT_JOB_EPOCH", "SUBMIT_JOB_BG", "JOB_ASSIGN", "NO_JOB"],
    source=f"{_RULE} (the scan walks past future jobs)",
)
def does_not_block_queue(s: Session) -> None:
    fn = s.name("fn")
    client = s.client()
    _submit_epoch(s, client, fn, int(time.time()) + 3600, b"later")
    handle = client.submit(fn, b"now", b"", T.SUBMIT_JOB_BG)
    worker = s.worker(fn)
    s.check_equal(worker.grab().handle, handle, "the ready job")
    worker.grab_nothing()


@case(
    "epoch/wait/1",
    "An epoch job 2 s ahead is refused to GRAB before its time and assigned once the time has come",
    level=EXTENSION,
    packets=["SUBMIT_JOB_EPOCH", "GRAB_JOB", "NO_JOB", "JOB_ASSIGN", "PRE_SLEEP"],
    source=_RULE,
    timeout=8,
)
def runs_when_due(s: Session) -> None:
    fn = s.name("fn")
    when = int(time.time()) + 2  # 1 to 2 s ahead
    handle = _submit_epoch(s, s.client(), fn, when, b"due")
    worker = s.worker(fn)
    first = grab_any(s, worker)
    if time.time() < when and first.type is not T.NO_JOB:
        s.fail("NO_JOB before the epoch", describe(first))
    # Sleep as a worker would; a server that wakes sleepers at the epoch sends NOOP early.
    worker.send(T.PRE_SLEEP)
    settle(worker)
    event = worker.receive(timeout=max(0.0, when - time.time()) + 1.5)
    if event is not None and not (isinstance(event, Packet) and event.type is T.NOOP):
        s.fail("NOOP or nothing while asleep", describe(event))
    s.check(time.time() >= when, "the epoch to have passed", f"woken {when - time.time():.2f} s early")
    job = grab_any(s, worker)
    s.check(job.type is not T.NO_JOB, "the job once its time has come", describe(job))
    s.check_equal(job.handle, handle, "assigned handle")


@case(
    "epoch/wake/1",
    "A worker asleep (PRE_SLEEP) when an epoch job falls due is woken with NOOP",
    level=SHOULD,
    packets=["SUBMIT_JOB_EPOCH", "PRE_SLEEP", "NOOP"],
    source=f"{PROTOCOL} (PRE_SLEEP: woken 'if a job comes in'); gearmand libgearman-server/job.cc _epoch_wakeup_cb (2.0)",
    timeout=8,
)
def wake_at_epoch(s: Session) -> None:
    fn = s.name("fn")
    worker = sleeping_worker(s, fn)
    when = int(time.time()) + 2
    handle = _submit_epoch(s, s.client(), fn, when)
    # A NOOP at submit time is allowed (the job is queued); the worker then finds nothing
    # and sleeps again. What matters is a NOOP once the job is due.
    for _ in range(10):
        event = worker.receive(timeout=max(0.0, when - time.time()) + 1.5)
        if event is None:
            s.fail("NOOP when the epoch arrived", "nothing within 1.5 s after the epoch")
        s.check(isinstance(event, Packet) and event.type is T.NOOP, "NOOP", describe(event))
        job = grab_any(s, worker)
        if job.type is not T.NO_JOB:
            s.check(time.time() >= when, "no assignment before the epoch", "assigned early")
            s.check_equal(job.handle, handle, "assigned handle")
            return
        s.note(f"NOOP {when - time.time():.2f} s before the epoch; GRAB got NO_JOB; sleeping again")
        worker.send(T.PRE_SLEEP)
        settle(worker)
    s.fail("the job after a NOOP", "10 NOOPs without the job")


@case(
    "epoch/background/1",
    "An epoch job is a background job: its submitter gets nothing when it completes",
    level=EXTENSION,
    packets=["SUBMIT_JOB_EPOCH", "WORK_COMPLETE"],
    source=f"{PROTOCOL} (SUBMIT_JOB_EPOCH: 'Just like SUBMIT_JOB_BG'); {RUN}",
)
def epoch_is_background(s: Session) -> None:
    fn = s.name("fn")
    client = s.client()
    handle = _submit_epoch(s, client, fn, int(time.time()) - 1)
    worker = s.worker(fn)
    worker.grab()
    worker.work(T.WORK_COMPLETE, handle, b"done")
    settle(worker)
    client.expect_silence("nothing for an epoch (background) job")


@case(
    "epoch/priority/1",
    "Epoch jobs are NORMAL jobs once due: two of them (same time, their own uniques) are assigned before a LOW job queued ahead",
    level=EXTENSION,
    packets=["SUBMIT_JOB_LOW_BG", "SUBMIT_JOB_EPOCH", "GRAB_JOB", "JOB_ASSIGN"],
    source=f"{_RULE} (priority= GEARMAN_JOB_PRIORITY_NORMAL for SUBMIT_JOB_EPOCH)",
)
def epoch_is_normal(s: Session) -> None:
    fn = s.name("fn")
    client = s.client()
    submit_variant(s, client, fn, b"low", b"", routed_variant(s, T.SUBMIT_JOB_LOW_BG))
    when = int(time.time()) - 60
    _submit_epoch(s, client, fn, when, b"epoch-1")
    _submit_epoch(s, client, fn, when, b"epoch-2")
    worker = s.worker(fn)
    s.check_equal([worker.grab()["data"] for _ in range(3)], [b"epoch-1", b"epoch-2", b"low"], "order of assignment")


@case(
    "epoch/timers/1",
    "An epoch job falls due on time while a longer CAN_DO_TIMEOUT of another job is pending",
    level=EXTENSION,
    packets=["CAN_DO_TIMEOUT", "SUBMIT_JOB_EPOCH", "GRAB_JOB", "NO_JOB", "JOB_ASSIGN"],
    source=f"{_RULE}; gearmand libgearman-server/connection.cc gearman_server_con_add_job_timeout (a timer of its own per job)",
    timeout=10,
    # Alone: any other case's timer firing meanwhile would release the job on time anyway.
    serial=True,
)
def epoch_among_timers(s: Session) -> None:
    slow_fn, fn = s.name("slow"), s.name("fn")
    holder = s.connect("holder")
    holder.send(T.CAN_DO_TIMEOUT, slow_fn, 30000)  # 30 s in milliseconds (gearmand >= 1.1.19), longer in seconds
    slow = s.client().submit(slow_fn, b"slow", type=T.SUBMIT_JOB_BG)
    held = grab_any(s, holder)
    when = int(time.time()) + 2
    handle = _submit_epoch(s, s.client(), fn, when, b"due")
    worker = s.worker(fn)
    job = grab_any(s, worker)
    while job.type is T.NO_JOB and time.time() < when + 1.5:
        settle(worker)
        worker.receive(timeout=0.2)  # pacing; a NOOP here is fine
        job = grab_any(s, worker)
    if held.type is not T.NO_JOB:
        holder.work(T.WORK_COMPLETE, slow, b"")
    s.check(job.type is not T.NO_JOB, "the epoch job within 1.5 s of its time", f"NO_JOB {time.time() - when:.1f} s after it")
    s.check(time.time() >= when, "no assignment before the epoch", "assigned early")
    s.check_equal(job.handle, handle, "assigned handle")
