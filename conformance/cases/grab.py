"""Grabbing jobs: GRAB_JOB, GRAB_JOB_UNIQ, GRAB_JOB_ALL and NO_JOB.

Sources: gearmand `PROTOCOL` ("Worker Requests": GRAB_JOB, GRAB_JOB_UNIQ, GRAB_JOB_ALL;
"Worker Responses": NO_JOB, JOB_ASSIGN, JOB_ASSIGN_UNIQ, JOB_ASSIGN_ALL);
`libgearman-server/server.cc` `gearman_server_run_command` (GRAB_JOB* case: NO_JOB when
`gearman_server_job_take` finds nothing; GRAB_JOB_ALL answers JOB_ASSIGN_UNIQ for a job
without a reducer). GRAB_JOB_ALL is a gearmand extension.
"""

from __future__ import annotations

from gearspec.conformance.cases._jobs import JOB_TAKE, PROTOCOL, RUN, probe, refusal
from gearspec.conformance.harness import Conn, Session, describe
from gearspec.conformance.registry import EXTENSION, MUST, SHOULD, Level, case

from gearspec.codec import Packet
from gearspec.spec import PacketType as T

_GRAB = f"{PROTOCOL} (Worker Requests: GRAB_JOB); {RUN} (GRAB_JOB*)"


def _no_job_case(number: int, grab: T, requirement: str, setup: str, level: Level = MUST) -> None:
    @case(
        f"grab/no_job/{number}",
        requirement,
        level=level,
        packets=[grab.name, "NO_JOB"] + (["CAN_DO"] if setup != "none" else []),
        source=f"{PROTOCOL} (Worker Requests: {grab.name}; Worker Responses: NO_JOB); {RUN}",
    )
    def no_job(s: Session) -> None:
        if setup == "none":
            worker = s.connect("worker")
        elif setup == "other":
            s.client().submit(s.name("other"), b"not yours")
            worker = s.worker(s.name("fn"))
        else:
            worker = s.worker(s.name("fn"))
        if level is EXTENSION:
            events = probe(s, worker, grab)
            reason = refusal(events)
            if reason is not None:
                s.unsupported(f"{grab.name}: {reason}")
            assert events is not None
            first = events[0]
            s.check(isinstance(first, Packet) and first.type is T.NO_JOB, "NO_JOB", describe(first))
            return
        worker.grab_nothing(grab)

    no_job.__name__ = no_job.__qualname__ = f"no_job_{number}"


_no_job_case(1, T.GRAB_JOB, "GRAB_JOB with nothing queued for the worker's function gets NO_JOB", "idle")
_no_job_case(2, T.GRAB_JOB, "GRAB_JOB from a connection that registered no function gets NO_JOB", "none")
_no_job_case(3, T.GRAB_JOB, "GRAB_JOB gets NO_JOB when the only queued work is for another function", "other")
_no_job_case(4, T.GRAB_JOB_UNIQ, "GRAB_JOB_UNIQ with nothing queued gets NO_JOB", "idle")
_no_job_case(5, T.GRAB_JOB_ALL, "GRAB_JOB_ALL with nothing queued gets NO_JOB", "idle", level=EXTENSION)


def _grab_uniq_or_unsupported(s: Session, worker: Conn) -> Packet:
    """GRAB_JOB_UNIQ as a setup step: refused means unsupported (grab/uniq/1 grades it)."""
    worker.send(T.GRAB_JOB_UNIQ)
    reply = worker.expect(T.JOB_ASSIGN_UNIQ, T.ERROR, ignore=[T.NOOP])
    if reply.type is T.ERROR:
        s.unsupported(f"GRAB_JOB_UNIQ refused ({describe(reply)}); see grab/uniq/1")
    return reply


@case(
    "grab/assign/1",
    "GRAB_JOB gets JOB_ASSIGN with the job's handle, function and data",
    packets=["SUBMIT_JOB", "GRAB_JOB", "JOB_ASSIGN"],
    source=f"{_GRAB}; {PROTOCOL} (Worker Responses: JOB_ASSIGN)",
)
def grab_job_assign(s: Session) -> None:
    fn = s.name("fn")
    handle = s.client().submit(fn, b"payload\0with nul", s.name("u"))
    job = s.worker(fn).grab(T.GRAB_JOB)
    s.check_equal((job.handle, job["function"], job["data"]), (handle, fn.encode(), b"payload\0with nul"), "JOB_ASSIGN")


@case(
    "grab/uniq/1",
    "GRAB_JOB_UNIQ gets JOB_ASSIGN_UNIQ carrying the submitted unique id",
    packets=["SUBMIT_JOB", "GRAB_JOB_UNIQ", "JOB_ASSIGN_UNIQ"],
    source=f"{PROTOCOL} (GRAB_JOB_UNIQ, JOB_ASSIGN_UNIQ); {RUN}",
)
def grab_uniq(s: Session) -> None:
    fn, unique = s.name("fn"), s.name("u")
    handle = s.client().submit(fn, b"data", unique)
    job = s.worker(fn).grab(T.GRAB_JOB_UNIQ)
    s.check_equal(
        (job.handle, job["function"], job["unique"], job["data"]),
        (handle, fn.encode(), unique.encode(), b"data"),
        "JOB_ASSIGN_UNIQ",
    )


@case(
    "grab/uniq/2",
    "GRAB_JOB_UNIQ for a job submitted with an empty unique gets JOB_ASSIGN_UNIQ with an empty unique",
    level=SHOULD,
    packets=["SUBMIT_JOB", "GRAB_JOB_UNIQ", "JOB_ASSIGN_UNIQ"],
    source=f"{PROTOCOL} (unique 'may be blank'); {RUN} (copies the job's unique)",
    alternatives={"generated": "the server made up a unique id for the job"},
)
def grab_uniq_empty(s: Session) -> None:
    fn = s.name("fn")
    s.client().submit(fn, b"data", b"")
    job = _grab_uniq_or_unsupported(s, s.worker(fn))
    if job["unique"]:
        s.non_strict("generated", f"unique {job['unique']!r}")


@case(
    "grab/all/1",
    "GRAB_JOB_ALL for a plain job gets an assignment with handle, function, unique and data",
    level=EXTENSION,
    packets=["SUBMIT_JOB", "GRAB_JOB_ALL", "JOB_ASSIGN_ALL", "JOB_ASSIGN_UNIQ"],
    source=f"{PROTOCOL} (GRAB_JOB_ALL); {RUN} (no reducer: JOB_ASSIGN_UNIQ)",
    alternatives={"assign-uniq": "answered JOB_ASSIGN_UNIQ (no reducer to report), as gearmand does"},
)
def grab_all_plain(s: Session) -> None:
    fn, unique = s.name("fn"), s.name("u")
    handle = s.client().submit(fn, b"data", unique)
    worker = s.worker(fn)
    events = probe(s, worker, T.GRAB_JOB_ALL)
    reason = refusal(events)
    if reason is not None:
        s.unsupported(f"GRAB_JOB_ALL: {reason}")
    assert events is not None
    job = events[0]
    if not (isinstance(job, Packet) and job.type in (T.JOB_ASSIGN_ALL, T.JOB_ASSIGN_UNIQ)):
        s.fail("JOB_ASSIGN_ALL or JOB_ASSIGN_UNIQ", describe(job))
    s.check_equal((job.handle, job["unique"], job["data"]), (handle, unique.encode(), b"data"), job.name)
    if job.type is T.JOB_ASSIGN_UNIQ:
        s.non_strict("assign-uniq")
    s.check_equal(job["reducer"], b"", "reducer of a plain job")


@case(
    "grab/once/1",
    "A job assigned to one worker is not assigned to a second worker of the function",
    packets=["SUBMIT_JOB", "GRAB_JOB", "JOB_ASSIGN", "NO_JOB"],
    source=f"{_GRAB}; {JOB_TAKE} (the job leaves the queue)",
)
def assigned_once(s: Session) -> None:
    fn = s.name("fn")
    s.client().submit(fn, b"one")
    s.worker(fn).grab()
    s.worker(fn).grab_nothing()


@case(
    "grab/multi/1",
    "A worker registered for two functions is given the jobs of both",
    packets=["CAN_DO", "SUBMIT_JOB", "GRAB_JOB", "JOB_ASSIGN"],
    source=f"{PROTOCOL} (CAN_DO); {JOB_TAKE}",
)
def two_functions(s: Session) -> None:
    fn_a, fn_b = s.name("a"), s.name("b")
    client = s.client()
    h_a = client.submit(fn_a, b"a")
    h_b = client.submit(fn_b, b"b")
    worker = s.worker(fn_a, fn_b)
    got = {worker.grab().handle, worker.grab().handle}
    s.check_equal(got, {h_a, h_b}, "assigned handles")
    worker.grab_nothing()


@case(
    "grab/multi/2",
    "A worker may hold several jobs at once and complete them in any order",
    packets=["SUBMIT_JOB", "JOB_ASSIGN", "WORK_COMPLETE"],
    source=f"{PROTOCOL} (JOB_ASSIGN: communication about a job uses its handle)",
)
def several_jobs(s: Session) -> None:
    fn = s.name("fn")
    client = s.client()
    h1, h2 = client.submit(fn, b"1"), client.submit(fn, b"2")
    worker = s.worker(fn)
    worker.grab()
    worker.grab()
    worker.work(T.WORK_COMPLETE, h2, b"two")
    worker.work(T.WORK_COMPLETE, h1, b"one")
    got = [client.expect(T.WORK_COMPLETE) for _ in range(2)]
    s.check_equal([(p.handle, p["data"]) for p in got], [(h2, b"two"), (h1, b"one")], "results in completion order")


@case(
    "grab/mixed/1",
    "GRAB_JOB and GRAB_JOB_UNIQ can be mixed on one connection",
    packets=["GRAB_JOB", "GRAB_JOB_UNIQ", "JOB_ASSIGN", "JOB_ASSIGN_UNIQ", "NO_JOB"],
    source=f"{PROTOCOL} (Worker Requests); {RUN} (one GRAB_JOB* case)",
)
def mixed_grabs(s: Session) -> None:
    fn = s.name("fn")
    client = s.client()
    client.submit(fn, b"1", s.name("u1"))
    client.submit(fn, b"2", s.name("u2"))
    worker = s.worker(fn)
    s.check_equal(_grab_uniq_or_unsupported(s, worker)["data"], b"1", "first job")
    s.check_equal(worker.grab(T.GRAB_JOB)["data"], b"2", "second job")
    worker.grab_nothing(T.GRAB_JOB_UNIQ)
