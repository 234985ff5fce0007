"""Job status: GET_STATUS -> STATUS_RES and GET_STATUS_UNIQUE -> STATUS_RES_UNIQUE.

Sources: gearmand `PROTOCOL` (GET_STATUS, STATUS_RES, GET_STATUS_UNIQUE, STATUS_RES_UNIQUE);
`libgearman-server/server.cc` `gearman_server_run_command` (GET_STATUS: unknown handle ->
`h 0 0 0 0`, known -> `h 1 running numerator denominator`; GET_STATUS_UNIQUE answers the
unique plus a client count). GET_STATUS_UNIQUE is a gearmand extension.
"""

from __future__ import annotations

from gearspec.conformance.cases._jobs import (
    PERL_CLIENT,
    PROTOCOL,
    RUN,
    probe,
    read_status,
    refusal,
    require_coalesced,
    settle,
    start_job,
    status_of,
)
from gearspec.conformance.harness import Conn, Session, describe
from gearspec.conformance.registry import EXTENSION, SHOULD, case

from gearspec.codec import Packet
from gearspec.spec import PacketType as T

_STATUS = f"{PROTOCOL} (GET_STATUS, STATUS_RES); {RUN} (GET_STATUS)"
_UNIQUE = f"{PROTOCOL} (GET_STATUS_UNIQUE, STATUS_RES_UNIQUE); {RUN} (GET_STATUS_UNIQUE)"


@case(
    "status/unknown/1",
    "GET_STATUS for a handle the server never issued answers STATUS_RES with known 0, running 0",
    packets=["GET_STATUS", "STATUS_RES"],
    source=_STATUS,
)
def unknown_handle(s: Session) -> None:
    handle = s.name("no-such-handle").encode()
    s.check_equal(status_of(s, s.client(), handle)[:2], (b"0", b"0"), "known, running")


@case(
    "status/unknown/2",
    "STATUS_RES for an unknown job reports numerator and denominator 0",
    level=SHOULD,
    packets=["GET_STATUS", "STATUS_RES"],
    source=f"{RUN} (GET_STATUS: '0' fields); {PERL_CLIENT} CMD_get_status (empty fields)",
    alternatives={"empty": "numerator and denominator are empty strings (Perl Gearman::Server)"},
)
def unknown_zero_numbers(s: Session) -> None:
    numbers = status_of(s, s.client(), s.name("no-such-handle").encode())[2:]
    if numbers == (b"", b""):
        s.non_strict("empty")
    s.check_equal(numbers, (b"0", b"0"), "numerator, denominator")


@case(
    "status/queued/1",
    "GET_STATUS for a queued job answers known 1, running 0",
    packets=["SUBMIT_JOB_BG", "GET_STATUS", "STATUS_RES"],
    source=_STATUS,
)
def queued(s: Session) -> None:
    client = s.client()
    handle = client.submit(s.name("fn"), b"", b"", T.SUBMIT_JOB_BG)
    s.check_equal(status_of(s, client, handle)[:2], (b"1", b"0"), "known, running")


@case(
    "status/queued/2",
    "GET_STATUS knows each of two queued foreground jobs of one function (known 1, running 0)",
    packets=["SUBMIT_JOB", "GET_STATUS", "STATUS_RES"],
    source=_STATUS,
)
def queued_foreground(s: Session) -> None:
    fn = s.name("fn")
    client = s.client()  # stays open: its foreground jobs stay queued
    handles = [client.submit(fn, b"first"), client.submit(fn, b"second")]
    got = [status_of(s, client, handle)[:2] for handle in handles]
    s.check_equal(got, [(b"1", b"0"), (b"1", b"0")], "known, running of each job")


@case(
    "status/running/1",
    "GET_STATUS for a job a worker holds answers known 1, running 1",
    packets=["SUBMIT_JOB", "JOB_ASSIGN", "GET_STATUS", "STATUS_RES"],
    source=_STATUS,
)
def running(s: Session) -> None:
    client, _worker, handle, _job = start_job(s, s.name("fn"))
    s.check_equal(status_of(s, client, handle)[:2], (b"1", b"1"), "known, running")


@case(
    "status/progress/1",
    "GET_STATUS of a background job reports the numbers of the worker's last WORK_STATUS",
    packets=["SUBMIT_JOB_BG", "WORK_STATUS", "GET_STATUS", "STATUS_RES"],
    source=f"{_STATUS}; {PROTOCOL} (WORK_STATUS: kept for background clients)",
)
def background_progress(s: Session) -> None:
    client, worker, handle, _job = start_job(s, s.name("fn"), b"", b"", T.SUBMIT_JOB_BG)
    worker.work(T.WORK_STATUS, handle, 42, 99)
    settle(worker)
    s.check_equal(status_of(s, client, handle), (b"1", b"1", b"42", b"99"), "status fields")


@case(
    "status/other_conn/1",
    "Any connection may ask GET_STATUS for a handle, not only the submitter",
    packets=["SUBMIT_JOB_BG", "GET_STATUS", "STATUS_RES"],
    source=f"{_STATUS} (looked up by handle only)",
)
def other_connection(s: Session) -> None:
    handle = s.client().submit(s.name("fn"), b"", b"", T.SUBMIT_JOB_BG)
    s.check_equal(status_of(s, s.client(), handle)[:2], (b"1", b"0"), "known, running")


@case(
    "status/pipeline/1",
    "Several GET_STATUS in one write are answered in order, each with its own handle",
    packets=["GET_STATUS", "STATUS_RES"],
    source=f"{_STATUS} (one reply per request, in order)",
)
def pipelined(s: Session) -> None:
    client = s.client()
    known = client.submit(s.name("fn"), b"", b"", T.SUBMIT_JOB_BG)
    handles = [known, s.name("nope").encode(), known]
    client.send_raw(b"".join(Packet.request(T.GET_STATUS, h).to_bytes() for h in handles), "3 x GET_STATUS")
    got = [read_status(s, client, h)[0] for h in handles]
    s.check_equal(got, [b"1", b"0", b"1"], "known in each reply")


# -- GET_STATUS_UNIQUE (gearmand extension) -------------------------------------------------


def _status_unique(s: Session, conn: Conn, unique: str) -> Packet:
    events = probe(s, conn, T.GET_STATUS_UNIQUE, unique)
    reason = refusal(events)
    if reason is not None:
        s.unsupported(f"GET_STATUS_UNIQUE: {reason}")
    assert events is not None
    reply = events[0]
    if not (isinstance(reply, Packet) and reply.type is T.STATUS_RES_UNIQUE):
        s.fail("STATUS_RES_UNIQUE", describe(reply))
    if len(events) > 1:  # one request, one reply: a second would answer the client's next request
        s.fail("one STATUS_RES_UNIQUE", "; ".join(describe(e) for e in events))
    s.check_equal(reply["unique"], unique.encode(), "STATUS_RES_UNIQUE unique")
    return reply


def _unique_fields(reply: Packet) -> tuple[bytes, ...]:
    return tuple(reply.args[1:6])


@case(
    "status/unique/1",
    "GET_STATUS_UNIQUE for an unknown unique answers STATUS_RES_UNIQUE with known 0 and client count 0",
    level=EXTENSION,
    packets=["GET_STATUS_UNIQUE", "STATUS_RES_UNIQUE"],
    source=_UNIQUE,
)
def unique_unknown(s: Session) -> None:
    reply = _status_unique(s, s.client(), s.name("u"))
    s.check_equal(_unique_fields(reply), (b"0", b"0", b"0", b"0", b"0"), "known, running, num, den, clients")


@case(
    "status/unique/2",
    "GET_STATUS_UNIQUE for a queued foreground job answers known 1, running 0, one waiting client",
    level=EXTENSION,
    packets=["SUBMIT_JOB", "GET_STATUS_UNIQUE", "STATUS_RES_UNIQUE"],
    source=_UNIQUE,
)
def unique_queued(s: Session) -> None:
    fn, unique = s.name("fn"), s.name("u")
    client = s.client()
    client.submit(fn, b"", unique)
    reply = _status_unique(s, s.client(), unique)
    fields = _unique_fields(reply)
    s.check_equal((fields[0], fields[1], fields[4]), (b"1", b"0", b"1"), "known, running, clients")


@case(
    "status/unique/3",
    "GET_STATUS_UNIQUE for a running job reports running 1 and the last WORK_STATUS numbers",
    level=EXTENSION,
    packets=["SUBMIT_JOB", "WORK_STATUS", "GET_STATUS_UNIQUE", "STATUS_RES_UNIQUE"],
    source=_UNIQUE,
)
def unique_running(s: Session) -> None:
    fn, unique = s.name("fn"), s.name("u")
    client, worker, handle, _job = start_job(s, fn, b"", unique)
    worker.work(T.WORK_STATUS, handle, 3, 4)
    client.expect(T.WORK_STATUS)
    reply = _status_unique(s, s.client(), unique)
    s.check_equal(_unique_fields(reply)[:4], (b"1", b"1", b"3", b"4"), "known, running, num, den")


@case(
    "status/unique/4",
    "STATUS_RES_UNIQUE's client count counts every foreground client coalesced onto the job",
    level=EXTENSION,
    packets=["SUBMIT_JOB", "GET_STATUS_UNIQUE", "STATUS_RES_UNIQUE"],
    source=f"{_UNIQUE} (client_count)",
)
def unique_client_count(s: Session) -> None:
    fn, unique = s.name("fn"), s.name("u")
    clients = [s.client() for _ in range(3)]
    require_coalesced(s, [c.submit(fn, b"", unique) for c in clients])
    reply = _status_unique(s, s.client(), unique)
    s.check_equal(reply["client_count"], b"3", "client count")


@case(
    "status/unique/5",
    "A queued background job is known to GET_STATUS_UNIQUE with client count 0",
    level=EXTENSION,
    packets=["SUBMIT_JOB_BG", "GET_STATUS_UNIQUE", "STATUS_RES_UNIQUE"],
    source=f"{_UNIQUE} (background jobs have no clients)",
)
def unique_background(s: Session) -> None:
    fn, unique = s.name("fn"), s.name("u")
    s.client().submit(fn, b"", unique, T.SUBMIT_JOB_BG)
    fields = _unique_fields(_status_unique(s, s.client(), unique))
    s.check_equal((fields[0], fields[4]), (b"1", b"0"), "known, clients")


@case(
    "status/unique/6",
    "After the job completes, GET_STATUS_UNIQUE reports its unique unknown",
    level=EXTENSION,
    packets=["WORK_COMPLETE", "GET_STATUS_UNIQUE", "STATUS_RES_UNIQUE"],
    source=_UNIQUE,
)
def unique_after_done(s: Session) -> None:
    fn, unique = s.name("fn"), s.name("u")
    client, worker, handle, _job = start_job(s, fn, b"", unique)
    worker.work(T.WORK_COMPLETE, handle, b"")
    client.expect(T.WORK_COMPLETE)
    s.check_equal(_unique_fields(_status_unique(s, client, unique))[0], b"0", "known")


@case(
    "status/unique/7",
    "GET_STATUS_UNIQUE looks a unique up across functions: queued under three functions, it stays known until all three jobs are done",
    level=EXTENSION,
    packets=["SUBMIT_JOB_BG", "WORK_COMPLETE", "GET_STATUS_UNIQUE", "STATUS_RES_UNIQUE"],
    source=f"{_UNIQUE}; gearmand libgearman-server/job.cc gearman_server_job_get_by_unique (by unique alone)",
)
def unique_across_functions(s: Session) -> None:
    unique = s.name("u")
    client = s.client()
    functions = [s.name("f1"), s.name("f2"), s.name("f3")]
    for fn in functions:
        client.submit(fn, b"", unique, type=T.SUBMIT_JOB_BG)
    for number, fn in enumerate(functions):
        worker = s.worker(fn)
        job = worker.grab()
        worker.work(T.WORK_COMPLETE, job.handle, b"")
        settle(worker)
        known = _unique_fields(_status_unique(s, client, unique))[0]
        last = number == len(functions) - 1
        s.check_equal(known, b"0" if last else b"1", f"known after {number + 1} of the {len(functions)} jobs completed")


@case(
    "status/done/1",
    "After a background job completes, GET_STATUS reports it unknown (known 0)",
    packets=["SUBMIT_JOB_BG", "WORK_COMPLETE", "GET_STATUS", "STATUS_RES"],
    source=f"{_STATUS}; {RUN} (WORK_COMPLETE: gearman_server_job_free)",
)
def background_done(s: Session) -> None:
    client, worker, handle, _job = start_job(s, s.name("fn"), b"", b"", T.SUBMIT_JOB_BG)
    worker.work(T.WORK_COMPLETE, handle, b"")
    settle(worker)
    s.check_equal(status_of(s, client, handle)[:2], (b"0", b"0"), "known, running")


# -- numbers before any WORK_STATUS (found by `gearspec diff --source model`) -----------------

_EMPTY = "numerator and denominator are empty strings (Perl Gearman::Server, python gear)"
_SOURCE = (
    f"{PROTOCOL} (STATUS_RES); {RUN} (GET_STATUS: the job's numbers, '0' before any WORK_STATUS); "
    f"{PERL_CLIENT} CMD_get_status and gear/__init__.py Server.handleGetStatus (empty fields)"
)


def _zero_numbers(s: Session, numbers: tuple[bytes, ...]) -> None:
    if numbers == (b"", b""):
        s.non_strict("empty")
    s.check_equal(numbers, (b"0", b"0"), "numerator, denominator")


@case(
    "status/numbers/1",
    "STATUS_RES for a queued job reports numerator and denominator 0 (numbers, not empty fields)",
    level=SHOULD,
    packets=["SUBMIT_JOB_BG", "GET_STATUS", "STATUS_RES"],
    source=_SOURCE,
    alternatives={"empty": _EMPTY},
)
def queued_numbers(s: Session) -> None:
    client = s.client()
    handle = client.submit(s.name("fn"), b"", b"", T.SUBMIT_JOB_BG)
    _zero_numbers(s, status_of(s, client, handle)[2:])


@case(
    "status/numbers/2",
    "STATUS_RES for a running job without a WORK_STATUS yet reports numerator and denominator 0",
    level=SHOULD,
    packets=["SUBMIT_JOB", "JOB_ASSIGN", "GET_STATUS", "STATUS_RES"],
    source=_SOURCE,
    alternatives={"empty": _EMPTY},
)
def running_numbers(s: Session) -> None:
    # A unique id of its own: rustygeard coalesces jobs on the empty unique (coalesce/* grades that).
    client, _worker, handle, _job = start_job(s, s.name("fn"), unique=s.name("u"))
    _zero_numbers(s, status_of(s, client, handle)[2:])
