"""Durability: acknowledged background jobs survive a restart of the server.

These cases restart the target (`s.restart_target()`), so they run only where gearspec can:
a server it started (`--server reference-sqlite`, `--server gearmand-sqlite`, ...) or an
external one with `--restart-command`; elsewhere they end unsupported. A server that keeps
no job at all across a restart has no persistent queue (gearmand's default builtin queue,
Perl Gearman::Server, python gear): unsupported too, unless the run was told the target has
one (`--durable`). A server that keeps some but not all,
or hands a job out twice, or brings back a job that was already completed, fails.

Sources: gearmand `libgearman-server/queue.cc` (`gearman_queue_add` before JOB_CREATED,
`gearman_queue_done` on completion; `gearman_server_queue_replay` at start-up),
`libgearman-server/plugins/queue/sqlite/instance.cc` (`Instance::add`, `Instance::done`,
`Instance::replay`: the priority is stored and replayed); gearspec reference/store.py.
"""

from __future__ import annotations

from collections.abc import Callable

from gearspec.conformance.cases._jobs import ASSIGN_TYPES, PROTOCOL, probe, sleeping_worker, status_of
from gearspec.conformance.harness import Conn, Session
from gearspec.conformance.registry import EXTENSION, CaseFunction, case

from gearspec.codec import Packet
from gearspec.spec import PacketType as T

_SOURCE = (
    f"{PROTOCOL} (background jobs: the server owns them); gearmand libgearman-server/queue.cc "
    "gearman_queue_add / gearman_queue_done / gearman_server_queue_replay"
)
_SQLITE = "gearmand libgearman-server/plugins/queue/sqlite/instance.cc Instance::add / Instance::replay (priority)"


def _restart_case(
    id: str, requirement: str, packets: list[str], source: str = _SOURCE
) -> Callable[[CaseFunction], CaseFunction]:
    """Register a durability case: an EXTENSION that restarts the target, so it runs alone."""
    return case(id, requirement, level=EXTENSION, packets=packets, source=source, serial=True, timeout=30.0)


def _take_all(s: Session, worker: Conn, limit: int) -> list[Packet]:
    """Grab until NO_JOB (or `limit` + 1 jobs, to see a duplicate); the assignments in order."""
    jobs = []
    for _ in range(limit + 1):
        worker.send(s.grab_type)
        reply = worker.expect(*ASSIGN_TYPES, T.NO_JOB, ignore=[T.NOOP], what=f"a job or NO_JOB for {s.grab_type.name}")
        if reply.type is T.NO_JOB:
            break
        jobs.append(reply)
        worker.work(T.WORK_COMPLETE, reply.handle, b"")
    return jobs


def _survivors(s: Session, fn: str, sent: list[bytes], hard: bool) -> list[bytes]:
    """Restart, then take every job of `fn`: their data in assignment order.

    The jobs are all queued at once after the restart, so each must have its own handle (a
    handle names one job: PROTOCOL, JOB_CREATED). Ends unsupported when none came back after a
    clean restart (no persistent queue); fails on a duplicate or on data that was never sent.
    """
    s.restart_target(hard=hard)
    jobs = _take_all(s, s.worker(fn), len(sent))
    handles = [job.handle for job in jobs]
    if len(set(handles)) != len(handles):
        s.fail("a distinct handle for each replayed job", f"handles {handles!r}")
    got = [job["data"] for job in jobs]
    if not got and not hard and not s.durable:
        s.unsupported(
            f"no persistent queue: none of the {len(sent)} acknowledged background jobs came back after the restart"
        )
    strangers = [d for d in got if d not in sent]
    if strangers or len(set(got)) != len(got):
        s.fail("each acknowledged job handed out once, with its data", f"got {got!r} for {sent!r}")
    return got


def _queue(s: Session, fn: str, jobs: list[tuple[T, bytes]]) -> None:
    client = s.client()
    for type, data in jobs:
        client.submit(fn, data, s.name("u"), type=type)
    client.close()


def _lost_case(number: int, topic: str, hard: bool) -> None:
    how = "killed (SIGKILL)" if hard else "stopped cleanly"

    @_restart_case(
        f"durability/{topic}/{number}",
        f"Background jobs acknowledged with JOB_CREATED are all handed out after the server is {how} and restarted",
        ["SUBMIT_JOB_BG", "JOB_CREATED", "GRAB_JOB", "JOB_ASSIGN", "NO_JOB"],
    )
    def survive(s: Session) -> None:
        if hard:
            # Show first that the queue persists at all (a clean restart keeps a job), so that
            # losing every job to SIGKILL is a failure, not "no persistent queue".
            probe_fn, probe = s.name("probe"), b"probe-" + s.token().encode()
            _queue(s, probe_fn, [(T.SUBMIT_JOB_BG, probe)])
            _survivors(s, probe_fn, [probe], hard=False)
        fn = s.name("fn")
        sent = [b"job-%d-" % i + s.token().encode() for i in range(5)]
        _queue(s, fn, [(T.SUBMIT_JOB_BG, data) for data in sent])
        got = _survivors(s, fn, sent, hard)
        lost = [d for d in sent if d not in got]
        if lost:
            s.fail(f"all {len(sent)} acknowledged jobs after the restart", f"{len(lost)} lost: {lost!r}")

    survive.__name__ = survive.__qualname__ = f"survive_{topic}"


_lost_case(1, "restart", hard=False)
_lost_case(1, "crash", hard=True)


@_restart_case(
    "durability/restart/2",
    "Queued background jobs keep their priority across a restart: HIGH_BG, then BG, then LOW_BG",
    ["SUBMIT_JOB_LOW_BG", "SUBMIT_JOB_BG", "SUBMIT_JOB_HIGH_BG", "JOB_ASSIGN"], f"{_SOURCE}; {_SQLITE}",
)
def priority_survives(s: Session) -> None:
    fn = s.name("fn")
    levels = [(T.SUBMIT_JOB_LOW_BG, b"low"), (T.SUBMIT_JOB_BG, b"normal"), (T.SUBMIT_JOB_HIGH_BG, b"high")]
    usable = [(t, d) for t, d in levels if t in s.capabilities.submits]
    if len(usable) < 2:
        refused = [t.name for t, _data in levels if t not in s.capabilities.submits]
        s.unsupported(f"needs two background priority levels; the target refused {', '.join(refused)}")
    _queue(s, fn, usable)
    got = _survivors(s, fn, [d for _, d in usable], hard=False)
    expected = [d for d in (b"high", b"normal", b"low") if d in got]
    s.check_equal(got, expected, "order of assignment after the restart")
    if len(got) < len(usable):
        s.fail(f"all {len(usable)} acknowledged jobs after the restart", f"only {got!r}")


@_restart_case(
    "durability/restart/3",
    "Background jobs completed or failed before a restart are not handed out again after it",
    ["SUBMIT_JOB_BG", "GRAB_JOB", "JOB_ASSIGN", "WORK_COMPLETE", "WORK_FAIL", "NO_JOB"],
    f"{_SOURCE} (gearman_queue_done removes the job, whatever ended it)",
)
def completed_stays_done(s: Session) -> None:
    fn = s.name("fn")
    token = s.token().encode()
    done, failed, kept = b"done-" + token, b"failed-" + token, b"kept-" + token
    _queue(s, fn, [(T.SUBMIT_JOB_BG, done), (T.SUBMIT_JOB_BG, failed), (T.SUBMIT_JOB_BG, kept)])
    worker = s.worker(fn)
    for data, ending in ((done, T.WORK_COMPLETE), (failed, T.WORK_FAIL)):
        job = worker.grab()
        s.check_equal(job["data"], data, "job in submit order")
        worker.work(ending, job.handle, *((b"",) if ending is T.WORK_COMPLETE else ()))
    worker.sync()  # the endings are processed before the restart
    got = _survivors(s, fn, [done, failed, kept], hard=False)
    back = [d for d in (done, failed) if d in got]
    if back:
        s.fail("only the job not yet ended after the restart", f"{got!r} ({b', '.join(back).decode()} came back)")
    s.check_equal(got, [kept], "jobs after the restart")


@_restart_case(
    "durability/restart/4",
    "A background job replayed after a restart still coalesces: a new submit with its unique joins it, and it runs once",
    ["SUBMIT_JOB_BG", "JOB_CREATED", "GRAB_JOB", "JOB_ASSIGN", "NO_JOB"], f"{_SOURCE}; {_SQLITE} (the unique is stored and replayed)",
)
def unique_survives(s: Session) -> None:
    fn, unique = s.name("fn"), s.name("u")
    data = b"once-" + s.token().encode()
    client = s.client()
    first = client.submit(fn, data, unique, type=T.SUBMIT_JOB_BG)
    again = client.submit(fn, data, unique, type=T.SUBMIT_JOB_BG)
    if again != first:
        s.unsupported(f"the server does not coalesce background jobs ({first!r}, {again!r}); see coalesce/unique/*")
    client.close()
    s.restart_target()
    # Other data under the same unique: which data runs tells a replayed job from a new one.
    late = b"late-" + s.token().encode()
    s.client().submit(fn, late, unique, type=T.SUBMIT_JOB_BG)
    got = [job["data"] for job in _take_all(s, s.worker(fn), 2)]
    if got == [late] and not s.durable:
        s.unsupported("no persistent queue: the job did not come back after the restart")
    s.check_equal(got, [data], "jobs run after the restart and a new submit with the same unique")


@_restart_case(
    "durability/restart/5",
    "A background job replayed after a restart is a job like any other: GET_STATUS knows it while a worker holds it, "
    "and once completed it does not come back after a second restart",
    ["SUBMIT_JOB_BG", "GRAB_JOB", "JOB_ASSIGN", "GET_STATUS", "STATUS_RES", "WORK_COMPLETE", "NO_JOB"],
    f"{_SOURCE} (gearman_server_queue_replay adds each job as a submit would)",
)
def replayed_job_is_live(s: Session) -> None:
    fn = s.name("fn")
    data = b"replayed-" + s.token().encode()
    _queue(s, fn, [(T.SUBMIT_JOB_BG, data)])
    s.restart_target()
    worker = s.worker(fn)
    worker.send(s.grab_type)
    job = worker.expect(*ASSIGN_TYPES, T.NO_JOB, ignore=[T.NOOP], what=f"a job or NO_JOB for {s.grab_type.name}")
    if job.type is T.NO_JOB:
        if not s.durable:
            s.unsupported("no persistent queue: the job did not come back after the restart")
        s.fail("the acknowledged job after the restart", "NO_JOB")
    s.check_equal(job["data"], data, "the replayed job's data")
    known_running = status_of(s, s.client(), job.handle)[:2]
    s.check_equal(known_running, (b"1", b"1"), "GET_STATUS of the replayed job (known, running)")
    worker.work(T.WORK_COMPLETE, job.handle, b"")
    worker.sync()  # the completion is processed before the second restart
    s.restart_target()
    again = [j["data"] for j in _take_all(s, s.worker(fn), 1)]
    s.check_equal(again, [], "jobs of the function after the second restart (the replayed one was completed)")


@_restart_case(
    "durability/restart/6",
    "A background job replayed after a restart keeps its unique id: a new submit with it joins the job, and GET_STATUS_UNIQUE knows it",
    ["SUBMIT_JOB_BG", "JOB_CREATED", "GET_STATUS_UNIQUE", "STATUS_RES_UNIQUE", "GRAB_JOB", "JOB_ASSIGN", "NO_JOB"],
    f"{_SOURCE} (gearman_server_queue_replay adds each job with its unique); {_SQLITE}",
)
def replayed_job_keeps_unique(s: Session) -> None:
    fn, unique = s.name("fn"), s.name("u")
    data = b"unique-" + s.token().encode()
    client = s.client()
    client.submit(fn, data, unique, type=T.SUBMIT_JOB_BG)
    client.close()
    s.restart_target()
    client = s.client()
    handle = client.submit(fn, b"again", unique, type=T.SUBMIT_JOB_BG)
    worker = s.worker(fn)
    job = worker.grab()
    if job["data"] == b"again":  # nothing came back: the new submit made its own job
        worker.work(T.WORK_COMPLETE, job.handle, b"")
        if not s.durable:
            s.unsupported("no persistent queue: the job did not come back after the restart")
        s.fail("the replayed job, joined by the new submit", "only the new submit's job")
    s.check_equal((job.handle, job["data"]), (handle, data), "the replayed job, under the handle the new submit was given")
    # Asked only now: the target has shown it keeps jobs (some servers die on packets they lack).
    events = probe(s, client, T.GET_STATUS_UNIQUE, unique)
    worker.work(T.WORK_COMPLETE, job.handle, b"")
    s.check_equal([j["data"] for j in _take_all(s, worker, 1)], [], "jobs left (the new submit joined the replayed one)")
    if events and isinstance(events[0], Packet) and events[0].type is T.STATUS_RES_UNIQUE:
        s.check_equal(events[0]["known"], b"1", "STATUS_RES_UNIQUE known for the replayed job's unique")
    else:
        s.note(f"GET_STATUS_UNIQUE not answered ({events!r}): only the join was checked")


@_restart_case(
    "durability/restart/7",
    "After a restart, the first worker to sleep (PRE_SLEEP) is woken with NOOP by a new job for it",
    ["CAN_DO", "GRAB_JOB", "NO_JOB", "PRE_SLEEP", "NOOP", "SUBMIT_JOB_BG", "JOB_ASSIGN"],
    f"{PROTOCOL} (PRE_SLEEP, NOOP); gearmand libgearman-server/job.cc gearman_server_job_queue (NOOP to sleepers)",
)
def wakes_after_restart(s: Session) -> None:
    # A fresh process: whatever the server counts about sleepers starts from nothing here.
    s.restart_target()
    fn = s.name("fn")
    worker = sleeping_worker(s, fn)
    handle = s.client().submit(fn, b"wake", s.name("u"), type=T.SUBMIT_JOB_BG)
    worker.expect(T.NOOP)
    s.check_equal(worker.grab().handle, handle, "the job after the wake-up")
