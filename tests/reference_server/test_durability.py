"""The durable queue: kill -9 and restart lose no acknowledged background job; SIGTERM is clean."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from gearspec.conformance.servers import RunningServer

from gearspec.codec import Packet
from gearspec.spec import PacketType as T

from .conftest import Conn, start_server


def _sqlite_server(path: Path, *extra: str) -> RunningServer:
    return start_server("--queue", f"sqlite:{path}", *extra)


def _drain(server: RunningServer, functions: list[bytes]) -> list[tuple[bytes, bytes, bytes]]:
    """Run every queued job (GRAB_JOB_UNIQ until NO_JOB); returns (function, unique, data)."""
    worker = Conn(server)
    for f in functions:
        worker.send(T.CAN_DO, f)
    done = []
    while True:
        worker.send(T.GRAB_JOB_UNIQ)
        packet = worker.recv()
        if packet.type == T.NO_JOB:
            break
        handle, function, unique, data = packet.args
        worker.send(T.WORK_COMPLETE, handle, b"")
        done.append((function, unique, data))
    worker.barrier()
    worker.close()
    return done


def test_kill_9_then_restart_runs_every_acknowledged_background_job(tmp_path: Path) -> None:
    db = tmp_path / "queue.sqlite3"
    server = _sqlite_server(db)
    try:
        client = Conn(server)
        submitted = [
            (T.SUBMIT_JOB_BG, b"dur-a", b"", b"empty-1"),
            (T.SUBMIT_JOB_BG, b"dur-a", b"", b"empty-2"),  # two empty uniques: both kept
            (T.SUBMIT_JOB_HIGH_BG, b"dur-a", b"shared", b"a-shared"),
            (T.SUBMIT_JOB_LOW_BG, b"dur-b", b"shared", b"b-shared"),  # same unique, other function
            (T.SUBMIT_REDUCE_JOB_BACKGROUND, b"dur-b", b"red", b"reducer", b"", b"reduce-me"),
            (T.SUBMIT_JOB_BG, b"dur-a", b"running", b"was-running"),
            (T.SUBMIT_JOB_BG, b"dur-a", b"finished", b"was-finished"),
        ]
        for packet_type, *args in submitted:
            client.send(packet_type, *args)  # type: ignore[arg-type]
            client.expect(T.JOB_CREATED)  # acknowledged: must survive
        # A pipelined burst in one write: its jobs share store transactions.
        client.send_raw(b"".join(Packet.request(T.SUBMIT_JOB_BG, b"dur-c", b"", b"burst-%d" % i).to_bytes()
                                 for i in range(200)))
        for _ in range(200):
            client.expect(T.JOB_CREATED)
        worker = Conn(server)
        worker.send(T.CAN_DO, b"dur-a")
        taken = {}
        for _ in range(5):
            worker.send(T.GRAB_JOB_UNIQ)
            handle, _, _, data = worker.expect(T.JOB_ASSIGN_UNIQ).args
            taken[data] = handle
            if data == b"was-finished":
                break
        worker.send(T.WORK_COMPLETE, taken[b"was-finished"], b"")
        worker.barrier()
        server.kill(signal.SIGKILL)
        server.process.wait(10)
    finally:
        server.stop()

    restarted = _sqlite_server(db)
    try:
        done = _drain(restarted, [b"dur-a", b"dur-b", b"dur-c"])
    finally:
        restarted.stop()
    datas = sorted(d for _, _, d in done)
    expected = sorted(
        [b"empty-1", b"empty-2", b"a-shared", b"b-shared", b"reduce-me", b"was-running"]
        + [b"burst-%d" % i for i in range(200)]
    )
    assert datas == expected  # every acknowledged job, the finished one not again
    assert (b"dur-b", b"shared", b"b-shared") in done and (b"dur-a", b"shared", b"a-shared") in done


def test_sigterm_is_graceful_and_keeps_the_queue(tmp_path: Path) -> None:
    db = tmp_path / "queue.sqlite3"
    server = _sqlite_server(db, "--log-level", "INFO")
    try:
        client = Conn(server)
        for i in range(50):
            client.send(T.SUBMIT_JOB_BG, b"term", b"", b"%d" % i)
        client.send(T.ECHO_REQ, b"last")
        for _ in range(50):
            client.expect(T.JOB_CREATED)
        client.expect(T.ECHO_RES, b"last")  # in-flight replies were written
        server.kill(signal.SIGTERM)
        assert server.process.wait(10) == 0
        assert client.is_closed()
    finally:
        server.stop()
    rows = sqlite3.connect(db).execute("SELECT COUNT(*) FROM gearspec_jobs").fetchone()[0]
    assert rows == 50
    restarted = _sqlite_server(db)
    try:
        assert len(_drain(restarted, [b"term"])) == 50
    finally:
        restarted.stop()
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM gearspec_jobs").fetchone()[0] == 0


def test_ready_line_and_clean_errors(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gearspec", "serve", "--port", "0", "--queue", "memory"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("gearspec serve: listening on 127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        conn = Conn(("127.0.0.1", port))
        conn.send(T.ECHO_REQ, b"hi")
        conn.expect(T.ECHO_RES, b"hi")
        conn.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    holder = socket.create_server(("127.0.0.1", 0))  # a port in use: a clear error, no traceback
    try:
        busy = subprocess.run(
            [sys.executable, "-m", "gearspec", "serve", "--port", str(holder.getsockname()[1]), "--queue", "memory"],
            capture_output=True, text=True, timeout=30,
        )
    finally:
        holder.close()
    assert busy.returncode == 1 and "cannot listen" in busy.stderr and "Traceback" not in busy.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "gearspec", "serve", "--port", "0", "--queue", "bogus:thing"],
        capture_output=True, text=True, timeout=30,
    )
    assert bad.returncode == 1 and "unknown queue" in bad.stderr and "Traceback" not in bad.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "gearspec", "serve", "--port", "nope"], capture_output=True, text=True, timeout=30,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_two_servers_cannot_share_one_sqlite_queue(tmp_path: Path) -> None:
    db = tmp_path / "queue.sqlite3"
    server = _sqlite_server(db)
    try:
        second = subprocess.run(
            [sys.executable, "-m", "gearspec", "serve", "--port", "0", "--queue", f"sqlite:{db}"],
            capture_output=True, text=True, timeout=30,
        )
        assert second.returncode == 1 and "in use by another server" in second.stderr
    finally:
        server.stop()


def test_default_queue_is_a_per_user_sqlite_file(tmp_path: Path) -> None:
    from gearspec.conformance.servers import start_local

    from .conftest import SERVE

    server = start_local(SERVE, name="reference", env={"XDG_STATE_HOME": str(tmp_path)})
    try:
        client = Conn(server)
        client.send(T.SUBMIT_JOB_BG, b"default-q", b"", b"kept")
        client.expect(T.JOB_CREATED)
        db = tmp_path / "gearspec" / "queue.sqlite3"
        assert sqlite3.connect(db).execute("SELECT data FROM gearspec_jobs").fetchall() == [(b"kept",)]
    finally:
        server.stop()
