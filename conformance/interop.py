"""`gearspec interop`: every client library against every job server.

For each server (started as a local process, or in Docker) and each client library, a
fixed set of scenarios runs through the server: the library's client submits, the library's
worker (or another worker chosen with ``--worker``) does the work. Clients and workers are
the drivers in `gearspec.conformance.drivers` (one command-line contract for every library).
Scenarios: foreground, background, priorities, coalescing, data/status streaming,
exceptions and failure.

Grades per scenario: ``pass``; ``non-strict`` (works, but not the way the protocol says,
e.g. an exception delivered as a failure); ``unsupported`` (the library says it cannot,
exit 5); ``fail``; ``expected-fail`` (a known failure listed in an implementation's impl.toml, with its reason) and
``unexpected-pass`` (a known failure that now works: reported, so the list can be updated). The exit
status is 1 when any pass that was expected to work fails (``fail``), else 0; 2 when
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
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gearspec.conformance.impls import Implementation, Registry, RegistryError, load_registry
from gearspec.conformance.lifecycle import RestartError, TargetControl
from gearspec.conformance.runner import Verdict
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
    "configure_interop",
    "driver_limitation",
    "render_grid",
    "render_html",
    "run_interop",
    "run_matrix",
]

SUMMARIES = {"interop": "run every client against every server"}

# The suite's verdicts (runner.Verdict) that a cell can have: one vocabulary for cases, scenarios and cells.
GRADES = tuple(v.value for v in (Verdict.PASS, Verdict.NON_STRICT, Verdict.UNSUPPORTED, Verdict.EXPECTED_FAIL,
                                  Verdict.UNEXPECTED_PASS, Verdict.FAIL))
BREAKING = frozenset({"fail"})
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
    """How one scenario of a cell went, before known failures are applied (grades: harness.Outcome values)."""

    grade: str
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
        return CellOutcome("unsupported", line[:200])
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
    return _expect_result(client, cell, "olleh", "client") or _expect_worker_done(worker, cell) or CellOutcome("pass")


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
    return CellOutcome("pass")


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
    return CellOutcome("pass")


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
    return _expect_worker_done(worker, cell) or CellOutcome("pass")


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
        return CellOutcome("non-strict", f"result arrived, but the client did not report {' and '.join(missing)}")
    return CellOutcome("pass")


def scenario_failure(cell: Cell) -> CellOutcome:
    fn = cell.function("fail")
    client = cell.client(fn, "fail")
    worker = cell.worker(fn)
    code, out, err = client.finish(cell.timeout + 5)
    if (skip := _unsupported(code, err)) is not None:
        return skip
    if code != 3:
        raise ScenarioFailed("expected exit 3 (WORK_FAIL), got " + _exit_text(code, out, err))
    return _expect_worker_done(worker, cell) or CellOutcome("pass")


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
        return CellOutcome("pass")
    if code == 3:
        return CellOutcome("non-strict", "WORK_EXCEPTION reached the client as WORK_FAIL")
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


@dataclass
class CellResult:
    server: str
    client: str
    worker: str
    scenario: str
    grade: str
    detail: str
    seconds: float


@dataclass
class Matrix:
    servers: list[str]
    clients: list[str]
    scenarios: list[str]
    mode: str
    results: list[CellResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    server_logs: dict[str, str] = field(default_factory=dict)

    def cell(self, server: str, client: str) -> list[CellResult]:
        return [r for r in self.results if r.server == server and r.client == client]

    @property
    def broken(self) -> list[CellResult]:
        return [r for r in self.results if r.grade in BREAKING]

    def counts(self) -> dict[str, int]:
        return {g: sum(r.grade == g for r in self.results) for g in GRADES}

    def as_data(self) -> dict[str, Any]:
        return {
            "servers": self.servers, "clients": self.clients, "scenarios": self.scenarios, "mode": self.mode,
            "counts": self.counts(), "ok": not self.broken, "notes": self.notes,
            "results": [asdict(r) for r in self.results],
            "server_logs": {k: v[-20000:] for k, v in self.server_logs.items()},
        }


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
) -> Matrix:
    """Run every scenario for every (server, client) pair; see the module docstring.

    With `tls`, servers serve TLS and clients and workers connect over it; a server or a
    driver without TLS (impl.toml `tls`; conformance/tls.py TLS_DRIVERS) is graded
    unsupported."""
    matrix = Matrix(list(servers), list(clients), list(scenarios), mode)
    client_impls = [registry[c] for c in clients]
    worker_impl = registry[worker] if worker else None

    def record(server: str, client: str, worker_name: str, scenario: str, outcome: CellOutcome, seconds: float) -> None:
        known = registry.expected_failure(client, server, scenario)
        reason = known.reason if known is not None else None
        if reason is None and worker_name != "-":
            reason = driver_limitation(registry[client].driver or client, registry[worker_name].driver or worker_name, scenario)
        grade, detail = outcome.grade, outcome.detail
        if reason is not None and grade in ("fail", "unsupported"):
            grade, detail = Verdict.EXPECTED_FAIL.value, f"{reason} [{detail}]"
        elif reason is not None and grade == "non-strict":
            detail = f"{detail} (known: {reason})"
        elif known is not None and grade == "pass":
            grade, detail = Verdict.UNEXPECTED_PASS.value, f"listed as a known failure ({known.reason}) but it works"
        result = CellResult(server, client, worker_name, scenario, grade, detail, round(seconds, 3))
        matrix.results.append(result)
        if progress:
            progress(result)

    with _driver_runner(mode, registry, client_impls) as runner:
        unavailable = {
            impl.name: why
            for impl in [*client_impls, *([worker_impl] if worker_impl else [])]
            if impl.driver and (why := runner.unavailable(impl.driver))
        }
        missing_grade = "fail" if os.environ.get("CI") else "unsupported"

        def run_server(server_name: str) -> None:
            impl = registry[server_name]
            tls_flags = tls.server_flags(impl.tls) if tls is not None else []
            if tls_flags is None:
                for client in client_impls:
                    for scenario in scenarios:
                        record(server_name, client.name, "-", scenario,
                               CellOutcome("unsupported", f"{server_name} cannot serve TLS here"), 0)
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
                grade = missing_grade if "not installed" in str(exc) else "fail"
                for client in client_impls:
                    for scenario in scenarios:
                        record(server_name, client.name, "-", scenario, CellOutcome(grade, f"server did not start: {exc}"), 0)
                return
            facts: dict[str, bool] = {}  # what this server was seen to support, asked once
            try:
                for row, client in enumerate(client_impls):
                    if row and impl.fresh_server_per_client and not down:
                        try:
                            restarted = control.restart()
                        except RestartError as exc:
                            down = f"not run: {server_name} did not start again for {client.name}'s row ({exc})"
                            matrix.notes.append(down)
                        else:
                            host, port = restarted.host, restarted.port
                    work = worker_impl or (client if "worker" in client.roles else registry["reference"])
                    why = unavailable.get(client.name) or unavailable.get(work.name)
                    no_tls = tls is not None and not {client.driver, work.driver} <= set(TLS_DRIVERS)
                    for scenario in scenarios:
                        if stop.is_set():
                            return
                        if down:
                            record(server_name, client.name, work.name, scenario, CellOutcome("fail", down), 0)
                            continue
                        if why:
                            record(server_name, client.name, work.name, scenario,
                                   CellOutcome(missing_grade, f"not installed: {why}"), 0)
                            continue
                        if no_tls:
                            record(server_name, client.name, work.name, scenario,
                                   CellOutcome("unsupported", "no TLS in this client or worker driver"), 0)
                            continue
                        assert client.driver and work.driver
                        known = registry.expected_failure(client.name, server_name, scenario) or driver_limitation(
                            client.driver, work.driver, scenario)
                        # A known failure usually ends in a timeout: wait less for it.
                        cell = Cell(host, port, client.driver, work.driver, runner,
                                    min(timeout, expected_timeout) if known else timeout, tls, facts)
                        started = time.monotonic()
                        try:
                            outcome = SCENARIOS[scenario](cell)
                        except ScenarioFailed as exc:
                            outcome = CellOutcome("fail", str(exc))
                        except NoBarrier as exc:
                            outcome = CellOutcome("unsupported", str(exc))
                        except (OSError, LaunchError) as exc:
                            outcome = CellOutcome("fail", f"{type(exc).__name__}: {exc}")
                        finally:
                            cell.cleanup()
                        died = control.dead()
                        if died is not None:
                            outcome = CellOutcome("fail", f"the server died during this scenario ({died}): {outcome.detail}")
                            try:
                                restarted = control.restart()
                            except RestartError as exc:
                                down = f"not run: {server_name} died during {client.name} {scenario} and stayed down ({exc})"
                                matrix.notes.append(down)
                            else:
                                host, port = restarted.host, restarted.port
                            matrix.notes.append(f"{server_name} died during {client.name} {scenario} ({died}); "
                                                "restarted it and went on")
                        record(server_name, client.name, work.name, scenario, outcome, time.monotonic() - started)
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

_SYMBOL = {"pass": "✓", "non-strict": "~", "unsupported": "-", "expected-fail": "x", "unexpected-pass": "!", "fail": "✗"}


def _cell_text(results: list[CellResult]) -> str:
    return "".join(_SYMBOL[r.grade] for r in results) or "?"


def render_grid(matrix: Matrix) -> str:
    """The terminal grid: one row per client, one column per server, a symbol per scenario."""
    width = max([len(c) for c in matrix.clients] + [6])
    col = max([len(s) for s in matrix.servers] + [len(matrix.scenarios)]) + 2
    lines = [
        "scenarios, in order: " + ", ".join(matrix.scenarios),
        "legend: " + "  ".join(f"{sym} {grade}" for grade, sym in _SYMBOL.items()),
        "",
        "client".ljust(width) + " | " + "".join(s.ljust(col) for s in matrix.servers),
        "-" * (width + 3 + col * len(matrix.servers)),
    ]
    for client in matrix.clients:
        lines.append(client.ljust(width) + " | " + "".join(_cell_text(matrix.cell(s, client)).ljust(col) for s in matrix.servers))
    problems = [r for r in matrix.results if r.grade not in ("pass",)]
    if problems:
        lines += ["", "details:"]
        lines += [f"  {r.client} → {r.server} {r.scenario}: {r.grade}: {r.detail}" for r in problems]
    if matrix.notes:
        lines += ["", "notes:"] + [f"  {n}" for n in matrix.notes]
    counts = matrix.counts()
    lines += ["", ", ".join(f"{n} {g}" for g, n in counts.items() if n)
              + (f" — {len(matrix.broken)} expected-to-work result(s) broke" if matrix.broken else " — no expected-to-work pair broke")]
    return "\n".join(lines)


def render_html(matrix: Matrix) -> str:
    """A self-contained HTML page: the grid, with each scenario's detail on hover and below."""
    esc = html.escape
    colors = {"pass": "#cfc", "non-strict": "#ffc", "unsupported": "#eee", "expected-fail": "#fdb", "unexpected-pass": "#cdf", "fail": "#f99"}
    head = "".join(f"<th>{esc(s)}</th>" for s in matrix.servers)
    rows = []
    for client in matrix.clients:
        cells = []
        for server in matrix.servers:
            marks = "".join(
                f'<span class="g" style="background:{colors[r.grade]}" title="{esc(r.scenario)}: {esc(r.grade)} {esc(r.detail)}">'
                f"{esc(_SYMBOL[r.grade])}</span>"
                for r in matrix.cell(server, client)
            )
            cells.append(f"<td>{marks}</td>")
        rows.append(f"<tr><th>{esc(client)}</th>{''.join(cells)}</tr>")
    details = "".join(
        f"<tr style=\"background:{colors[r.grade]}\"><td>{esc(r.client)}</td><td>{esc(r.server)}</td><td>{esc(r.scenario)}</td>"
        f"<td>{esc(r.grade)}</td><td>{esc(r.detail)}</td><td>{r.seconds:.2f}</td></tr>"
        for r in matrix.results
    )
    counts = ", ".join(f"{n} {g}" for g, n in matrix.counts().items() if n)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>gearspec interop matrix</title>
<style>body{{font-family:sans-serif}} table{{border-collapse:collapse}} td,th{{border:1px solid #999;padding:3px 6px}}
.g{{display:inline-block;width:1.3em;text-align:center;font-family:monospace}}</style></head>
<body><h1>gearspec interop matrix</h1>
<p>Clients (rows) against servers (columns), mode {esc(matrix.mode)}. Scenarios in each cell, in order:
{esc(", ".join(matrix.scenarios))}. {esc(counts)}.</p>
<table><tr><th>client \\ server</th>{head}</tr>{"".join(rows)}</table>
<h2>Every result</h2>
<table><tr><th>client</th><th>server</th><th>scenario</th><th>grade</th><th>detail</th><th>s</th></tr>{details}</table>
{"".join(f"<p>{esc(n)}</p>" for n in matrix.notes)}
</body></html>
"""


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

exit status:
  0    no expected-to-work result broke
  1    an expected-to-work result failed
  2    nothing could be run (bad names, no server or driver)
"""
    parser.add_argument("--servers", metavar="A,B", help="servers to run (default: every server in the registry)")
    parser.add_argument("--clients", metavar="A,B", help="client libraries (default: every client in the registry)")
    parser.add_argument("--scenarios", metavar="A,B", help=f"scenarios (default: all: {', '.join(SCENARIOS)})")
    parser.add_argument("--worker", metavar="NAME", help="use this library's worker for every client (default: the client's own)")
    parser.add_argument("--mode", choices=("local", "docker", "docker-servers", "auto"), default="local",
                        help="where servers and drivers run: local processes (default); docker (servers in their "
                             "images, drivers in the peers image); docker-servers (servers in their images, "
                             "drivers here); auto (servers in Docker when an engine answers, else local)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a scenario step may take (default 10)")
    parser.add_argument("-j", "--jobs", type=int, default=4, help="servers tested side by side (default 4)")
    parser.add_argument("--expected-timeout", type=float, default=3.0,
                        help="the step timeout for scenarios known to fail (default 3; they still run, to catch fixes)")
    parser.add_argument("--impls", action="append", default=[], metavar="PATH",
                        help="an extra implementation folder, folder of folders, or TOML file (repeatable)")
    parser.add_argument("--html", metavar="FILE", help="write the matrix as an HTML page")
    parser.add_argument("--json", metavar="FILE", help="write every result as JSON")
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-result progress lines")
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


def run_interop(args: argparse.Namespace) -> int:
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
        problem = next(filter(None, (unwritable(p) for p in (args.html, args.json) if p)), None)
        if problem:
            raise ValueError(problem)
        tls = _interop_tls(args)
    except (RegistryError, ValueError, KeyError) as exc:
        print(f"gearspec interop: {exc}", file=sys.stderr)
        return 2

    def progress(r: CellResult) -> None:
        if not args.quiet:
            print(f"{_SYMBOL[r.grade]} {r.client} → {r.server} {r.scenario}: {r.grade}"
                  + (f" ({r.detail[:120]})" if r.detail else ""), file=sys.stderr, flush=True)

    from gearspec.conformance.servers import docker as launcher

    try:
        with launcher.sigterm_as_interrupt():
            matrix = run_matrix(registry, servers, clients, scenarios, mode=args.mode, worker=args.worker,
                                timeout=args.timeout, jobs=args.jobs,
                                expected_timeout=args.expected_timeout, progress=progress, tls=tls)
    except LaunchError as exc:
        print(f"gearspec interop: {exc}", file=sys.stderr)
        return 2
    print(render_grid(matrix))
    for path, render in ((args.html, lambda: render_html(matrix)), (args.json, lambda: json.dumps(matrix.as_data(), indent=2) + "\n")):
        if path:
            try:  # the grid above stands, and so does the exit status, whatever happens here
                Path(path).write_text(render())
                print(f"{'HTML' if path == args.html else 'JSON'}: {path}")
            except OSError as exc:
                print(f"gearspec interop: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
    return 1 if matrix.broken else 0
