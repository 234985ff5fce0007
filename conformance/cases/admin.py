"""The text admin protocol: every command's reply framing and contents.

Sources: gearmand `PROTOCOL` ("Administrative Protocol"); `libgearman-server/text.cc`
`server_run_text` (commands, row formats, `ERR CODE text+with+pluses`); python gear
`gear/__init__.py` `Server.handleAdminRequest` (status, workers, cancel job only); Perl
Gearman::Server `lib/Gearman/Server/Client.pm` `TXTCMD_*` methods.

Cases only look at rows for their own function names and handles, because other cases run
at the same time against the same server.
"""

from __future__ import annotations

import re
import time

from gearspec.conformance.cases._jobs import (
    grab_any,
    routed_variant,
    settle,
    sleeping_worker,
    submit_or_unsupported,
    submit_variant,
)
from gearspec.conformance.harness import Conn, Session, describe
from gearspec.conformance.registry import EXTENSION, INFO, SHOULD, case

from gearspec.admin import (
    AdminReply,
    parse_prioritystatus,
    parse_show_jobs,
    parse_show_unique_jobs,
    parse_status,
    parse_workers,
)
from gearspec.codec import Packet
from gearspec.spec import PacketType as T

_PROTOCOL = "PROTOCOL (Administrative Protocol)"
_TEXT = "gearmand libgearman-server/text.cc server_run_text"
_PERL = "Perl Gearman::Server lib/Gearman/Server/Client.pm"
_GEAR = "python gear gear/__init__.py Server.handleAdminRequest"


def _unsupported_if_unknown(s: Session, reply: AdminReply, command: str) -> None:
    """An ERR UNKNOWN_COMMAND reply means the target does not have this (extension) command."""
    error = reply.error()
    if error is not None and error.code.upper() == "UNKNOWN_COMMAND":
        s.unsupported(f"'{command}' answered {reply.lines[0]!r}")


def _extension_admin(s: Session, conn: Conn, command: str, *args: object) -> AdminReply:
    """Send an extension admin command; silence or ERR UNKNOWN_COMMAND means unsupported.

    A server that ignores commands it lacks fails admin/unknown/1 for that; here it is only a
    missing extension. A reply that starts but never completes is still a failure.
    """
    conn.send_admin(command, *args)
    first = conn.receive()
    if first is None:
        s.unsupported(f"'{command}' got no reply within {s.wait:g} s (see admin/unknown/1)")
    conn.unread(first)
    reply = conn.expect_admin(command)
    _unsupported_if_unknown(s, reply, command)
    return reply


def _status_row(s: Session, conn: Conn, function: str, command: str = "status"):
    rows = [r for r in parse_status(conn.admin(command)) if r.function == function]
    if len(rows) != 1:
        s.fail(f"one status row for {function}", f"{len(rows)} rows")
    return rows[0]


def _queue_background(s: Session, function: str, count: int, type: T = T.SUBMIT_JOB_BG) -> list[bytes]:
    client = s.client()
    return [client.submit(function, b"admin-case", s.name(f"u{i}"), type=type) for i in range(count)]


# -- status ----------------------------------------------------------------------------------


@case(
    "admin/status/1",
    "'status' answers tab-separated FUNCTION TOTAL RUNNING AVAILABLE_WORKERS rows, then a lone '.'",
    admin=["status"],
    packets=["CAN_DO"],
    source=f"{_PROTOCOL}; {_TEXT}",
)
def status_format(s: Session) -> None:
    s.worker(s.name("fn"))
    conn = s.client()
    conn.sync()  # the worker's CAN_DO was sent on another connection; this only orders ours
    parse_status(conn.admin("status"))


@case(
    "admin/status/2",
    "Queued background jobs count in TOTAL (2 queued, 0 running, 0 workers)",
    admin=["status"],
    packets=["SUBMIT_JOB_BG", "JOB_CREATED"],
    source=f"{_PROTOCOL}; {_TEXT}",
)
def status_counts_queued(s: Session) -> None:
    fn = s.name("fn")
    _queue_background(s, fn, 2)
    row = _status_row(s, s.client(), fn)
    s.check_equal((row.total, row.running, row.workers), (2, 0, 0), f"status of {fn} (total, running, workers)")


@case(
    "admin/status/3",
    "A grabbed job counts as running and its worker as available (1 total, 1 running, 1 worker)",
    admin=["status"],
    packets=["SUBMIT_JOB_BG", "CAN_DO", "GRAB_JOB", "JOB_ASSIGN"],
    source=f"{_PROTOCOL}; {_TEXT}",
)
def status_counts_running(s: Session) -> None:
    fn = s.name("fn")
    _queue_background(s, fn, 1)
    s.worker(fn).grab()
    row = _status_row(s, s.client(), fn)
    s.check_equal((row.total, row.running, row.workers), (1, 1, 1), f"status of {fn} (total, running, workers)")


@case(
    "admin/status/7",
    "A completed or failed job leaves TOTAL and RUNNING (two queued: one completed -> 1 0 1; the other failed -> 0 0 1)",
    admin=["status"],
    packets=["SUBMIT_JOB_BG", "CAN_DO", "GRAB_JOB", "JOB_ASSIGN", "WORK_COMPLETE", "WORK_FAIL"],
    source=f"{_PROTOCOL}; {_TEXT}",
)
def status_after_complete(s: Session) -> None:
    fn = s.name("fn")
    _queue_background(s, fn, 2)
    worker = s.worker(fn)
    job = worker.grab()
    worker.work(T.WORK_COMPLETE, job.handle, b"done")
    worker.sync()  # the completion is processed before the status request on another connection
    row = _status_row(s, s.client(), fn)
    s.check_equal((row.total, row.running, row.workers), (1, 0, 1), f"status of {fn} (total, running, workers)")
    job = worker.grab()
    worker.work(T.WORK_FAIL, job.handle)
    worker.sync()
    row = _status_row(s, s.client(), fn)
    s.check_equal((row.total, row.running, row.workers), (0, 0, 1), f"status of {fn} after the other job failed")


@case(
    "admin/status/4",
    "A function known only from a worker's CAN_DO is listed with 0 jobs and 1 worker",
    level=SHOULD,
    admin=["status"],
    packets=["CAN_DO", "ECHO_REQ"],
    source=f"{_TEXT} (functions are created by CAN_DO)",
)
def status_worker_only(s: Session) -> None:
    fn = s.name("fn")
    worker = s.worker(fn)
    worker.sync()  # CAN_DO is processed before the worker's round trip is answered
    row = _status_row(s, s.client(), fn)
    s.check_equal((row.total, row.running, row.workers), (0, 0, 1), f"status of {fn} (total, running, workers)")


@case(
    "admin/status/5",
    "Admin command words are case-insensitive ('STATUS' works like 'status')",
    level=SHOULD,
    admin=["status"],
    source=f"{_TEXT} (strcasecmp on the command words)",
)
def status_case_insensitive(s: Session) -> None:
    fn = s.name("fn")
    _queue_background(s, fn, 1)
    conn = s.client()
    conn.send_raw(b"STATUS\n")
    rows = [r for r in parse_status(conn.expect_admin("status")) if r.function == fn]
    s.check_equal(len(rows), 1, f"rows for {fn} in the 'STATUS' reply")


@case(
    "admin/status/6",
    "After the last worker of a function disconnects, its available-workers count drops to 0",
    admin=["status"],
    packets=["CAN_DO", "SUBMIT_JOB_BG"],
    source=f"{_TEXT}; gearmand libgearman-server/worker.cc gearman_server_worker_free",
)
def status_worker_gone(s: Session) -> None:
    fn = s.name("fn")
    _queue_background(s, fn, 1)
    worker = s.worker(fn)
    worker.sync()
    admin = s.client()
    s.check_equal(_status_row(s, admin, fn).workers, 1, "workers while connected")
    worker.close()
    # The server learns of the close asynchronously: ask again until the deadline.
    for _ in range(200):
        if _status_row(s, admin, fn).workers == 0:
            return
    s.fail("0 available workers after the worker disconnected", "still 1 after 200 status round trips")


# -- workers ---------------------------------------------------------------------------------


@case(
    "admin/workers/1",
    "'workers' answers 'FD IP CLIENT_ID : FUNCTION...' per connection, then a lone '.'",
    admin=["workers"],
    packets=["CAN_DO"],
    source=f"{_PROTOCOL}; {_TEXT}",
)
def workers_format(s: Session) -> None:
    s.worker(s.name("fn")).sync()
    parse_workers(s.client().admin("workers"))


@case(
    "admin/workers/2",
    "A worker's line shows its SET_CLIENT_ID id and every function it can do",
    admin=["workers"],
    packets=["SET_CLIENT_ID", "CAN_DO"],
    source=f"{_PROTOCOL} (SET_CLIENT_ID); {_TEXT}",
)
def workers_lists_functions(s: Session) -> None:
    fn1, fn2, cid = s.name("fa"), s.name("fb"), s.name("id")
    worker = s.connect("worker")
    worker.send(T.SET_CLIENT_ID, cid)
    worker.can_do(fn1, fn2)
    worker.sync()
    rows = [r for r in parse_workers(s.client().admin("workers")) if r.client_id == cid]
    if len(rows) != 1:
        s.fail(f"one workers line with client id {cid}", f"{len(rows)} lines")
    # In any order: PROTOCOL ("workers": FUNCTION ...) and text.cc give no order (gearmand
    # lists its newest registration first).
    s.check_equal(sorted(rows[0].functions), sorted([fn1, fn2]), "functions on the worker's line")


@case(
    "admin/workers/3",
    "A connection that sent no SET_CLIENT_ID shows '-' as its client id",
    level=SHOULD,
    admin=["workers"],
    packets=["CAN_DO"],
    source=_TEXT,
)
def workers_default_client_id(s: Session) -> None:
    fn = s.name("fn")
    s.worker(fn).sync()
    rows = [r for r in parse_workers(s.client().admin("workers")) if fn in r.functions]
    if len(rows) != 1:
        s.fail(f"one workers line listing {fn}", f"{len(rows)} lines")
    s.check_equal(rows[0].client_id, "-", "client id")


@case(
    "admin/workers/4",
    "After CANT_DO the function is gone from the worker's line",
    admin=["workers"],
    packets=["SET_CLIENT_ID", "CAN_DO", "CANT_DO"],
    source=f"{_PROTOCOL} (CANT_DO); {_TEXT}",
)
def workers_cant_do(s: Session) -> None:
    keep, drop, cid = s.name("keep"), s.name("drop"), s.name("id")
    worker = s.connect("worker")
    worker.send(T.SET_CLIENT_ID, cid)
    worker.can_do(keep, drop)
    worker.send(T.CANT_DO, drop)
    worker.sync()
    rows = [r for r in parse_workers(s.client().admin("workers")) if r.client_id == cid]
    if len(rows) != 1:
        s.fail(f"one workers line with client id {cid}", f"{len(rows)} lines")
    s.check_equal(list(rows[0].functions), [keep], "functions after CANT_DO")


@case(
    "admin/workers/5",
    "After RESET_ABILITIES the worker's line lists no functions",
    admin=["workers"],
    packets=["SET_CLIENT_ID", "CAN_DO", "RESET_ABILITIES"],
    source=f"{_PROTOCOL} (RESET_ABILITIES); {_TEXT}",
)
def workers_reset_abilities(s: Session) -> None:
    cid = s.name("id")
    worker = s.connect("worker")
    worker.send(T.SET_CLIENT_ID, cid)
    worker.can_do(s.name("fa"), s.name("fb"))
    worker.send(T.RESET_ABILITIES)
    worker.sync()
    rows = [r for r in parse_workers(s.client().admin("workers")) if r.client_id == cid]
    if len(rows) != 1:
        s.fail(f"one workers line with client id {cid}", f"{len(rows)} lines")
    s.check_equal(list(rows[0].functions), [], "functions after RESET_ABILITIES")


# -- prioritystatus --------------------------------------------------------------------------


def _prioritystatus(s: Session, conn: Conn) -> AdminReply:
    reply = _extension_admin(s, conn, "prioritystatus")
    return reply


@case(
    "admin/prioritystatus/1",
    "'prioritystatus' answers FUNCTION HIGH NORMAL LOW WORKERS rows (tabs), then a lone '.'",
    level=EXTENSION,
    admin=["prioritystatus"],
    packets=["SUBMIT_JOB_BG"],
    source=_TEXT,
)
def prioritystatus_format(s: Session) -> None:
    _queue_background(s, s.name("fn"), 1)
    parse_prioritystatus(_prioritystatus(s, s.client()))


@case(
    "admin/prioritystatus/2",
    "'prioritystatus' counts queued jobs per priority (one HIGH_BG, two BG, three LOW_BG -> 1 2 3)",
    level=EXTENSION,
    admin=["prioritystatus"],
    packets=["SUBMIT_JOB_HIGH_BG", "SUBMIT_JOB_BG", "SUBMIT_JOB_LOW_BG", "JOB_CREATED"],
    source=_TEXT,
)
def prioritystatus_counts(s: Session) -> None:
    fn = s.name("fn")
    # A different count per column (and 0 workers), so that two columns swapped show.
    _queue_background(s, fn, 1, T.SUBMIT_JOB_HIGH_BG)
    _queue_background(s, fn, 2, T.SUBMIT_JOB_BG)
    _queue_background(s, fn, 3, T.SUBMIT_JOB_LOW_BG)
    rows = [r for r in parse_prioritystatus(_prioritystatus(s, s.client())) if r.function == fn]
    if len(rows) != 1:
        s.fail(f"one prioritystatus row for {fn}", f"{len(rows)} rows")
    got = (rows[0].high, rows[0].normal, rows[0].low, rows[0].workers)
    s.check_equal(got, (1, 2, 3, 0), f"prioritystatus of {fn} (high, normal, low, workers)")


@case(
    "admin/prioritystatus/3",
    "'prioritystatus' counts queued foreground jobs too (two SUBMIT_JOB from one client -> 0 2 0)",
    level=EXTENSION,
    admin=["prioritystatus"],
    packets=["SUBMIT_JOB", "JOB_CREATED"],
    source=_TEXT,
)
def prioritystatus_foreground(s: Session) -> None:
    fn = s.name("fn")
    client = s.client()  # stays open: its foreground jobs stay queued
    client.submit(fn, b"first", s.name("u1"))  # own uniques, as in _queue_background
    client.submit(fn, b"second", s.name("u2"))
    rows = [r for r in parse_prioritystatus(_prioritystatus(s, s.client())) if r.function == fn]
    if len(rows) != 1:
        s.fail(f"one prioritystatus row for {fn}", f"{len(rows)} rows")
    got = (rows[0].high, rows[0].normal, rows[0].low, rows[0].workers)
    s.check_equal(got, (0, 2, 0, 0), f"prioritystatus of {fn} (high, normal, low, workers)")


@case(
    "admin/prioritystatus/4",
    "'prioritystatus' counts queued foreground jobs submitted without unique ids (three SUBMIT_JOB -> 0 3 0)",
    level=EXTENSION,
    admin=["prioritystatus"],
    packets=["SUBMIT_JOB", "JOB_CREATED"],
    source=f"{_TEXT}; PROTOCOL (SUBMIT_JOB: an empty unique id never coalesces)",
)
def prioritystatus_without_uniques(s: Session) -> None:
    fn = s.name("fn")
    client = s.client()  # stays open: its foreground jobs stay queued
    for i in range(3):
        client.submit(fn, b"job-%d" % i)
    rows = [r for r in parse_prioritystatus(_prioritystatus(s, s.client())) if r.function == fn]
    if len(rows) != 1:
        s.fail(f"one prioritystatus row for {fn}", f"{len(rows)} rows")
    got = (rows[0].high, rows[0].normal, rows[0].low, rows[0].workers)
    s.check_equal(got, (0, 3, 0, 0), f"prioritystatus of {fn} (high, normal, low, workers)")


# -- show jobs / show unique jobs ------------------------------------------------------------


@case(
    "admin/show_jobs/1",
    "'show jobs' answers HANDLE RETRIES IGNORED PERSISTED rows (tabs), then a lone '.'",
    level=EXTENSION,
    admin=["show jobs"],
    packets=["SUBMIT_JOB_BG"],
    source=_TEXT,
)
def show_jobs_format(s: Session) -> None:
    _queue_background(s, s.name("fn"), 1)
    reply = _extension_admin(s, s.client(), "show jobs")
    parse_show_jobs(reply)


@case(
    "admin/show_jobs/2",
    "'show jobs' lists the handle of a queued background job, with 0 retries, not ignored, and a 0/1 flag last",
    level=EXTENSION,
    admin=["show jobs"],
    packets=["SUBMIT_JOB_BG", "JOB_CREATED"],
    source=_TEXT,
)
def show_jobs_lists_handle(s: Session) -> None:
    (handle,) = _queue_background(s, s.name("fn"), 1)
    reply = _extension_admin(s, s.client(), "show jobs")
    rows = [r for r in parse_show_jobs(reply) if r.handle == handle.decode("latin-1")]
    if len(rows) != 1:
        s.fail(f"one row for handle {handle!r}", f"{len(rows)} rows")
    s.check_equal((rows[0].retries, rows[0].ignored), (0, 0), "retries, ignored")
    # A flag: gearmand prints job_queued as 0 or 1 (text.cc; 1 for a background job).
    s.check(rows[0].persisted in (0, 1), "the fourth column 0 or 1", rows[0].persisted)


@case(
    "admin/show_unique_jobs/1",
    "'show unique jobs' lists the unique id of a queued job, one per line, then a lone '.'",
    level=EXTENSION,
    admin=["show unique jobs"],
    packets=["SUBMIT_JOB_BG"],
    source=_TEXT,
)
def show_unique_jobs_lists(s: Session) -> None:
    fn, unique = s.name("fn"), s.name("u")
    s.client().submit(fn, b"x", unique, type=T.SUBMIT_JOB_BG)
    reply = _extension_admin(s, s.client(), "show unique jobs")
    uniques = parse_show_unique_jobs(reply)
    s.check(unique in uniques, f"{unique} among the listed unique ids", f"{len(uniques)} ids without it")


# -- cancel job ------------------------------------------------------------------------------


@case(
    "admin/cancel_job/1",
    "'cancel job H' on a queued background job answers OK and no worker gets the job",
    level=EXTENSION,
    admin=["cancel job"],
    packets=["SUBMIT_JOB_BG", "GRAB_JOB", "NO_JOB"],
    source=f"{_TEXT}; {_GEAR}",
)
def cancel_queued_job(s: Session) -> None:
    fn = s.name("fn")
    (handle,) = _queue_background(s, fn, 1)
    reply = _extension_admin(s, s.client(), "cancel job", handle)
    s.check(reply.lines == ("OK",), "OK", " | ".join(reply.lines))
    s.worker(fn).grab_nothing()


@case(
    "admin/cancel_job/5",
    "After 'cancel job H' on one of two queued jobs, 'status' and 'prioritystatus' count only the other",
    level=EXTENSION,
    admin=["cancel job", "status", "prioritystatus"],
    packets=["SUBMIT_JOB_BG"],
    source=f"{_TEXT}; gearmand libgearman-server/gearmand_con.cc gearman_server_job_cancel",
)
def cancel_then_counts(s: Session) -> None:
    fn = s.name("fn")
    handle, _kept = _queue_background(s, fn, 2)
    conn = s.client()
    reply = _extension_admin(s, conn, "cancel job", handle)
    s.check(reply.lines == ("OK",), "OK", " | ".join(reply.lines))
    s.check_equal(_status_row(s, conn, fn).total, 1, f"status TOTAL of {fn} after the cancel")
    rows = [r for r in parse_prioritystatus(_prioritystatus(s, conn)) if r.function == fn]
    s.check_equal([(r.high, r.normal, r.low) for r in rows], [(0, 1, 0)], f"prioritystatus of {fn} after the cancel")


@case(
    "admin/cancel_job/6",
    "'cancel job H' on an epoch job not yet due answers OK, and the job does not run when its time comes",
    level=EXTENSION,
    admin=["cancel job"],
    packets=["SUBMIT_JOB_EPOCH", "PRE_SLEEP", "GRAB_JOB", "NO_JOB"],
    source=f"{_TEXT}; gearmand libgearman-server/gearmand_con.cc gearman_server_job_cancel",
    timeout=8,
)
def cancel_epoch(s: Session) -> None:
    fn = s.name("fn")
    client = s.client()
    when = int(time.time()) + 2
    handle = submit_or_unsupported(s, client, T.SUBMIT_JOB_EPOCH, fn, s.name("u"), when, b"cancelled")
    reply = _extension_admin(s, client, "cancel job", handle.decode("latin-1"))
    if reply.lines != ("OK",):
        s.unsupported(f"'cancel job' of a waiting epoch job answered {' | '.join(reply.lines)}")
    worker = sleeping_worker(s, fn)
    worker.receive(timeout=max(0.0, when - time.time()) + 1.5)  # a NOOP if the job comes back
    got = grab_any(s, worker)
    s.check(got.type is T.NO_JOB, "NO_JOB: the cancelled job stays cancelled", describe(got))


@case(
    "admin/cancel_job/3",
    "After 'cancel job H' answered OK, GET_STATUS for H reports an unknown job (known 0)",
    level=SHOULD,
    admin=["cancel job"],
    packets=["SUBMIT_JOB_BG", "GET_STATUS", "STATUS_RES"],
    source=f"{_TEXT}; gearmand libgearman-server/gearmand_con.cc gearman_server_job_cancel (marks the job ignored)",
)
def cancel_then_status(s: Session) -> None:
    fn = s.name("fn")
    (handle,) = _queue_background(s, fn, 1)
    conn = s.client()
    reply = _extension_admin(s, conn, "cancel job", handle)
    s.check(reply.lines == ("OK",), "OK", " | ".join(reply.lines))
    s.check_equal(conn.get_status(handle).known, b"0", "STATUS_RES known after cancel")


@case(
    "admin/cancel_job/4",
    "'cancel job H' on a queued foreground job answers OK and its client gets WORK_FAIL",
    level=EXTENSION,
    admin=["cancel job"],
    packets=["SUBMIT_JOB", "JOB_CREATED", "WORK_FAIL"],
    source="gearmand libgearman-server/gearmand_con.cc gearman_server_job_cancel (WORK_FAIL to every client)",
)
def cancel_foreground_job(s: Session) -> None:
    fn = s.name("fn")
    client = s.client()
    handle = client.submit(fn, b"x", s.name("u"))
    reply = _extension_admin(s, s.client(), "cancel job", handle)
    s.check(reply.lines == ("OK",), "OK", " | ".join(reply.lines))
    fail = client.expect(T.WORK_FAIL)
    s.check_equal(fail.handle, handle, "WORK_FAIL handle")


@case(
    "admin/cancel_job/2",
    "'cancel job' with an unknown handle answers one ERR line (ERR UNKNOWN_JOB in gearmand)",
    level=EXTENSION,
    admin=["cancel job"],
    source=f"{_TEXT}; {_GEAR}",
)
def cancel_unknown_job(s: Session) -> None:
    reply = _extension_admin(s, s.client(), "cancel job", s.name("no-such-handle"))
    error = reply.error()
    s.check(error is not None, "an ERR line", " | ".join(reply.lines))
    assert error is not None
    s.check(error.code.upper() == "UNKNOWN_JOB", "ERR UNKNOWN_JOB", reply.lines[0])


# -- create function / drop function ---------------------------------------------------------


@case(
    "admin/create_function/1",
    "'create function F' answers OK and F is listed by 'status' with 0 0 0",
    level=EXTENSION,
    admin=["create function", "status"],
    source=_TEXT,
)
def create_function(s: Session) -> None:
    fn = s.name("fn")
    conn = s.client()
    reply = _extension_admin(s, conn, "create function", fn)
    s.check(reply.lines == ("OK",), "OK", " | ".join(reply.lines))
    rows = parse_status(conn.admin("status"))
    mine = [r for r in rows if r.function == fn]
    if not mine:
        near = [r.function for r in rows if fn.startswith(r.function) or r.function.startswith(fn[:-2])]
        s.fail(f"a status row for {fn}", f"no such row; similar names: {', '.join(near) or 'none'}")
    s.check_equal((mine[0].total, mine[0].running, mine[0].workers), (0, 0, 0), f"status of {fn}")


@case(
    "admin/create_function/2",
    "A function made with 'create function' stays listed by 'status' after 1,100 other names were registered and dropped",
    level=EXTENSION,
    admin=["create function", "status"],
    packets=["CAN_DO", "CANT_DO"],
    source=f"{_TEXT} (create function); gearspec reference/broker.py IDLE_FUNCTIONS_KEPT (idle names forgotten, created ones kept)",
    timeout=20,
    # Alone: the 1,100 idle names would push other cases' idle functions out of a server that forgets them.
    serial=True,
)
def created_function_stays(s: Session) -> None:
    fn = s.name("fn")
    conn = s.client()
    reply = _extension_admin(s, conn, "create function", fn)
    s.check(reply.lines == ("OK",), "OK", " | ".join(reply.lines))
    worker = s.connect("worker")
    worker.send(T.CAN_DO, fn)
    worker.send(T.CANT_DO, fn)
    others = [s.name(f"churn{i}") for i in range(1100)]
    worker.send_raw(b"".join(Packet.request(type, name).to_bytes() for name in others for type in (T.CAN_DO, T.CANT_DO)),
                    f"CAN_DO and CANT_DO for {len(others)} other functions")
    settle(worker)
    listed = {r.function for r in parse_status(conn.admin("status"))}
    s.check(fn in listed, f"{fn} in 'status'", f"{len(listed)} rows without it")
    # Tidy up where the target can: a server that keeps every name would list them all forever.
    conn.send_admin("drop function", others[0])
    first = conn.receive()
    if first is not None:
        conn.unread(first)
        if conn.expect_admin("drop function").lines == ("OK",):
            conn.send_raw("".join(f"drop function {name}\r\n" for name in others[1:]).encode(), "drop function for the rest")
            for _ in others[1:]:
                conn.expect_admin("drop function")


@case(
    "admin/drop_function/1",
    "'drop function F' on a function without workers or jobs answers OK and F leaves 'status'",
    level=EXTENSION,
    admin=["drop function", "status"],
    packets=["CAN_DO", "CANT_DO"],
    source=_TEXT,
)
def drop_function(s: Session) -> None:
    fn = s.name("fn")
    # A worker's CAN_DO then CANT_DO leaves the function known with no worker and no job
    # (independent of 'create function', which has its own case).
    worker = s.worker(fn)
    worker.send(T.CANT_DO, fn)
    worker.sync()
    conn = s.client()
    reply = _extension_admin(s, conn, "drop function", fn)
    s.check(reply.lines == ("OK",), "OK", " | ".join(reply.lines))
    left = [r for r in parse_status(conn.admin("status")) if r.function == fn]
    s.check_equal(left, [], f"status rows for {fn} after drop")


@case(
    "admin/drop_function/2",
    "'drop function F' for an unknown function answers one ERR line",
    level=EXTENSION,
    admin=["drop function"],
    source=_TEXT,
)
def drop_unknown_function(s: Session) -> None:
    reply = _extension_admin(s, s.client(), "drop function", s.name("never"))
    s.check(reply.is_error, "an ERR line", " | ".join(reply.lines))


@case(
    "admin/drop_function/3",
    "'drop function F' while a worker can do F is refused with one ERR line",
    level=EXTENSION,
    admin=["drop function"],
    packets=["CAN_DO"],
    source=_TEXT,
)
def drop_function_with_worker(s: Session) -> None:
    fn = s.name("fn")
    s.worker(fn).sync()
    conn = s.client()
    reply = _extension_admin(s, conn, "drop function", fn)
    s.check(reply.is_error, "an ERR line", " | ".join(reply.lines))


@case(
    "admin/drop_function/4",
    "'drop function F' while a job of F is queued (and no worker can do F) is refused with one ERR line, and the job stays",
    level=EXTENSION,
    admin=["drop function"],
    packets=["SUBMIT_JOB_BG", "CAN_DO", "GRAB_JOB", "JOB_ASSIGN"],
    source=f"{_TEXT} (drop function); PROTOCOL (SUBMIT_JOB_BG: an acknowledged job is the server's to run)",
    alternatives={"purged": "answered OK and the acknowledged job was gone: no worker gets it, and nobody was told"},
)
def drop_function_with_job(s: Session) -> None:
    fn = s.name("fn")
    conn = s.client()
    handle = conn.submit(fn, b"still here", s.name("u"), type=T.SUBMIT_JOB_BG)
    reply = _extension_admin(s, conn, "drop function", fn)
    worker = s.worker(fn)
    job = grab_any(s, worker)
    if reply.lines == ("OK",) and job.type is T.NO_JOB:
        s.non_strict("purged", "GRAB got NO_JOB after 'drop function' answered OK")
    s.check(reply.is_error, "an ERR line", " | ".join(reply.lines))
    s.check(job.type is not T.NO_JOB and job.handle == handle, "the queued job after the refused drop", describe(job))


@case(
    "admin/drop_function/5",
    "'drop function' without a function name answers one ERR line, and the connection still answers",
    level=EXTENSION,
    admin=["drop function"],
    source=f"{_TEXT} (too few words: ERR)",
)
def drop_function_without_name(s: Session) -> None:
    conn = s.client()
    reply = _extension_admin(s, conn, "drop function")
    s.check(reply.is_error, "an ERR line", " | ".join(reply.lines))
    conn.sync()


# -- maxqueue --------------------------------------------------------------------------------


@case(
    "admin/maxqueue/1",
    "With one job queued, 'maxqueue F 1' answers OK and the next job for F, at any priority, gets ERROR QUEUE_ERROR",
    level=EXTENSION,
    admin=["maxqueue"],
    packets=["SUBMIT_JOB_BG", "JOB_CREATED", "ERROR"],
    source=f"{_TEXT}; gearmand libgearman-server/server.cc gearman_server_run_command (QUEUE_ERROR)",
)
def maxqueue_limits(s: Session) -> None:
    fn = s.name("fn")
    conn = s.client()
    # gearmand applies maxqueue to functions it already knows (text.cc), so queue one first.
    conn.submit(fn, b"first", s.name("u1"), type=T.SUBMIT_JOB_BG)
    reply = _extension_admin(s, conn, "maxqueue", fn, 1)
    s.check(reply.lines == ("OK",), "OK", " | ".join(reply.lines))
    # One size limits every priority (text.cc: the missing sizes repeat the given one).
    for type in (T.SUBMIT_JOB_BG, T.SUBMIT_JOB_HIGH_BG, T.SUBMIT_JOB_LOW_BG):
        conn.send(type, fn, s.name("u2"), b"second")
        conn.expect_error("QUEUE_ERROR")


@case(
    "admin/maxqueue/5",
    "'maxqueue F 3' set while two foreground jobs are queued lets one more job in and refuses the next with ERROR QUEUE_ERROR",
    level=EXTENSION,
    admin=["maxqueue"],
    packets=["SUBMIT_JOB", "SUBMIT_JOB_BG", "JOB_CREATED", "ERROR"],
    source=f"{_TEXT}; gearmand libgearman-server/job.cc gearman_server_job_add_reducer (job_total >= max_queue_size: QUEUE_FULL)",
)
def maxqueue_counts_queued(s: Session) -> None:
    fn = s.name("fn")
    waiting = s.client()
    for i in range(2):
        waiting.submit(fn, b"fg-%d" % i)
    conn = s.client()
    reply = _extension_admin(s, conn, "maxqueue", fn, 3)
    s.check(reply.lines == ("OK",), "OK", " | ".join(reply.lines))
    conn.submit(fn, b"third", s.name("u3"), type=T.SUBMIT_JOB_BG)
    conn.send(T.SUBMIT_JOB_BG, fn, s.name("u4"), b"fourth")
    conn.expect_error("QUEUE_ERROR")


@case(
    "admin/maxqueue/6",
    "'maxqueue F x 1 1' reads the non-numeric HIGH size as 0 (no limit): a second HIGH job is queued, a NORMAL one is refused with ERROR QUEUE_ERROR",
    level=EXTENSION,
    admin=["maxqueue"],
    packets=["SUBMIT_JOB_HIGH_BG", "SUBMIT_JOB_BG", "JOB_CREATED", "ERROR"],
    source=f"{_TEXT} (maxqueue: each size read with atoi, below 0 or not a number: 0, no limit)",
)
def maxqueue_not_a_number(s: Session) -> None:
    fn = s.name("fn")
    conn = s.client()
    high = routed_variant(s, T.SUBMIT_JOB_HIGH_BG)  # HIGH in the foreground where HIGH_BG is refused
    submit_variant(s, conn, fn, b"first", s.name("u1"), high)
    reply = _extension_admin(s, conn, "maxqueue", fn, "x", 1, 1)
    s.check(reply.lines == ("OK",), "OK", " | ".join(reply.lines))
    conn.send(high, fn, s.name("u2"), b"second high")
    got = conn.expect(T.JOB_CREATED, T.ERROR, what="JOB_CREATED for the second HIGH job")
    s.check(got.type is T.JOB_CREATED, "JOB_CREATED for the second HIGH job (no HIGH limit)", describe(got))
    conn.send(T.SUBMIT_JOB_BG, fn, s.name("u3"), b"normal")
    conn.expect_error("QUEUE_ERROR")


@case(
    "admin/maxqueue/2",
    "'maxqueue F' without a size (back to unlimited) answers OK, and a limit set before is gone",
    level=EXTENSION,
    admin=["maxqueue"],
    source=_TEXT,
)
def maxqueue_reset(s: Session) -> None:
    fn = s.name("fn")
    conn = s.client()
    conn.submit(fn, b"first", s.name("u1"), type=T.SUBMIT_JOB_BG)  # gearmand limits known functions only
    limit = _extension_admin(s, conn, "maxqueue", fn, 1)
    reply = _extension_admin(s, conn, "maxqueue", fn)
    s.check(reply.lines == ("OK",), "OK", " | ".join(reply.lines))
    if limit.lines == ("OK",):  # the limit of 1 is gone: more jobs are queued
        for i in (2, 3):
            conn.send(T.SUBMIT_JOB_BG, fn, s.name(f"u{i}"), b"more")
            got = conn.expect(T.JOB_CREATED, T.ERROR, what="JOB_CREATED after 'maxqueue F' lifted the limit")
            s.check(got.type is T.JOB_CREATED, "JOB_CREATED after 'maxqueue F' lifted the limit", describe(got))


@case(
    "admin/maxqueue/3",
    "'maxqueue F HIGH NORMAL LOW' (per-priority sizes) answers OK",
    level=EXTENSION,
    admin=["maxqueue"],
    source=_TEXT,
)
def maxqueue_per_priority(s: Session) -> None:
    reply = _extension_admin(s, s.client(), "maxqueue", s.name("fn"), 3, 2, 1)
    s.check(reply.lines == ("OK",), "OK", " | ".join(reply.lines))


@case(
    "admin/maxqueue/4",
    "'maxqueue' without a function answers one ERR line (INVALID_ARGUMENTS in gearmand)",
    level=SHOULD,
    admin=["maxqueue"],
    source=_TEXT,
)
def maxqueue_missing_function(s: Session) -> None:
    reply = s.client().admin("maxqueue")
    s.check(reply.is_error, "an ERR line", " | ".join(reply.lines))


# -- one-line commands -----------------------------------------------------------------------


@case(
    "admin/getpid/1",
    "'getpid' answers 'OK <process id>'",
    level=EXTENSION,
    admin=["getpid"],
    source=_TEXT,
)
def getpid(s: Session) -> None:
    reply = _extension_admin(s, s.client(), "getpid")
    s.check(re.fullmatch(r"OK [0-9]+", reply.lines[0]) is not None, "OK <digits>", reply.lines[0])


@case(
    "admin/verbose/1",
    "'verbose' answers 'OK <log level name>'",
    level=EXTENSION,
    admin=["verbose"],
    source=_TEXT,
)
def verbose(s: Session) -> None:
    reply = _extension_admin(s, s.client(), "verbose")
    s.check(re.fullmatch(r"OK [A-Za-z]+", reply.lines[0]) is not None, "OK <level>", reply.lines[0])


@case(
    "admin/show_queue/1",
    "'show queue' lists the durable queue's state as NAME<TAB>VALUE lines: queue, state, refused",
    level=EXTENSION,
    admin=["show queue"],
    source="gearspec serve (reference/broker.py Broker._show_queue)",
)
def show_queue(s: Session) -> None:
    reply = _extension_admin(s, s.client(), "show queue")
    error = reply.error()
    if error is not None and error.code.upper() == "UNKNOWN_SHOW_ARGUMENTS":  # gearmand's answer (text.cc)
        s.unsupported(f"'show queue' answered {reply.lines[0]!r}")
    fields = dict(line.split("\t", 1) for line in reply.lines if "\t" in line)
    s.check(list(fields) == ["queue", "state", "refused"], "the rows queue, state, refused", list(fields))
    s.check(
        fields["state"] in ("ok", "not durable") or fields["state"].startswith("failing: "),
        "state ok, not durable or failing: WHY",
        fields["state"],
    )
    s.check(fields["refused"].isdigit(), "refused: a count", fields["refused"])
    s.check((fields["queue"] == "memory") == (fields["state"] == "not durable"),
            "state 'not durable' for the memory queue only", f"queue {fields['queue']}, state {fields['state']}")


@case(
    "admin/version/1",
    "'version' answers 'OK <version>'",
    level=EXTENSION,
    admin=["version"],
    source=f"{_TEXT}; {_PERL} TXTCMD_version",
    alternatives={"bare-version": "one line with the version and no 'OK ' (Perl Gearman::Server)"},
)
def version(s: Session) -> None:
    reply = _extension_admin(s, s.client(), "version")
    line = reply.lines[0]
    if re.fullmatch(r"OK \S+", line):
        s.note(f"version {line[3:]}")
        return
    if not line.startswith(("OK", "ERR")) and line.strip():
        s.non_strict("bare-version", line)
    s.fail("OK <version>", line)


@case(
    "admin/shutdown/1",
    "'shutdown graceful' (removed in gearmand 1.1.15): the answer is recorded; may stop the target",
    level=INFO,
    admin=["shutdown"],
    source=f"gearmand before 1.1.15 libgearman-server/text.cc; {_PERL} TXTCMD_shutdown",
    destructive=True,
)
def shutdown(s: Session) -> None:
    conn = s.client()
    conn.send_admin("shutdown graceful")
    event = conn.receive()
    s.note(f"answered {conn.describe_received(event)}")


# -- unknown commands and line handling ------------------------------------------------------


@case(
    "admin/unknown/1",
    "An unknown admin command answers one ERR line and the connection stays usable",
    admin=["status"],
    source=f"{_PROTOCOL}; {_TEXT} (ERR UNKNOWN_COMMAND)",
)
def unknown_command(s: Session) -> None:
    conn = s.client()
    reply = _raw_line_reply(conn, s.name("bogus"))
    s.check(reply.is_error, "an ERR line", " | ".join(reply.lines))
    conn.admin("status")


@case(
    "admin/unknown/2",
    "The ERR line for an unknown command has the form 'ERR UNKNOWN_COMMAND <text>'",
    level=SHOULD,
    admin=["status"],
    source=f"{_TEXT} (ERR UNKNOWN_COMMAND Unknown+server+command)",
)
def unknown_command_code(s: Session) -> None:
    reply = _raw_line_reply(s.client(), s.name("bogus"))
    error = reply.error()
    s.check(error is not None and error.code.upper() == "UNKNOWN_COMMAND", "ERR UNKNOWN_COMMAND ...", reply.lines[0])


@case(
    "admin/unknown/3",
    "A known word with missing arguments ('cancel job' without a handle) answers one ERR line",
    level=SHOULD,
    admin=["cancel job"],
    source=_TEXT,
)
def missing_argument(s: Session) -> None:
    reply = _raw_line_reply(s.client(), "cancel job")
    s.check(reply.is_error, "an ERR line", " | ".join(reply.lines))


@case(
    "admin/lines/1",
    "Reply lines end in LF; OK/ERR lines may end in CRLF (as gearmand sends them), the rows of a '.' block in LF",
    level=SHOULD,
    admin=["status", "version"],
    source=f"{_PROTOCOL}; {_TEXT} (status rows '%s\\t%u\\t%u\\t%u\\n', '.\\n')",
    alternatives={"crlf-rows": "the rows of a '.' block end in CRLF (a client splitting on LF keeps a CR in the last column)"},
)
def line_endings(s: Session) -> None:
    conn = s.client()
    conn.admin("status")
    endings = {line.terminator for line in conn.last_reply_lines}
    s.note(f"status line endings: {sorted(repr(e) for e in endings)}")
    s.check(endings <= {b"\n", b"\r\n"}, "lines ending in LF or CRLF", repr(endings))
    if b"\r\n" in endings:
        s.non_strict("crlf-rows", f"status line endings: {sorted(repr(e) for e in endings)}")


@case(
    "admin/lines/2",
    "Two admin commands in one write are answered in order",
    admin=["status", "workers"],
    source=f"{_PROTOCOL}; {_TEXT}",
)
def pipelined_admin(s: Session) -> None:
    conn = s.client()
    conn.send_raw(b"status\nworkers\n")
    parse_status(conn.expect_admin("status"))
    parse_workers(conn.expect_admin("workers"))


def _raw_line_reply(conn: Conn, line: str) -> AdminReply:
    """Send a line that is not in the table and read a one-line reply."""
    conn.send_raw(line.encode("latin-1") + b"\n")
    return conn.expect_admin(None)
