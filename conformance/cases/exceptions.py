"""OPTION_REQ and WORK_EXCEPTION: exceptions reach only clients that asked for them.

Sources: gearmand `PROTOCOL` (OPTION_REQ "exceptions": forward WORK_EXCEPTION packets to the
client; OPTION_RES; WORK_EXCEPTION: the job failed with the given exception);
`libgearman-server/server.cc` `gearman_server_run_command` (OPTION_REQ: strcasecmp
"exceptions", else ERROR UNKNOWN_OPTION; WORK_EXCEPTION frees the job) and
`_server_queue_work_data` (a client without the option gets WORK_FAIL instead).
Perl Gearman::Server `Client.pm` `CMD_work_exception` relays only to option listeners and
keeps the job; `CMD_option_req` compares case-sensitively.
"""

from __future__ import annotations

from gearspec.conformance.cases._jobs import (
    PERL_CLIENT,
    PROTOCOL,
    QUEUE_WORK_DATA,
    RUN,
    probe,
    refusal,
    require_coalesced,
    settle,
    start_job,
    status_of,
)
from gearspec.conformance.harness import Conn, Session, describe
from gearspec.conformance.registry import INFO, SHOULD, case

from gearspec.codec import Packet
from gearspec.spec import PacketType as T

_OPTION = f"{PROTOCOL} (OPTION_REQ, OPTION_RES); {RUN} (OPTION_REQ)"
_EXCEPTION = f"{PROTOCOL} (WORK_EXCEPTION; OPTION_REQ 'exceptions'); {RUN} (WORK_EXCEPTION); {QUEUE_WORK_DATA}"


def _enable(s: Session, conn: Conn) -> None:
    """Set the exceptions option; a target without it ends the case unsupported."""
    events = probe(s, conn, T.OPTION_REQ, b"exceptions")
    reason = refusal(events)
    if reason is not None:
        s.unsupported(f"OPTION_REQ exceptions: {reason}; see exceptions/option/1")
    assert events is not None
    reply = events[0]
    s.check(isinstance(reply, Packet) and reply.type is T.OPTION_RES, "OPTION_RES exceptions", describe(reply))


@case(
    "exceptions/option/1",
    "OPTION_REQ 'exceptions' is answered with OPTION_RES 'exceptions'",
    packets=["OPTION_REQ", "OPTION_RES"],
    source=_OPTION,
)
def option_exceptions(s: Session) -> None:
    conn = s.client()
    conn.send(T.OPTION_REQ, b"exceptions")
    s.check_equal(conn.expect(T.OPTION_RES)["option"], b"exceptions", "OPTION_RES option")


@case(
    "exceptions/option/2",
    "OPTION_REQ with an unknown option name is answered with ERROR, and the connection stays usable",
    packets=["OPTION_REQ", "ERROR"],
    source=f"{PROTOCOL} (OPTION_REQ: 'or an ERROR packet on failure'); {RUN} (ERROR UNKNOWN_OPTION)",
)
def option_unknown(s: Session) -> None:
    conn = s.client()
    conn.send(T.OPTION_REQ, s.name("no-such-option").encode())
    conn.expect(T.ERROR)
    conn.send(T.OPTION_REQ, b"exceptions")
    conn.expect(T.OPTION_RES)


@case(
    "exceptions/option/3",
    "The ERROR for an unknown option carries the code UNKNOWN_OPTION",
    level=SHOULD,
    packets=["OPTION_REQ", "ERROR"],
    source=f"{RUN} (GEARMAN_UNKNOWN_OPTION); {PERL_CLIENT} CMD_option_req (unknown_option)",
    alternatives={"lowercase": "the code is spelled unknown_option (Perl Gearman::Server)"},
)
def option_unknown_code(s: Session) -> None:
    conn = s.client()
    conn.send(T.OPTION_REQ, b"surely-not-an-option")
    code = conn.expect(T.ERROR).code
    if code == b"unknown_option":
        s.non_strict("lowercase")
    s.check_equal(code, b"UNKNOWN_OPTION", "ERROR code")


@case(
    "exceptions/option/4",
    "Whether the option name is matched case-insensitively ('EXCEPTIONS')",
    level=INFO,
    packets=["OPTION_REQ", "OPTION_RES", "ERROR"],
    source=f"{RUN} (strcasecmp); {PERL_CLIENT} CMD_option_req (eq)",
)
def option_case(s: Session) -> None:
    conn = s.client()
    conn.send(T.OPTION_REQ, b"EXCEPTIONS")
    reply = conn.expect(T.OPTION_RES, T.ERROR)
    s.info("'EXCEPTIONS' accepted (case-insensitive)" if reply.type is T.OPTION_RES else "'EXCEPTIONS' refused (case-sensitive)")


@case(
    "exceptions/forward/1",
    "With the exceptions option set, the client receives WORK_EXCEPTION with the worker's data",
    packets=["OPTION_REQ", "OPTION_RES", "SUBMIT_JOB", "WORK_EXCEPTION"],
    source=_EXCEPTION,
)
def forwarded_with_option(s: Session) -> None:
    fn = s.name("fn")
    client = s.client()
    _enable(s, client)
    handle = client.submit(fn, b"x")
    worker = s.worker(fn)
    worker.grab()
    worker.work(T.WORK_EXCEPTION, handle, b"boom\0trace")
    got = client.expect(T.WORK_EXCEPTION)
    s.check_equal((got.handle, got["data"]), (handle, b"boom\0trace"), "WORK_EXCEPTION")


@case(
    "exceptions/forward/2",
    "Without the exceptions option, a client never receives WORK_EXCEPTION",
    packets=["SUBMIT_JOB", "WORK_EXCEPTION"],
    source=_EXCEPTION,
)
def not_forwarded_without_option(s: Session) -> None:
    fn = s.name("fn")
    client, worker, handle, _job = start_job(s, fn)
    worker.work(T.WORK_EXCEPTION, handle, b"boom")
    settle(worker)
    for event in client.sync():
        if isinstance(event, Packet) and event.type is T.WORK_EXCEPTION:
            s.fail("no WORK_EXCEPTION without the option", describe(event))


@case(
    "exceptions/forward/3",
    "Without the exceptions option, a WORK_EXCEPTION reaches the client as WORK_FAIL",
    level=SHOULD,
    packets=["SUBMIT_JOB", "WORK_EXCEPTION", "WORK_FAIL"],
    source=f"{QUEUE_WORK_DATA} (WORK_FAIL for clients without is_exceptions)",
    alternatives={"silent": "the client is told nothing (Perl Gearman::Server: the job is left open)"},
)
def fail_without_option(s: Session) -> None:
    fn = s.name("fn")
    client, worker, handle, _job = start_job(s, fn)
    worker.work(T.WORK_EXCEPTION, handle, b"boom")
    settle(worker)
    extra = client.sync()
    if not extra:
        s.non_strict("silent")
    first = extra[0]
    s.check(isinstance(first, Packet) and first.type is T.WORK_FAIL, "WORK_FAIL", describe(first))
    s.check_equal(first.handle, handle, "WORK_FAIL handle")
    if len(extra) > 1:
        s.fail("one WORK_FAIL (one ending per job)", "; ".join(describe(e) for e in extra))


@case(
    "exceptions/ends/1",
    "WORK_EXCEPTION ends the job: GET_STATUS then reports it unknown",
    packets=["WORK_EXCEPTION", "GET_STATUS", "STATUS_RES"],
    source=f"{PROTOCOL} (WORK_EXCEPTION: 'the job failed'); {RUN} (WORK_EXCEPTION: gearman_server_job_free)",
)
def exception_ends_job(s: Session) -> None:
    fn = s.name("fn")
    _client, worker, handle, _job = start_job(s, fn)
    worker.work(T.WORK_EXCEPTION, handle, b"boom")
    settle(worker)
    s.check_equal(status_of(s, s.client(), handle)[:2], (b"0", b"0"), "known, running after the exception")


@case(
    "exceptions/mixed/1",
    "Two coalesced clients, one with the option: it gets WORK_EXCEPTION, the other does not",
    level=SHOULD,
    packets=["OPTION_REQ", "SUBMIT_JOB", "WORK_EXCEPTION", "WORK_FAIL"],
    source=f"{_EXCEPTION} (the option is per connection)",
)
def per_connection(s: Session) -> None:
    fn, unique = s.name("fn"), s.name("u")
    with_option, without = s.client(), s.client()
    _enable(s, with_option)
    handle = require_coalesced(s, [with_option.submit(fn, b"x", unique), without.submit(fn, b"x", unique)])
    worker = s.worker(fn)
    worker.grab()
    worker.work(T.WORK_EXCEPTION, handle, b"boom")
    with_option.expect(T.WORK_EXCEPTION)
    settle(worker)
    for event in without.sync():
        if isinstance(event, Packet) and event.type is T.WORK_EXCEPTION:
            s.fail("no WORK_EXCEPTION on the connection without the option", describe(event))


@case(
    "exceptions/worker/1",
    "OPTION_REQ is accepted on a worker connection too, and the worker still gets jobs",
    level=SHOULD,
    packets=["OPTION_REQ", "OPTION_RES", "CAN_DO", "JOB_ASSIGN"],
    source=f"{_OPTION} (per connection, any role)",
)
def option_on_worker(s: Session) -> None:
    fn = s.name("fn")
    worker = s.worker(fn)
    _enable(s, worker)
    handle = s.client().submit(fn, b"x")
    s.check_equal(worker.grab().handle, handle, "job after OPTION_REQ")


@case(
    "exceptions/listeners/1",
    "WORK_EXCEPTION reaches every coalesced client that set the exceptions option",
    level=SHOULD,
    packets=["OPTION_REQ", "SUBMIT_JOB", "WORK_EXCEPTION"],
    source=f"{_EXCEPTION}; {PROTOCOL} (coalescing)",
)
def all_listeners(s: Session) -> None:
    fn, unique = s.name("fn"), s.name("u")
    clients = [s.client() for _ in range(2)]
    for c in clients:
        _enable(s, c)
    handle = require_coalesced(s, [c.submit(fn, b"x", unique) for c in clients])
    worker = s.worker(fn)
    worker.grab()
    worker.work(T.WORK_EXCEPTION, handle, b"for both")
    for c in clients:
        got = c.expect(T.WORK_EXCEPTION)
        s.check_equal((got.handle, got["data"]), (handle, b"for both"), f"{c.label} WORK_EXCEPTION")
