"""SUBMIT_JOB_SCHED: cron-style scheduled jobs (defined, "not currently used").

Sources: gearmand `PROTOCOL` (SUBMIT_JOB_SCHED: "This is not currently used and may be
removed"); `libgearman-server/server.cc` `gearman_server_run_command` (SUBMIT_JOB_SCHED is in
the "Command not expected" list: ERROR INVALID_COMMAND). Recorded, never graded, except that
a refusal must leave the connection usable.
"""

from __future__ import annotations

from gearspec.conformance.cases._jobs import PROTOCOL, RUN, probe, refusal
from gearspec.conformance.harness import Session, describe
from gearspec.conformance.registry import INFO, SHOULD, case

from gearspec.spec import PacketType as T

_RULE = f"{PROTOCOL} (SUBMIT_JOB_SCHED: not currently used); {RUN} (ERROR INVALID_COMMAND)"


@case(
    "sched/submit/1",
    "How the server answers SUBMIT_JOB_SCHED (every minute, every hour...)",
    level=INFO,
    packets=["SUBMIT_JOB_SCHED", "JOB_CREATED", "ERROR"],
    source=_RULE,
)
def sched_answer(s: Session) -> None:
    conn = s.client()
    events = probe(s, conn, T.SUBMIT_JOB_SCHED, s.name("fn"), s.name("u"), b"*", b"*", b"*", b"*", b"*", b"data")
    reason = refusal(events)
    if reason is not None:
        s.info(f"SUBMIT_JOB_SCHED not served: {reason}")
    assert events is not None
    s.info("answered: " + "; ".join(describe(e) for e in events))


@case(
    "sched/submit/2",
    "After SUBMIT_JOB_SCHED, accepted or refused, the connection still serves SUBMIT_JOB",
    level=SHOULD,
    packets=["SUBMIT_JOB_SCHED", "SUBMIT_JOB", "JOB_CREATED"],
    source=_RULE,
    alternatives={"closes": "the server closed the connection on SUBMIT_JOB_SCHED"},
)
def sched_then_submit(s: Session) -> None:
    conn = s.client()
    events = probe(s, conn, T.SUBMIT_JOB_SCHED, s.name("fn"), s.name("u"), b"0", b"0", b"1", b"1", b"0", b"x")
    if events is None:
        s.check_alive("SUBMIT_JOB_SCHED")
        s.non_strict("closes")
    handle = conn.submit(s.name("fn"), b"after sched")
    s.check(len(handle) > 0, "a handle", "an empty handle")
