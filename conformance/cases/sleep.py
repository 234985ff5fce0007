"""Sleeping workers: PRE_SLEEP and the NOOP wake-up.

Sources: gearmand `PROTOCOL` ("Worker Requests": PRE_SLEEP; "Worker Responses": NOOP);
`libgearman-server/server.cc` `gearman_server_run_command` (PRE_SLEEP: NOOP at once when
`gearman_server_job_peek` finds work, else sleep; GRAB_JOB* clears the sleep and noop-sent
flags); `libgearman-server/job.cc` `gearman_server_job_queue` (NOOP to each sleeping worker
of the function that has not had one yet).
"""

from __future__ import annotations

from gearspec.conformance.cases._jobs import PROTOCOL, RUN, settle, sleeping_worker, submit_variant
from gearspec.conformance.harness import Session, describe
from gearspec.conformance.registry import MUST, SHOULD, case

from gearspec.spec import PacketType as T

_SLEEP = f"{PROTOCOL} (PRE_SLEEP, NOOP); {RUN} (PRE_SLEEP)"
_QUEUE = "gearmand libgearman-server/job.cc gearman_server_job_queue (NOOP to sleepers)"


def _wake_case(number: int, type: T, requirement: str) -> None:
    @case(
        f"sleep/noop/{number}",
        requirement,
        level=MUST,
        packets=["PRE_SLEEP", "NOOP", type.name, "GRAB_JOB", "JOB_ASSIGN"],
        source=f"{_SLEEP}; {_QUEUE}",
    )
    def wake(s: Session) -> None:
        fn = s.name("fn")
        worker = sleeping_worker(s, fn)
        handle = submit_variant(s, s.client(), fn, b"wake", b"", type)
        worker.expect(T.NOOP)
        s.check_equal(worker.grab().handle, handle, "job after the wake-up")

    wake.__name__ = wake.__qualname__ = f"wake_{number}"


_wake_case(1, T.SUBMIT_JOB, "A sleeping worker gets NOOP when a job for its function is submitted")
_wake_case(2, T.SUBMIT_JOB_BG, "A background job wakes a sleeping worker with NOOP too")
_wake_case(3, T.SUBMIT_JOB_LOW, "A LOW priority job wakes a sleeping worker with NOOP")


@case(
    "sleep/noop/4",
    "PRE_SLEEP while a job for the worker is already queued is answered with NOOP at once",
    level=SHOULD,
    packets=["PRE_SLEEP", "NOOP", "SUBMIT_JOB"],
    source=f"{RUN} (PRE_SLEEP: gearman_server_job_peek finds work, NOOP 'the result of a race condition')",
)
def noop_when_work_waits(s: Session) -> None:
    fn = s.name("fn")
    s.client().submit(fn, b"waiting")
    worker = s.worker(fn)
    worker.send(T.PRE_SLEEP)
    worker.expect(T.NOOP)


@case(
    "sleep/noop/8",
    "PRE_SLEEP while only a HIGH or only a LOW job for the worker is queued is answered with NOOP at once",
    level=SHOULD,
    packets=["PRE_SLEEP", "NOOP", "SUBMIT_JOB_HIGH", "SUBMIT_JOB_LOW"],
    source=f"{RUN} (PRE_SLEEP: gearman_server_job_peek looks at every priority)",
)
def noop_when_high_or_low_waits(s: Session) -> None:
    types = [t for t in (T.SUBMIT_JOB_HIGH, T.SUBMIT_JOB_LOW) if t in s.capabilities.submits]
    if not types:
        s.unsupported("the target refused SUBMIT_JOB_HIGH and SUBMIT_JOB_LOW")
    for type in types:
        fn = s.name(type.name.lower())
        # A unique id of its own: rustygeard coalesces jobs on the empty unique (coalesce/* grades that).
        s.client().submit(fn, b"waiting", s.name("u"), type)
        worker = s.worker(fn)
        worker.send(T.PRE_SLEEP)
        worker.expect(T.NOOP, what=f"NOOP for PRE_SLEEP with a {type.name} job queued")


@case(
    "sleep/noop/5",
    "A sleeping worker of another function gets no NOOP for a job it cannot do",
    level=SHOULD,
    packets=["PRE_SLEEP", "SUBMIT_JOB", "NOOP"],
    source=f"{PROTOCOL} (PRE_SLEEP: 'a job ... the worker is able to perform'); {_QUEUE}",
)
def no_wake_for_other_function(s: Session) -> None:
    fn, other = s.name("fn"), s.name("other")
    bystander = sleeping_worker(s, other)
    s.client().submit(fn, b"not for the bystander")
    bystander.expect_silence("no NOOP for another function's job")


@case(
    "sleep/noop/6",
    "Two jobs submitted while a worker sleeps give it one NOOP, not two",
    level=SHOULD,
    packets=["PRE_SLEEP", "SUBMIT_JOB", "NOOP"],
    source=f"{_QUEUE} (is_noop_sent: one NOOP per sleep)",
)
def one_noop_per_sleep(s: Session) -> None:
    fn = s.name("fn")
    worker = sleeping_worker(s, fn)
    client = s.client()
    client.submit(fn, b"1")
    client.submit(fn, b"2")
    worker.expect(T.NOOP)
    worker.expect_silence("no second NOOP in one sleep")


@case(
    "sleep/noop/7",
    "Every sleeping worker of the function is woken by a new job",
    level=SHOULD,
    packets=["PRE_SLEEP", "SUBMIT_JOB", "NOOP"],
    source=f"{_QUEUE} (walks the function's workers; --worker-wakeup 0 = all)",
    alternatives={"wake-one": "only some sleeping workers were woken (e.g. gearmand --worker-wakeup=1)"},
)
def all_sleepers_woken(s: Session) -> None:
    fn = s.name("fn")
    sleepers = [sleeping_worker(s, fn) for _ in range(3)]
    s.client().submit(fn, b"for someone")
    woken = 0
    for worker in sleepers:
        extra = worker.sync()
        if [getattr(e, "name", "") for e in extra] not in ([], ["NOOP"]):
            s.fail(f"one NOOP (or nothing) for {worker.label}", "; ".join(describe(e) for e in extra))
        woken += len(extra)
    if woken == 0:
        s.fail("NOOP to the sleeping workers", "no worker got NOOP")
    if woken < len(sleepers):
        s.non_strict("wake-one", f"{woken} of {len(sleepers)} woken")


@case(
    "sleep/cycle/1",
    "After a NOOP, a grab and a new PRE_SLEEP, the next job wakes the worker again",
    packets=["PRE_SLEEP", "NOOP", "GRAB_JOB", "NO_JOB", "JOB_ASSIGN", "WORK_COMPLETE"],
    source=f"{_SLEEP} (GRAB_JOB* resets the sleep state)",
)
def sleep_cycle(s: Session) -> None:
    fn = s.name("fn")
    worker = sleeping_worker(s, fn)
    client = s.client()
    for round_ in range(3):
        handle = client.submit(fn, b"round %d" % round_)
        worker.expect(T.NOOP)
        job = worker.grab()
        worker.work(T.WORK_COMPLETE, job.handle, b"")
        s.check_equal(client.expect(T.WORK_COMPLETE).handle, handle, f"round {round_ + 1} result")
        worker.grab_nothing()
        worker.send(T.PRE_SLEEP)
        settle(worker)


@case(
    "sleep/awake/1",
    "A worker that never sent PRE_SLEEP gets no NOOP, only the job when it grabs",
    level=SHOULD,
    packets=["SUBMIT_JOB", "NOOP", "GRAB_JOB", "JOB_ASSIGN"],
    source=f"{PROTOCOL} (NOOP wakes a *sleeping* worker); {_QUEUE} (only is_sleeping connections)",
    alternatives={"noop-anyway": "sent NOOP to a worker that was not asleep (harmless to most workers)"},
)
def awake_worker_no_noop(s: Session) -> None:
    fn = s.name("fn")
    worker = s.worker(fn)
    settle(worker)
    handle = s.client().submit(fn, b"x")
    extra = worker.sync()
    if extra:
        if all(getattr(e, "name", "") == "NOOP" for e in extra):
            s.non_strict("noop-anyway")
        s.fail("nothing before the grab", "; ".join(describe(e) for e in extra))
    s.check_equal(worker.grab().handle, handle, "grabbed job")


@case(
    "sleep/echo/1",
    "A sleeping worker's connection still answers a round trip (ECHO_REQ, or GET_STATUS without ECHO) and is woken afterwards",
    level=SHOULD,
    packets=["PRE_SLEEP", "ECHO_REQ", "ECHO_RES", "NOOP"],
    source=f"{PROTOCOL} (ECHO_REQ from client or worker); {_SLEEP}",
)
def sleeping_echo(s: Session) -> None:
    fn = s.name("fn")
    worker = sleeping_worker(s, fn)
    worker.send(s.barrier_request(b"are you asleep"))
    worker.round_trip(b"are you asleep")
    s.client().submit(fn, b"x")
    worker.expect(T.NOOP)


@case(
    "sleep/multi/1",
    "A worker sleeping on two functions is woken by a job for either",
    level=MUST,
    packets=["CAN_DO", "PRE_SLEEP", "NOOP", "SUBMIT_JOB"],
    source=f"{_SLEEP}; {_QUEUE}",
)
def wake_second_function(s: Session) -> None:
    fn_a, fn_b = s.name("a"), s.name("b")
    worker = sleeping_worker(s, fn_a, fn_b)
    s.client().submit(fn_b, b"for b")
    worker.expect(T.NOOP)
    s.check_equal(worker.grab()["function"], fn_b.encode(), "function of the job")


@case(
    "sleep/noop/9",
    "A worker that goes to sleep right after CAN_DO, without a GRAB first, gets NOOP when a job for it is submitted",
    level=SHOULD,
    packets=["CAN_DO", "PRE_SLEEP", "NOOP", "SUBMIT_JOB", "GRAB_JOB", "JOB_ASSIGN"],
    source=f"{_SLEEP} (PRE_SLEEP needs no GRAB before it); {_QUEUE}",
)
def sleep_before_any_grab(s: Session) -> None:
    fn = s.name("fn")
    worker = s.connect("worker")
    worker.send(T.CAN_DO, fn)
    worker.send(T.PRE_SLEEP)
    settle(worker)
    handle = s.client().submit(fn, b"wake", s.name("u"))  # its own unique: only the wake-up is graded here
    worker.expect(T.NOOP)
    s.check_equal(worker.grab().handle, handle, "job after the wake-up")
