"""Worker abilities: CAN_DO, CANT_DO and RESET_ABILITIES.

Sources: gearmand `PROTOCOL` ("Worker Requests": CAN_DO, CANT_DO, RESET_ABILITIES; none has
a response); `libgearman-server/server.cc` `gearman_server_run_command` (CAN_DO ->
`gearman_server_worker_add`, CANT_DO -> `gearman_server_con_free_worker`, RESET_ABILITIES ->
`gearman_server_con_free_workers`); `libgearman-server/text.cc` (status: available workers).
"""

from __future__ import annotations

from gearspec.conformance.cases._jobs import PROTOCOL, RUN, settle
from gearspec.conformance.harness import Conn, Session, describe
from gearspec.conformance.registry import SHOULD, case

from gearspec.admin import parse_status
from gearspec.codec import Packet
from gearspec.spec import PacketType as T

_RULE = f"{PROTOCOL} (Worker Requests); {RUN}"


@case(
    "abilities/can_do/1",
    "CAN_DO, CANT_DO and RESET_ABILITIES get no reply",
    packets=["CAN_DO", "CANT_DO", "RESET_ABILITIES"],
    source=f"{_RULE} (no response types exist)",
)
def no_replies(s: Session) -> None:
    fn_a, fn_b = s.name("a"), s.name("b")
    worker = s.connect("worker")
    worker.send(T.CAN_DO, fn_a)
    worker.send(T.CAN_DO, fn_b)
    worker.send(T.CANT_DO, fn_a)
    worker.send(T.RESET_ABILITIES)
    worker.expect_silence("no reply to ability changes")


@case(
    "abilities/can_do/2",
    "CAN_DO twice for one function is harmless: its job is assigned once",
    level=SHOULD,
    packets=["CAN_DO", "JOB_ASSIGN", "NO_JOB"],
    source=f"{RUN} (gearman_server_worker_add finds the existing registration)",
)
def can_do_twice(s: Session) -> None:
    fn = s.name("fn")
    worker = s.worker(fn, fn)
    s.client().submit(fn, b"x")
    worker.grab()
    worker.grab_nothing()


@case(
    "abilities/cant_do/1",
    "After CANT_DO the worker is not given that function's jobs",
    packets=["CAN_DO", "CANT_DO", "GRAB_JOB", "NO_JOB"],
    source=f"{PROTOCOL} (CANT_DO); {RUN} (gearman_server_con_free_worker)",
)
def cant_do(s: Session) -> None:
    fn = s.name("fn")
    worker = s.worker(fn)
    worker.send(T.CANT_DO, fn)
    s.client().submit(fn, b"x")
    worker.grab_nothing()


@case(
    "abilities/cant_do/2",
    "CANT_DO for one of two functions keeps the other",
    packets=["CAN_DO", "CANT_DO", "JOB_ASSIGN", "NO_JOB"],
    source=f"{PROTOCOL} (CANT_DO); {RUN}",
)
def cant_do_one(s: Session) -> None:
    fn_a, fn_b = s.name("a"), s.name("b")
    worker = s.worker(fn_a, fn_b)
    worker.send(T.CANT_DO, fn_a)
    client = s.client()
    client.submit(fn_a, b"a")
    handle = client.submit(fn_b, b"b")
    s.check_equal(worker.grab().handle, handle, "the job of the kept function")
    worker.grab_nothing()


@case(
    "abilities/cant_do/3",
    "CANT_DO for a function never registered is harmless and gets no reply",
    level=SHOULD,
    packets=["CANT_DO", "CAN_DO", "JOB_ASSIGN"],
    source=f"{PROTOCOL} (CANT_DO); {RUN}",
)
def cant_do_unknown(s: Session) -> None:
    fn = s.name("fn")
    worker = s.worker(fn)
    worker.send(T.CANT_DO, s.name("never"))
    worker.expect_silence("no reply to CANT_DO")
    handle = s.client().submit(fn, b"x")
    s.check_equal(worker.grab().handle, handle, "job of the registered function")


@case(
    "abilities/reset/1",
    "After RESET_ABILITIES the worker is given no jobs of any earlier function",
    packets=["CAN_DO", "RESET_ABILITIES", "GRAB_JOB", "NO_JOB"],
    source=f"{PROTOCOL} (RESET_ABILITIES); {RUN} (gearman_server_con_free_workers)",
)
def reset(s: Session) -> None:
    fn_a, fn_b = s.name("a"), s.name("b")
    worker = s.worker(fn_a, fn_b)
    worker.send(T.RESET_ABILITIES)
    client = s.client()
    client.submit(fn_a, b"a")
    client.submit(fn_b, b"b")
    worker.grab_nothing()


@case(
    "abilities/reset/2",
    "CAN_DO after RESET_ABILITIES registers again",
    packets=["RESET_ABILITIES", "CAN_DO", "JOB_ASSIGN"],
    source=f"{PROTOCOL} (RESET_ABILITIES, CAN_DO)",
)
def reset_then_can_do(s: Session) -> None:
    fn = s.name("fn")
    worker = s.worker(fn)
    worker.send(T.RESET_ABILITIES)
    worker.can_do(fn)
    handle = s.client().submit(fn, b"x")
    s.check_equal(worker.grab().handle, handle, "assigned handle")


@case(
    "abilities/sleep/1",
    "A sleeping worker that sent CANT_DO for a function is not woken by its jobs",
    level=SHOULD,
    packets=["CANT_DO", "PRE_SLEEP", "NOOP"],
    source=f"{PROTOCOL} (PRE_SLEEP: jobs 'the worker is able to perform'); {RUN}",
)
def no_wake_after_cant_do(s: Session) -> None:
    fn = s.name("fn")
    worker = s.worker(fn)
    worker.send(T.CANT_DO, fn)
    worker.send(T.PRE_SLEEP)
    settle(worker)
    s.client().submit(fn, b"x")
    worker.expect_silence("no NOOP after CANT_DO")


def _available_workers(s: Session, conn: Conn, fn: str) -> int | None:
    reply = conn.admin("status")
    for row in parse_status(reply):
        if row.function == fn:
            return row.workers
    return None


@case(
    "abilities/status/1",
    "The admin 'status' count of available workers follows CAN_DO and CANT_DO",
    level=SHOULD,
    packets=["CAN_DO", "CANT_DO"],
    admin=["status"],
    source=f"{PROTOCOL} (Administrative Protocol: status); gearmand libgearman-server/text.cc",
)
def status_counts_workers(s: Session) -> None:
    fn = s.name("fn")
    w1, w2 = s.worker(fn), s.worker(fn)
    settle(w1, w2)
    admin = s.connect("admin")
    s.check_equal(_available_workers(s, admin, fn), 2, "available workers after two CAN_DO")
    w1.send(T.CANT_DO, fn)
    settle(w1)
    s.check_equal(_available_workers(s, admin, fn), 1, "available workers after one CANT_DO")
    w2.send(T.RESET_ABILITIES)
    settle(w2)
    count = _available_workers(s, admin, fn)
    # No row and a row with 0 workers both conform: PROTOCOL's 'status' lists "registered
    # functions" without saying when one stops being registered; gearmand (text.cc) keeps the
    # function it once knew, a server that forgets workerless functions drops the row.
    s.check(count in (None, 0), "0 available workers (or no row) after RESET_ABILITIES", f"{count}")


@case(
    "abilities/cant_do/4",
    "CANT_DO for the function of the job the worker is running: is the job still the worker's?",
    level=SHOULD,
    packets=["CAN_DO", "JOB_ASSIGN", "CANT_DO", "WORK_COMPLETE"],
    source=(
        f"{PROTOCOL} (CANT_DO: says nothing of running jobs); gearmand server.cc GEARMAN_COMMAND_CANT_DO -> "
        "worker.cc gearman_server_worker_free (the worker's jobs go back to the queue)"
    ),
)
def cant_do_running(s: Session) -> None:
    """Informational: the protocol leaves it open, and servers differ (found by `gearspec diff --source model`)."""
    fn = s.name("fn")
    worker = s.worker(fn)
    client = s.client()
    handle = client.submit(fn, b"x", s.name("u"))  # own unique: rustygeard coalesces on the empty one
    job = worker.grab()
    worker.send(T.CANT_DO, fn)
    worker.work(T.WORK_COMPLETE, job.handle, b"done")
    came = [describe(e) for e in worker.sync()]
    got = client.receive()
    if isinstance(got, Packet) and got.type is T.WORK_COMPLETE and got.handle == handle:
        s.info("the job stays with the worker: its WORK_COMPLETE after CANT_DO reaches the client")
    s.info(
        "the job is taken from the worker: after CANT_DO its WORK_COMPLETE gets "
        + (", ".join(came) or "no reply")
        + f" and the client {describe(got)}"
    )


@case(
    "abilities/cant_do/5",
    "With three workers of one function, CANT_DO from the middle one and then the first leaves the others: 'status' counts 2, then 1, and the leavers are not woken for its job",
    level=SHOULD,
    packets=["CAN_DO", "CANT_DO", "PRE_SLEEP", "NOOP", "SUBMIT_JOB", "JOB_ASSIGN"],
    admin=["status"],
    source=f"{_RULE}; gearmand libgearman-server/text.cc (status: available workers); {PROTOCOL} (PRE_SLEEP: woken for its functions' jobs)",
)
def cant_do_among_three(s: Session) -> None:
    fn = s.name("fn")
    first, middle, last = (s.worker(fn) for _ in range(3))
    admin = s.client()

    def workers() -> int | None:
        if not s.capabilities.admin:
            return None
        rows = [r for r in parse_status(admin.admin("status")) if r.function == fn]
        return rows[0].workers if rows else 0

    s.check_equal(workers(), 3 if s.capabilities.admin else None, f"available workers of {fn}")
    middle.send(T.CANT_DO, fn)
    settle(middle)
    s.check_equal(workers(), 2 if s.capabilities.admin else None, f"available workers of {fn} after the middle one's CANT_DO")
    first.send(T.CANT_DO, fn)
    settle(first)
    s.check_equal(workers(), 1 if s.capabilities.admin else None, f"available workers of {fn} after the first one's CANT_DO too")
    for conn in (first, middle, last):
        conn.send(T.PRE_SLEEP)
    settle(first, middle, last)
    handle = s.client().submit(fn, b"for the last one")
    last.expect(T.NOOP)
    s.check_equal(last.grab().handle, handle, "the job, for the worker that kept the function")
    for conn, who in ((first, "first"), (middle, "middle")):
        extra = conn.sync()
        if extra:
            s.fail(f"nothing for the {who} worker (it dropped {fn})", "; ".join(describe(e) for e in extra))
