"""`gearspec interop`: every client library against every job server.

For each server (started as a local process, or in Docker) and each client library, a
fixed set of scenarios runs through the server: the library's client submits, the library's
worker (or another worker chosen with ``--worker``) does the work. Clients and workers are
the drivers in `gearspec.conformance.drivers` (one command-line contract for every library).
Scenarios: foreground, background, priorities, coalescing, data/status streaming,
exceptions and failure.

Each scenario of each (server, client) pair is a case of the suite's framework: its ID is
``interop/SERVER/CLIENT/SCENARIO`` (so ``-k interop/gearmand`` selects a server's column,
``-k 'interop/*/php/*'`` a client's row, ``-k '*/foreground'`` a scenario; the worker is named
in the case's requirement), it grades in the suite's outcomes (harness.Outcome: pass,
non-strict, unsupported, fail), the known failures (the ``[[expected]]`` rows of the
implementations' impl.toml, and the limitations the drivers declare) are the suite's known
deviations (runner.Deviation), so the verdicts are the suite's (runner.Verdict: a known
failure seen is ``expected-fail``, a known failure that now works ``unexpected-pass``), and
the results (`CellResult`, a runner.Result) go through the suite's summary and report
files (reports.py), with the grid on top. Exit status as `gearspec test`'s: 0 when nothing
counts against the run, 1 when something does (a fail, or an unexpected pass), 2 when
nothing could be run.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import html
import itertools
import json
import os
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gearspec.conformance import reports
from gearspec.conformance.harness import Outcome
from gearspec.conformance.impls import Implementation, Registry, RegistryError, load_registry
from gearspec.conformance.lifecycle import RestartError, TargetControl
from gearspec.conformance.registry import Case, Level, select_cases
from gearspec.conformance.runner import Deviation, Result, Verdict
from gearspec.conformance.servers import LaunchError, open_server
from gearspec.conformance.tls import TLS_DRIVERS, InteropTls

from gearspec.admin import AdminReplyReader, encode_admin, parse_status
from gearspec.cli import unwritable
from gearspec.codec import Decoder, Packet
from gearspec.spec import Magic
from gearspec.spec import PacketType as T

__all__ = [
    "GRADES",
    "SCENARIOS",
    "SUMMARIES",
    "CellOutcome",
    "CellResult",
    "Matrix",
    "cell_case",
    "cell_id",
    "configure_interop",
    "driver_limitation",
    "grid_html",
    "grid_markdown",
    "matrix_cases",
    "render_grid",
    "run_interop",
    "run_matrix",
]

SUMMARIES = {"interop": "run every client against every server"}

# The suite's verdicts (runner.Verdict) that a cell can have: one vocabulary for cases, scenarios and cells.
GRADES = (Verdict.PASS, Verdict.NON_STRICT, Verdict.UNSUPPORTED, Verdict.EXPECTED_FAIL, Verdict.UNEXPECTED_PASS,
          Verdict.FAIL, Verdict.ERROR)
# --mode -> where servers start (servers.open_server); "docker" also runs the drivers in the peers image.
SERVER_MODES = {"local": "local", "docker": "docker", "docker-servers": "docker", "auto": "auto"}
EXIT_CODES = {0: "ok", 1: "usage error", 2: "connection error", 3: "WORK_FAIL", 4: "WORK_EXCEPTION",
              5: "unsupported", 6: "timeout"}


# -- drivers ------------------------------------------------------------------------------

# The driver features (gearspec.conformance.drivers.FEATURES) each scenario relies on: a
# limitation a driver declares for one of them turns that scenario's failure into "expected-fail".
SCENARIO_FEATURES: dict[str, tuple[str, ...]] = {
    "foreground": ("client.foreground", "worker.complete"),
    "background": ("client.background", "worker.complete"),
    "priorities": ("client.priority", "worker.complete"),
    "coalescing": ("client.unique", "worker.complete"),
    "streaming": ("client.stream", "worker.status"),
    "exception": ("client.exception",),
    "failure": ("client.fail", "worker.fail"),
}


def _drivers() -> dict[str, Any]:
    try:
        from gearspec.conformance.drivers import DRIVERS
    except ImportError as exc:
        raise LaunchError(f"the drivers package gearspec.conformance.drivers cannot be loaded: {exc}") from None
    return DRIVERS


def driver_limitation(client: str, worker: str, scenario: str) -> str | None:
    """Why a scenario cannot work with these drivers, as the drivers themselves declare it."""
    drivers = _drivers()
    for feature in SCENARIO_FEATURES.get(scenario, ()):
        name = client if feature.startswith("client") else worker
        driver = drivers.get(name)
        if driver is not None and (why := driver.limitation(feature)):
            return f"{name}: {why}"
    return None


class Runner:
    """Runs driver commands: here, or inside the peers container."""

    where = "local"

    def command(self, driver: str, role: str, args: Sequence[str]) -> tuple[list[str], dict[str, str] | None]:
        drivers = _drivers()
        if driver not in drivers:
            raise LaunchError(f"no driver named {driver!r}; drivers: {', '.join(sorted(drivers))}")
        return drivers[driver].command(role, *args), drivers[driver].environment()

    def unavailable(self, driver: str) -> str | None:
        drivers = _drivers()
        return f"no driver named {driver!r}" if driver not in drivers else drivers[driver].unavailable()


class DockerExecRunner(Runner):
    """``docker exec`` into the running peers container; the driver table is read inside it."""

    where = "docker"

    def __init__(self, container: Any) -> None:
        docker_cli = shutil.which("docker")
        if docker_cli is None:
            raise LaunchError("the docker command-line tool is not installed (needed to exec drivers in the peers image)")
        self.prefix = [docker_cli, "exec", "-i", container.name]
        code, out = container.exec(["python3", "-c", _DRIVER_TABLE])
        try:
            self.table: dict[str, Any] = json.loads(out.strip().splitlines()[-1]) if code == 0 else {}
        except (ValueError, IndexError):
            self.table = {}
        if not self.table:
            raise LaunchError(f"cannot read the driver table in the peers image: {out.strip()[-500:]}")

    def command(self, driver: str, role: str, args: Sequence[str]) -> tuple[list[str], dict[str, str] | None]:
        entry = self.table.get(driver)
        if entry is None:
            raise LaunchError(f"the peers image has no driver {driver!r}")
        env = [f"--env={k}={v}" for k, v in entry["env"].items()]
        return [*self.prefix[:2], *env, *self.prefix[2:], *entry["argv"], role, *args], None

    def unavailable(self, driver: str) -> str | None:
        entry = self.table.get(driver)
        return f"the peers image has no driver {driver!r}" if entry is None else entry["unavailable"]


_DRIVER_TABLE = (
    "import json; from gearspec.conformance.drivers import DRIVERS; "
    "print(json.dumps({n: {'argv': list(d.argv), 'env': dict(d.env), 'unavailable': d.unavailable()} "
    "for n, d in DRIVERS.items()}))"
)


# -- one cell: one server, one client library ----------------------------------------------


@dataclass
class CellOutcome:
    """How one scenario of a cell went, before known failures are applied."""

    grade: Outcome
    detail: str = ""


class ScenarioFailed(Exception):
    pass


@dataclass
class Proc:
    argv: list[str]
    popen: subprocess.Popen[bytes]

    def finish(self, timeout: float) -> tuple[int, str, str]:
        try:
            out, err = self.popen.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            out, err = self.popen.communicate()
            raise ScenarioFailed(f"{Path(self.argv[0]).name} did not finish within {timeout:g}s; stderr: {_tail(err)}") from None
        return self.popen.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def _tail(data: bytes | str, limit: int = 300) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = " ".join(text.split())
    return text[-limit:] if text else "(nothing)"


_counter = itertools.count(1)


class NoBarrier(Exception):
    """The server lacks what a scenario needs to order its steps: the cell is unsupported."""


class Cell:
    """Helpers for scenarios: start clients and workers, read the server's queue."""

    def __init__(
        self, host: str, port: int, client: str, worker: str, runner: Runner, timeout: float,
        tls: InteropTls | None = None, facts: dict[str, bool] | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.client_driver, self.worker_driver = client, worker
        self.runner = runner
        self.timeout = timeout
        self.procs: list[Proc] = []
        self.tls = tls  # drivers and admin connect over TLS
        self.facts = {} if facts is None else facts  # what the server was seen to support, per server

    def function(self, scenario: str) -> str:
        return f"interop_{scenario}_{os.getpid()}_{next(_counter)}"

    def _spawn(self, driver: str, args: list[str]) -> Proc:
        if self.tls is not None:
            args = [*args, *self.tls.driver_flags()]
        argv, env = self.runner.command(driver, args[0], args[1:])
        popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 env=env, start_new_session=True)
        proc = Proc(argv, popen)
        self.procs.append(proc)
        return proc

    def client(self, function: str, data: str, *, unique: str | None = None, background: bool = False,
               priority: str | None = None, exceptions: bool = False) -> Proc:
        from gearspec.conformance.drivers.contract import client_argv  # the drivers package reads the registry

        # --exceptions only in the exception scenario: elsewhere the library's default is graded.
        args = client_argv(self.host, self.port, function, data=data, unique=unique, background=background,
                           priority=priority or "normal", timeout=self.timeout, exceptions=exceptions)
        return self._spawn(self.client_driver, ["client", *args])

    def worker(self, function: str, count: int = 1) -> Proc:
        from gearspec.conformance.drivers.contract import worker_argv  # the drivers package reads the registry

        return self._spawn(self.worker_driver, ["worker", *worker_argv(self.host, self.port, function, count=count,
                                                                       timeout=self.timeout)])

    def has_admin(self) -> bool:
        """Whether the server answers the admin `status` (asked once per server)."""
        if "admin" not in self.facts:
            try:
                self.admin("status", timeout=2)
                self.facts["admin"] = True
            except (OSError, ScenarioFailed):
                self.facts["admin"] = False
        return self.facts["admin"]

    def known(self, handle: str) -> bool:
        """GET_STATUS of a job handle: whether the server still knows the job."""
        raw = socket.create_connection((self.host, self.port), timeout=5)
        with self.tls.context().wrap_socket(raw, server_hostname=self.host) if self.tls else raw as sock:
            sock.sendall(Packet.request(T.GET_STATUS, handle.encode()).to_bytes())
            decoder = Decoder(Magic.RES, lenient=True)
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    raise ScenarioFailed(f"the server closed the connection on GET_STATUS {handle!r}")
                decoder.receive_data(chunk)
                for event in decoder:
                    if isinstance(event, Packet) and event.type is T.STATUS_RES:
                        return event.args[1] == b"1"
                    raise ScenarioFailed(f"GET_STATUS {handle!r} answered {event!r}")

    def admin(self, command: str, timeout: float = 5) -> list[str]:
        raw = socket.create_connection((self.host, self.port), timeout=timeout)
        with self.tls.context().wrap_socket(raw, server_hostname=self.host) if self.tls else raw as sock:
            sock.sendall(encode_admin(command))
            reader = AdminReplyReader(command)
            buffer = b""
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    raise ScenarioFailed(f"the server closed the connection during admin {command!r}")
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    reply = reader.feed(line)
                    if reply is not None:
                        return list(reply.lines)

    def queued(self, function: str) -> int:
        for row in parse_status(self.admin("status")):
            if row.function == function:
                return row.total
        return 0

    def wait_queued(self, function: str, count: int, watch: Sequence[Proc] = ()) -> None:
        """Wait until the server holds `count` jobs for `function` (failing fast if a watched process exits).

        Raises `NoBarrier` when the server has no admin `status` to show its queue."""
        if not self.has_admin():
            raise NoBarrier("the server answers no admin `status`, which this scenario needs to see its jobs queued")
        deadline = time.monotonic() + self.timeout
        delay = 0.01
        while self.queued(function) < count:
            for proc in watch:
                if proc.popen.poll() is not None:
                    code, out, err = proc.finish(1)
                    raise ScenarioFailed(_exit_text(code, out, err, "client exited before its job was queued"))
            if time.monotonic() > deadline:
                raise ScenarioFailed(f"the server never showed {count} queued job(s) for the function")
            time.sleep(delay)  # the admin protocol has no notification; poll with a deadline
            delay = min(delay * 2, 0.1)

    def cleanup(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGKILL)  # the driver and anything it started
            with contextlib.suppress(Exception):
                proc.popen.communicate(timeout=5)


def _exit_text(code: int, out: str, err: str, prefix: str = "") -> str:
    meaning = EXIT_CODES.get(code, "unexpected")
    text = f"exit {code} ({meaning})"
    if out.strip():
        text += f", stdout {_tail(out, 80)!r}"
    if err.strip():
        text += f", stderr {_tail(err)!r}"
    return f"{prefix}: {text}" if prefix else text


def _unsupported(code: int, err: str) -> CellOutcome | None:
    if code == 5:
        line = next((ln for ln in err.splitlines() if ln.startswith("unsupported")), err.strip())
        return CellOutcome(Outcome.UNSUPPORTED, line[:200])
    return None


def _expect_result(proc: Proc, cell: Cell, want: str, what: str) -> CellOutcome | None:
    code, out, err = proc.finish(cell.timeout + 5)
    if (skip := _unsupported(code, err)) is not None:
        return skip
    if code != 0 or out.strip() != want:
        raise ScenarioFailed(f"{what}: expected {want!r}, got " + _exit_text(code, out, err))
    return None


def _expect_worker_done(proc: Proc, cell: Cell) -> CellOutcome | None:
    code, out, err = proc.finish(cell.timeout + 5)
    if (skip := _unsupported(code, err)) is not None:
        return skip
    if code != 0:
        raise ScenarioFailed("worker: " + _exit_text(code, out, err))
    return None


# -- scenarios ----------------------------------------------------------------------------


def scenario_foreground(cell: Cell) -> CellOutcome:
    fn = cell.function("fg")
    client = cell.client(fn, "hello")
    worker = cell.worker(fn)
    return _expect_result(client, cell, "olleh", "client") or _expect_worker_done(worker, cell) or CellOutcome(Outcome.PASS)


def scenario_background(cell: Cell) -> CellOutcome:
    fn = cell.function("bg")
    client = cell.client(fn, "later", background=True)
    code, out, err = client.finish(cell.timeout + 5)
    if (skip := _unsupported(code, err)) is not None:
        return skip
    if code != 0:
        raise ScenarioFailed("background submit: " + _exit_text(code, out, err))
    # The job must really be queued, and then done by a worker: seen in the admin `status`,
    # or, on a server without one, by GET_STATUS of the handle the client printed.
    handle = out.strip()
    by_admin = cell.has_admin() or not handle
    if by_admin:
        cell.wait_queued(fn, 1)
    elif not cell.known(handle):
        raise ScenarioFailed(f"the server does not know the background job {handle!r} (GET_STATUS)")
    if (other := _expect_worker_done(cell.worker(fn), cell)) is not None:
        return other
    if cell.queued(fn) != 0 if by_admin else cell.known(handle):
        raise ScenarioFailed("the worker exited, but the background job is still queued")
    return CellOutcome(Outcome.PASS)


def scenario_priorities(cell: Cell) -> CellOutcome:
    fn = cell.function("prio")
    clients: dict[str, Proc] = {}
    for n, level in enumerate(("low", "normal", "high"), start=1):
        clients[level] = cell.client(fn, level, priority=level)
        cell.wait_queued(fn, n, watch=[clients[level]])
    # One job per worker: after each, exactly the next client in priority order is done.
    for level in ("high", "normal", "low"):
        if (other := _expect_worker_done(cell.worker(fn), cell)) is not None:
            return other
        finished = _wait_any(list(clients.values()), cell.timeout)
        name = next(k for k, v in clients.items() if v is finished)
        code, out, err = finished.finish(1)
        if (skip := _unsupported(code, err)) is not None:
            return skip
        if name != level:
            raise ScenarioFailed(f"expected the {level} job next, but the {name} job finished ({_exit_text(code, out, err)})")
        if code != 0 or out.strip() != level[::-1]:
            raise ScenarioFailed(f"{level} client: " + _exit_text(code, out, err))
        del clients[name]
    return CellOutcome(Outcome.PASS)


def _wait_any(procs: list[Proc], timeout: float) -> Proc:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        for proc in procs:
            if proc.popen.poll() is not None:
                return proc
        if time.monotonic() > deadline:
            raise ScenarioFailed(f"no client finished within {timeout:g}s after its job was done")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _connections(cell: Cell) -> int:
    try:
        return len(cell.admin("workers"))
    except (OSError, ScenarioFailed):
        return -1


def scenario_coalescing(cell: Cell) -> CellOutcome:
    fn = cell.function("uniq")
    unique = f"u{next(_counter)}"
    first = cell.client(fn, "first", unique=unique)
    cell.wait_queued(fn, 1, watch=[first])
    before = _connections(cell)
    second = cell.client(fn, "second", unique=unique)
    # The second submit cannot be seen in `status` (it merges); wait for its connection.
    deadline = time.monotonic() + 5
    while before >= 0 and _connections(cell) <= before and time.monotonic() < deadline:
        if second.popen.poll() is not None:
            break
        time.sleep(0.01)
    worker = cell.worker(fn, count=1)
    for proc, what in ((first, "first client"), (second, "second client (same unique)")):
        code, out, err = proc.finish(cell.timeout + 5)
        if (skip := _unsupported(code, err)) is not None:
            return skip
        if code != 0 or out.strip() != "tsrif":
            hint = " (not coalesced: one worker does one job)" if proc is second and code == 6 else ""
            raise ScenarioFailed(f"{what}: expected 'tsrif', got {_exit_text(code, out, err)}{hint}")
    return _expect_worker_done(worker, cell) or CellOutcome(Outcome.PASS)


def scenario_streaming(cell: Cell) -> CellOutcome:
    fn = cell.function("stream")
    client = cell.client(fn, "status")
    worker = cell.worker(fn)
    code, out, err = client.finish(cell.timeout + 5)
    if (skip := _unsupported(code, err)) is not None:
        return skip
    if code != 0 or out.strip() != "done":
        raise ScenarioFailed("client: expected 'done', got " + _exit_text(code, out, err))
    if (other := _expect_worker_done(worker, cell)) is not None:
        return other
    missing = [what for what, seen in (("WORK_DATA", "partial" in err), ("WORK_STATUS", "1/2" in err)) if not seen]
    if missing:
        return CellOutcome(Outcome.NON_STRICT, f"result arrived, but the client did not report {' and '.join(missing)}")
    return CellOutcome(Outcome.PASS)


def scenario_failure(cell: Cell) -> CellOutcome:
    fn = cell.function("fail")
    client = cell.client(fn, "fail")
    worker = cell.worker(fn)
    code, out, err = client.finish(cell.timeout + 5)
    if (skip := _unsupported(code, err)) is not None:
        return skip
    if code != 3:
        raise ScenarioFailed("expected exit 3 (WORK_FAIL), got " + _exit_text(code, out, err))
    return _expect_worker_done(worker, cell) or CellOutcome(Outcome.PASS)


def scenario_exception(cell: Cell) -> CellOutcome:
    """A worker answering WORK_EXCEPTION (gearspec's raw worker: the contract worker never throws)."""
    fn = cell.function("exc")
    client = cell.client(fn, "boom", exceptions=True)
    worker = RawExceptionWorker(cell.host, cell.port, fn, cell.timeout, cell.tls.context() if cell.tls else None)
    worker.start()
    try:
        code, out, err = client.finish(cell.timeout + 5)
    finally:
        worker.stop()
    if worker.error:
        raise ScenarioFailed(f"exception worker: {worker.error}")
    if (skip := _unsupported(code, err)) is not None:
        return skip
    if code == 4:
        return CellOutcome(Outcome.PASS)
    if code == 3:
        return CellOutcome(Outcome.NON_STRICT, "WORK_EXCEPTION reached the client as WORK_FAIL")
    raise ScenarioFailed("expected exit 4 (WORK_EXCEPTION), got " + _exit_text(code, out, err))


class RawExceptionWorker(threading.Thread):
    """A minimal worker over gearspec's codec: takes one job and answers WORK_EXCEPTION."""

    def __init__(
        self, host: str, port: int, function: str, timeout: float, tls: ssl.SSLContext | None = None
    ) -> None:
        super().__init__(daemon=True, name=f"exception-worker-{function}")
        self.address = (host, port)
        self.tls = tls
        self.function = function
        self.timeout = timeout
        self.error: str | None = None
        self._sock: socket.socket | None = None

    def stop(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
        self.join(5)

    def run(self) -> None:
        from gearspec.codec import NEED_DATA, Decoder, Packet
        from gearspec.spec import Magic

        try:
            raw = socket.create_connection(self.address, timeout=self.timeout)
            with self.tls.wrap_socket(raw, server_hostname=self.address[0]) if self.tls else raw as sock:
                self._sock = sock
                decoder = Decoder(accept=Magic.RES)

                def send(kind: str, *args: object) -> None:
                    sock.sendall(Packet.request(kind, *args).to_bytes())

                def receive() -> Any:
                    while True:
                        event = decoder.next_event()
                        if event is not NEED_DATA:
                            return event
                        data = sock.recv(65536)
                        if not data:
                            raise ConnectionError("the server closed the connection")
                        decoder.receive_data(data)

                send("CAN_DO", self.function)
                # GRAB_JOB_UNIQ first (python gear's server serves nothing else), plain
                # GRAB_JOB when it is refused with ERROR (Perl Gearman::Server).
                grab = "GRAB_JOB_UNIQ"
                deadline = time.monotonic() + self.timeout
                while time.monotonic() < deadline:
                    send(grab)
                    packet = receive()
                    if packet.name == "ERROR" and grab == "GRAB_JOB_UNIQ":
                        grab = "GRAB_JOB"
                        continue
                    if packet.name in ("JOB_ASSIGN", "JOB_ASSIGN_UNIQ"):
                        send("WORK_EXCEPTION", packet["handle"], b"boom")
                        send("ECHO_REQ", b"flush")  # wait until the server has read it
                        while receive().name != "ECHO_RES":
                            pass
                        return
                    if packet.name == "NO_JOB":
                        send("PRE_SLEEP")
                        while receive().name != "NOOP":
                            pass
                self.error = "no job arrived"
        except (OSError, ConnectionError) as exc:
            if self._sock is None or self._sock.fileno() != -1:
                self.error = str(exc)
        except Exception as exc:  # reported as the scenario's failure, never a traceback
            self.error = f"{type(exc).__name__}: {exc}"


Scenario = Callable[[Cell], CellOutcome]

SCENARIOS: dict[str, Scenario] = {
    "foreground": scenario_foreground,
    "background": scenario_background,
    "priorities": scenario_priorities,
    "coalescing": scenario_coalescing,
    "streaming": scenario_streaming,
    "exception": scenario_exception,
    "failure": scenario_failure,
}


# -- the matrix ---------------------------------------------------------------------------

# What each scenario checks, as its cases' requirement says it (docs/docker.md has the table).
SCENARIO_REQUIREMENTS = {
    "foreground": "a foreground job's result reaches the client",
    "background": "a background submit returns, the job is queued, and a worker does it",
    "priorities": "queued high, normal and low jobs are handed out in that order",
    "coalescing": "two submits with one unique ID while queued are one job: both clients get its result",
    "streaming": "WORK_STATUS and WORK_DATA reach the client before the result",
    "exception": "WORK_EXCEPTION ends the client's job as an exception",
    "failure": "WORK_FAIL ends the client's job as a failure",
}
# A limitation a driver declares: its scenario may fail or be unsupported; a pass is a pass
# (the driver's table says what it cannot promise, not that it must fail).
LIMITATION_OUTCOMES = frozenset({Outcome.FAIL, Outcome.ERROR, Outcome.UNSUPPORTED, Outcome.PASS})
_SOURCE = "conformance/interop.py scenario_{scenario}: the drivers' contract (conformance/drivers/README.md) through a real server"


def cell_id(server: str, client: str, scenario: str) -> str:
    """A cell scenario's case ID: what -k/--exclude match and the rerun line selects."""
    return f"interop/{server}/{client}/{scenario}"


def _not_a_case(session: object) -> None:
    raise RuntimeError("an interop cell runs through run_matrix, not as a server case")


def cell_case(server: str, client: str, worker: str, scenario: str) -> Case:
    """One scenario of one (server, client) pair as the reports see a case (MUST: every
    failure counts, as in the role tests)."""
    return Case(
        id=cell_id(server, client, scenario),
        requirement=f"{client} client, {worker} worker, {server} server: {SCENARIO_REQUIREMENTS[scenario]}",
        level=Level.MUST, packets=(), admin=(), source=_SOURCE.format(scenario=scenario), alternatives={},
        func=_not_a_case,
    )


def _worker_for(registry: Registry, client: Implementation, worker: str | None) -> Implementation:
    """The worker library a client's row uses: --worker, else the client's own, else gearspec's."""
    if worker:
        return registry[worker]
    return client if "worker" in client.roles else registry["reference"]


def matrix_cases(
    registry: Registry, servers: Sequence[str], clients: Sequence[str], scenarios: Sequence[str] = tuple(SCENARIOS),
    *, worker: str | None = None, select: Sequence[str] = (), exclude: Sequence[str] = (),
) -> list[Case]:
    """The cells' cases, in matrix order (server, client, scenario), chosen as `gearspec test`
    chooses cases (registry.select_cases: an ID, a glob, or a prefix ending at a "/")."""
    cases = [
        cell_case(server, client, _worker_for(registry, registry[client], worker).name, scenario)
        for server in servers for client in clients for scenario in scenarios
    ]
    return select_cases(cases, select, exclude)


@dataclass
class CellResult(Result):
    """One scenario of one (server, client) pair: a suite result, with the cell's coordinates."""

    server: str = ""
    client: str = ""
    worker: str = ""
    scenario: str = ""

    def coordinates(self) -> dict[str, str]:
        return {"server": self.server, "client": self.client, "worker": self.worker, "scenario": self.scenario}

    def explained(self) -> str:
        """The detail, with the known failure's reason when one applies (grid and HTML)."""
        if self.deviation is None or self.verdict in (Verdict.PASS, Verdict.UNEXPECTED_PASS):
            return self.message
        return f"{self.deviation.reason} [{self.message}]" if self.verdict is Verdict.EXPECTED_FAIL else (
            f"{self.message} (known: {self.deviation.reason})")


@dataclass
class Matrix:
    servers: list[str]
    clients: list[str]
    scenarios: list[str]
    mode: str
    results: list[CellResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    server_logs: dict[str, str] = field(default_factory=dict)
    strict: bool = False  # as `gearspec test --strict`: SHOULD failures count too (cells are MUST)

    def cell(self, server: str, client: str) -> list[CellResult]:
        return [r for r in self.results if r.server == server and r.client == client]

    @property
    def broken(self) -> list[CellResult]:
        """The results that make the run fail (runner.Result.counts_against)."""
        return [r for r in self.results if r.counts_against(self.strict)]

    def counts(self) -> dict[str, int]:
        return {g.value: sum(r.verdict is g for r in self.results) for g in GRADES}

    def as_data(self) -> dict[str, Any]:
        """The matrix's own fields in the JSON report (the results are its "cases")."""
        return {
            "servers": self.servers, "clients": self.clients, "scenarios": self.scenarios, "mode": self.mode,
            "notes": self.notes, "server_logs": {k: v[-20000:] for k, v in self.server_logs.items()},
        }


def known_deviation(
    registry: Registry, server: str, client: str, worker: str | None, scenario: str
) -> Deviation | None:
    """The known failure of a cell as the suite's deviation: an [[expected]] row, else a
    limitation its drivers declare (`worker` None: no driver ran, so none applies)."""
    case_id = cell_id(server, client, scenario)
    row = registry.expected_failure(client, server, scenario)
    if row is not None:
        return row.deviation(case_id)
    if worker is not None:
        why = driver_limitation(registry[client].driver or client, registry[worker].driver or worker, scenario)
        if why is not None:
            return Deviation(case_id, LIMITATION_OUTCOMES, f"driver limitation: {why}")
    return None


@contextlib.contextmanager
def _driver_runner(mode: str, registry: Registry, clients: Sequence[Implementation]) -> Iterator[Runner]:
    if mode != "docker":
        yield Runner()
        return
    from gearspec.conformance.servers import docker as launcher

    images = {c.driver_image for c in clients if c.driver_image}
    if len(images) > 1:
        raise LaunchError(f"clients need several driver images ({', '.join(sorted(images))}); one peers image is supported")
    peers = registry.by_image(images.pop()) if images else None
    if peers is None:
        raise LaunchError("no peers image in the registry for the clients' drivers")
    image = launcher.ensure_image(peers)
    container = launcher.start_container(image, ["sleep", "infinity"], name="peers", wait_for_port=False)
    try:
        yield DockerExecRunner(container)
    finally:
        container.stop()


def _axes(
    servers: Sequence[str], clients: Sequence[str], scenarios: Sequence[str], chosen: Collection[str]
) -> tuple[list[str], list[str], list[str]]:
    """The servers, clients and scenarios that have a chosen cell (case IDs), in their order."""
    wanted = [(s, c, x) for s in servers for c in clients for x in scenarios if cell_id(s, c, x) in chosen]
    return ([s for s in servers if any(w[0] == s for w in wanted)],
            [c for c in clients if any(w[1] == c for w in wanted)],
            [x for x in scenarios if any(w[2] == x for w in wanted)])


def run_matrix(
    registry: Registry,
    servers: Sequence[str],
    clients: Sequence[str],
    scenarios: Sequence[str] = tuple(SCENARIOS),
    *,
    mode: str = "local",
    worker: str | None = None,
    timeout: float = 10.0,
    jobs: int = 4,
    expected_timeout: float = 3.0,
    progress: Callable[[CellResult], None] | None = None,
    tls: InteropTls | None = None,
    select: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> Matrix:
    """Run every scenario for every (server, client) pair; see the module docstring.

    `select`/`exclude`: case ID globs as `gearspec test -k/--exclude` takes them
    (`matrix_cases`); a server with no selected cell is not started, and the matrix lists
    only the servers, clients and scenarios that have one.

    With `tls`, servers serve TLS and clients and workers connect over it; a server or a
    driver without TLS (impl.toml `tls`; conformance/tls.py TLS_DRIVERS) is graded
    unsupported."""
    chosen = {c.id: c for c in matrix_cases(registry, servers, clients, scenarios, worker=worker,
                                             select=select, exclude=exclude)}
    servers, clients, scenarios = _axes(servers, clients, scenarios, chosen)
    matrix = Matrix(servers, clients, scenarios, mode)
    client_impls = [registry[c] for c in clients]
    worker_impl = registry[worker] if worker else None
    lock = threading.Lock()  # servers run in threads; results and progress are shared

    def record(server: str, client: str, scenario: str, outcome: CellOutcome, seconds: float, *,
               drivers_ran: bool = True) -> None:
        case = chosen[cell_id(server, client, scenario)]
        work = _worker_for(registry, registry[client], worker).name
        result = CellResult(
            case, outcome.grade, outcome.detail, duration=round(seconds, 3),
            deviation=known_deviation(registry, server, client, work if drivers_ran else None, scenario),
            server=server, client=client, worker=work, scenario=scenario,
        )
        with lock:
            matrix.results.append(result)
            if progress:
                progress(result)

    with _driver_runner(mode, registry, client_impls) as runner:
        unavailable = {
            impl.name: why
            for impl in [*client_impls, *([worker_impl] if worker_impl else [])]
            if impl.driver and (why := runner.unavailable(impl.driver))
        }
        missing_grade = Outcome.FAIL if os.environ.get("CI") else Outcome.UNSUPPORTED

        def run_server(server_name: str) -> None:
            impl = registry[server_name]
            mine = [(client, [x for x in scenarios if cell_id(server_name, client.name, x) in chosen])
                    for client in client_impls]
            mine = [(client, todo) for client, todo in mine if todo]
            tls_flags = tls.server_flags(impl.tls) if tls is not None else []
            if tls_flags is None:
                for client, todo in mine:
                    for scenario in todo:
                        record(server_name, client.name, scenario,
                               CellOutcome(Outcome.UNSUPPORTED, f"{server_name} cannot serve TLS here"), 0,
                               drivers_ran=False)
                return
            try:
                server_cm = open_server(impl, SERVER_MODES[mode], registry=registry, note=matrix.notes.append,
                                        extra_args=tls_flags)
                target = server_cm.__enter__()
                host, port = target.host, target.port
                # A server that dies is restarted between scenarios, its death recorded against
                # the scenario that ran when it died (as `gearspec test` does with cases).
                control = TargetControl.for_launched(target)
                down: str | None = None  # set when it died and could not be restarted
            except LaunchError as exc:
                grade = missing_grade if "not installed" in str(exc) else Outcome.FAIL
                for client, todo in mine:
                    for scenario in todo:
                        record(server_name, client.name, scenario, CellOutcome(grade, f"server did not start: {exc}"), 0,
                               drivers_ran=False)
                return
            facts: dict[str, bool] = {}  # what this server was seen to support, asked once
            try:
                for row, (client, todo) in enumerate(mine):
                    if row and impl.fresh_server_per_client and not down:
                        try:
                            restarted = control.restart()
                        except RestartError as exc:
                            down = f"not run: {server_name} did not start again for {client.name}'s row ({exc})"
                            matrix.notes.append(down)
                        else:
                            host, port = restarted.host, restarted.port
                    work = _worker_for(registry, client, worker)
                    why = unavailable.get(client.name) or unavailable.get(work.name)
                    no_tls = tls is not None and not {client.driver, work.driver} <= set(TLS_DRIVERS)
                    for scenario in todo:
                        if stop.is_set():
                            return
                        if down:
                            record(server_name, client.name, scenario, CellOutcome(Outcome.FAIL, down), 0)
                            continue
                        if why:
                            record(server_name, client.name, scenario,
                                   CellOutcome(missing_grade, f"not installed: {why}"), 0)
                            continue
                        if no_tls:
                            record(server_name, client.name, scenario,
                                   CellOutcome(Outcome.UNSUPPORTED, "no TLS in this client or worker driver"), 0)
                            continue
                        assert client.driver and work.driver
                        known = known_deviation(registry, server_name, client.name, work.name, scenario)
                        # A known failure usually ends in a timeout: wait less for it.
                        cell = Cell(host, port, client.driver, work.driver, runner,
                                    min(timeout, expected_timeout) if known else timeout, tls, facts)
                        started = time.monotonic()
                        try:
                            outcome = SCENARIOS[scenario](cell)
                        except ScenarioFailed as exc:
                            outcome = CellOutcome(Outcome.FAIL, str(exc))
                        except NoBarrier as exc:
                            outcome = CellOutcome(Outcome.UNSUPPORTED, str(exc))
                        except (OSError, LaunchError) as exc:
                            outcome = CellOutcome(Outcome.FAIL, f"{type(exc).__name__}: {exc}")
                        finally:
                            cell.cleanup()
                        died = control.dead()
                        if died is not None:
                            outcome = CellOutcome(Outcome.FAIL,
                                                  f"the server died during this scenario ({died}): {outcome.detail}")
                            try:
                                restarted = control.restart()
                            except RestartError as exc:
                                down = f"not run: {server_name} died during {client.name} {scenario} and stayed down ({exc})"
                                matrix.notes.append(down)
                            else:
                                host, port = restarted.host, restarted.port
                            matrix.notes.append(f"{server_name} died during {client.name} {scenario} ({died}); "
                                                "restarted it and went on")
                        record(server_name, client.name, scenario, outcome, time.monotonic() - started)
            finally:
                matrix.server_logs[server_name] = target.logs() if target.logs else ""
                server_cm.__exit__(None, None, None)

        # Servers run side by side (most of a scenario is waiting on processes and sockets).
        stop = threading.Event()
        with concurrent.futures.ThreadPoolExecutor(max(1, min(jobs, len(servers)))) as pool:
            futures = [pool.submit(run_server, name) for name in servers]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                stop.set()
                raise
    rank = [{name: i for i, name in enumerate(names)} for names in (servers, clients, scenarios)]
    matrix.results.sort(key=lambda r: (rank[0][r.server], rank[1][r.client], rank[2][r.scenario]))
    return matrix


# -- output -------------------------------------------------------------------------------

_SYMBOL = {
    Verdict.PASS: "✓", Verdict.NON_STRICT: "~", Verdict.UNSUPPORTED: "-", Verdict.EXPECTED_FAIL: "x",
    Verdict.UNEXPECTED_PASS: "!", Verdict.FAIL: "✗", Verdict.ERROR: "E", Verdict.INFORMATIONAL: "i",
}
_COLOUR = {
    Verdict.PASS: "#cfc", Verdict.NON_STRICT: "#ffc", Verdict.UNSUPPORTED: "#eee", Verdict.EXPECTED_FAIL: "#fdb",
    Verdict.UNEXPECTED_PASS: "#cdf", Verdict.FAIL: "#f99", Verdict.ERROR: "#f99", Verdict.INFORMATIONAL: "#eee",
}


def _cell_text(results: list[CellResult]) -> str:
    return "".join(_SYMBOL[r.verdict] for r in results) or "?"


def _legend() -> str:
    return "  ".join(f"{_SYMBOL[v]} {v.value}" for v in GRADES)


def _tally(matrix: Matrix) -> str:
    counts = ", ".join(f"{n} {g}" for g, n in matrix.counts().items() if n)
    broken = len(matrix.broken)
    return counts + (f" — {broken} result(s) count against the run" if broken else " — nothing counts against the run")


def render_grid(matrix: Matrix) -> str:
    """The terminal grid: one row per client, one column per server, a symbol per scenario."""
    width = max([len(c) for c in matrix.clients] + [6])
    col = max([len(s) for s in matrix.servers] + [len(matrix.scenarios)]) + 2
    lines = [
        "scenarios, in order: " + ", ".join(matrix.scenarios),
        "legend: " + _legend(),
        "",
        "client".ljust(width) + " | " + "".join(s.ljust(col) for s in matrix.servers),
        "-" * (width + 3 + col * len(matrix.servers)),
    ]
    for client in matrix.clients:
        lines.append(client.ljust(width) + " | " + "".join(_cell_text(matrix.cell(s, client)).ljust(col) for s in matrix.servers))
    # What fails the run is in the summary below, with its rerun line; here what is tolerated.
    tolerated = [r for r in matrix.results if r.verdict is not Verdict.PASS and not r.counts_against(matrix.strict)]
    if tolerated:
        lines += ["", "known failures and tolerated results:"]
        lines += [f"  {r.client} → {r.server} {r.scenario}: {r.verdict.value}: {r.explained()}" for r in tolerated]
    if matrix.notes:
        lines += ["", "notes:"] + [f"  {n}" for n in matrix.notes]
    lines += ["", _tally(matrix)]
    return "\n".join(lines)


def grid_html(matrix: Matrix) -> str:
    """The grid as an HTML section of the suite's report page: each scenario's verdict on hover,
    linked to its case below."""
    esc = html.escape
    head = "".join(f"<th>{esc(s)}</th>" for s in matrix.servers)
    rows = []
    for client in matrix.clients:
        cells = []
        for server in matrix.servers:
            marks = "".join(
                f'<a class="g" href="#{esc(r.case.id)}" style="background:{_COLOUR[r.verdict]}" '
                f'title="{esc(r.scenario)}: {esc(r.verdict.value)} {esc(r.explained())}">{esc(_SYMBOL[r.verdict])}</a>'
                for r in matrix.cell(server, client)
            )
            cells.append(f"<td>{marks}</td>")
        rows.append(f"<tr><th>{esc(client)}</th>{''.join(cells)}</tr>")
    notes = "".join(f"<p>{esc(n)}</p>" for n in matrix.notes)
    return (
        '<h2 id="interop-grid">interop matrix</h2>'
        '<style>.grid td,.grid th{border:1px solid #999;padding:3px 6px}'
        ".grid .g{display:inline-block;width:1.3em;text-align:center;font-family:monospace;text-decoration:none;color:#000}</style>"
        f"<p>Clients (rows) against servers (columns), mode {esc(matrix.mode)}. Scenarios in each cell, in order: "
        f"{esc(', '.join(matrix.scenarios))}. Legend: {esc(_legend())}. {esc(_tally(matrix))}.</p>"
        f'<table class="grid"><tr><th>client \\ server</th>{head}</tr>{"".join(rows)}</table>{notes}'
    )


def grid_markdown(matrix: Matrix) -> str:
    """The grid as a markdown table (the markdown report's matrix section)."""
    lines = [
        f"Scenarios in each cell, in order: {', '.join(matrix.scenarios)}. Legend: {_legend()}.",
        "",
        *reports.markdown_table("client", matrix.servers, (
            (client, [_cell_text(matrix.cell(s, client)) for s in matrix.servers]) for client in matrix.clients)),
    ]
    return "\n".join([*lines, "", _tally(matrix)]) + "\n"


# -- command line -------------------------------------------------------------------------


def _names(text: str | None, choices: list[str], what: str) -> list[str]:
    if not text:
        return choices
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in choices]
    if unknown:
        raise ValueError(f"unknown {what}: {', '.join(unknown)} (choose from {', '.join(choices)})")
    return names


def configure_interop(parser: argparse.ArgumentParser) -> None:
    parser.epilog = """\
examples:
  gearspec interop --servers gearmand,reference --clients reference,php --html grid.html
  gearspec interop -k interop/perl --junit perl.xml      # one server's column
  gearspec interop -k 'interop/*/php/*' --exclude '*/exception'

cases: each scenario of each pair is the case interop/SERVER/CLIENT/SCENARIO; -k/--select and
--exclude take IDs, globs or prefixes as in `gearspec test`.

exit status:
  0    nothing counts against the run
  1    a failure, or a known failure ([[expected]] in impl.toml) that now passes
  2    nothing could be run (bad names or options, no cell selected, no server or driver)
  130  interrupted (Ctrl-C): the summary and reports cover the cells that finished
"""
    which = parser.add_argument_group("cells")
    which.add_argument("--servers", metavar="A,B", help="servers to run (default: every server in the registry)")
    which.add_argument("--clients", metavar="A,B", help="client libraries (default: every client in the registry)")
    which.add_argument("--scenarios", metavar="A,B", help=f"scenarios (default: all: {', '.join(SCENARIOS)})")
    which.add_argument("--worker", metavar="NAME", help="use this library's worker for every client (default: the client's own)")
    which.add_argument("--select", "-k", action="append", default=[], metavar="GLOB",
                       help="run only cells whose case ID (interop/SERVER/CLIENT/SCENARIO) matches (repeatable; "
                            "'interop/gearmand' selects a server)")
    which.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip cells whose case ID matches (repeatable)")
    which.add_argument("--list", action="store_true", help="list the selected cells' case IDs and exit")
    which.add_argument("--impls", action="append", default=[], metavar="PATH",
                       help="an extra implementation folder, folder of folders, or TOML file (repeatable)")
    grade = parser.add_argument_group("grading")
    grade.add_argument("--strict", action="store_true",
                       help="SHOULD failures fail the run too, as in `gearspec test` (every cell is MUST: a fail "
                            "and an unexpected pass count with or without it)")
    run = parser.add_argument_group("running")
    run.add_argument("--mode", choices=("local", "docker", "docker-servers", "auto"), default="local",
                     help="where servers and drivers run: local processes (default); docker (servers in their "
                          "images, drivers in the peers image); docker-servers (servers in their images, "
                          "drivers here); auto (servers in Docker when an engine answers, else local)")
    run.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                     help="seconds a scenario step may take (default 10)")
    run.add_argument("-j", "--jobs", type=int, default=4, metavar="N",
                     help="servers run in parallel, each with its column of cells (default 4)")
    run.add_argument("--expected-timeout", type=float, default=3.0, metavar="SECONDS",
                     help="the step timeout for scenarios known to fail (default 3; they still run, to catch fixes)")
    out = parser.add_argument_group("reports (the grid is printed above the summary)")
    reports.add_report_options(out, {"junit": "one testcase per cell scenario", "json": "gearspec test's shape, plus the matrix",
                             "html": "the grid, then every cell scenario", "markdown": "grades and the grid"})
    out.add_argument("-q", "--quiet", action="store_true", help="no progress, only the grid and the summary")
    out.add_argument("-v", "--verbose", action="store_true", help="also list every result that is not a plain pass")
    tls = parser.add_argument_group("TLS matrix (servers and drivers that can; conformance/tls.py)")
    tls.add_argument("--tls-ca", metavar="FILE", help="run over TLS: the CA of every certificate below")
    tls.add_argument("--tls-server-cert", metavar="FILE", help="the servers' certificate (key inside, or --tls-server-key)")
    tls.add_argument("--tls-server-key", metavar="FILE")
    tls.add_argument("--tls-cert", metavar="FILE", help="the clients' and workers' certificate (key inside, or --tls-key)")
    tls.add_argument("--tls-key", metavar="FILE")


def _interop_tls(args: argparse.Namespace) -> InteropTls | None:
    files = (args.tls_ca, args.tls_server_cert, args.tls_cert)
    if not any((*files, args.tls_server_key, args.tls_key)):
        return None
    if not all(files):
        raise ValueError("a TLS matrix needs --tls-ca, --tls-server-cert and --tls-cert")
    for path in (*files, args.tls_server_key, args.tls_key):
        if path and not Path(path).is_file():
            raise ValueError(f"no such file: {path}")
    return InteropTls(args.tls_ca, args.tls_server_cert, args.tls_cert, args.tls_server_key, args.tls_key)


_TLS_FLAGS = ("tls_ca", "tls_server_cert", "tls_server_key", "tls_cert", "tls_key")


def _rerun_command(args: argparse.Namespace, case: Case) -> str:
    """The command that runs one cell scenario again the way this run did."""
    parts = ["gearspec", "interop", "--mode", args.mode]
    for path in args.impls:
        parts += ["--impls", os.path.abspath(path)]  # the line may be run from elsewhere
    if args.worker:
        parts += ["--worker", args.worker]
    for flag in _TLS_FLAGS:
        if getattr(args, flag):
            parts += ["--" + flag.replace("_", "-"), os.path.abspath(getattr(args, flag))]
    if args.strict:
        parts.append("--strict")
    parts += ["--timeout", f"{args.timeout:g}", "--expected-timeout", f"{args.expected_timeout:g}", "--select", case.id]
    return shlex.join(parts)


def _usage(message: str) -> int:
    print(f"gearspec interop: {message}", file=sys.stderr)
    return 2


def run_interop(args: argparse.Namespace) -> int:
    """`gearspec interop`: graded, reported and exited as `gearspec test` is (0 nothing counts
    against the run, 1 something does, 2 nothing could be run)."""
    try:
        registry = load_registry(args.impls)
        servers = _names(args.servers, [i.name for i in registry.with_role("server")], "server")
        clients = _names(args.clients, [i.name for i in registry.with_role("client")], "client")
        scenarios = _names(args.scenarios, list(SCENARIOS), "scenario")
        if args.worker and args.worker not in [i.name for i in registry.with_role("worker")]:
            raise ValueError(f"{args.worker} is not a worker library")
        for flag, seconds in (("--timeout", args.timeout), ("--expected-timeout", args.expected_timeout)):
            if not seconds > 0:
                raise ValueError(f"{flag} must be a positive number of seconds, not {seconds:g}")
        if args.jobs < 1:
            raise ValueError(f"--jobs must be at least 1, not {args.jobs}")
        # Before the run, not after minutes of it.
        paths = {kind: getattr(args, kind) for kind in reports.REPORT_KINDS}
        problem = next(filter(None, (unwritable(p) for p in paths.values() if p)), None)
        if problem:
            raise ValueError(problem)
        tls = _interop_tls(args)
        cases = matrix_cases(registry, servers, clients, scenarios, worker=args.worker,
                             select=args.select, exclude=args.exclude)
    except (RegistryError, ValueError, KeyError) as exc:
        return _usage(str(exc.args[0] if isinstance(exc, KeyError) else exc))
    if args.list:
        for c in cases:
            print(f"{c.id:44} {c.requirement}")
        print(f"{len(cases)} cells")
        return 0
    if not cases:
        return _usage("no cell matches the selection")

    stream = sys.stdout
    colour = reports.use_colour(stream)
    progress = reports.Progress(len(cases), stream, enabled=not args.quiet, colour=colour)
    print(f"gearspec interop: {len(cases)} cells [mode {args.mode}; -j {args.jobs}]", file=stream)
    progress.start()

    from gearspec.conformance.servers import docker as launcher

    started = time.monotonic()
    finished: list[CellResult] = []  # what a Ctrl-C leaves to report

    def on_result(result: CellResult) -> None:
        finished.append(result)
        progress.update(result)

    interrupted = False
    try:
        with launcher.sigterm_as_interrupt():
            matrix = run_matrix(registry, servers, clients, scenarios, mode=args.mode, worker=args.worker,
                                timeout=args.timeout, jobs=args.jobs, expected_timeout=args.expected_timeout,
                                progress=on_result, tls=tls, select=args.select, exclude=args.exclude)
    except LaunchError as exc:
        progress.finish()
        return _usage(str(exc))
    except KeyboardInterrupt:
        # As `gearspec test`: the summary and the reports cover the cells that finished.
        interrupted = True
        order = {c.id: i for i, c in enumerate(cases)}
        matrix = Matrix(*_axes(servers, clients, scenarios, order), args.mode,
                        sorted(finished, key=lambda r: order[r.case.id]))
    progress.finish()
    matrix.strict = args.strict
    if interrupted:
        print(f"gearspec interop: interrupted after {len(matrix.results)} of {len(cases)} cells; "
              "the summary and reports cover those", file=sys.stderr)
    print(render_grid(matrix), file=stream)
    run = reports.RunInfo(
        target=f"{', '.join(matrix.servers)} (clients {', '.join(matrix.clients)}; mode {matrix.mode})",
        expectations="the [[expected]] rows of impl.toml and the drivers' limitations", strict=args.strict,
        seed="-", elapsed=time.monotonic() - started, grab=None,
        server_log="\n".join(f"== {name} ==\n{log[-20000:]}" for name, log in matrix.server_logs.items() if log),
        rerun=lambda case: _rerun_command(args, case), extra_html=grid_html(matrix),
        extra_markdown=grid_markdown(matrix), extra_data={"matrix": matrix.as_data()},
        case_data=lambda r: r.coordinates() if isinstance(r, CellResult) else {}, command="gearspec interop",
        interrupted=interrupted,
    )
    reports.print_summary(matrix.results, run, stream, verbose=args.verbose, colour=colour)
    reports.write_reports(matrix.results, run, paths, sys.stderr)
    if interrupted:
        return 130
    return 1 if matrix.broken else 0
