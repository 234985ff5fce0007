"""Fault injection against a real `gearspec serve`: a job acknowledged is a job stored.

Every test runs the server as a subprocess and talks to it over TCP. Faults: a full disk
(RLIMIT_FSIZE, set in the child before it starts and changed while it runs), a queue file
made immutable under the running server, kill -9 at seeded random points of submit bursts,
values too large for the store in every NUMBER field of the spec, clients that do not read,
damaged and foreign queue files. Accounting is the same everywhere: every job that got
JOB_CREATED is in the queue after a restart, and no job that got ERROR is.
"""

from __future__ import annotations

import asyncio
import os
import random
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gearspec.reference.admin import AdminClient
from gearspec.reference.broker import IDLE_FUNCTIONS_KEPT, MAX_FUNCTION_SIZE, MAX_NUMBER

from gearspec.admin import parse_status
from gearspec.codec import Packet
from gearspec.spec import PACKETS, ArgKind, Magic
from gearspec.spec import PacketType as T

from .conftest import TIMEOUT, Conn, wait_for


class Served:
    """`gearspec serve` with its stderr collected (a pipe: RLIMIT_FSIZE does not touch it)."""

    def __init__(self, queue: str, *extra: str, fsize: int | None = None) -> None:
        def limit() -> None:  # runs in the child, before exec
            if fsize is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, resource.RLIM_INFINITY))

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gearspec", "serve", "--port", "0", "--queue", queue, "--log-level", "INFO", *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=limit,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline().decode()
        if not ready.startswith("gearspec serve: listening on "):
            self.proc.wait(TIMEOUT)
            self._reader.join(TIMEOUT)
            raise AssertionError(f"server did not start: {ready!r} {self.log()}")
        self.address = ("127.0.0.1", int(ready.rsplit(":", 1)[1]))

    def _collect(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.decode(errors="replace"))

    def log(self) -> str:
        return "".join(self.lines)

    def wait_log(self, text: str) -> None:
        """Wait for `text` in the log (its lines arrive through a pipe, a little later)."""
        wait_for(lambda: text in self.log(), f"{text!r} in the server log")

    def conn(self) -> Conn:
        return Conn(self.address)

    def set_fsize(self, soft: int) -> None:
        """Change the running server's file-size limit: the disk fills up or has room again."""
        resource.prlimit(self.proc.pid, resource.RLIMIT_FSIZE, (soft, resource.RLIM_INFINITY))

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            status = self.proc.wait(TIMEOUT * 3)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(TIMEOUT)
            self._reader.join(TIMEOUT)
        return status


@pytest.fixture
def served() -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(queue: str, *extra: str, fsize: int | None = None) -> Served:
        server = Served(queue, *extra, fsize=fsize)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(TIMEOUT)


def _stored_data(db: Path) -> list[bytes]:
    """The data of every job in the queue file (read while no server holds it)."""
    with sqlite3.connect(db) as con:
        return sorted(row[0] for row in con.execute("SELECT data FROM gearspec_jobs"))


def _submit_each(conn: Conn, function: bytes, datas: list[bytes]) -> tuple[list[bytes], list[Packet]]:
    """Pipeline one SUBMIT_JOB_BG per data; returns (acknowledged datas, the ERRORs)."""
    conn.send_raw(b"".join(Packet.request(T.SUBMIT_JOB_BG, function, b"", d).to_bytes() for d in datas))
    acked, errors = [], []
    for data in datas:
        reply = conn.recv()
        if reply.type == T.JOB_CREATED:
            acked.append(data)
        else:
            assert reply.type == T.ERROR, reply
            errors.append(reply)
    return acked, errors


def _show_queue(conn: Conn) -> dict[str, str]:
    conn.send_raw(b"show queue\n")
    rows = {}
    buf = b""
    while not buf.endswith(b".\n"):
        chunk = conn.sock.recv(4096)
        assert chunk, "server closed the connection"
        buf += chunk
    for line in buf.decode().splitlines()[:-1]:
        name, _, value = line.partition("\t")
        rows[name] = value
    return rows


# -- values the store cannot hold ---------------------------------------------------------------
def test_an_epoch_the_store_cannot_hold_is_refused_and_acknowledged_jobs_survive(tmp_path: Path, served) -> None:
    db = tmp_path / "q.sqlite3"
    server = served(f"sqlite:{db}")
    client = server.conn()
    acked, errors = _submit_each(client, b"epoch-f", [b"bg-%d" % i for i in range(100)])
    assert len(acked) == 100 and not errors
    client.send(T.SUBMIT_JOB_EPOCH, b"epoch-f", b"", b"%d" % 2**63, b"poison")
    error = client.expect(T.ERROR)
    assert error.args[0] == b"ARGUMENT_TOO_LARGE" and b"epoch" in error.args[1]
    client.send(T.SUBMIT_JOB_EPOCH, b"epoch-f", b"", b"%d" % MAX_NUMBER, b"far-future")  # the largest: kept
    client.expect(T.JOB_CREATED)
    client.send(T.ECHO_REQ, b"still serving")
    client.expect(T.ECHO_RES, b"still serving")
    assert server.stop() == 0
    assert _stored_data(db) == sorted([*acked, b"far-future"])


def _number_fields() -> list[tuple[T, int]]:
    """Every (request type, argument index) whose argument is a NUMBER, from the spec's table."""
    return [
        (T(spec.code), i)
        for spec in PACKETS
        if Magic.REQ in spec.magics and not spec.reserved
        for i, arg in enumerate(spec.args)
        if arg.kind is ArgKind.NUMBER
    ]


POISON = [b"%d" % (MAX_NUMBER + 1), b"%d" % 2**64, b"9" * 4301, b"1" + b"0" * 5000]


def test_the_spec_has_number_fields_to_poison() -> None:
    assert {t for t, _ in _number_fields()} >= {T.SUBMIT_JOB_EPOCH, T.CAN_DO_TIMEOUT, T.WORK_STATUS}


@pytest.mark.parametrize(("packet_type", "index"), _number_fields(), ids=lambda v: v.name if isinstance(v, T) else str(v))
def test_poison_in_every_number_field_is_answered_with_error(tmp_path: Path, served, packet_type: T, index: int) -> None:
    db = tmp_path / "q.sqlite3"
    server = served(f"sqlite:{db}")
    client, worker = server.conn(), server.conn()
    acked, _ = _submit_each(client, b"poison-f", [b"kept-%d" % i for i in range(20)])
    worker.send(T.CAN_DO, b"poison-f")
    worker.send(T.GRAB_JOB)
    handle = worker.expect(T.JOB_ASSIGN).args[0]  # a job the worker holds, for WORK_STATUS
    spec = next(s for s in PACKETS if s.code == packet_type)
    filler = {ArgKind.FUNCTION: b"poison-f", ArgKind.UNIQUE: b"", ArgKind.HANDLE: handle, ArgKind.NUMBER: b"1",
              ArgKind.TOKEN: b"x", ArgKind.TEXT: b"x", ArgKind.DATA: b"d"}
    for value in POISON:
        args = [value if i == index else filler[a.kind] for i, a in enumerate(spec.args)]
        worker.send(packet_type, *args)
        error = worker.expect(T.ERROR)
        assert error.args[0] == b"ARGUMENT_TOO_LARGE", error
        worker.send(T.ECHO_REQ, b"alive")
        worker.expect(T.ECHO_RES, b"alive")
    assert server.stop() == 0  # (and its log is read to the end)
    log = server.log()
    assert "Traceback" not in log and "internal error" not in log
    assert sum(f"is larger than {MAX_NUMBER}" in line for line in server.lines) == len(POISON)  # one line each
    assert _stored_data(db) == sorted(acked)  # the held job too: it was not finished


# -- the disk fills up, the file turns read-only ------------------------------------------------------
def _fault_then_recover(server: Served, db: Path, fault: Callable[[], None], mend: Callable[[], None]) -> None:
    """Jobs acknowledged before, during and after a storage fault; the server serves throughout."""
    client, admin = server.conn(), server.conn()
    before, _ = _submit_each(client, b"fault-f", [b"before-%d" % i for i in range(50)])
    assert len(before) == 50
    fault()
    during, errors = _submit_each(client, b"fault-f", [b"during-%d" % i for i in range(200)])
    assert errors, "the fault did not reach the store"
    for error in errors:
        assert error.args[0] == b"QUEUE_ERROR" and error.args[1].startswith(b"Job not stored")
    state = _show_queue(admin)
    assert state["state"].startswith("failing: ") and int(state["refused"]) == len(errors)
    server.wait_log("refusing background jobs until it can be written")
    # Foreground work, reads and admin go on while the store fails.
    worker = server.conn()
    worker.send(T.CAN_DO, b"fg-f")
    client.send(T.SUBMIT_JOB, b"fg-f", b"", b"ping")
    handle = client.expect(T.JOB_CREATED).args[0]
    worker.send(T.GRAB_JOB)
    worker.expect(T.JOB_ASSIGN)
    worker.send(T.WORK_COMPLETE, handle, b"pong")
    client.expect(T.WORK_COMPLETE, handle, b"pong")
    client.send(T.GET_STATUS, handle)
    client.expect(T.STATUS_RES)
    mend()
    after: list[bytes] = []
    for attempt in range(50):  # the first commit after the fault may still meet it (e.g. a checkpoint)
        acked, _ = _submit_each(client, b"fault-f", [b"after-%d-%d" % (attempt, i) for i in range(10)])
        after += acked
        if acked:
            break
    assert after, "the server did not recover when the store did"
    wait_for(lambda: _show_queue(admin)["state"] == "ok", "show queue to say ok")
    server.wait_log("can be written again")
    assert server.stop() == 0
    assert _stored_data(db) == sorted(before + during + after)  # acknowledged: all there; refused: none


def test_disk_full_refuses_jobs_with_error_and_recovers(tmp_path: Path, served) -> None:
    db = tmp_path / "q.sqlite3"
    server = served(f"sqlite:{db}", fsize=1 << 20)  # the child starts with 1 MiB of "disk"
    _fault_then_recover(server, db, lambda: server.set_fsize(1), lambda: server.set_fsize(resource.RLIM_INFINITY))


def test_disk_full_from_the_start_is_answered_per_job(tmp_path: Path, served) -> None:
    db = tmp_path / "q.sqlite3"
    server = served(f"sqlite:{db}", fsize=96 * 1024)
    client = server.conn()
    acked, errors = [], []
    for i in range(100):  # one at a time: each is its own commit
        one, refused = _submit_each(client, b"full-f", [b"%06d" % i + b"x" * 2000])
        acked += one
        errors += refused
    assert acked and errors  # some fit, the rest were refused, none silently
    assert server.stop() == 0
    assert _stored_data(db) == sorted(acked)


def test_a_queue_that_cannot_be_written_at_shutdown_exits_1_with_one_line(tmp_path: Path, served) -> None:
    db = tmp_path / "q.sqlite3"
    server = served(f"sqlite:{db}")
    client, worker = server.conn(), server.conn()
    client.send(T.SUBMIT_JOB_BG, b"last-f", b"", b"done-but-not-forgotten")
    client.expect(T.JOB_CREATED)
    server.set_fsize(1)
    worker.send(T.CAN_DO, b"last-f")
    worker.send(T.GRAB_JOB)
    handle = worker.expect(T.JOB_ASSIGN).args[0]
    worker.send(T.WORK_COMPLETE, handle, b"")  # its removal cannot be written
    worker.barrier()
    assert server.stop() == 1
    log = server.log()
    assert "Traceback" not in log and "will run again after a restart" in log
    assert _stored_data(db) == [b"done-but-not-forgotten"]  # at-least-once: it runs again


def _chattr(flag: str, *paths: Path) -> bool:
    result = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True)
    return result.returncode == 0


def test_queue_file_made_immutable_under_a_running_server(tmp_path: Path, served) -> None:
    db = tmp_path / "q.sqlite3"
    wal = tmp_path / "q.sqlite3-wal"
    server = served(f"sqlite:{db}")
    probe = tmp_path / "probe"
    probe.write_text("x")
    if not _chattr("+i", probe):
        pytest.skip("chattr +i is not permitted here (needs CAP_LINUX_IMMUTABLE)")
    _chattr("-i", probe)
    try:
        _fault_then_recover(server, db, lambda: _chattr("+i", db, wal) or None, lambda: _chattr("-i", db, wal) or None)
    finally:
        _chattr("-i", db, wal)


# -- kill -9 in the middle of bursts ----------------------------------------------------------------
def test_kill_9_at_random_points_of_submit_bursts_loses_no_acknowledged_job(tmp_path: Path, served) -> None:
    rng = random.Random(14)
    db = tmp_path / "q.sqlite3"
    acked: set[bytes] = set()
    sent: set[bytes] = set()
    for round_ in range(6):
        server = served(f"sqlite:{db}")
        client = server.conn()
        kill_after = rng.randint(1, 4000)
        seen = 0
        burst = 0
        try:
            while seen < kill_after:
                datas = [b"r%d-b%d-%d" % (round_, burst, i) for i in range(rng.randint(1, 700))]
                burst += 1
                sent.update(datas)
                client.send_raw(b"".join(Packet.request(T.SUBMIT_JOB_BG, b"kill-f", b"", d).to_bytes() for d in datas))
                for data in datas:
                    if seen == kill_after:
                        break
                    client.expect(T.JOB_CREATED)
                    acked.add(data)
                    seen += 1
            server.proc.kill()  # replies to the rest of the burst may be on their way: unacknowledged
            server.proc.wait(TIMEOUT)
        finally:
            client.close()
    stored = set(_stored_data(db))
    assert acked - stored == set()  # 0 acknowledged jobs lost
    assert stored <= sent
    assert len(acked) > 6


# -- clients that do not read ---------------------------------------------------------------------------
def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_pipelined_status_from_a_client_that_does_not_read_stays_bounded(served) -> None:
    server = served("memory")
    worker = server.conn()
    worker.send_raw(b"".join(Packet.request(T.CAN_DO, b"flow-%05d" % i).to_bytes() for i in range(10000)))
    worker.barrier()
    before = _peak_rss(server.proc.pid)
    reader = socket.create_connection(server.address)
    commands = 600  # each reply is about 170 KB: 100 MB if all were built at once
    reader.sendall(b"status\n" * commands)
    other = server.conn()  # the server still answers others, and has read (and parked) the commands
    other.send(T.ECHO_REQ, b"hello")
    other.expect(T.ECHO_RES, b"hello")
    grown = _peak_rss(server.proc.pid) - before
    assert grown < 48 * 2**20, f"the server grew by {grown / 2**20:.0f} MiB for a client that does not read"
    reader.settimeout(TIMEOUT)
    ends = 0
    tail = b""
    while ends < commands:  # now it reads: every reply arrives, whole
        chunk = reader.recv(1 << 20)
        assert chunk, "the server closed the connection"
        data = tail + chunk
        ends += data.count(b"\n.\n")
        tail = data[-2:]
    reader.close()
    assert server.stop() == 0


def _stuff_until_the_server_stops_reading(server: Served) -> socket.socket:
    sock = socket.create_connection(server.address)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    echo = Packet.request(T.ECHO_REQ, b"e" * 65536).to_bytes()
    deadline = time.monotonic() + TIMEOUT * 3
    idle_since = None
    left = b""
    while time.monotonic() < deadline:
        try:
            if not left:
                left = echo
            left = left[sock.send(left):]  # the rest goes first next time: whole packets only
            idle_since = None
        except ConnectionError:
            raise AssertionError(f"the server closed the connection: {server.log()[-2000:]}") from None
        except BlockingIOError:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 0.5:
                return sock  # our send buffer stays full: the server stopped reading us
            time.sleep(0.01)
    raise AssertionError("the server kept reading from a client that does not read")


def test_sigterm_drops_a_client_that_does_not_read(served) -> None:
    server = served("memory")
    sock = _stuff_until_the_server_stops_reading(server)
    try:
        assert server.stop(signal.SIGTERM) == 0
    finally:
        sock.close()
    assert "does not read its replies; closed with" in server.log()


def test_shutdown_graceful_ends_while_a_worker_holds_a_job(tmp_path: Path, served) -> None:
    db = tmp_path / "q.sqlite3"
    server = served(f"sqlite:{db}", "--enable-shutdown", "--shutdown-timeout", "1")
    client, worker, admin = server.conn(), server.conn(), server.conn()
    client.send(T.SUBMIT_JOB_BG, b"held-f", b"", b"held")
    client.expect(T.JOB_CREATED)
    worker.send(T.CAN_DO, b"held-f")
    worker.send(T.GRAB_JOB)
    worker.expect(T.JOB_ASSIGN)  # and never completes it
    admin.send_raw(b"shutdown graceful\n")
    assert server.proc.wait(TIMEOUT * 3) == 0  # by itself: no signal
    server.stop()  # reads the log to its end
    assert "1 jobs still running; stopping anyway" in server.log()
    assert _stored_data(db) == [b"held"]  # it runs again after a restart


# -- names -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [b"a\n.\nb", b"two words", b"tab\there", b"cr\r"])
def test_names_the_admin_protocol_cannot_show_are_refused(connect, server, name: bytes) -> None:
    worker, client = connect(), connect()
    worker.send(T.CAN_DO, name)
    assert worker.expect(T.ERROR).args[0] == b"INVALID_PACKET"
    client.send(T.SUBMIT_JOB_BG, name, b"", b"d")
    assert client.expect(T.ERROR).args[0] == b"INVALID_PACKET"
    client.send(T.SUBMIT_REDUCE_JOB_BACKGROUND, b"names-ok", b"", name, b"", b"d")  # a reducer is a name too
    assert client.expect(T.ERROR).args[0] == b"INVALID_PACKET"
    worker.send(T.CAN_DO, b"names-ok")
    worker.barrier()

    async def status() -> list[str]:
        async with AdminClient(server.address) as admin:
            return [row.function for row in await admin.status()]

    assert "names-ok" in asyncio.run(status())


def test_function_names_are_bounded_and_freed(connect) -> None:
    worker, client, admin = connect(), connect(), connect()
    worker.send(T.CAN_DO, b"n" * (MAX_FUNCTION_SIZE + 1))
    assert worker.expect(T.ERROR).args[0] == b"ARGUMENT_TOO_LARGE"
    client.send(T.SUBMIT_JOB, b"n" * (MAX_FUNCTION_SIZE + 1), b"", b"d")
    assert client.expect(T.ERROR).args[0] == b"ARGUMENT_TOO_LARGE"
    count = IDLE_FUNCTIONS_KEPT + 3000
    worker.send_raw(b"".join(Packet.request(T.CAN_DO, b"freed-%05d" % i).to_bytes() for i in range(count)))
    worker.send(T.CAN_DO, b"m" * MAX_FUNCTION_SIZE)  # the limit itself is accepted
    admin.admin("maxqueue freed-limited 5")
    worker.barrier()
    names = {row.function for row in parse_status(admin.admin("status"))}
    assert {"freed-00000", f"freed-{count - 1:05d}", "m" * MAX_FUNCTION_SIZE, "freed-limited"} <= names
    worker.close()

    def freed() -> bool:
        return "freed-00000" not in {row.function for row in parse_status(admin.admin("status"))}

    wait_for(freed, "the worker's names to be forgotten")
    names = {row.function for row in parse_status(admin.admin("status"))}
    assert len([n for n in names if n.startswith("freed-0")]) <= IDLE_FUNCTIONS_KEPT  # only the last few idle
    assert "freed-limited" in names  # an admin setting keeps its function


# -- lookups cost the same whatever the queue holds ---------------------------------------------------------------
def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_get_status_unique_does_not_scan_the_queue(served) -> None:
    server = served("memory")
    client = server.conn()
    queued = 100_000
    for start in range(0, queued, 10000):
        client.send_raw(b"".join(
            Packet.request(T.SUBMIT_JOB_BG, b"deep-%d" % (i % 7), b"u-%d" % i, b"").to_bytes()
            for i in range(start, start + 10000)
        ))
        for _ in range(10000):
            client.expect(T.JOB_CREATED)
    lookups = 2000
    cpu = _cpu_seconds(server.proc.pid)
    for i in range(lookups):
        client.send(T.GET_STATUS_UNIQUE, b"u-%d" % (i * 37 % queued))
        assert client.expect(T.STATUS_RES_UNIQUE).args[1] == b"1"
    client.send(T.GET_STATUS_UNIQUE, b"u-none")
    assert client.expect(T.STATUS_RES_UNIQUE).args[1] == b"0"
    spent = _cpu_seconds(server.proc.pid) - cpu
    # A scan of 100,000 jobs costs milliseconds of CPU per lookup; an index, microseconds.
    # The bound is far from both, so a loaded machine does not decide the outcome.
    assert spent < lookups * 0.5e-3, f"{spent / lookups * 1e3:.2f} ms of server CPU per lookup"


# -- queue files ----------------------------------------------------------------------------------------------
def _refused_at_start(queue: str) -> str:
    """Start a server that must refuse `queue`: its one line of stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "gearspec", "serve", "--port", "0", "--queue", queue],
        capture_output=True, text=True, timeout=TIMEOUT * 3,
    )
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    return result.stderr


def test_a_foreign_sqlite_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "app.sqlite3"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE users (name TEXT)")
    before = db.read_bytes()
    assert "is a SQLite database of something else (tables: users" in _refused_at_start(f"sqlite:{db}")
    assert db.read_bytes() == before  # no table added, journal mode unchanged


def test_damaged_queue_files_are_refused_with_one_line(tmp_path: Path, served) -> None:
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(bytes(random.Random(14).getrandbits(8) for _ in range(8192)))
    assert "file is not a database" in _refused_at_start(f"sqlite:{garbage}")
    db = tmp_path / "q.sqlite3"
    server = served(f"sqlite:{db}")
    _submit_each(server.conn(), b"damaged-f", [b"one", b"two"])
    assert server.stop() == 0
    for column, value, problem in [
        ("function", "'text, not a blob'", "has a str function, not a blob"),
        ("priority", "7", "has priority 7, not 0, 1 or 2"),
        ("run_after", "'soon'", "has run_after 'soon', not a Unix time"),
        ("data", "42", "has a int data, not a blob"),
    ]:
        with sqlite3.connect(db) as con:
            saved = con.execute("SELECT * FROM gearspec_jobs").fetchall()
            con.execute(f"UPDATE gearspec_jobs SET {column} = {value} WHERE data = x'74776f'")  # "two"
        assert f"is damaged: row 2 {problem}" in _refused_at_start(f"sqlite:{db}")
        with sqlite3.connect(db) as con:
            con.execute("DELETE FROM gearspec_jobs")
            con.executemany("INSERT INTO gearspec_jobs VALUES (?,?,?,?,?,?,?)", saved)


def test_a_memory_only_sqlite_queue_is_refused(tmp_path: Path) -> None:
    assert "would not be a file that survives a restart" in _refused_at_start("sqlite::memory:")


def test_queue_files_are_created_private(tmp_path: Path, served) -> None:
    db = tmp_path / "new" / "q.sqlite3"
    server = served(f"sqlite:{db}")
    _submit_each(server.conn(), b"private-f", [b"secret"])
    modes = {p.name: p.stat().st_mode & 0o777 for p in db.parent.iterdir()}
    assert server.stop() == 0
    assert modes == {"q.sqlite3": 0o600, "q.sqlite3-wal": 0o600, "q.sqlite3-shm": 0o600, "q.sqlite3.lock": 0o600}
    assert db.parent.stat().st_mode & 0o777 == 0o700
