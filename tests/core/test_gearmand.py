"""A real gearmand answers packets we encode, and we decode (strictly) everything it sends.

Behaviour checked here is gearmand's (libgearman-server/server.cc gearman_server_run_command);
the fixture starts /usr/sbin/gearmand on an ephemeral port for each test.
"""

from __future__ import annotations

from gearspec.conformance.servers import RunningServer

from gearspec.codec import AdminLine, Packet
from gearspec.spec import Magic, PacketType

from .wire import Conn

FN = "gearspec-core"


def sync(conn: Conn) -> None:
    """An ECHO round trip: gearmand has handled everything this connection sent before it."""
    conn.send(Packet.make("ECHO_REQ", b"sync"))
    assert conn.packet() == Packet.make("ECHO_RES", b"sync")


def test_echo(gearmand: RunningServer) -> None:
    with Conn(gearmand.host, gearmand.port) as c:
        data = b"\0ping\0\xff" * 100  # NULs and non-UTF-8 in opaque data
        c.send(Packet.make("ECHO_REQ", data))
        reply = c.packet()
        assert reply == Packet.make("ECHO_RES", data)
        assert reply.magic is Magic.RES and reply.data == data


def test_background_job_life(gearmand: RunningServer) -> None:
    """SUBMIT_JOB_BG, GET_STATUS, GET_STATUS_UNIQUE, GRAB_JOB_UNIQ, WORK_STATUS, WORK_COMPLETE."""
    with Conn(gearmand.host, gearmand.port) as client, Conn(gearmand.host, gearmand.port) as worker:
        client.send(Packet.make("SUBMIT_JOB_BG", FN, "u-bg-1", b"payload\0with nul"))
        created = client.packet()
        assert created.type is PacketType.JOB_CREATED
        handle = created.handle
        assert handle.startswith(b"H:")

        client.send(Packet.make("GET_STATUS", handle))
        assert client.packet() == Packet.make("STATUS_RES", handle, "1", "0", "0", "0")  # queued

        client.send(Packet.make("GET_STATUS_UNIQUE", "u-bg-1"))
        status = client.packet()
        assert status.type is PacketType.STATUS_RES_UNIQUE
        # gearmand puts the unique first (PROTOCOL says handle): the table follows gearmand.
        assert status.unique == b"u-bg-1" and status.known == b"1" and status.running == b"0"
        assert status.client_count.isdigit()

        worker.send(Packet.make("CAN_DO", FN), Packet.make("GRAB_JOB_UNIQ"))
        assigned = worker.packet()
        assert assigned == Packet.make("JOB_ASSIGN_UNIQ", handle, FN, "u-bg-1", b"payload\0with nul")

        worker.send(Packet.request("WORK_STATUS", handle, 3, 7))
        sync(worker)
        client.send(Packet.make("GET_STATUS", handle))
        assert client.packet() == Packet.make("STATUS_RES", handle, "1", "1", "3", "7")  # running

        worker.send(Packet.request("WORK_COMPLETE", handle, b"done"))
        sync(worker)
        client.send(Packet.make("GET_STATUS", handle))
        assert client.packet() == Packet.make("STATUS_RES", handle, "0", "0", "0", "0")  # forgotten


def test_foreground_job_and_work_packets_reach_the_client(gearmand: RunningServer) -> None:
    with Conn(gearmand.host, gearmand.port) as client, Conn(gearmand.host, gearmand.port) as worker:
        worker.send(Packet.make("CAN_DO", FN), Packet.make("GRAB_JOB"))
        assert worker.packet() == Packet.make("NO_JOB")
        worker.send(Packet.make("PRE_SLEEP"))

        client.send(Packet.make("OPTION_REQ", "exceptions"))
        assert client.packet() == Packet.make("OPTION_RES", "exceptions")
        client.send(Packet.make("SUBMIT_JOB_HIGH", FN, "", b"in"))
        handle = client.packet().handle

        assert worker.packet() == Packet.make("NOOP")  # the sleeping worker is woken
        worker.send(Packet.make("GRAB_JOB"))
        assert worker.packet() == Packet.make("JOB_ASSIGN", handle, FN, b"in")
        worker.send(
            Packet.request("WORK_DATA", handle, b"part\0ial"),
            Packet.request("WORK_WARNING", handle, b"hmm"),
            Packet.request("WORK_STATUS", handle, "1", "2"),
            Packet.request("WORK_EXCEPTION", handle, b"boom"),
        )
        assert client.events(4) == [
            Packet.response("WORK_DATA", handle, b"part\0ial"),
            Packet.response("WORK_WARNING", handle, b"hmm"),
            Packet.response("WORK_STATUS", handle, "1", "2"),
            Packet.response("WORK_EXCEPTION", handle, b"boom"),
        ]


def test_grab_job_all_and_reduce_fields(gearmand: RunningServer) -> None:
    """GRAB_JOB_ALL gets JOB_ASSIGN_ALL for a reduce job and JOB_ASSIGN_UNIQ for a plain one
    (server.cc gearman_server_run_command sends ASSIGN_ALL only when the job has a reducer)."""
    with Conn(gearmand.host, gearmand.port) as client, Conn(gearmand.host, gearmand.port) as worker:
        client.send(Packet.make("SUBMIT_REDUCE_JOB_BACKGROUND", FN, "u-all", "reducer-fn", "", b"x\0y"))
        reduce_handle = client.packet().handle
        client.send(Packet.make("SUBMIT_JOB_LOW_BG", FN, "u-plain", b"z"))
        plain_handle = client.packet().handle
        worker.send(Packet.make("SET_CLIENT_ID", "core worker"), Packet.make("CAN_DO", FN), Packet.make("GRAB_JOB_ALL"))
        assigned = worker.packet()
        assert assigned.type is PacketType.JOB_ASSIGN_ALL
        assert assigned.fields == {
            "handle": reduce_handle, "function": FN.encode(), "unique": b"u-all", "reducer": b"reducer-fn", "data": b"x\0y",
        }
        worker.send(Packet.request("WORK_FAIL", reduce_handle), Packet.make("GRAB_JOB_ALL"))
        assert worker.packet() == Packet.make("JOB_ASSIGN_UNIQ", plain_handle, FN, "u-plain", b"z")
        worker.send(Packet.request("WORK_COMPLETE", plain_handle, b""))


def test_error_replies(gearmand: RunningServer) -> None:
    """gearmand's ERROR packets decode, with the codes the table's ErrorCode names."""
    with Conn(gearmand.host, gearmand.port) as c:
        c.send(Packet.response("ECHO_RES", b"x"))  # RES magic toward the server
        assert c.packet().fields == {"code": b"INVALID_MAGIC", "text": b"Request magic expected"}
        c.send(Packet.make("ALL_YOURS"))  # defined by PROTOCOL, not served by gearmand
        assert c.packet().code == b"INVALID_COMMAND"
        c.send(Packet.make("OPTION_REQ", "no-such-option"))
        assert c.packet().code == b"UNKNOWN_OPTION"
        c.send(Packet.request("WORK_FAIL", "H:nowhere:1"))
        assert c.packet().code == b"JOB_NOT_FOUND"
        c.send(Packet.make("SUBMIT_JOB_BG", FN, "u" * 65, b""))  # Arg.max_size of unique is 64
        error = c.packet()
        assert error.type is PacketType.ERROR and error.code == b"ARGUMENT_TOO_LARGE"
        c.send(Packet.make("ECHO_REQ", b"still open"))  # none of these closed the connection
        assert c.packet().data == b"still open"


def test_bad_framing_closes_the_connection(gearmand: RunningServer) -> None:
    for raw in (
        b"\0REX" + (16).to_bytes(4, "big") + (0).to_bytes(4, "big"),  # bad magic
        b"\0REQ" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big"),  # type 0
        b"\0REQ" + (43).to_bytes(4, "big") + (0).to_bytes(4, "big"),  # type 43
    ):
        with Conn(gearmand.host, gearmand.port) as c:
            c.send(raw)
            assert c.wait_closed() == b"", raw


def test_admin_lines_and_packets_share_a_connection(gearmand: RunningServer) -> None:
    with Conn(gearmand.host, gearmand.port) as c:
        c.send(b"version\r\n", Packet.make("ECHO_REQ", b"between"), b"getpid\n")
        version, echo, pid = c.events(3)
        assert isinstance(version, AdminLine) and version.text.startswith(b"OK 1.")
        assert echo == Packet.make("ECHO_RES", b"between")
        assert isinstance(pid, AdminLine) and pid.words[0] == "OK" and pid.words[1].isdigit()
