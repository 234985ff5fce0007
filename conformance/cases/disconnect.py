"""Disconnects: what happens to jobs when their worker or client goes away.

PROTOCOL says nothing about disconnects; the cases follow what servers do and what clients
rely on. Sources: gearmand `libgearman-server/gearmand_con.cc` `gearman_server_con_free`
(a worker's jobs go back to the queue with `gearman_server_job_queue`; a client's foreground
jobs are marked `ignore_job`), `gearman_server_job_peek` / `gearman_server_job_take` (an
ignored job is dropped when a worker would get it), `libgearman-server/job.cc`
`gearman_server_job_queue` (retries, then WORK_FAIL); Perl Gearman::Server
`lib/Gearman/Server/Client.pm` `close` (jobs of a dead worker are requeued).
"""

from __future__ import annotations

from gearspec.conformance.cases._jobs import (
    ASSIGN_TYPES,
    JOB_PEEK,
    close_and_wait_forgotten,
    first_to_speak,
    require_coalesced,
    settle,
    sleeping_worker,
    start_job,
    status_of,
)
from gearspec.conformance.harness import Session, describe
from gearspec.conformance.registry import SHOULD, case

from gearspec.admin import parse_status
from gearspec.codec import Packet
from gearspec.spec import PacketType as T

_CON_FREE = "gearmand libgearman-server/gearmand_con.cc gearman_server_con_free"
_REQUEUE = f"{_CON_FREE} (worker's jobs requeued); gearmand libgearman-server/job.cc gearman_server_job_queue"


@case(
    "disconnect/worker/1",
    "When a worker disconnects holding a foreground job, the job goes to another worker",
    level=SHOULD,
    packets=["SUBMIT_JOB", "JOB_ASSIGN", "WORK_COMPLETE"],
    source=f"{_REQUEUE}; Perl Gearman::Server Client.pm close",
    alternatives={"fail": "the client was sent WORK_FAIL instead (no retry)"},
)
def worker_dies_foreground(s: Session) -> None:
    fn = s.name("fn")
    client, first, handle, _job = start_job(s, fn, b"retry me")
    standby = sleeping_worker(s, fn)
    first.close()
    who = first_to_speak(s, [client, standby], timeout=s.wait)
    if who is None:
        s.fail("the job requeued (NOOP to a sleeping worker) or WORK_FAIL to the client", "nothing")
    if who is client:
        event = client.receive()
        if isinstance(event, Packet) and event.type is T.WORK_FAIL:
            s.non_strict("fail")
        s.fail("nothing for the client while the job is retried", describe(event) if event else "nothing")
    standby.expect(T.NOOP)
    job = standby.grab()
    s.check_equal((job.handle, job["data"]), (handle, b"retry me"), "requeued job")
    standby.work(T.WORK_COMPLETE, handle, b"second try")
    s.check_equal(client.expect(T.WORK_COMPLETE)["data"], b"second try", "result")


@case(
    "disconnect/worker/2",
    "When a worker disconnects holding a background job, the job is requeued",
    level=SHOULD,
    packets=["SUBMIT_JOB_BG", "JOB_ASSIGN", "GET_STATUS", "STATUS_RES"],
    source=_REQUEUE,
)
def worker_dies_background(s: Session) -> None:
    fn = s.name("fn")
    _client, first, handle, _job = start_job(s, fn, b"bg", b"", T.SUBMIT_JOB_BG)
    standby = sleeping_worker(s, fn)
    first.close()
    standby.expect(T.NOOP)  # woken when the job is back in the queue
    s.check_equal(standby.grab().handle, handle, "requeued handle")


@case(
    "disconnect/worker/3",
    "A requeued job's GET_STATUS shows it queued again (running 0)",
    level=SHOULD,
    packets=["SUBMIT_JOB_BG", "WORK_STATUS", "GET_STATUS", "STATUS_RES"],
    source=_REQUEUE,
)
def requeued_status(s: Session) -> None:
    fn = s.name("fn")
    client, first, handle, _job = start_job(s, fn, b"bg", b"", T.SUBMIT_JOB_BG)
    first.work(T.WORK_STATUS, handle, 1, 2)
    settle(first)
    standby = sleeping_worker(s, fn)
    first.close()
    standby.expect(T.NOOP)  # requeued
    s.check_equal(status_of(s, client, handle)[:2], (b"1", b"0"), "known, running after the worker died")


@case(
    "disconnect/worker/5",
    "After a requeue, the admin 'status' row counts the job as queued, not running (TOTAL 1, RUNNING 0)",
    level=SHOULD,
    packets=["SUBMIT_JOB_BG", "JOB_ASSIGN", "NOOP"],
    admin=["status"],
    source=f"{_REQUEUE}; gearmand libgearman-server/text.cc server_run_text (status: job_total, job_running)",
)
def requeued_admin_counts(s: Session) -> None:
    if not s.capabilities.admin:
        s.unsupported("needs the admin command 'status' (the target did not answer it)")
    fn = s.name("fn")
    _client, first, _handle, _job = start_job(s, fn, b"bg", b"", T.SUBMIT_JOB_BG)
    standby = s.worker(fn)
    standby.grab_nothing()
    standby.send(T.PRE_SLEEP)
    settle(standby, first)
    first.close()
    woken = standby.receive()
    if not (isinstance(woken, Packet) and woken.type is T.NOOP):
        s.unsupported(f"the job was not requeued ({standby.describe_received(woken)}); see disconnect/worker/2")
    row = [r for r in parse_status(s.connect("admin").admin("status")) if r.function == fn]
    s.check(len(row) == 1, f"one status row for {fn}", f"{len(row)} rows")
    s.check_equal((row[0].total, row[0].running), (1, 0), "TOTAL, RUNNING after the requeue")


@case(
    "disconnect/worker/4",
    "A sleeping worker that disconnects does not stop jobs reaching the other workers",
    packets=["PRE_SLEEP", "SUBMIT_JOB", "NOOP", "JOB_ASSIGN"],
    source=f"{_CON_FREE} (worker removed from its functions)",
)
def sleeper_leaves(s: Session) -> None:
    fn = s.name("fn")
    gone = s.worker(fn)
    gone.send(T.PRE_SLEEP)
    settle(gone)
    gone.close()
    stay = sleeping_worker(s, fn)
    handle = s.client().submit(fn, b"x")
    stay.expect(T.NOOP)
    s.check_equal(stay.grab().handle, handle, "job for the remaining worker")


@case(
    "disconnect/client/1",
    "A queued foreground job whose only client disconnected is not handed to a worker",
    level=SHOULD,
    packets=["SUBMIT_JOB", "SET_CLIENT_ID", "GRAB_JOB", "NO_JOB", "JOB_ASSIGN"],
    admin=["workers"],
    source=f"{_CON_FREE} (ignore_job); {JOB_PEEK} (dropped lazily)",
    alternatives={"runs-anyway": "the orphaned job was still assigned to a worker (nobody wants its result)"},
)
def orphan_dropped(s: Session) -> None:
    fn = s.name("fn")
    client = s.client()
    client_id = s.name("id")
    client.send(T.SET_CLIENT_ID, client_id)
    client.submit(fn, b"orphan")
    close_and_wait_forgotten(s, client, client_id)
    worker = s.worker(fn)
    worker.send(s.grab_type)
    reply = worker.expect(T.NO_JOB, T.JOB_ASSIGN, T.JOB_ASSIGN_UNIQ, T.JOB_ASSIGN_ALL)
    if reply.type is not T.NO_JOB:
        s.non_strict("runs-anyway", f"{reply.name} for the orphaned job")


@case(
    "disconnect/client/4",
    "A client that leaves with 100 queued foreground jobs takes only those: another client's queued job is still handed out",
    packets=["SUBMIT_JOB", "SUBMIT_JOB_BG", "SET_CLIENT_ID", "GRAB_JOB", "JOB_ASSIGN"],
    admin=["workers"],
    source=f"{_CON_FREE} (only that client's jobs are marked ignore_job); {JOB_PEEK}",
)
def others_job_kept(s: Session) -> None:
    fn = s.name("fn")
    leaving = s.client()
    client_id = s.name("id")
    leaving.send(T.SET_CLIENT_ID, client_id)
    orphans = 100
    # Each job with a unique id of its own: rustygeard coalesces jobs on the empty unique, which
    # coalesce/* grades, not this case.
    unique = s.name("u")
    submits = b"".join(Packet.request(T.SUBMIT_JOB, fn, f"{unique}-{i}", b"orphan").to_bytes() for i in range(orphans))
    leaving.send_raw(submits, f"{orphans} x SUBMIT_JOB")
    for _ in range(orphans):
        leaving.expect(T.JOB_CREATED)
    kept = s.client().submit(fn, b"kept", f"{unique}-kept", T.SUBMIT_JOB_BG)
    close_and_wait_forgotten(s, leaving, client_id)
    worker = s.worker(fn)
    for grabbed in range(orphans + 1):  # a server that runs orphaned jobs anyway hands them out first
        worker.send(s.grab_type)
        reply = worker.expect(T.NO_JOB, *ASSIGN_TYPES, ignore=[T.NOOP])
        if reply.type is T.NO_JOB:
            s.fail(f"the other client's job {kept!r} handed out", f"NO_JOB after {grabbed} orphaned jobs")
        if reply.handle == kept:
            return
    s.fail(f"the other client's job {kept!r} handed out", f"{orphans + 1} other jobs")


@case(
    "disconnect/client/5",
    "A foreground job whose client left while it ran is dropped when its worker disconnects too: "
    "no worker gets it again, and GET_STATUS no longer knows it",
    level=SHOULD,
    packets=["SUBMIT_JOB", "SET_CLIENT_ID", "JOB_ASSIGN", "GRAB_JOB", "NO_JOB", "GET_STATUS", "STATUS_RES"],
    admin=["workers"],
    source=f"{_CON_FREE} (the client's jobs are ignore_job; the worker's go back to the queue); {JOB_PEEK} (an "
    "ignored job is freed when a worker would get it)",
    alternatives={
        "runs-anyway": "the orphaned job was requeued and assigned to another worker (nobody wants its result)"
    },
)
def orphan_worker_dies(s: Session) -> None:
    fn = s.name("fn")
    client, client_id = s.client(), s.name("client")
    client.send(T.SET_CLIENT_ID, client_id)
    handle = client.submit(fn, b"orphan", s.name("u"))  # own unique: see disconnect/client/4
    worker, worker_id = s.connect("worker"), s.name("worker")
    worker.send(T.SET_CLIENT_ID, worker_id)
    worker.can_do(fn)
    s.check_equal(worker.grab().handle, handle, "assigned handle")
    close_and_wait_forgotten(s, client, client_id)
    close_and_wait_forgotten(s, worker, worker_id)
    standby = s.worker(fn)
    standby.send(s.grab_type)
    reply = standby.expect(T.NO_JOB, *ASSIGN_TYPES, ignore=[T.NOOP])
    if reply.type is not T.NO_JOB:
        s.non_strict("runs-anyway", f"{reply.name} for the orphaned job")
    s.check_equal(status_of(s, standby, handle)[:2], (b"0", b"0"), "GET_STATUS of the dropped job (known, running)")


@case(
    "disconnect/client/2",
    "A worker may finish a job whose client has gone: WORK_COMPLETE is accepted without ERROR",
    packets=["SUBMIT_JOB", "JOB_ASSIGN", "WORK_STATUS", "WORK_COMPLETE"],
    source=f"{_CON_FREE} (client removed from the running job)",
)
def finish_for_nobody(s: Session) -> None:
    fn = s.name("fn")
    client, worker, handle, _job = start_job(s, fn)
    client.close()
    settle(s.client())
    worker.work(T.WORK_STATUS, handle, 1, 1)
    worker.work(T.WORK_COMPLETE, handle, b"to nobody")
    worker.expect_silence("no ERROR for finishing an abandoned job")
    worker.grab_nothing()


@case(
    "disconnect/client/3",
    "A coalesced job survives the disconnect of one of its two clients while queued",
    level=SHOULD,
    packets=["SUBMIT_JOB", "JOB_ASSIGN", "WORK_COMPLETE"],
    source=f"{_CON_FREE} (only jobs with no client left are ignored)",
)
def coalesced_survives(s: Session) -> None:
    fn, unique = s.name("fn"), s.name("u")
    a, b = s.client(), s.client()
    handle = require_coalesced(s, [a.submit(fn, b"x", unique), b.submit(fn, b"x", unique)])
    a.close()
    settle(b)
    worker = s.worker(fn)
    s.check_equal(worker.grab().handle, handle, "assigned handle")
    worker.work(T.WORK_COMPLETE, handle, b"for b")
    s.check_equal(b.expect(T.WORK_COMPLETE)["data"], b"for b", "remaining client's result")


@case(
    "disconnect/abrupt/1",
    "A connection closed in the middle of a packet header does not disturb the server",
    packets=["SUBMIT_JOB"],
    source="gearmand libgearman-server/io.cc gearmand_io_recv (partial packet, then EOF)",
)
def mid_packet(s: Session) -> None:
    conn = s.client()
    conn.send_raw(Packet.request(T.SUBMIT_JOB, s.name("fn"), b"", b"data").to_bytes()[:7], "7 bytes of a header")
    conn.close()
    s.check_alive("a connection closed mid-packet")


@case(
    "disconnect/abrupt/2",
    "A worker closing right after sending WORK_COMPLETE still delivers the result to the client",
    packets=["JOB_ASSIGN", "WORK_COMPLETE"],
    source=f"{_CON_FREE} (packets already read are run first)",
)
def complete_then_close(s: Session) -> None:
    fn = s.name("fn")
    client, worker, handle, _job = start_job(s, fn)
    worker.work(T.WORK_COMPLETE, handle, b"last words")
    worker.close()
    s.check_equal(client.expect(T.WORK_COMPLETE)["data"], b"last words", "result")


@case(
    "disconnect/worker/6",
    "When the workers holding a foreground job die one after another, the job runs again each time or, once the server gives up, its client gets WORK_FAIL: it never vanishes",
    level=SHOULD,
    packets=["SUBMIT_JOB", "JOB_ASSIGN", "PRE_SLEEP", "NOOP", "WORK_FAIL", "WORK_COMPLETE"],
    source=f"{_REQUEUE}; gearmand libgearman-server/job.cc gearman_server_job_queue (--job-retries: WORK_FAIL to the clients when the retries are used up)",
)
def workers_keep_dying(s: Session) -> None:
    fn = s.name("fn")
    client, holder, handle, _job = start_job(s, fn, b"doomed")
    for death in range(1, 8):  # past a small --job-retries, e.g. the mutation run's
        standby = sleeping_worker(s, fn)
        holder.close()
        who = first_to_speak(s, [client, standby], timeout=s.wait)
        if who is None:
            s.fail("the job requeued (NOOP to a sleeping worker) or WORK_FAIL to the client",
                   f"nothing after worker death {death}: the job is gone")
        if who is client:
            event = client.receive()
            s.check(isinstance(event, Packet) and event.type is T.WORK_FAIL and event.handle == handle,
                    f"WORK_FAIL for {handle!r} (the server gave up)", describe(event))
            s.note(f"the server gave up after worker death {death}")
            return
        standby.expect(T.NOOP)
        job = standby.grab()
        s.check_equal(job.handle, handle, f"handle assigned after worker death {death}")
        holder = standby
    holder.work(T.WORK_COMPLETE, handle, b"finally")
    s.check_equal(client.expect(T.WORK_COMPLETE)["data"], b"finally", "the result after seven requeues")
