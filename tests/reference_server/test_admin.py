"""The admin text protocol of `gearspec serve`, parsed with gearspec.admin's parsers."""

from __future__ import annotations

from gearspec.admin import (
    parse_ok,
    parse_prioritystatus,
    parse_show_jobs,
    parse_show_unique_jobs,
    parse_status,
    parse_workers,
)
from gearspec.codec import AdminLine, Packet
from gearspec.spec import PacketType as T

from .conftest import Conn, start_server


def test_status_prioritystatus_workers_show_jobs(connect, server) -> None:
    client, worker = connect(), connect()
    worker.send(T.SET_CLIENT_ID, b"adm-worker")
    worker.send(T.CAN_DO, b"adm")
    worker.send(T.CAN_DO, b"adm2")
    client.send(T.SUBMIT_JOB_HIGH_BG, b"adm", b"u-high", b"")
    client.send(T.SUBMIT_JOB_BG, b"adm", b"u-normal", b"")
    client.send(T.SUBMIT_JOB_LOW_BG, b"adm", b"u-low", b"")
    handles = [client.expect(T.JOB_CREATED).handle for _ in range(3)]
    worker.send(T.GRAB_JOB)
    worker.expect(T.JOB_ASSIGN, handles[0], b"adm", b"")

    status = {row.function: row for row in parse_status(client.admin("status"))}
    assert (status["adm"].total, status["adm"].running, status["adm"].workers) == (3, 1, 1)
    prio = {row.function: row for row in parse_prioritystatus(client.admin("prioritystatus"))}
    assert (prio["adm"].high, prio["adm"].normal, prio["adm"].low, prio["adm"].workers) == (0, 1, 1, 1)
    workers = [row for row in parse_workers(client.admin("workers")) if row.client_id == "adm-worker"]
    assert len(workers) == 1 and workers[0].functions == ("adm", "adm2") and workers[0].ip == "127.0.0.1"
    jobs = {row.handle: row for row in parse_show_jobs(client.admin("show jobs"))}
    assert {h.decode() for h in handles} <= set(jobs)
    assert jobs[handles[0].decode()].retries == 0
    uniques = parse_show_unique_jobs(client.admin("show unique jobs"))
    assert {"u-high", "u-normal", "u-low"} <= set(uniques)


def test_one_line_commands(connect, server) -> None:
    admin = connect()
    assert int(parse_ok(admin.admin("getpid"))) == server.process.pid
    assert parse_ok(admin.admin("version"))
    assert parse_ok(admin.admin("verbose")) == "WARNING"
    assert admin.admin("create function made").lines == ("OK",)
    assert "made" in {r.function for r in parse_status(admin.admin("status"))}
    assert admin.admin("drop function made").lines == ("OK",)
    assert "made" not in {r.function for r in parse_status(admin.admin("status"))}
    assert admin.admin("drop function never-was").lines[0].startswith("ERR")
    reply = admin.admin("bogus command")
    assert reply.is_error and reply.error().code == "UNKNOWN_COMMAND"
    assert admin.admin("show nonsense").lines == ("ERR UNKNOWN_SHOW_ARGUMENTS",)
    # Command words are case-insensitive; CRLF endings are accepted.
    assert parse_status(admin.admin("STATUS", crlf=True)) is not None
    assert admin.admin("GetPid", crlf=True).lines[0].startswith("OK ")


def test_cancel_job(connect) -> None:
    client = connect()
    client.send(T.SUBMIT_JOB_BG, b"cancel-me", b"", b"")
    handle = client.expect(T.JOB_CREATED).handle
    assert client.admin(f"cancel job {handle.decode()}").lines == ("OK",)
    assert client.admin(f"cancel job {handle.decode()}").lines == ("ERR UNKNOWN_JOB",)
    client.send(T.GET_STATUS, handle)
    client.expect(T.STATUS_RES, handle, b"0", b"0", b"0", b"0")


def test_cancel_queued_foreground_job_fails_it_for_its_client(connect) -> None:
    # gearmand_con.cc gearman_server_job_cancel: every waiting client gets WORK_FAIL.
    client, admin, worker = connect(), connect(), connect()
    client.send(T.SUBMIT_JOB, b"cancel-fg", b"", b"x")
    handle = client.expect(T.JOB_CREATED).handle
    assert admin.admin(f"cancel job {handle.decode()}").lines == ("OK",)
    client.expect(T.WORK_FAIL, handle)
    worker.send(T.CAN_DO, b"cancel-fg")
    worker.send(T.GRAB_JOB)
    worker.expect(T.NO_JOB)


def test_cancel_running_job_is_refused(connect) -> None:
    client, admin, worker = connect(), connect(), connect()
    worker.send(T.CAN_DO, b"cancel-running")
    client.send(T.SUBMIT_JOB, b"cancel-running", b"", b"x")
    handle = client.expect(T.JOB_CREATED).handle
    worker.send(T.GRAB_JOB)
    worker.expect(T.JOB_ASSIGN, handle, b"cancel-running", b"x")
    assert admin.admin(f"cancel job {handle.decode()}").lines == ("ERR UNKNOWN_JOB",)
    worker.send(T.WORK_COMPLETE, handle, b"done")
    client.expect(T.WORK_COMPLETE, handle, b"done")


def test_admin_line_with_nul_is_refused(connect) -> None:
    admin = connect()
    reply = admin.admin("maxqueue \0")
    assert reply.is_error and reply.error().code == "INVALID_ARGUMENTS"
    assert all(not row.function.startswith("\0") for row in parse_status(admin.admin("status")))


def test_admin_lines_and_packets_interleave_on_one_connection(connect) -> None:
    conn = connect()
    conn.send_raw(
        b"status\n"
        + Packet.request(T.ECHO_REQ, b"between").to_bytes()
        + b"getpid\r\n"
    )
    events: list[object] = []
    while not (events and isinstance(events[-1], AdminLine) and events[-1].text.startswith(b"OK ")):
        assert len(events) < 200
        events.append(conn._event())
    texts = [e.text for e in events if isinstance(e, AdminLine)]
    assert b"." in texts
    echo_at = next(i for i, e in enumerate(events) if getattr(e, "type", None) == T.ECHO_RES)
    dot_at = next(i for i, e in enumerate(events) if isinstance(e, AdminLine) and e.text == b".")
    assert dot_at < echo_at  # replies come in request order
    assert texts[-1].startswith(b"OK ")


def test_shutdown_is_off_unless_enabled(connect) -> None:
    reply = connect().admin("shutdown")
    assert reply.is_error and reply.error().code == "UNKNOWN_COMMAND"


def test_shutdown_when_enabled_stops_the_server() -> None:
    server = start_server("--queue", "memory", "--enable-shutdown")
    try:
        conn = Conn(server)
        assert conn.admin("shutdown").lines == ("OK",)
        assert conn.is_closed()
        assert server.process.wait(10) == 0
    finally:
        server.stop()


def test_shutdown_graceful_waits_for_running_jobs() -> None:
    server = start_server("--queue", "memory", "--enable-shutdown")
    try:
        client, worker, admin = Conn(server), Conn(server), Conn(server)
        worker.send(T.CAN_DO, b"slow")
        client.send(T.SUBMIT_JOB, b"slow", b"", b"")
        handle = client.expect(T.JOB_CREATED).handle
        worker.send(T.GRAB_JOB)
        worker.expect(T.JOB_ASSIGN)
        assert admin.admin("shutdown graceful").lines == ("OK",)
        # Still serving the running job: the worker's result reaches the client.
        worker.send(T.WORK_COMPLETE, handle, b"finished")
        client.expect(T.WORK_COMPLETE, handle, b"finished")
        assert server.process.wait(10) == 0
    finally:
        server.stop()


def test_admin_client_frames_a_command_given_word_by_word(server) -> None:
    # "show", "queue" is the block command "show queue": all its lines, not the first one alone.
    import asyncio

    from gearspec.reference.admin import AdminClient

    async def ask() -> tuple[str, ...]:
        async with AdminClient(server.address) as admin:
            return (await admin.command("show", "queue")).lines

    lines = asyncio.run(ask())
    assert [line.split("\t", 1)[0] for line in lines] == ["queue", "state", "refused"]
