"""Dead, refusing, closing and garbage-sending servers give clear errors, never a hang or a
traceback from inside the library. The misbehaving servers are tiny raw-socket servers."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from gearspec.reference.admin import AdminClient
from gearspec.reference.client import (
    Client,
    ConnectFailed,
    ConnectionLost,
    NoServerAvailable,
    RequestTimeout,
)
from gearspec.reference.worker import Worker, WorkerJob

from gearspec.codec import Packet
from gearspec.errors import RemoteProtocolError
from gearspec.spec import PacketType as T
from tests.reference_client.helpers import FakeServer, run, wait_until


def closed_port() -> int:
    """A port nothing listens on: bound, then closed, so connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def silent(conn: socket.socket, packet: Packet) -> None:
    """Accepts everything, answers nothing: a hung server."""


def answers_garbage(conn: socket.socket, packet: Packet) -> None:
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")


def creates_then_closes(conn: socket.socket, packet: Packet) -> bool | None:
    """Accepts a submit, then closes the connection while the job 'runs'."""
    if packet.type is T.OPTION_REQ:
        conn.sendall(Packet.response(T.OPTION_RES, packet["option"]).to_bytes())
        return None
    if packet.spec.submit is not None:
        conn.sendall(Packet.response(T.JOB_CREATED, b"H:fake:1").to_bytes())
        conn.sendall(Packet.response(T.WORK_STATUS, b"H:fake:1", 1, 3).to_bytes())
        return False
    return None


def bad_packet_after_create(conn: socket.socket, packet: Packet) -> None:
    if packet.type is T.OPTION_REQ:
        conn.sendall(Packet.response(T.OPTION_RES, packet["option"]).to_bytes())
    elif packet.spec.submit is not None:
        conn.sendall(Packet.response(T.JOB_CREATED, b"H:fake:1").to_bytes())
        conn.sendall(b"\0RES\0\0\0\x0c\xff\xff\xff\xffrest")  # size field far beyond anything sent


def test_refused_connection_names_the_server() -> None:
    port = closed_port()

    async def scenario() -> None:
        async with Client([f"127.0.0.1:{port}"]) as client:
            with pytest.raises(NoServerAvailable, match=f"127.0.0.1:{port}: cannot connect"):
                await client.submit("f", b"x")

    run(scenario())


def test_hung_server_gives_a_request_timeout() -> None:
    with FakeServer(silent) as fake:
        async def scenario() -> None:
            async with Client([fake.address], timeout=0.5) as client:
                # An unanswered OPTION_REQ is given up (the client goes on without the option);
                # the submit that follows times out in turn.
                with pytest.raises(RequestTimeout, match=r"no reply to SUBMIT_JOB within 0\.5s"):
                    await client.submit("f", b"x")

        run(scenario())


def test_garbage_from_server_is_a_connection_error() -> None:
    with FakeServer(answers_garbage) as fake:
        async def scenario() -> None:
            async with Client([fake.address], timeout=5) as client:
                with pytest.raises(NoServerAvailable, match="not Gearman"):
                    await client.submit("f", b"x")

        run(scenario())


def test_server_closing_mid_job_fails_the_job() -> None:
    with FakeServer(creates_then_closes) as fake:
        async def scenario() -> None:
            async with Client([fake.address], timeout=5) as client:
                job = await client.submit("f", b"x")
                updates = [u async for u in job]
                with pytest.raises(ConnectionLost, match="closed the connection"):
                    await job.result(5)
                assert job.status == (1, 3) and len(updates) == 1

        run(scenario())


def test_broken_packet_mid_job_fails_the_job() -> None:
    with FakeServer(bad_packet_after_create) as fake:
        async def scenario() -> None:
            async with Client([fake.address], timeout=5) as client:
                job = await client.submit("f", b"x")
                with pytest.raises(ConnectionLost, match="not Gearman"):
                    await job.result(5)

        run(scenario())


def test_failover_skips_a_dead_server_to_a_live_one() -> None:
    dead = closed_port()

    def serve(conn: socket.socket, packet: Packet) -> None:
        if packet.type is T.OPTION_REQ:
            conn.sendall(Packet.response(T.OPTION_RES, packet["option"]).to_bytes())
        elif packet.type is T.SUBMIT_JOB_BG:
            conn.sendall(Packet.response(T.JOB_CREATED, b"H:live:1").to_bytes())

    with FakeServer(serve) as live:
        async def scenario() -> None:
            async with Client([f"127.0.0.1:{dead}", live.address]) as client:
                for _ in range(3):
                    job = await client.submit("f", b"", background=True)
                    assert job.server == live.address

        run(scenario())


def test_worker_sleeps_instead_of_polling() -> None:
    """After NO_JOB the worker sends PRE_SLEEP and grabs again only after a NOOP."""

    def no_work(conn: socket.socket, packet: Packet) -> None:
        if packet.type is T.GRAB_JOB_UNIQ:
            conn.sendall(Packet.make(T.NO_JOB).to_bytes())
        if packet.type is T.PRE_SLEEP and not woke:
            woke.append(True)
            conn.sendall(Packet.make(T.NOOP).to_bytes())  # one wakeup: exactly one more grab

    woke: list[bool] = []
    with FakeServer(no_work) as fake:
        async def scenario() -> None:
            async with Worker([fake.address]) as worker:
                worker.register("f", lambda job: b"")
                await wait_until(lambda: [p.type for p in fake.packets].count(T.PRE_SLEEP) >= 2, what="second sleep")
                # Give a polling worker every chance to show itself.
                import asyncio

                await asyncio.sleep(0.3)

        run(scenario())
    kinds = [p.type for p in fake.packets]
    assert kinds.count(T.GRAB_JOB_UNIQ) == 2, kinds
    assert kinds.count(T.PRE_SLEEP) == 2, kinds


def test_worker_survives_a_garbage_server_and_stops_cleanly() -> None:
    with FakeServer(answers_garbage) as fake:
        async def scenario() -> None:
            worker = Worker([fake.address], max_retry_interval=0.2)

            async def never(job: WorkerJob) -> bytes:
                raise AssertionError("no job should arrive")

            worker.register("f", never)
            await worker.start()
            await wait_until(lambda: len(fake.packets) >= 4, what="a reconnect after garbage")
            await worker.stop(timeout=5)

        run(scenario())


def test_admin_client_errors_are_clear() -> None:
    def binary_reply(conn: socket.socket, event: object) -> None:
        conn.sendall(Packet.make(T.NOOP).to_bytes() + b"\n")

    async def refused() -> None:
        async with AdminClient(f"127.0.0.1:{closed_port()}") as admin:
            await admin.status()

    with pytest.raises(ConnectFailed, match="cannot connect"):
        run(refused())

    with FakeServer(binary_reply) as fake, FakeServer(silent) as hung:
        async def garbage() -> None:
            async with AdminClient(fake.address) as admin:
                with pytest.raises(RemoteProtocolError, match="binary data where an admin reply"):
                    await admin.status()
            async with AdminClient(hung.address, timeout=0.3) as admin:
                with pytest.raises(ConnectionLost, match="no complete reply"):
                    await admin.version()

        run(garbage())


@pytest.mark.parametrize(
    "argv",
    [
        ["submit", "-f", "f", "x"],
        ["submit", "-f", "f", "--background", "x"],
        ["admin", "status"],
    ],
)
def test_cli_reports_a_dead_server_without_a_traceback(argv: list[str]) -> None:
    port = closed_port()
    done = subprocess.run(
        [sys.executable, "-m", "gearspec", argv[0], "-s", f"127.0.0.1:{port}", *argv[1:]],
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 2, done
    assert "cannot connect" in done.stderr and "Traceback" not in done.stderr


def test_cli_reports_garbage_and_hangs_without_a_traceback() -> None:
    with FakeServer(answers_garbage) as garbage, FakeServer(silent) as hung:
        for address, expected in ((garbage.address, "not Gearman"), (hung.address, "no reply")):
            done = subprocess.run(
                [sys.executable, "-m", "gearspec", "submit", "-s", address, "-f", "f", "-t", "1", "x"],
                capture_output=True, text=True, timeout=30,
            )
            assert done.returncode in (2, 6), done
            assert expected in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_client_reconnects_after_the_server_closed_the_connection() -> None:
    def echo_then_close(conn: socket.socket, packet: Packet) -> bool | None:
        if packet.type is T.OPTION_REQ:
            conn.sendall(Packet.response(T.OPTION_RES, packet["option"]).to_bytes())
            return None
        if packet.type is T.ECHO_REQ:
            conn.sendall(Packet.response(T.ECHO_RES, packet["data"]).to_bytes())
            return False  # hang up after every answer
        return None

    with FakeServer(echo_then_close) as fake:
        async def scenario() -> None:
            async with Client([fake.address], timeout=5) as client:
                for i in range(3):
                    # The hang-up may or may not be seen before the next request is sent:
                    # either way the client must end on a fresh connection, not an error.
                    for _attempt in range(2):
                        try:
                            assert await client.echo(f"n{i}") == f"n{i}".encode()
                            break
                        except NoServerAvailable:
                            continue
                    else:
                        raise AssertionError("the client did not reconnect")

        run(scenario())
    assert [p.type for p in fake.packets].count(T.OPTION_REQ) >= 3  # one per connection
