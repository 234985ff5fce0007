"""The admin-command table, its reply framing and parsers, against replies a real gearmand sends.

gearmand's replies come from libgearman-server/text.cc server_run_text: OK/ERR lines end in
"\\r\\n" (TEXT_SUCCESS, TEXT_ERROR_*), getpid/verbose/version and block lines in "\\n".
"""

from __future__ import annotations

import pytest
from gearspec.conformance.servers import RunningServer

from gearspec.admin import (
    ADMIN_COMMANDS,
    AdminError,
    AdminReply,
    AdminReplyReader,
    ReplyFraming,
    admin_command,
    encode_admin,
    match_admin_command,
    parse_ok,
    parse_prioritystatus,
    parse_show_jobs,
    parse_show_unique_jobs,
    parse_status,
    parse_workers,
)
from gearspec.codec import AdminLine, Packet
from gearspec.errors import ProtocolError

from .wire import Conn

FN = "gearspec-admin"

# Every command gearmand 1.1's server_run_text answers (text.cc), plus the older `shutdown`.
GEARMAND_COMMANDS = {
    "workers", "status", "prioritystatus", "show jobs", "show unique jobs", "cancel job", "create function",
    "drop function", "maxqueue", "getpid", "verbose", "version",
}


def test_table_covers_gearmand_and_shutdown() -> None:
    names = [c.name for c in ADMIN_COMMANDS]
    assert len(names) == len(set(names))
    assert set(names) == GEARMAND_COMMANDS | {"shutdown", "show queue"}
    for cmd in ADMIN_COMMANDS:
        assert cmd.source and cmd.summary and cmd.reply_format
        assert admin_command(cmd.name.upper()) is cmd
        optional = [a.optional for a in cmd.args]
        assert optional == sorted(optional), f"{cmd.name}: a required argument after an optional one"
    assert {c.name for c in ADMIN_COMMANDS if c.reply is ReplyFraming.BLOCK} == {
        "workers", "status", "prioritystatus", "show jobs", "show unique jobs", "show queue",
    }
    assert admin_command("shutdown").note  # removed from gearmand in 1.1.15: the table says so
    with pytest.raises(KeyError):
        admin_command("show")


def test_match_and_encode() -> None:
    cmd, args = match_admin_command(["SHOW", "unique", "jobs"])  # type: ignore[misc]
    assert cmd.name == "show unique jobs" and args == []
    cmd, args = match_admin_command(["show", "jobs"])  # type: ignore[misc]
    assert cmd.name == "show jobs"
    cmd, args = match_admin_command(["cancel", "job", "H:x:1"])  # type: ignore[misc]
    assert cmd.name == "cancel job" and args == ["H:x:1"]
    cmd, args = match_admin_command(["maxqueue", "f", "1", "2", "3"])  # type: ignore[misc]
    assert cmd.name == "maxqueue" and args == ["f", "1", "2", "3"]
    assert match_admin_command(["bogus"]) is None
    assert match_admin_command([]) is None
    assert encode_admin("cancel job", b"H:x:1") == b"cancel job H:x:1\n"
    assert encode_admin("maxqueue", "f", 3, crlf=True) == b"maxqueue f 3\r\n"
    with pytest.raises(ValueError):
        encode_admin("status\nworkers")
    assert admin_command("maxqueue").usage() == "maxqueue function [size] [normal] [low]"


@pytest.mark.parametrize("ending", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_reader_framing(ending: str) -> None:
    reader = AdminReplyReader("status")
    assert reader.feed("f1\t1\t0\t2" + ending) is None
    assert reader.feed(b"f2\t0\t0\t0" + ending.encode()) is None
    reply = reader.feed("." + ending)
    assert reply is not None and reply.lines == ("f1\t1\t0\t2", "f2\t0\t0\t0") and not reply.is_error
    assert parse_status(reply)[0].function == "f1"
    # The reader is ready for the next reply on the same connection.
    empty = reader.feed("." + ending)
    assert empty is not None and empty.lines == ()
    # An ERR line ends a block reply at once.
    err = AdminReplyReader("show jobs").feed("ERR UNKNOWN_SHOW_ARGUMENTS" + ending)
    assert err is not None and err.is_error
    with pytest.raises(AdminError) as caught:
        parse_show_jobs(err)
    assert caught.value.code == "UNKNOWN_SHOW_ARGUMENTS"
    # A one-line command takes one line, whatever it is.
    ok = AdminReplyReader("version").feed("OK 1.1.20" + ending)
    assert ok is not None and parse_ok(ok) == "1.1.20"
    bad = AdminReplyReader(None).feed("ERR UNKNOWN_COMMAND Unknown+server+command" + ending)
    assert bad is not None
    error = bad.error()
    assert error is not None and error.code == "UNKNOWN_COMMAND" and error.text == "Unknown server command"


def test_block_rows_that_look_like_errors_are_rows() -> None:
    reader = AdminReplyReader("show unique jobs")
    assert reader.feed("a-unique") is None
    assert reader.feed("ERR looks like an error but is a unique id") is None
    reply = reader.feed(".")
    assert reply is not None and not reply.is_error and len(parse_show_unique_jobs(reply)) == 2


def test_parsers_refuse_malformed_rows() -> None:
    for parse, line in [
        (parse_status, "f\t1\t2"),
        (parse_status, "f\tx\t0\t0"),
        (parse_prioritystatus, "f\t1\t2\t3"),
        (parse_workers, "33 127.0.0.1 -"),
        (parse_show_jobs, "H:x:1\t0\t0"),
    ]:
        with pytest.raises(ProtocolError):
            parse([line])
    with pytest.raises(ProtocolError):
        parse_ok(["NOT OK"])
    with pytest.raises(ProtocolError):
        parse_ok([])
    assert parse_ok(["OK"]) == ""


def _reply(conn: Conn, command: str, *args: object, crlf: bool = False) -> tuple[AdminReply, list[AdminLine]]:
    conn.send(encode_admin(command, *args, crlf=crlf))
    matched = match_admin_command(command.split())
    reader = AdminReplyReader(matched[0] if matched else None)
    lines: list[AdminLine] = []
    while True:
        (line,) = conn.events(1)
        assert isinstance(line, AdminLine), line
        lines.append(line)
        reply = reader.feed(line.text + line.terminator)
        if reply is not None:
            return reply, lines


def test_live_gearmand_replies(gearmand: RunningServer) -> None:
    with Conn(gearmand.host, gearmand.port) as admin, Conn(gearmand.host, gearmand.port) as worker:
        worker.send(Packet.make("SET_CLIENT_ID", "admin test worker"), Packet.make("CAN_DO", FN))
        admin.send(Packet.make("SUBMIT_JOB_HIGH_BG", FN, "u-admin", b"x"))
        handle = admin.packet().handle
        worker.send(Packet.make("ECHO_REQ", b"sync"))
        assert worker.packet().type.name == "ECHO_RES"

        reply, lines = _reply(admin, "status", crlf=True)  # gearadmin sends CRLF
        assert lines[-1] == AdminLine(b".", b"\n")
        assert next(r for r in parse_status(reply) if r.function == FN) == parse_status([f"{FN}\t1\t0\t1"])[0]

        reply, _ = _reply(admin, "prioritystatus")
        row = next(r for r in parse_prioritystatus(reply) if r.function == FN)
        assert (row.high, row.normal, row.low, row.workers) == (1, 0, 0, 1)

        reply, _ = _reply(admin, "workers")
        rows = parse_workers(reply)
        mine = [r for r in rows if r.client_id == "admin test worker"]
        assert len(mine) == 1 and mine[0].functions == (FN,) and mine[0].ip == "127.0.0.1"
        assert any(r.functions == () for r in rows)  # the admin connection itself

        reply, _ = _reply(admin, "show jobs")
        jobs = parse_show_jobs(reply)
        assert [j.handle for j in jobs] == [handle.decode()]
        reply, _ = _reply(admin, "show unique jobs")
        assert parse_show_unique_jobs(reply) == ["u-admin"]

        reply, _ = _reply(admin, "getpid")
        assert int(parse_ok(reply)) == gearmand.process.pid
        reply, _ = _reply(admin, "version")
        assert parse_ok(reply).startswith("1.")
        reply, _ = _reply(admin, "verbose")
        assert parse_ok(reply)

        reply, lines = _reply(admin, "maxqueue", FN, 10)
        assert parse_ok(reply) == "" and lines[0].terminator == b"\r\n"

        reply, lines = _reply(admin, "cancel job", "H:nowhere:1")
        assert lines[0].terminator == b"\r\n"
        with pytest.raises(AdminError) as caught:
            parse_ok(reply)
        assert caught.value.code == "UNKNOWN_JOB"
        reply, _ = _reply(admin, "cancel job", handle)
        assert parse_ok(reply) == ""

        reply, _ = _reply(admin, "bogus")
        error = reply.error()
        assert error is not None and error.code == "UNKNOWN_COMMAND"

        # `shutdown` left gearmand in 1.1.15: 1.1.20 treats it as unknown, as the table notes.
        reply, _ = _reply(admin, "shutdown")
        error = reply.error()
        assert error is not None and error.code == "UNKNOWN_COMMAND"

        # Every gearmand command in the table is known to gearmand.
        for name in sorted(GEARMAND_COMMANDS):
            cmd = admin_command(name)
            args = ["x"] * sum(not a.optional for a in cmd.args)
            reply, _ = _reply(admin, name, *args)
            error = reply.error()
            assert error is None or error.code != "UNKNOWN_COMMAND", (name, reply)
