"""Priority and FIFO: HIGH before NORMAL before LOW, first in first out within a level.

Sources: gearmand `PROTOCOL` ("Client Requests": three queue levels); `libgearman-server/
job.cc` `gearman_server_job_queue` (append to the priority's list) and
`libgearman-server/gearmand_con.cc` `gearman_server_job_take` (HIGH list first). Across
functions, gearmand 1.1.x takes the first function with work (its worker list order) and
2.0 / current PROTOCOL apply priority globally, so that case names both.
"""

from __future__ import annotations

from gearspec.conformance.cases._jobs import (
    JOB_TAKE,
    PROTOCOL,
    RUN,
    routed_variant,
    submit_or_unsupported,
    submit_variant,
)
from gearspec.conformance.harness import Conn, Session
from gearspec.conformance.registry import EXTENSION, SHOULD, case

from gearspec.spec import PacketType as T

_RULE = f"{PROTOCOL} (Client Requests: normal, high and low levels); {JOB_TAKE}"


def _grab_data(s: Session, worker: Conn, n: int) -> list[bytes]:
    return [worker.grab()["data"] for _ in range(n)]


def _order_case(
    number: int, requirement: str, submits: list[tuple[T, bytes]], expected: list[bytes], reroute: bool = True
) -> None:
    """`reroute`: a refused variant may be replaced by its same-level sibling (the order rule
    does not depend on foreground or background); off where the case is about the kind."""
    @case(
        f"priority/order/{number}",
        requirement,
        packets=sorted({t.name for t, _ in submits} | {"GRAB_JOB", "JOB_ASSIGN"}),
        source=_RULE,
    )
    def order(s: Session) -> None:
        fn = s.name("fn")
        client = s.client()
        for type, data in submits:
            submit_variant(s, client, fn, data, b"", routed_variant(s, type) if reroute else type)
        worker = s.worker(fn)
        s.check_equal(_grab_data(s, worker, len(expected)), expected, "order of assignment")
        worker.grab_nothing()

    order.__name__ = order.__qualname__ = f"order_{number}"


_order_case(
    1,
    "Queued LOW, NORMAL, HIGH jobs of one function are assigned HIGH, NORMAL, LOW",
    [(T.SUBMIT_JOB_LOW, b"low"), (T.SUBMIT_JOB, b"normal"), (T.SUBMIT_JOB_HIGH, b"high")],
    [b"high", b"normal", b"low"],
)
_order_case(
    2,
    "Background priorities order the same way: HIGH_BG, BG, LOW_BG",
    [(T.SUBMIT_JOB_LOW_BG, b"low"), (T.SUBMIT_JOB_BG, b"normal"), (T.SUBMIT_JOB_HIGH_BG, b"high")],
    [b"high", b"normal", b"low"],
    reroute=False,
)
_order_case(
    3,
    "A HIGH job submitted after five NORMAL jobs is assigned first",
    [(T.SUBMIT_JOB, b"n%d" % i) for i in range(5)] + [(T.SUBMIT_JOB_HIGH, b"high")],
    [b"high"] + [b"n%d" % i for i in range(5)],
)
_order_case(
    4,
    "Foreground and background jobs of one level share one queue: HIGH and HIGH_BG before NORMAL and BG",
    [(T.SUBMIT_JOB_BG, b"bg"), (T.SUBMIT_JOB_HIGH_BG, b"hbg"), (T.SUBMIT_JOB, b"fg"), (T.SUBMIT_JOB_HIGH, b"hfg")],
    [b"hbg", b"hfg", b"bg", b"fg"],
    reroute=False,
)
_order_case(
    5,
    "A NORMAL job submitted after LOW jobs is assigned before them",
    [(T.SUBMIT_JOB_LOW, b"l1"), (T.SUBMIT_JOB_LOW_BG, b"l2"), (T.SUBMIT_JOB_BG, b"normal")],
    [b"normal", b"l1", b"l2"],
)


@case(
    "priority/reduce/1",
    "Map/reduce jobs (SUBMIT_REDUCE_JOB and its background form) are NORMAL jobs: after a queued NORMAL job, before a LOW one",
    level=EXTENSION,
    packets=["SUBMIT_JOB_LOW_BG", "SUBMIT_JOB_BG", "SUBMIT_REDUCE_JOB_BACKGROUND", "SUBMIT_REDUCE_JOB", "GRAB_JOB", "JOB_ASSIGN"],
    source=f"{_RULE}; {RUN} (SUBMIT_REDUCE_JOB*: map_priority= GEARMAN_JOB_PRIORITY_NORMAL)",
)
def reduce_is_normal(s: Session) -> None:
    fn = s.name("fn")
    client = s.client()
    submit_variant(s, client, fn, b"low", b"", routed_variant(s, T.SUBMIT_JOB_LOW_BG))
    submit_variant(s, client, fn, b"normal", b"", T.SUBMIT_JOB_BG)
    for type, data in ((T.SUBMIT_REDUCE_JOB_BACKGROUND, b"reduce-bg"), (T.SUBMIT_REDUCE_JOB, b"reduce")):
        submit_or_unsupported(s, client, type, fn, s.name("u"), s.name("r"), b"", data)
    worker = s.worker(fn)
    s.check_equal(_grab_data(s, worker, 4), [b"normal", b"reduce-bg", b"reduce", b"low"], "order of assignment")


def _fifo_case(number: int, type: T, background: T) -> None:
    @case(
        f"priority/fifo/{number}",
        f"Within one level ({type.name} and {background.name}) jobs are assigned first in, first out",
        packets=[type.name, background.name, "GRAB_JOB", "JOB_ASSIGN"],
        source=f"{PROTOCOL} (a queue); gearmand libgearman-server/job.cc gearman_server_job_queue (appends)",
    )
    def fifo(s: Session) -> None:
        fn = s.name("fn")
        client = s.client()
        sent = [b"job-%d" % i for i in range(6)]
        # Alternating kinds; a kind the target refused is replaced by the other (same level).
        kinds = (routed_variant(s, type), routed_variant(s, background))
        for i, data in enumerate(sent):
            submit_variant(s, client, fn, data, b"", kinds[i % 2])
        worker = s.worker(fn)
        s.check_equal(_grab_data(s, worker, len(sent)), sent, "order of assignment")

    fifo.__name__ = fifo.__qualname__ = f"fifo_{type.name.lower()}"


_fifo_case(1, T.SUBMIT_JOB, T.SUBMIT_JOB_BG)
_fifo_case(2, T.SUBMIT_JOB_HIGH, T.SUBMIT_JOB_HIGH_BG)
_fifo_case(3, T.SUBMIT_JOB_LOW, T.SUBMIT_JOB_LOW_BG)


@case(
    "priority/fifo/4",
    "Jobs from three client connections are assigned in the order the server accepted them",
    packets=["SUBMIT_JOB", "JOB_CREATED", "JOB_ASSIGN"],
    source=f"{PROTOCOL} (a queue per level)",
)
def fifo_across_clients(s: Session) -> None:
    fn = s.name("fn")
    handles = [s.client().submit(fn, b"c%d" % i) for i in range(3)]
    worker = s.worker(fn)
    s.check_equal([worker.grab().handle for _ in range(3)], handles, "handles in assignment order")


@case(
    "priority/cross/1",
    "A worker of two functions gets a HIGH job of one function before a NORMAL job of the other",
    level=SHOULD,
    packets=["SUBMIT_JOB", "SUBMIT_JOB_HIGH", "CAN_DO", "JOB_ASSIGN"],
    source=f"{PROTOCOL} (current: 'Priority is applied globally across registered functions'); {JOB_TAKE}",
    alternatives={
        "per-function": "priority applies within a function only; the first registered function with work "
        "is served first (gearmand 1.1.x, Perl Gearman::Server)",
    },
)
def priority_across_functions(s: Session) -> None:
    # Both registration orders, so a server that simply serves the first (or last)
    # registered function cannot pass by luck.
    for order in ("normal-first", "high-first"):
        fn_normal, fn_high = s.name("n"), s.name("h")
        client = s.client()
        client.submit(fn_normal, b"normal")
        submit_variant(s, client, fn_high, b"high", b"", T.SUBMIT_JOB_HIGH)
        functions = (fn_normal, fn_high) if order == "normal-first" else (fn_high, fn_normal)
        worker = s.worker(*functions)
        first = worker.grab()["data"]
        if first == b"normal":
            s.non_strict("per-function", f"CAN_DO order {order}: got the NORMAL job first")
        s.check_equal(first, b"high", f"first assignment (CAN_DO order {order})")
