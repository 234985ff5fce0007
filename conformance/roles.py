"""Testing clients and workers: the suite plays a scripted job server.

    gearspec test --role client --exec 'python my_client.py --port {port}'
    gearspec test --role worker --exec 'perl conformance/impls/perl/perl_driver.pl worker {args}'

Each scenario starts a scripted server (asyncio, port 0; a second one for failover), runs
the command against it and grades what the library sends and how it copes with what the
server sends back. The command gets the server in environment variables (GEARMAN_HOST,
GEARMAN_PORT, GEARSPEC_SERVERS="h:p,h:p"; GEARMAN_SERVERS too in failover scenarios, as
libgearman reads it itself) and in placeholders of the command string:
{host} {port} {servers} {function} {data} {unique} {count} {timeout}, and {args}, the
whole argument list of the driver contract (conformance/drivers/contract.py) for this
scenario, e.g. `--host H --port P --function F --data D --priority high --timeout T` (with
`--exceptions` only in client/work-exception: elsewhere the program's default is graded).
Scenario parameters are also in GEARSPEC_FUNCTION, GEARSPEC_DATA, GEARSPEC_UNIQUE,
GEARSPEC_BACKGROUND (0/1), GEARSPEC_PRIORITY, GEARSPEC_COUNT, GEARSPEC_SCENARIO.

The `*/hostile-*` scenarios play a server that errs, stays silent, sends legal but unusual
packets (unknown types, NOOP storms, another handle's result, unasked-for JOB_ASSIGN
variants, split or coalesced segments), 2 MiB payloads, or closes at each point of a job.
Whatever they conclude, a crash (a signal, a stack trace on stderr, an exit status outside
the contract; the stderr tail goes into the reason), a busy loop (BUSY_PACKETS packets or
BUSY_CONNECTIONS connections within one second) or a hang fails; memory growth (the RSS of
the command's process tree, from /proc) over RSS_GROWTH_LIMIT is noted.

Programs following the driver contract are graded precisely (exit codes: 0 ok, 2 connection
lost, 3 WORK_FAIL, 4 WORK_EXCEPTION, 5 unsupported, 6 timeout; the result on stdout); other
programs are graded on exit status and on what they send. Grades: pass, fail, unsupported
(the library cannot do it, or says so with exit status 5), informational (acceptable
behaviour worth knowing, not a failure).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shlex
import signal
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gearspec.conformance.harness import Outcome, TraceEntry
from gearspec.conformance.registry import Case, Level, select_cases
from gearspec.conformance.reports import markdown_table
from gearspec.conformance.runner import Expectations, ExpectationsError, Result, load_expectations

from gearspec.codec import AdminLine, Decoder, Event, Packet, RawPacket
from gearspec.errors import ProtocolError
from gearspec.spec import Magic, PacketType

__all__ = [
    "SCENARIOS",
    "Scenario",
    "ScenarioResult",
    "as_result",
    "driver_expectations",
    "run_roles",
    "run_scenarios",
    "scenario_case",
]

T = PacketType
# The grades are the suite's outcomes (one vocabulary for cases and scenarios).
PASS, FAIL, UNSUPPORTED, INFO = Outcome.PASS, Outcome.FAIL, Outcome.UNSUPPORTED, Outcome.INFORMATIONAL

# A busy loop: this many packets, or connections, from the command within one second
# while it should wait (a polite library sends a handful; a spinning one thousands).
BUSY_PACKETS, BUSY_CONNECTIONS = 50, 10
_PAGE = os.sysconf("SC_PAGE_SIZE")
# What an uncaught error leaves on stderr: Python, node, Perl (die inside a module), PHP, C.
_STACK_TRACE = re.compile(
    r"Traceback \(most recent call last\)|^\s+at \S.*:\d+:\d+\)?$|\bat /\S+\.pm line \d+"
    r"|PHP Fatal error|Fatal error: Uncaught|Segmentation fault|core dumped|\bpanicked at\b",
    re.M,
)
EXIT_OK, EXIT_CONNECTION, EXIT_FAIL, EXIT_EXCEPTION, EXIT_UNSUPPORTED, EXIT_TIMEOUT = 0, 2, 3, 4, 5, 6
_ORDERLY_EXITS = {EXIT_OK, EXIT_CONNECTION, EXIT_FAIL, EXIT_EXCEPTION, EXIT_UNSUPPORTED, EXIT_TIMEOUT}
HANDLE = b"H:gearspec:1"

_SUBMIT_BY_OPTIONS: dict[tuple[bool, str], PacketType] = {
    (False, "normal"): T.SUBMIT_JOB,
    (True, "normal"): T.SUBMIT_JOB_BG,
    (False, "high"): T.SUBMIT_JOB_HIGH,
    (True, "high"): T.SUBMIT_JOB_HIGH_BG,
    (False, "low"): T.SUBMIT_JOB_LOW,
    (True, "low"): T.SUBMIT_JOB_LOW_BG,
}
_ASSIGN_FOR_GRAB = {T.GRAB_JOB: T.JOB_ASSIGN, T.GRAB_JOB_UNIQ: T.JOB_ASSIGN_UNIQ, T.GRAB_JOB_ALL: T.JOB_ASSIGN_ALL}


class ScenarioEnd(Exception):
    """Raised by a scenario script to end it with a grade."""

    def __init__(self, grade: Outcome, reason: str) -> None:
        super().__init__(reason)
        self.grade = grade
        self.reason = reason


@dataclass
class ScenarioResult:
    """The graded result of one scenario."""

    id: str
    role: str
    title: str
    grade: Outcome
    reason: str
    duration: float
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    trace: list[str] = field(default_factory=list)

    def as_data(self) -> dict[str, Any]:
        return {
            "id": self.id, "role": self.role, "title": self.title, "grade": self.grade.value, "reason": self.reason,
            "duration": round(self.duration, 3), "exit_code": self.exit_code,
            "stdout": self.stdout[-2000:], "stderr": self.stderr[-2000:], "trace": self.trace,
        }


@dataclass(frozen=True)
class Params:
    """What the command is asked to do in one scenario."""

    function: str = "gearspec_reverse"
    data: str = "hello"
    unique: str | None = None
    background: bool = False
    priority: str = "normal"
    count: int | None = None
    exceptions: bool = False  # --exceptions: ask for OPTION_REQ exceptions (the contract's option)


# -- the scripted server -----------------------------------------------------------------


class Connection:
    """One accepted connection of a scripted server.

    A reader task decodes what the peer sends, answers housekeeping packets at once
    (OPTION_REQ, ECHO_REQ) and queues everything else, tagged with the connection, for
    the scenario script; so a library may open probe connections or several connections
    and the script still sees every packet.
    """

    def __init__(self, ctx: Context, server: ScriptedServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.ctx = ctx
        self.server = server
        self.reader = reader
        self.writer = writer
        self.decoder = Decoder(Magic.REQ, lenient=True)
        self.closed = False
        self.number = len(server.connections)
        self.name = f"{server.name}#{self.number}"
        self.task = asyncio.ensure_future(self._read_loop())

    def log(self, text: str) -> None:
        self.ctx.log(f"[{self.name}] {text}")

    async def _read_loop(self) -> None:
        try:
            while True:
                try:
                    data = await self.reader.read(65536)
                except (ConnectionError, OSError):
                    data = b""
                self.decoder.receive_data(data)
                try:
                    for event in self.decoder:
                        self.ctx.arrivals.append(time.monotonic())
                        self.log(f"-> {_describe(event)}")
                        if not (isinstance(event, Packet) and self.ctx.answer_housekeeping(self, event)):
                            self.ctx.events.put_nowait((self, event))
                except ProtocolError as exc:
                    self.log(f"-> undecodable bytes: {exc}")
                if not data:
                    break
        finally:
            if not self.closed:
                self.log("-> (connection closed by the peer)")
            self.closed = True
            self.ctx.events.put_nowait((self, None))

    def send(self, *packets: Packet) -> None:
        for packet in packets:
            self.log(f"<- {_describe(packet)}")
            if not self.writer.is_closing():
                self.writer.write(packet.to_bytes())

    def send_raw(self, data: bytes, note: str) -> None:
        """Bytes as they are (coalesced packets, a packet cut short, an unknown type)."""
        self.log(f"<- {note} ({len(data)} bytes)")
        if not self.writer.is_closing():
            self.writer.write(data)

    async def send_slowly(self, data: bytes, note: str, chunk: int = 1, pause: float = 0.002) -> None:
        """`data` in `chunk`-byte segments, each flushed before the next (packets split byte by byte)."""
        self.log(f"<- {note}, {len(data)} bytes in {chunk}-byte segments")
        for start in range(0, len(data), chunk):
            if self.writer.is_closing():
                return
            self.writer.write(data[start:start + chunk])
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.drain()
            await asyncio.sleep(pause)

    def close(self) -> None:
        self.log("<- (server closes the connection)")
        self.closed = True
        self.writer.close()


class ScriptedServer:
    """An asyncio listener on port 0 whose connections feed the scenario's event queue."""

    def __init__(self, ctx: Context, name: str, refuse: bool = False) -> None:
        self.ctx = ctx
        self.name = name
        self.refuse = refuse  # close every connection at once (a dead first server)
        self.refuse_after: float | None = None  # close every connection this long after accepting it
        self.connections: list[Connection] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, host: str) -> None:
        self._server = await asyncio.start_server(self._accept, host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.ctx.accepts.append(time.monotonic())
        connection = Connection(self.ctx, self, reader, writer)
        self.connections.append(connection)
        connection.log("accepted a connection")
        if self.refuse:
            connection.close()
        elif self.refuse_after is not None:
            asyncio.get_running_loop().call_later(self.refuse_after, connection.close)

    async def close(self) -> None:
        for connection in self.connections:
            if not connection.writer.is_closing():
                connection.writer.close()
            connection.task.cancel()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)


def _describe(event: Event | Packet) -> str:
    if isinstance(event, Packet):
        fields = " ".join(f"{k}={v[:40]!r}" for k, v in event.fields.items())
        return f"{event.type.name} {fields}".rstrip()
    if isinstance(event, RawPacket):
        return f"malformed {event.name}: {event.problem.message}"
    return f"admin line {event.text!r}"


class Exited(ScenarioEnd):
    """The command ended while the script waited for something from it."""

    def __init__(self, code: int, grade: Outcome, reason: str) -> None:
        super().__init__(grade, reason)
        self.code = code


class Lost(ScenarioEnd):
    """The connection the script was talking on closed."""


# -- one scenario run ---------------------------------------------------------------------


Tolerate = Callable[["Connection", Packet], bool]


class Context:
    """What a scenario script works with: the servers, the command's process, a deadline."""

    def __init__(self, role: str, params: Params, timeout: float) -> None:
        self.role = role
        self.params = params
        self.timeout = timeout
        self.trace: list[str] = []
        self.started = time.monotonic()
        self.deadline = self.started + timeout
        self.events: asyncio.Queue[tuple[Connection, Event | None]] = asyncio.Queue()
        self.server = ScriptedServer(self, "server")
        self.backup: ScriptedServer | None = None
        self.process: asyncio.subprocess.Process | None = None
        self.stdout = b""
        self.stderr = b""
        self._output: asyncio.Future[tuple[bytes, bytes]] | None = None
        self.option_exceptions = False  # the peer asked for OPTION_REQ exceptions
        # What the hostile scenarios measure: when each packet and each connection arrived,
        # and the command's resident memory (its whole process tree, sampled while it runs).
        self.arrivals: list[float] = []
        self.accepts: list[float] = []
        self.rss_peak = 0
        self._rss_task: asyncio.Future[None] | None = None

    def log(self, text: str) -> None:
        self.trace.append(f"{time.monotonic() - self.started:7.3f} {text}")

    # -- process ----------------------------------------------------------------------
    async def spawn(self, command: str, host: str) -> None:
        servers = [self.server] + ([self.backup] if self.backup else [])
        first = servers[0]
        p = self.params
        from gearspec.conformance.drivers.contract import client_argv, worker_argv  # the package reads the registry

        # The command's own timeout ends before ours, so a hang is reported by the
        # program itself (contract exit status 6) when it can.
        own_timeout = max(1.0, round(self.timeout * 0.6, 1))
        if self.role == "client":
            contract = client_argv(host, first.port, p.function, data=p.data, unique=p.unique, background=p.background,
                                   priority=p.priority, exceptions=p.exceptions, timeout=own_timeout)
        else:
            contract = worker_argv(host, first.port, p.function, count=p.count, timeout=own_timeout)
        values = {
            "host": host, "port": str(first.port),
            "servers": ",".join(f"{host}:{s.port}" for s in servers),
            "function": p.function, "data": p.data, "unique": p.unique or "",
            "count": str(p.count or ""), "timeout": f"{own_timeout:g}",
        }
        quoted = {k: shlex.quote(v) for k, v in values.items()}
        quoted["args"] = " ".join(shlex.quote(a) for a in contract)
        try:
            argv = command.format(**quoted)
        except (KeyError, IndexError, ValueError) as exc:
            raise ScenarioEnd(FAIL, f"bad --exec template: {exc!r} (placeholders: {', '.join(sorted(quoted))})") from None
        env = dict(os.environ)
        env.update({
            "GEARMAN_HOST": host, "GEARMAN_PORT": str(first.port), "GEARSPEC_SERVERS": values["servers"],
            "GEARSPEC_ROLE": self.role, "GEARSPEC_FUNCTION": p.function, "GEARSPEC_DATA": p.data,
            "GEARSPEC_UNIQUE": p.unique or "", "GEARSPEC_BACKGROUND": "1" if p.background else "0",
            "GEARSPEC_PRIORITY": p.priority, "GEARSPEC_COUNT": str(p.count or ""),
            "GEARSPEC_TIMEOUT": f"{own_timeout:g}",
        })
        if self.backup is not None:
            # libgearman itself reads GEARMAN_SERVERS (and then opens a connection per entry),
            # so it is set only where several servers are the point.
            env["GEARMAN_SERVERS"] = values["servers"]
        else:
            env.pop("GEARMAN_SERVERS", None)
        self.log(f"[exec] {argv}")
        self.process = await asyncio.create_subprocess_shell(
            argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True,
        )
        self._output = asyncio.ensure_future(self._collect(self.process))

    async def _collect(self, process: asyncio.subprocess.Process) -> tuple[bytes, bytes]:
        # Read both pipes as output comes, so that a running command's stderr can be read.
        out, err = bytearray(), bytearray()

        async def pump(stream: asyncio.StreamReader | None, into: bytearray, name: str) -> None:
            while stream is not None and (chunk := await stream.read(65536)):
                into.extend(chunk)
                if name == "out":
                    self.stdout = bytes(into)
                else:
                    self.stderr = bytes(into)

        await asyncio.gather(pump(process.stdout, out, "out"), pump(process.stderr, err, "err"))
        await process.wait()
        return bytes(out), bytes(err)

    async def wait_exit(self, deadline: float | None = None) -> int | None:
        """The exit status once the command ends, or None if it still runs at the deadline."""
        assert self.process is not None and self._output is not None
        remaining = max(0.0, (deadline or self.deadline) - time.monotonic())
        try:
            self.stdout, self.stderr = await asyncio.wait_for(asyncio.shield(self._output), remaining)
        except TimeoutError:
            return None
        if self.process.returncode is not None:
            self.log(f"[exec] exit status {self.process.returncode}")
        return self.process.returncode

    def exited(self) -> bool:
        return self._output is not None and self._output.done()

    # -- measurement (hostile scenarios) ----------------------------------------------
    def rss(self) -> int:
        """Resident memory of the command's process tree now, in bytes (0 once it has ended)."""
        if self.process is None:
            return 0
        total, todo, seen = 0, [self.process.pid], set()
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            try:
                with open(f"/proc/{pid}/statm", encoding="ascii") as fh:
                    total += int(fh.read().split()[1]) * _PAGE
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as fh:
                        todo.extend(int(child) for child in fh.read().split())
            except (OSError, ValueError, IndexError):
                continue  # the process ended meanwhile
        return total

    def sample_rss(self, every: float = 0.05) -> None:
        """Track the peak of `rss()` until the command ends."""
        async def sampler() -> None:
            while not self.exited():
                self.rss_peak = max(self.rss_peak, self.rss())
                await asyncio.sleep(every)

        self._rss_task = asyncio.ensure_future(sampler())

    def busy(self, since: float = 0.0, *, packets: bool = True) -> str | None:
        """A busy loop seen since `since` (monotonic): too many packets (unless `packets` is
        False) or connections within any one second; None when the command's rate stayed sane."""
        def worst(times: list[float]) -> int:
            times = [t for t in times if t >= since]
            most, first = 0, 0
            for last, moment in enumerate(times):
                while moment - times[first] > 1.0:
                    first += 1
                most = max(most, last - first + 1)
            return most

        sent, connections = worst(self.arrivals) if packets else 0, worst(self.accepts)
        if connections >= BUSY_CONNECTIONS:
            return f"busy loop: {connections} connections within one second (a reconnect storm)"
        if sent >= BUSY_PACKETS:
            return f"busy loop: {sent} packets within one second while it should have waited"
        return None

    def crash(self) -> str | None:
        """How the command crashed (killed by a signal, or a stack trace on stderr), with
        the tail of its stderr; None when it has not ended or ended in an orderly way."""
        code = self.process.returncode if self.process is not None and self.exited() else None
        if code is None or code in _ORDERLY_EXITS:
            return None
        text = self.stderr.decode("utf-8", "replace")
        # A shell reports a child killed by signal N as 128 + N (255 is Perl's die, not a signal).
        signal_number = -code if code < 0 else code - 128 if 128 < code <= 128 + 64 else 0
        traced = _STACK_TRACE.search(text) is not None
        if code == 1 and not traced:
            return None  # the contract's "the driver itself broke", said in one line
        if signal_number:
            how = f"killed by signal {signal_number}"
        elif traced:
            how = f"exit status {code} with a stack trace"
        else:
            how = f"exit status {code}, outside the contract (an uncaught error)"
        tail = " | ".join(line.strip() for line in text.strip().splitlines()[-4:])
        return f"crashed: {how}" + (f" (stderr: {tail[-400:]})" if tail else "")

    async def stop(self) -> None:
        if self._rss_task is not None:
            self._rss_task.cancel()
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        if self._output is not None:
            with contextlib.suppress(Exception):
                self.stdout, self.stderr = await asyncio.wait_for(self._output, 5)

    # -- conversation -----------------------------------------------------------------
    def answer_housekeeping(self, conn: Connection, packet: Packet) -> bool:
        """Answer what a library may send at any time; True when the packet is dealt with."""
        if packet.type is T.OPTION_REQ:
            if packet["option"].lower() == b"exceptions":
                self.option_exceptions = True
                conn.send(Packet.response("OPTION_RES", packet["option"]))
            else:
                conn.send(Packet.response("ERROR", "UNKNOWN_OPTION", "Unknown option"))
            return True
        if packet.type is T.ECHO_REQ:
            conn.send(Packet.response("ECHO_RES", packet["data"]))
            return True
        return packet.type in (T.SET_CLIENT_ID, T.RESET_ABILITIES)

    async def next(self, deadline: float | None = None) -> tuple[Connection, Event | None] | None:
        """The next event from any connection; None at the deadline; `Exited` when the
        command ends with nothing more queued."""
        deadline = self.deadline if deadline is None else deadline
        while True:
            if not self.events.empty():
                return self.events.get_nowait()
            if self.exited():
                # Its last packets may still be in flight to our reader tasks.
                with contextlib.suppress(asyncio.TimeoutError):
                    return await asyncio.wait_for(self.events.get(), 0.2)
                code = await self.wait_exit()
                assert code is not None
                if code == EXIT_UNSUPPORTED:
                    raise Exited(code, UNSUPPORTED, self.unsupported_reason())
                raise Exited(code, FAIL, f"exited with status {code}{self.stderr_tail()}")
            get = asyncio.ensure_future(self.events.get())
            assert self._output is not None
            waiting: set[asyncio.Future[Any]] = {get, self._output}
            done, _ = await asyncio.wait(
                waiting, timeout=max(0.0, deadline - time.monotonic()), return_when=asyncio.FIRST_COMPLETED
            )
            if get in done:
                return get.result()
            get.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await get
            if not done:
                return None

    async def expect(
        self, wanted: set[PacketType] | PacketType, purpose: str, *, conn: Connection | None = None,
        tolerate: Tolerate | None = None, deadline: float | None = None,
    ) -> tuple[Packet, Connection]:
        """The next packet of a wanted type (from `conn` if given, else from any
        connection). Packets `tolerate` accepts are skipped; anything else ends the scenario with a grade."""
        wanted = {wanted} if isinstance(wanted, PacketType) else wanted
        names = " or ".join(sorted(t.name for t in wanted))
        while True:
            try:
                item = await self.next(deadline)
            except Exited as exited:
                exited.reason = f"{exited.reason.replace('exited', 'exited before sending ' + names, 1)} ({purpose})"
                raise
            if item is None:
                raise ScenarioEnd(FAIL, f"no {names} within {self.timeout:g}s ({purpose})")
            source, event = item
            if event is None:
                if source is conn:
                    raise Lost(FAIL, f"closed the connection while {purpose} (waiting for {names})")
                continue  # a probe or an idle connection went away
            if conn is not None and source is not conn and isinstance(event, Packet) and event.type in wanted:
                raise ScenarioEnd(FAIL, f"sent {event.type.name} on another connection ({source.name}) while {purpose}")
            if isinstance(event, RawPacket):
                raise ScenarioEnd(FAIL, f"sent a malformed packet while {purpose}: {event.problem.message}")
            if isinstance(event, AdminLine):
                continue  # an admin command is harmless here; nothing answers it
            if event.type in wanted:
                return event, source
            if tolerate is not None and tolerate(source, event):
                continue
            raise ScenarioEnd(FAIL, f"sent {event.type.name} where {names} was expected ({purpose})")

    def stderr_tail(self) -> str:
        text = self.stderr.decode("utf-8", "replace").strip()
        return f" (stderr: {text.splitlines()[-1][:200]})" if text else ""

    def unsupported_reason(self) -> str:
        text = self.stderr.decode("utf-8", "replace").strip()
        lines = [line for line in text.splitlines() if "unsupported" in line.lower()] or text.splitlines()
        if not lines:
            return "the command says it cannot do this (exit status 5)"
        line = lines[-1].strip()
        return (line[len("unsupported:"):].strip() if line.lower().startswith("unsupported:") else line)[:200]


Script = Callable[[Context], Awaitable[tuple[Outcome, str]]]


@dataclass(frozen=True)
class Scenario:
    """One thing a client or worker is tested on."""

    id: str
    role: str
    title: str
    script: Script
    params: Params = Params()
    backup_server: bool = False
    first_server_dead: bool = False
    timeout: float | None = None  # caps the run's per-scenario timeout (hostile scenarios are short)


# -- client scenarios ---------------------------------------------------------------------


def _check_submit(ctx: Context, submit: Packet) -> None:
    p = ctx.params
    wanted = _SUBMIT_BY_OPTIONS[(p.background, p.priority)]
    if submit.type is not wanted:
        raise ScenarioEnd(FAIL, f"sent {submit.type.name}, expected {wanted.name}")
    if submit["function"] != p.function.encode():
        raise ScenarioEnd(FAIL, f"function {submit['function']!r}, expected {p.function!r}")
    if submit["data"] != p.data.encode():
        raise ScenarioEnd(FAIL, f"data {submit['data'][:60]!r}, expected {p.data!r}")
    if p.unique is not None and submit["unique"] != p.unique.encode():
        raise ScenarioEnd(FAIL, f"unique {submit['unique']!r}, expected {p.unique!r}")


_ANY_SUBMIT = set(_SUBMIT_BY_OPTIONS.values())


async def _client_submit(ctx: Context) -> tuple[Connection, Packet]:
    submit, conn = await ctx.expect(_ANY_SUBMIT, "submitting the job")
    _check_submit(ctx, submit)
    return conn, submit


def _grade_client_exit(ctx: Context, code: int | None, want_code: int, want_stdout: bytes | None, what: str) -> tuple[Outcome, str]:
    if code is None:
        return FAIL, f"still running {ctx.timeout:g}s after {what} (hung)"
    if code == EXIT_UNSUPPORTED:
        return UNSUPPORTED, ctx.unsupported_reason()
    if code == EXIT_TIMEOUT and want_code != EXIT_TIMEOUT:
        return FAIL, f"timed out after {what} (exit status 6){ctx.stderr_tail()}"
    if want_code == EXIT_OK:
        if code != 0:
            return FAIL, f"exit status {code} after {what}{ctx.stderr_tail()}"
        if want_stdout is not None and ctx.stdout.strip() != want_stdout:
            return FAIL, f"printed {ctx.stdout.strip()[:80]!r}, expected {want_stdout!r} after {what}"
        return PASS, f"{what}: exit 0" + (f", printed {want_stdout!r}" if want_stdout is not None else "")
    if code == 0:
        return FAIL, f"exit status 0 (success) after {what}"
    if code == want_code:
        return PASS, f"{what}: exit status {code} as the contract says"
    return PASS, f"{what}: reported an error (exit status {code}; the contract's is {want_code})"


async def client_basic(ctx: Context) -> tuple[Outcome, str]:
    conn, _ = await _client_submit(ctx)
    conn.send(Packet.response("JOB_CREATED", HANDLE), Packet.response("WORK_COMPLETE", HANDLE, ctx.params.data[::-1]))
    code = await ctx.wait_exit()
    return _grade_client_exit(ctx, code, EXIT_OK, ctx.params.data[::-1].encode(), "JOB_CREATED, WORK_COMPLETE")


async def client_streamed(ctx: Context) -> tuple[Outcome, str]:
    conn, _ = await _client_submit(ctx)
    conn.send(
        Packet.response("JOB_CREATED", HANDLE),
        Packet.response("WORK_STATUS", HANDLE, 1, 3),
        Packet.response("WORK_DATA", HANDLE, b"part1"),
        Packet.response("WORK_WARNING", HANDLE, b"careful"),
        Packet.response("WORK_STATUS", HANDLE, 2, 3),
        Packet.response("WORK_DATA", HANDLE, b"part2"),
        Packet.response("WORK_COMPLETE", HANDLE, b"done"),
    )
    code = await ctx.wait_exit()
    if code == 0 and ctx.stdout.strip() != b"done" and b"done" in ctx.stdout:
        return INFO, f"the result is mixed with WORK_DATA/status on stdout ({ctx.stdout.strip()[:60]!r})"
    return _grade_client_exit(ctx, code, EXIT_OK, b"done", "streamed WORK_STATUS/DATA/WARNING then WORK_COMPLETE")


async def client_background(ctx: Context) -> tuple[Outcome, str]:
    conn, _ = await _client_submit(ctx)
    conn.send(Packet.response("JOB_CREATED", HANDLE))
    code = await ctx.wait_exit()
    grade, reason = _grade_client_exit(ctx, code, EXIT_OK, None, "JOB_CREATED for a background job")
    if grade == PASS and HANDLE.decode() not in ctx.stdout.decode("latin-1"):
        reason += " (the handle was not printed)"
    return grade, reason


async def client_submit_only(ctx: Context) -> tuple[Outcome, str]:
    """Priority and unique variants: grade the SUBMIT packet, then finish the job."""
    conn, submit = await _client_submit(ctx)
    conn.send(Packet.response("JOB_CREATED", HANDLE))
    if not ctx.params.background:
        conn.send(Packet.response("WORK_COMPLETE", HANDLE, b"ok"))
    code = await ctx.wait_exit()
    grade, reason = _grade_client_exit(ctx, code, EXIT_OK, None, submit.type.name)
    if grade == PASS:
        reason = f"sent {submit.type.name} with the right arguments; exit 0"
    return grade, reason


async def client_work_fail(ctx: Context) -> tuple[Outcome, str]:
    conn, _ = await _client_submit(ctx)
    conn.send(Packet.response("JOB_CREATED", HANDLE), Packet.response("WORK_FAIL", HANDLE))
    return _grade_client_exit(ctx, await ctx.wait_exit(), EXIT_FAIL, None, "WORK_FAIL")


async def client_work_exception(ctx: Context) -> tuple[Outcome, str]:
    conn, _ = await _client_submit(ctx)
    conn.send(Packet.response("JOB_CREATED", HANDLE))
    if not ctx.option_exceptions:
        # What gearmand does for a client that did not ask for exceptions.
        conn.send(Packet.response("WORK_FAIL", HANDLE))
        grade, reason = _grade_client_exit(ctx, await ctx.wait_exit(), EXIT_FAIL, None,
                                           "WORK_FAIL standing in for an exception")
        if grade == PASS:
            return INFO, "does not send OPTION_REQ exceptions, so exceptions reach it as WORK_FAIL"
        return grade, reason
    conn.send(Packet.response("WORK_EXCEPTION", HANDLE, b"boom"))
    return _grade_client_exit(ctx, await ctx.wait_exit(), EXIT_EXCEPTION, None, "OPTION_RES exceptions, WORK_EXCEPTION")


async def client_error_reply(ctx: Context) -> tuple[Outcome, str]:
    conn, _ = await _client_submit(ctx)
    conn.send(Packet.response("ERROR", "QUEUE_ERROR", "queue is full"))
    code = await ctx.wait_exit()
    if code is None:
        return FAIL, "hung after an ERROR reply to its SUBMIT_JOB"
    if code == EXIT_UNSUPPORTED:
        return UNSUPPORTED, ctx.unsupported_reason()
    if code == 0:
        return FAIL, "exit status 0 (success) after an ERROR reply to its SUBMIT_JOB"
    if code == EXIT_TIMEOUT:
        return FAIL, "ignored the ERROR reply and waited until its own timeout (exit status 6)"
    return PASS, f"reported the ERROR (exit status {code}){ctx.stderr_tail()}"


async def client_server_closes(ctx: Context) -> tuple[Outcome, str]:
    conn, _ = await _client_submit(ctx)
    conn.send(Packet.response("JOB_CREATED", HANDLE))
    await asyncio.sleep(0.05)  # let JOB_CREATED arrive before the close
    conn.close()
    try:
        submit, conn2 = await ctx.expect(_ANY_SUBMIT, "resubmitting after the server closed")
    except Exited as exited:
        if exited.code == EXIT_UNSUPPORTED:
            return UNSUPPORTED, ctx.unsupported_reason()
        if exited.code == EXIT_TIMEOUT:
            if len(ctx.server.connections) > 1:
                return FAIL, "reconnected but never resubmitted the job; waited until its own timeout (exit status 6)"
            return FAIL, "never noticed the closed connection; waited until its own timeout (exit status 6)"
        if exited.code == 0:
            return FAIL, "exit status 0 (success) although the job never finished"
        return PASS, f"reported the lost connection (exit status {exited.code})"
    except ScenarioEnd as end:
        if end.reason.startswith("no "):
            return FAIL, "neither reported the lost connection nor resubmitted (hung)"
        raise
    _check_submit(ctx, submit)
    conn2.send(Packet.response("JOB_CREATED", HANDLE), Packet.response("WORK_COMPLETE", HANDLE, b"again"))
    grade, reason = _grade_client_exit(ctx, await ctx.wait_exit(), EXIT_OK, b"again", "a resubmission")
    return grade, ("reconnected and resubmitted the job; " + reason) if grade == PASS else reason


async def client_failover(ctx: Context) -> tuple[Outcome, str]:
    try:
        submit, conn = await ctx.expect(_ANY_SUBMIT, "submitting to the second server")
    except Exited as exited:
        tried_backup = ctx.backup is not None and bool(ctx.backup.connections)
        if tried_backup:
            return FAIL, f"connected to the second server but gave up when the first one dropped (exit status {exited.code})"
        return UNSUPPORTED, "tried only the first (dead) server; a command given {servers} or GEARMAN_SERVERS could fail over"
    _check_submit(ctx, submit)
    conn.send(Packet.response("JOB_CREATED", HANDLE), Packet.response("WORK_COMPLETE", HANDLE, b"failover"))
    return _grade_client_exit(ctx, await ctx.wait_exit(), EXIT_OK, b"failover", "failing over to the second server")


# -- worker scenarios ---------------------------------------------------------------------


_GRABS = set(_ASSIGN_FOR_GRAB)
_RESULTS = {T.WORK_COMPLETE, T.WORK_FAIL, T.WORK_EXCEPTION}
_UPDATES = {T.WORK_DATA, T.WORK_STATUS, T.WORK_WARNING}


def _tolerate_registration(conn: Connection, packet: Packet) -> bool:
    """While waiting for a grab: registrations are fine, a PRE_SLEEP gets its NOOP."""
    if packet.type is T.PRE_SLEEP:
        conn.send(Packet.response("NOOP"))
        return True
    return packet.type in (T.CAN_DO, T.CAN_DO_TIMEOUT, T.CANT_DO)


def _tolerate_while_working(conn: Connection, packet: Packet) -> bool:
    """While a job runs: another grab (a worker with spare capacity) gets NO_JOB."""
    if packet.type in _GRABS:
        conn.send(Packet.response("NO_JOB"))
        return True
    return packet.type in (T.PRE_SLEEP, T.CAN_DO, T.CAN_DO_TIMEOUT)


async def _registered(ctx: Context) -> Connection:
    can_do, conn = await ctx.expect({T.CAN_DO, T.CAN_DO_TIMEOUT}, "registering its function")
    if can_do["function"] != ctx.params.function.encode():
        raise ScenarioEnd(FAIL, f"registered {can_do['function']!r}, expected {ctx.params.function!r}")
    return conn


async def _grab(ctx: Context, purpose: str) -> tuple[Packet, Connection]:
    return await ctx.expect(_GRABS, purpose, tolerate=_tolerate_registration)


def _assign_packet(kind: PacketType, handle: bytes, function: str, data: bytes, unique: bytes = b"u-1") -> Packet:
    if kind is T.JOB_ASSIGN:
        return Packet.response(kind, handle, function, data)
    if kind is T.JOB_ASSIGN_UNIQ:
        return Packet.response(kind, handle, function, unique, data)
    return Packet.response(kind, handle, function, unique, b"", data)


def _assign(conn: Connection, grab: Packet, handle: bytes, function: str, data: bytes, unique: bytes = b"u-1") -> None:
    conn.send(_assign_packet(_ASSIGN_FOR_GRAB[grab.type], handle, function, data, unique))


async def _result(ctx: Context, conn: Connection, handle: bytes) -> tuple[Packet, list[PacketType]]:
    """The job's final packet and the updates sent before it, all on `conn`."""
    updates: list[PacketType] = []
    while True:
        packet, _ = await ctx.expect(_RESULTS | _UPDATES, "working on the job", conn=conn,
                                     tolerate=_tolerate_while_working)
        if packet["handle"] != handle:
            raise ScenarioEnd(FAIL, f"{packet.type.name} for handle {packet['handle']!r}, it was assigned {handle!r}")
        if packet.type in _RESULTS:
            return packet, updates
        updates.append(packet.type)


async def _complete(ctx: Context, conn: Connection, handle: bytes, data: bytes) -> None:
    packet, _ = await _result(ctx, conn, handle)
    if packet.type is not T.WORK_COMPLETE:
        raise ScenarioEnd(FAIL, f"answered {packet.type.name}, expected WORK_COMPLETE")
    if packet["data"] != data:
        raise ScenarioEnd(FAIL, f"WORK_COMPLETE carries {packet['data'][:60]!r}, expected {data!r}")


async def _reverse_job(
    ctx: Context, conn: Connection, grab: Packet, handle: bytes = HANDLE, data: bytes | None = None
) -> None:
    """Answer `grab` with a job (the case's data unless given) and expect it back reversed."""
    data = ctx.params.data.encode() if data is None else data
    _assign(conn, grab, handle, ctx.params.function, data)
    await _complete(ctx, conn, handle, data[::-1])


async def worker_sleep_and_wake(ctx: Context) -> tuple[Outcome, str]:
    await _registered(ctx)
    grab, conn = await _grab(ctx, "asking for a job")
    conn.send(Packet.response("NO_JOB"))
    polls = 0
    while True:
        packet, _ = await ctx.expect(_GRABS | {T.PRE_SLEEP}, "going to sleep after NO_JOB", conn=conn,
                                     tolerate=_tolerate_registration)
        if packet.type is T.PRE_SLEEP:
            break
        polls += 1
        if polls >= 3:
            raise ScenarioEnd(FAIL, "keeps sending GRAB after NO_JOB instead of PRE_SLEEP (busy polling)")
        conn.send(Packet.response("NO_JOB"))
    # Asleep: nothing should come on this connection until the NOOP.
    quiet_until = time.monotonic() + 0.2
    while (item := await ctx.next(quiet_until)) is not None:
        source, event = item
        if source is conn and event is not None:
            raise ScenarioEnd(FAIL, f"sent {_describe(event)} while asleep (before any NOOP)")
    conn.send(Packet.response("NOOP"))
    grab, _ = await ctx.expect(_GRABS, "grabbing after the NOOP wake-up", conn=conn)
    await _reverse_job(ctx, conn, grab)
    how = "after 1 extra GRAB" if polls == 1 else f"after {polls} extra GRABs" if polls else "at once"
    return PASS, f"NO_JOB -> PRE_SLEEP ({how}), NOOP -> {grab.type.name} -> WORK_COMPLETE"


async def worker_job(ctx: Context) -> tuple[Outcome, str]:
    """Assign at the first grab; the data decides the expected answer (contract worker)."""
    await _registered(ctx)
    grab, conn = await _grab(ctx, "asking for a job")
    data = ctx.params.data.encode()
    _assign(conn, grab, HANDLE, ctx.params.function, data)
    packet, updates = await _result(ctx, conn, HANDLE)
    if data == b"fail":
        if packet.type is T.WORK_FAIL:
            return PASS, "answered WORK_FAIL for a failing job"
        return FAIL, f"answered {packet.type.name} for a job that should fail"
    if data == b"status":
        if packet.type is T.WORK_FAIL:
            await ctx.wait_exit(time.monotonic() + 0.3)  # let its stderr arrive
            if b"unsupported" in ctx.stderr.lower():
                return UNSUPPORTED, "cannot send WORK_STATUS/WORK_DATA (the driver fails the job instead)"
            return FAIL, "failed the job instead of streaming WORK_STATUS/WORK_DATA"
        if T.WORK_STATUS not in updates or T.WORK_DATA not in updates:
            return FAIL, f"sent {[t.name for t in updates]} before {packet.type.name}, expected WORK_STATUS and WORK_DATA"
        return PASS, "streamed " + ", ".join(t.name for t in updates) + f", then {packet.type.name}"
    if packet.type is not T.WORK_COMPLETE or packet["data"] != data[::-1]:
        return FAIL, f"answered {_describe(packet)}, expected WORK_COMPLETE {data[::-1]!r}"
    return PASS, f"{grab.type.name} -> {_ASSIGN_FOR_GRAB[grab.type].name} -> WORK_COMPLETE {data[::-1]!r}"


async def worker_two_jobs_then_exit(ctx: Context) -> tuple[Outcome, str]:
    connections = set()
    for number in (1, 2):
        grab, conn = await _grab(ctx, f"asking for job {number}")
        connections.add(conn)
        handle = b"H:gearspec:%d" % number
        await _reverse_job(ctx, conn, grab, handle, f"job{number}".encode())
    code = await ctx.wait_exit(time.monotonic() + min(5.0, ctx.timeout / 2))
    how = "on one connection" if len(connections) == 1 else f"on {len(connections)} connections"
    if code is None:
        return INFO, f"did both jobs {how} but kept running after --count 2"
    if code != 0:
        return FAIL, f"did both jobs, then exit status {code}{ctx.stderr_tail()}"
    return PASS, f"did two jobs {how}, then exited 0"


async def worker_spurious_noop(ctx: Context) -> tuple[Outcome, str]:
    conn = await _registered(ctx)
    conn.send(Packet.response("NOOP"))  # no PRE_SLEEP came: a wake-up it never asked for
    grab, conn = await _grab(ctx, "asking for a job after an unexpected NOOP")
    await _reverse_job(ctx, conn, grab)
    return PASS, "took a NOOP it did not ask for in its stride and did the job"


async def worker_error_reply(ctx: Context) -> tuple[Outcome, str]:
    await _registered(ctx)
    _, conn = await _grab(ctx, "asking for a job")
    conn.send(Packet.response("ERROR", "INTERNAL_ERROR", "try again"))
    try:
        grab, conn = await _grab(ctx, "asking again after an ERROR")
    except Exited as exited:
        return INFO, f"exited after an ERROR reply to its grab (status {exited.code})"
    except ScenarioEnd as end:
        if end.reason.startswith("no "):
            return FAIL, "stopped asking for jobs after an ERROR reply (stuck, still running)"
        raise
    await _reverse_job(ctx, conn, grab)
    return PASS, "carried on after an ERROR reply and did the next job"


async def worker_server_closes(ctx: Context) -> tuple[Outcome, str]:
    await _registered(ctx)
    grab, conn = await _grab(ctx, "asking for a job")
    _assign(conn, grab, HANDLE, ctx.params.function, b"lost")
    await asyncio.sleep(0.05)
    conn.close()
    stale: list[str] = []

    def tolerate(source: Connection, packet: Packet) -> bool:
        if source is conn:
            return True  # what it sent before it noticed the close
        if packet.spec.work_update and packet["handle"] == HANDLE:
            stale.append(packet.type.name)  # the old job's result on the new connection
            return True
        return _tolerate_registration(source, packet)

    try:
        await ctx.expect({T.CAN_DO, T.CAN_DO_TIMEOUT}, "registering again after the server closed", tolerate=tolerate)
        grab, conn2 = await ctx.expect(_GRABS, "asking for a job after reconnecting", tolerate=tolerate)
    except Exited as exited:
        if exited.code == 0:
            return INFO, "exited 0 when the server closed the connection (a supervisor must restart it)"
        if exited.code == EXIT_TIMEOUT:
            return FAIL, "neither reconnected nor exited when the server closed the connection (its own timeout ended it)"
        return INFO, f"gave up when the server closed the connection (exit status {exited.code}; a supervisor must restart it)"
    except ScenarioEnd as end:
        if end.reason.startswith("no "):
            return FAIL, "neither reconnected nor exited after the server closed the connection mid-job"
        raise
    await _reverse_job(ctx, conn2, grab)
    if stale:
        return FAIL, (
            f"reconnected, but sent {', '.join(stale)} for the job of the closed connection on the new one "
            "(a server answers ERROR JOB_NOT_FOUND: the handle was never assigned to that connection)"
        )
    return PASS, "reconnected, registered again and did the next job"


async def worker_failover(ctx: Context) -> tuple[Outcome, str]:
    try:
        grab, conn = await _grab(ctx, "asking the second server for a job")
    except Exited as exited:
        del exited
        return UNSUPPORTED, "never worked for the second server; a command given {servers} or GEARMAN_SERVERS could fail over"
    except ScenarioEnd as end:
        if end.reason.startswith("no "):
            return UNSUPPORTED, "never worked for the second server; a command given {servers} or GEARMAN_SERVERS could fail over"
        raise
    await _reverse_job(ctx, conn, grab)
    return PASS, "skipped the dead first server and worked for the second"


# -- hostile and quirky servers ------------------------------------------------------------
#
# Each script below plays a server that errs, stalls, closes at an odd moment, or sends legal
# but unusual packets and orders. `_hostile` wraps it: whatever the script concluded, a crash
# (killed by a signal, or a stack trace on stderr, whose tail the reason keeps) or a busy loop
# (BUSY_PACKETS packets or BUSY_CONNECTIONS connections within one second) is a failure.

HOSTILE_TIMEOUT = 5.0  # seconds per hostile scenario at most; the command's own --timeout is 3 s
QUIET = 1.0  # how long the server keeps silent (or refuses connections) where it stalls
LARGE = 2 * 1024 * 1024 + 7  # bytes of a large result or workload (over 1 MiB; odd, so a reversal shows)
RSS_GROWTH_LIMIT = 28 * 1024 * 1024  # more extra memory than this for LARGE bytes is worth a note (a process spawned per job costs ~15)
NOOP_STORM = 200
UNKNOWN_TYPE = 250  # no packet type has this number; well formed, with one argument
REFUSE_AFTER = 0.03  # seconds a going-away server keeps a new connection open
SETTLE = 0.2  # seconds the server waits after an odd packet, so the library has dealt with it first


def _unknown_packet() -> bytes:
    return Magic.RES.value + struct.pack(">II", UNKNOWN_TYPE, 5) + b"quirk"


def _large_data() -> bytes:
    return (b"0123456789abcdefghijklmnopqrstuvwxyz" * (LARGE // 36 + 1))[:LARGE]


def _brief(data: bytes) -> str:
    return repr(data) if len(data) <= 40 else f"{len(data)} bytes starting {data[:16]!r}"


def _hostile(script: Script, *, packets: bool = True, rss: bool = False) -> Script:
    """`script` with the crash and busy-loop checks (`packets=False` where the scenario itself
    provokes many packets: then only a reconnect storm counts) and, with `rss`, memory sampling."""
    async def run(ctx: Context) -> tuple[Outcome, str]:
        if rss:
            ctx.sample_rss()
        try:
            grade, reason = await script(ctx)
        except ScenarioEnd as end:
            grade, reason = end.grade, end.reason
        if not ctx.exited():  # a command on its way out may be crashing: let it finish
            await ctx.wait_exit(time.monotonic() + 0.3)
        crash = ctx.crash()
        if crash is not None:
            return FAIL, crash
        busy = ctx.busy(packets=packets)
        if busy is not None:
            return FAIL, busy + ("" if grade == PASS else f"; then: {reason}")
        return grade, reason

    run.__doc__ = script.__doc__
    return run


def _grade_growth(ctx: Context, base: int, grade: Outcome, reason: str) -> tuple[Outcome, str]:
    """Add the memory the command needed for a LARGE payload; too much is a failure."""
    peak = max(ctx.rss_peak, base)
    if not base:
        return grade, reason
    growth = peak - base
    note = f" (peak RSS {peak / 2**20:.0f} MiB, +{growth / 2**20:.0f} MiB for {LARGE / 2**20:.0f} MiB)"
    if grade == PASS and growth > RSS_GROWTH_LIMIT:
        return INFO, f"resource growth: {growth / 2**20:.0f} MiB more memory for a {LARGE}-byte payload" + note
    return grade, reason + note


def _grade_client_result(ctx: Context, code: int | None, want: bytes, what: str) -> tuple[Outcome, str]:
    """A client given a legal, if unusual, reply. The right result passes; an error exit is
    informational (it refused what it did not expect); success with other data is a wrong result."""
    if code is None:
        return FAIL, f"still running {ctx.timeout:g}s after {what} (hung){ctx.stderr_tail()}"
    if code == EXIT_UNSUPPORTED:
        return UNSUPPORTED, ctx.unsupported_reason()
    if code == 0:
        if ctx.stdout.strip() != want.strip():
            return FAIL, f"wrong result after {what}: printed {_brief(ctx.stdout)}, expected {_brief(want)}"
        return PASS, f"{what}: printed the result, exit 0"
    if code == EXIT_TIMEOUT:
        return FAIL, f"waited until its own timeout after {what} (exit status 6), though the result had come"
    return INFO, f"gave up after {what} (exit status {code}){ctx.stderr_tail()}"


def _grade_lost(ctx: Context, code: int, what: str) -> tuple[Outcome, str]:
    if code == EXIT_UNSUPPORTED:
        return UNSUPPORTED, ctx.unsupported_reason()
    if code == EXIT_TIMEOUT:
        return FAIL, f"never noticed {what}; waited until its own timeout (exit status 6){ctx.stderr_tail()}"
    if code == 0:
        return FAIL, f"exit status 0 (success) after {what}, although the job never finished{_brief_out(ctx)}"
    return PASS, f"reported {what} (exit status {code})"


def _brief_out(ctx: Context) -> str:
    return f" (printed {_brief(ctx.stdout)})" if ctx.stdout else ""


async def _refuse_for(ctx: Context, seconds: float) -> None:
    """For `seconds`, close every connection the command opens REFUSE_AFTER seconds after
    accepting it (a server that is going away: what the library sends on connecting still
    gets through, so its reconnect policy, not a race, decides the rate); then accept
    again. `Exited` when the command ends meanwhile."""
    ctx.server.refuse_after = REFUSE_AFTER
    until = time.monotonic() + seconds
    while await ctx.next(until) is not None:
        pass  # what it sends to a closing server
    ctx.server.refuse_after = None
    while not ctx.events.empty():
        ctx.events.get_nowait()


# -- client

async def client_error_after_created(ctx: Context) -> tuple[Outcome, str]:
    conn, _ = await _client_submit(ctx)
    conn.send(Packet.response("JOB_CREATED", HANDLE), Packet.response("ERROR", "INTERNAL_ERROR", "the job was lost"))
    code = await ctx.wait_exit()
    if code is None:
        return FAIL, f"hung after an ERROR that followed JOB_CREATED{ctx.stderr_tail()}"
    if code == EXIT_UNSUPPORTED:
        return UNSUPPORTED, ctx.unsupported_reason()
    if code == 0:
        return FAIL, f"exit status 0 (success) although the job only got an ERROR{_brief_out(ctx)}"
    if code == EXIT_TIMEOUT:
        return INFO, "ignored an ERROR after JOB_CREATED and waited for the result until its own timeout (exit status 6)"
    return PASS, f"reported the ERROR that followed JOB_CREATED (exit status {code})"


async def client_unanswered(ctx: Context) -> tuple[Outcome, str]:
    await _client_submit(ctx)
    code = await ctx.wait_exit()  # the server never answers
    if code is None:
        return FAIL, f"no JOB_CREATED came and it still waited {ctx.timeout:g}s later, past its own --timeout (hung)"
    if code == EXIT_UNSUPPORTED:
        return UNSUPPORTED, ctx.unsupported_reason()
    if code == 0:
        return FAIL, f"exit status 0 (success) although no JOB_CREATED ever came{_brief_out(ctx)}"
    submits = sum(1 for line in ctx.trace if "-> SUBMIT_JOB" in line)
    again = f", after sending SUBMIT_JOB {submits} times" if submits > 1 else ""
    if code == EXIT_TIMEOUT:
        return PASS, f"waited quietly for a JOB_CREATED that never came, then timed out (exit status 6){again}"
    return PASS, f"gave up waiting for a JOB_CREATED that never came (exit status {code}){again}"


async def client_slow_created(ctx: Context) -> tuple[Outcome, str]:
    conn, _ = await _client_submit(ctx)
    await asyncio.sleep(QUIET)
    conn.send(Packet.response("JOB_CREATED", HANDLE))
    await asyncio.sleep(QUIET / 2)
    want = ctx.params.data[::-1].encode()
    conn.send(Packet.response("WORK_COMPLETE", HANDLE, want))
    return _grade_client_result(ctx, await ctx.wait_exit(), want, f"JOB_CREATED {QUIET:g}s late")


async def client_split(ctx: Context) -> tuple[Outcome, str]:
    conn, _ = await _client_submit(ctx)
    want = ctx.params.data[::-1].encode()
    data = Packet.response("JOB_CREATED", HANDLE).to_bytes() + Packet.response("WORK_COMPLETE", HANDLE, want).to_bytes()
    await conn.send_slowly(data, "JOB_CREATED, WORK_COMPLETE")
    return _grade_client_result(ctx, await ctx.wait_exit(), want, "replies split byte by byte")


async def client_coalesced(ctx: Context) -> tuple[Outcome, str]:
    conn, _ = await _client_submit(ctx)
    want = ctx.params.data[::-1].encode()
    conn.send_raw(
        Packet.response("JOB_CREATED", HANDLE).to_bytes() + Packet.response("WORK_COMPLETE", HANDLE, want).to_bytes(),
        "JOB_CREATED and WORK_COMPLETE in one segment",
    )
    return _grade_client_result(ctx, await ctx.wait_exit(), want, "both replies in one segment")


async def client_unknown_packet(ctx: Context) -> tuple[Outcome, str]:
    conn, _ = await _client_submit(ctx)
    conn.send_raw(_unknown_packet(), f"a well-formed packet of unknown type {UNKNOWN_TYPE}")
    want = ctx.params.data[::-1].encode()
    conn.send(Packet.response("JOB_CREATED", HANDLE), Packet.response("WORK_COMPLETE", HANDLE, want))
    return _grade_client_result(ctx, await ctx.wait_exit(), want, f"a packet of unknown type {UNKNOWN_TYPE}")


async def client_noop_storm(ctx: Context) -> tuple[Outcome, str]:
    conn, _ = await _client_submit(ctx)
    conn.send_raw(Packet.response("NOOP").to_bytes() * NOOP_STORM, f"{NOOP_STORM} NOOPs")
    want = ctx.params.data[::-1].encode()
    conn.send(Packet.response("JOB_CREATED", HANDLE), Packet.response("WORK_COMPLETE", HANDLE, want))
    return _grade_client_result(ctx, await ctx.wait_exit(), want, f"{NOOP_STORM} NOOPs before JOB_CREATED")


async def client_other_handle(ctx: Context) -> tuple[Outcome, str]:
    conn, _ = await _client_submit(ctx)
    want = ctx.params.data[::-1].encode()
    conn.send_raw(
        Packet.response("JOB_CREATED", HANDLE).to_bytes()
        + Packet.response("WORK_COMPLETE", b"H:gearspec:other", b"not-yours").to_bytes()
        + Packet.response("WORK_COMPLETE", HANDLE, want).to_bytes(),
        "JOB_CREATED, WORK_COMPLETE for H:gearspec:other, WORK_COMPLETE for its own handle, in one segment",
    )
    return _grade_client_result(ctx, await ctx.wait_exit(), want, "a WORK_COMPLETE for another handle first")


async def client_large_result(ctx: Context) -> tuple[Outcome, str]:
    conn, _ = await _client_submit(ctx)
    result = _large_data()
    base = ctx.rss()
    conn.send(Packet.response("JOB_CREATED", HANDLE), Packet.response("WORK_COMPLETE", HANDLE, result))
    grade, reason = _grade_client_result(ctx, await ctx.wait_exit(), result, f"a {LARGE}-byte WORK_COMPLETE")
    return _grade_growth(ctx, base, grade, reason)


async def _client_after_close(ctx: Context, what: str) -> tuple[Outcome, str]:
    """After the server closed (and refused connections for QUIET seconds): reporting the
    loss passes, and so does a resubmission that then completes."""
    try:
        await _refuse_for(ctx, QUIET)
        submit, conn = await ctx.expect(_ANY_SUBMIT, "resubmitting after the server closed")
    except Exited as exited:
        return _grade_lost(ctx, exited.code, what)
    except ScenarioEnd as end:
        if end.reason.startswith("no "):
            return FAIL, f"neither reported {what} nor resubmitted (hung)"
        raise
    _check_submit(ctx, submit)
    conn.send(Packet.response("JOB_CREATED", HANDLE), Packet.response("WORK_COMPLETE", HANDLE, b"again"))
    grade, reason = _grade_client_exit(ctx, await ctx.wait_exit(), EXIT_OK, b"again", "a resubmission")
    return grade, (f"resubmitted after {what}; " + reason) if grade == PASS else reason


async def client_close_before_created(ctx: Context) -> tuple[Outcome, str]:
    conn, _ = await _client_submit(ctx)
    conn.close()
    return await _client_after_close(ctx, "the server closing before JOB_CREATED")


async def client_close_mid_packet(ctx: Context) -> tuple[Outcome, str]:
    conn, _ = await _client_submit(ctx)
    complete = Packet.response("WORK_COMPLETE", HANDLE, ctx.params.data[::-1]).to_bytes()
    conn.send(Packet.response("JOB_CREATED", HANDLE))
    conn.send_raw(complete[:-2], "WORK_COMPLETE without its last 2 bytes")
    await asyncio.sleep(0.05)
    conn.close()
    return await _client_after_close(ctx, "the server closing in the middle of WORK_COMPLETE")


# -- worker

async def _worker_carries_on(
    ctx: Context, after: str, odd: Connection, handle: bytes = HANDLE, data: bytes | None = None
) -> tuple[Outcome, str]:
    """After something odd on connection `odd`: a worker that grabs and does the job
    passes; one that drops the connection over it (and comes back) or exits is
    informational; one that neither grabs nor exits is stuck."""
    for attempt in (1, 2):
        try:
            grab, conn = await _grab(ctx, f"asking for a job after {after}")
        except Exited as exited:
            if exited.code == EXIT_UNSUPPORTED:
                return UNSUPPORTED, ctx.unsupported_reason()
            return INFO, f"exited after {after} (status {exited.code}){ctx.stderr_tail()}"
        except ScenarioEnd as end:
            if end.reason.startswith("no "):
                return FAIL, f"stopped asking for jobs after {after} (stuck, still running)"
            raise
        try:
            await _reverse_job(ctx, conn, grab, handle, data)
            break
        except Lost:
            if attempt == 2:
                return INFO, f"dropped the connection on {after}, twice, each time with the job it had been given"
    if conn is not odd:
        lost = ", losing the job it had been given," if attempt == 2 else ""
        return INFO, f"dropped the connection on {after}{lost} then came back and did the job"
    return PASS, f"carried on after {after} and did the job"


async def worker_error_can_do(ctx: Context) -> tuple[Outcome, str]:
    conn = await _registered(ctx)
    conn.send(Packet.response("ERROR", "INVALID_FUNCTION", "function refused"))
    await asyncio.sleep(SETTLE)
    return await _worker_carries_on(ctx, "an ERROR reply to CAN_DO", conn)


async def worker_error_pre_sleep(ctx: Context) -> tuple[Outcome, str]:
    await _registered(ctx)
    _, conn = await ctx.expect(_GRABS, "asking for a job", tolerate=_tolerate_registration)
    conn.send(Packet.response("NO_JOB"))
    polls = 0

    def poll(source: Connection, packet: Packet) -> bool:
        nonlocal polls
        if packet.type in _GRABS and polls < 3:
            polls += 1
            source.send(Packet.response("NO_JOB"))
            return True
        return packet.type in (T.CAN_DO, T.CAN_DO_TIMEOUT)

    await ctx.expect(T.PRE_SLEEP, "going to sleep after NO_JOB", conn=conn, tolerate=poll)
    conn.send(Packet.response("ERROR", "INTERNAL_ERROR", "cannot sleep now"))
    await asyncio.sleep(SETTLE)
    conn.send(Packet.response("NOOP"))
    return await _worker_carries_on(ctx, "an ERROR reply to PRE_SLEEP and a NOOP", conn)


async def worker_error_result(ctx: Context) -> tuple[Outcome, str]:
    grab, conn = await _grab(ctx, "asking for job 1")
    await _reverse_job(ctx, conn, grab, b"H:gearspec:1", b"job1")
    conn.send(Packet.response("ERROR", "JOB_NOT_FOUND", "no such job"))
    await asyncio.sleep(SETTLE)
    return await _worker_carries_on(ctx, "an ERROR reply to its WORK_COMPLETE", conn, b"H:gearspec:2", b"job2")


async def worker_unanswered_grab(ctx: Context) -> tuple[Outcome, str]:
    await _registered(ctx)
    grab, conn = await _grab(ctx, "asking for a job")
    start = time.monotonic()
    until, repeats, dropped = start + QUIET, 0, 0.0
    try:
        while (item := await ctx.next(until)) is not None:
            source, event = item
            if isinstance(event, Packet) and event.type in _GRABS:
                repeats += 1
                grab, conn = event, source  # the newest grab gets the answer
            elif event is None and source is conn and not dropped:
                dropped = time.monotonic() - start
        if conn.closed:
            for other in ctx.server.connections:
                if not other.closed:
                    other.send(Packet.response("NOOP"))  # it may have gone to sleep meanwhile
            grab, conn = await _grab(ctx, "asking for a job on a new connection")
    except Exited as exited:
        return INFO, f"exited while its GRAB went unanswered for {QUIET:g}s (status {exited.code}){ctx.stderr_tail()}"
    await _reverse_job(ctx, conn, grab)
    if dropped:
        return INFO, f"dropped the connection {dropped:.1f}s after its unanswered grab, came back and did the job"
    again = f" (sent {repeats} more grabs meanwhile)" if repeats else ""
    return PASS, f"waited quietly {QUIET:g}s for an answer to its {grab.type.name}{again}, then did the job"


async def worker_noop_storm(ctx: Context) -> tuple[Outcome, str]:
    conn = await _registered(ctx)
    base = ctx.rss()
    conn.send_raw(Packet.response("NOOP").to_bytes() * NOOP_STORM, f"{NOOP_STORM} NOOPs it never asked for")
    grab, conn = await _grab(ctx, f"asking for a job after {NOOP_STORM} NOOPs")
    await _reverse_job(ctx, conn, grab)
    grabs = sum(1 for line in ctx.trace if "-> GRAB_JOB" in line)
    return _grade_growth(ctx, base, PASS, f"answered {NOOP_STORM} unasked NOOPs with {grabs} grabs and did the job")


def _worker_assign_variant(kind: PacketType) -> Script:
    async def script(ctx: Context) -> tuple[Outcome, str]:
        await _registered(ctx)
        grab, conn = await _grab(ctx, "asking for a job")
        data = ctx.params.data.encode()
        conn.send(_assign_packet(kind, HANDLE, ctx.params.function, data))
        asked = "as it asked" if _ASSIGN_FOR_GRAB[grab.type] is kind else f"where its {grab.type.name} asked for {_ASSIGN_FOR_GRAB[grab.type].name}"
        try:
            packet, _ = await ctx.expect(_RESULTS, "working on the job", conn=conn,
                                         tolerate=lambda c, p: p.type in _UPDATES or _tolerate_while_working(c, p),
                                         deadline=time.monotonic() + QUIET * 1.5)
        except Exited as exited:
            if exited.code == 0:
                return FAIL, f"exit status 0 without answering the {kind.name} {asked}"
            return INFO, f"exited on a {kind.name} {asked} (status {exited.code}){ctx.stderr_tail()}"
        except Lost:
            return INFO, f"dropped the connection on a {kind.name} {asked}"
        except ScenarioEnd as end:
            if end.reason.startswith("no "):
                return INFO, f"ignored a {kind.name} {asked}: the job is never done (no result within {QUIET * 1.5:g}s)"
            raise
        if packet.type is T.WORK_COMPLETE and packet["handle"] == HANDLE and packet["data"] == data[::-1]:
            return PASS, f"did the job of a {kind.name} {asked}"
        if packet.type is T.WORK_FAIL and packet["handle"] == HANDLE:
            return INFO, f"failed the job of a {kind.name} {asked}"
        return FAIL, f"wrong result for a {kind.name} {asked}: {_describe(packet)}, expected WORK_COMPLETE {data[::-1]!r}"

    script.__name__ = f"worker_{kind.name.lower()}"
    return script


async def worker_unknown_packet(ctx: Context) -> tuple[Outcome, str]:
    conn = await _registered(ctx)
    conn.send_raw(_unknown_packet(), f"a well-formed packet of unknown type {UNKNOWN_TYPE}")
    await asyncio.sleep(SETTLE)
    return await _worker_carries_on(ctx, f"a packet of unknown type {UNKNOWN_TYPE}", conn)


async def worker_split(ctx: Context) -> tuple[Outcome, str]:
    await _registered(ctx)
    grab, conn = await _grab(ctx, "asking for a job")
    data = ctx.params.data.encode()
    kind = _ASSIGN_FOR_GRAB[grab.type]
    await conn.send_slowly(_assign_packet(kind, HANDLE, ctx.params.function, data).to_bytes(), kind.name)
    await _complete(ctx, conn, HANDLE, data[::-1])
    return PASS, f"{kind.name} split byte by byte: did the job"


async def worker_coalesced(ctx: Context) -> tuple[Outcome, str]:
    await _registered(ctx)
    grab, conn = await _grab(ctx, "asking for a job")
    data = ctx.params.data.encode()
    kind = _ASSIGN_FOR_GRAB[grab.type]
    conn.send_raw(_assign_packet(kind, HANDLE, ctx.params.function, data).to_bytes()
                  + Packet.response("NOOP").to_bytes() * 2, f"{kind.name} and two NOOPs in one segment")
    await _complete(ctx, conn, HANDLE, data[::-1])
    return PASS, f"{kind.name} and NOOPs in one segment: did the job"


async def worker_large_workload(ctx: Context) -> tuple[Outcome, str]:
    await _registered(ctx)
    grab, conn = await _grab(ctx, "asking for a job")
    base = ctx.rss()
    await _reverse_job(ctx, conn, grab, data=_large_data())
    return _grade_growth(ctx, base, PASS, f"did a job of {LARGE} bytes and sent the {LARGE}-byte result")


async def _worker_after_close(ctx: Context, conn: Connection, what: str) -> tuple[Outcome, str]:
    """After the server closed `conn` and refused connections for QUIET seconds: register
    again and do a fresh job (passes), or exit (informational). Work on the old job on a new
    connection is a failure."""
    stale: list[str] = []

    def tolerate(source: Connection, packet: Packet) -> bool:
        if source is conn:
            return True
        if packet.spec.work_update and packet["handle"] == HANDLE:
            stale.append(packet.type.name)
            return True
        return _tolerate_registration(source, packet)

    closed = time.monotonic()
    try:
        await _refuse_for(ctx, QUIET)
        await ctx.expect({T.CAN_DO, T.CAN_DO_TIMEOUT}, "registering again after the server came back", tolerate=tolerate)
        grab, conn2 = await ctx.expect(_GRABS, "asking for a job after reconnecting", tolerate=tolerate)
    except Exited as exited:
        if exited.code == EXIT_UNSUPPORTED:
            return UNSUPPORTED, ctx.unsupported_reason()
        if exited.code == EXIT_TIMEOUT:
            early = time.monotonic() - closed < ctx.timeout * 0.4
            if early:  # long before its own --timeout (60% of ours)
                return FAIL, f"reported a timeout (exit status 6) at once after {what}: a lost connection misreported"
            return FAIL, f"neither reconnected nor exited after {what} (its own timeout ended it)"
        return INFO, f"exited after {what} (status {exited.code}; a supervisor must restart it)"
    except ScenarioEnd as end:
        if end.reason.startswith("no "):
            return FAIL, f"neither reconnected nor exited after {what} (hung)"
        raise
    await _reverse_job(ctx, conn2, grab, b"H:gearspec:2", b"again")
    if stale:
        return FAIL, f"reconnected, but sent {', '.join(stale)} for the job of the closed connection"
    return PASS, f"reconnected after {what} (and {QUIET:g}s of refused connections), registered again and did the next job"


async def worker_close_after_grab(ctx: Context) -> tuple[Outcome, str]:
    await _registered(ctx)
    _, conn = await _grab(ctx, "asking for a job")
    conn.close()
    return await _worker_after_close(ctx, conn, "the server closing before answering its grab")


async def worker_close_mid_packet(ctx: Context) -> tuple[Outcome, str]:
    await _registered(ctx)
    grab, conn = await _grab(ctx, "asking for a job")
    kind = _ASSIGN_FOR_GRAB[grab.type]
    conn.send_raw(_assign_packet(kind, HANDLE, ctx.params.function, b"lost").to_bytes()[:-2],
                  f"{kind.name} without its last 2 bytes")
    await asyncio.sleep(0.05)
    conn.close()
    return await _worker_after_close(ctx, conn, f"the server closing in the middle of {kind.name}")


def _h(
    sid: str, title: str, script: Script, *, packets: bool = True, rss: bool = False, params: Params | None = None
) -> Scenario:
    role = sid.split("/")[0]
    params = params or (Params(count=1) if role == "worker" else Params())
    return Scenario(sid, role, title, _hostile(script, packets=packets, rss=rss), params, timeout=HOSTILE_TIMEOUT)


HOSTILE_SCENARIOS: tuple[Scenario, ...] = (
    _h("client/hostile-error-after-created", "an ERROR after JOB_CREATED is reported", client_error_after_created),
    _h("client/hostile-unanswered", "no JOB_CREATED ever: time out quietly, not spin", client_unanswered),
    _h("client/hostile-slow-created", f"JOB_CREATED {QUIET:g}s late, then the result", client_slow_created),
    _h("client/hostile-split", "JOB_CREATED and WORK_COMPLETE split byte by byte", client_split),
    _h("client/hostile-coalesced", "JOB_CREATED and WORK_COMPLETE in one segment", client_coalesced),
    _h("client/hostile-unknown-packet", f"a well-formed packet of unknown type {UNKNOWN_TYPE} first",
       client_unknown_packet),
    _h("client/hostile-noop-storm", f"{NOOP_STORM} NOOPs (a worker's packet) before JOB_CREATED", client_noop_storm),
    _h("client/hostile-other-handle", "a WORK_COMPLETE for another handle before its own (one segment)", client_other_handle),
    _h("client/hostile-large-result", f"a {LARGE // 2**20} MiB result", client_large_result, rss=True),
    _h("client/hostile-close-before-created", "the server closes before JOB_CREATED (and refuses for a while)",
       client_close_before_created),
    _h("client/hostile-close-mid-packet", "the server closes in the middle of WORK_COMPLETE", client_close_mid_packet),
    _h("worker/hostile-error-can-do", "an ERROR reply to CAN_DO", worker_error_can_do),
    _h("worker/hostile-error-pre-sleep", "an ERROR reply to PRE_SLEEP, then a NOOP", worker_error_pre_sleep),
    _h("worker/hostile-error-result", "an ERROR reply to WORK_COMPLETE, then the next job", worker_error_result,
       params=Params(count=2)),
    _h("worker/hostile-unanswered-grab", f"its grab unanswered for {QUIET:g}s: wait quietly, not spin",
       worker_unanswered_grab),
    _h("worker/hostile-noop-storm", f"{NOOP_STORM} NOOPs it never asked for", worker_noop_storm,
       packets=False, rss=True),
    _h("worker/hostile-assign-uniq", "JOB_ASSIGN_UNIQ whatever grab it sent", _worker_assign_variant(T.JOB_ASSIGN_UNIQ)),
    _h("worker/hostile-assign-all", "JOB_ASSIGN_ALL whatever grab it sent", _worker_assign_variant(T.JOB_ASSIGN_ALL)),
    _h("worker/hostile-unknown-packet", f"a well-formed packet of unknown type {UNKNOWN_TYPE}", worker_unknown_packet),
    _h("worker/hostile-split", "the job assignment split byte by byte", worker_split),
    _h("worker/hostile-coalesced", "the job assignment and two NOOPs in one segment", worker_coalesced),
    _h("worker/hostile-large-workload", f"a {LARGE // 2**20} MiB workload", worker_large_workload, rss=True),
    _h("worker/hostile-close-after-grab", "the server closes instead of answering the grab (and refuses for a while)",
       worker_close_after_grab),
    _h("worker/hostile-close-mid-packet", "the server closes in the middle of the job assignment",
       worker_close_mid_packet),
)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("client/submit", "client", "SUBMIT_JOB, then JOB_CREATED and WORK_COMPLETE", client_basic),
    Scenario("client/streamed", "client", "JOB_CREATED, streamed WORK_STATUS/DATA/WARNING, then the result", client_streamed),
    Scenario("client/background", "client", "SUBMIT_JOB_BG returns after JOB_CREATED", client_background,
             Params(background=True)),
    Scenario("client/priority-high", "client", "--priority high sends SUBMIT_JOB_HIGH", client_submit_only,
             Params(priority="high")),
    Scenario("client/priority-low", "client", "--priority low sends SUBMIT_JOB_LOW", client_submit_only,
             Params(priority="low")),
    Scenario("client/high-background", "client", "high priority in the background sends SUBMIT_JOB_HIGH_BG",
             client_submit_only, Params(priority="high", background=True)),
    Scenario("client/unique", "client", "the unique id is sent as given", client_submit_only,
             Params(unique="gearspec-unique-1")),
    Scenario("client/work-fail", "client", "WORK_FAIL is reported as a failure", client_work_fail),
    Scenario("client/work-exception", "client", "WORK_EXCEPTION (after OPTION_REQ exceptions) is reported",
             client_work_exception, Params(exceptions=True)),
    Scenario("client/error-reply", "client", "an ERROR reply to the submit is reported, not waited out",
             client_error_reply),
    Scenario("client/server-closes", "client", "the server closing mid-job is reported or retried",
             client_server_closes),
    Scenario("client/failover", "client", "a dead first server: the job goes to the second", client_failover,
             backup_server=True, first_server_dead=True),
    Scenario("worker/sleep-wake", "worker", "NO_JOB -> PRE_SLEEP, NOOP wakes it, then a job", worker_sleep_and_wake),
    Scenario("worker/job", "worker", "a job at the first grab gets WORK_COMPLETE", worker_job),
    Scenario("worker/fail", "worker", "a failing job gets WORK_FAIL (contract data 'fail')", worker_job,
             Params(data="fail")),
    Scenario("worker/status", "worker", "WORK_STATUS and WORK_DATA before the result (contract data 'status')",
             worker_job, Params(data="status")),
    Scenario("worker/two-jobs", "worker", "two jobs in a row, then exit with --count 2", worker_two_jobs_then_exit,
             Params(count=2)),
    Scenario("worker/spurious-noop", "worker", "a NOOP it never asked for is harmless", worker_spurious_noop),
    Scenario("worker/error-reply", "worker", "an ERROR reply to a grab", worker_error_reply),
    Scenario("worker/server-closes", "worker", "the server closing mid-job: reconnect (or exit)",
             worker_server_closes),
    Scenario("worker/failover", "worker", "a dead first server: it works for the second", worker_failover,
             backup_server=True, first_server_dead=True),
    *HOSTILE_SCENARIOS,
)


# -- running ------------------------------------------------------------------------------


async def run_scenario(scenario: Scenario, command: str, *, timeout: float = 10.0, host: str = "127.0.0.1") -> ScenarioResult:
    """Run one scenario against the command; never raises for the command's behaviour."""
    if scenario.timeout is not None:
        timeout = min(timeout, scenario.timeout)
    ctx = Context(scenario.role, scenario.params, timeout)
    if scenario.backup_server:
        ctx.backup = ScriptedServer(ctx, "backup")
        ctx.server.refuse = scenario.first_server_dead
    grade, reason = FAIL, "did not run"
    try:
        await ctx.server.start(host)
        if ctx.backup is not None:
            await ctx.backup.start(host)
        await ctx.spawn(command, host)
        grade, reason = await scenario.script(ctx)
    except ScenarioEnd as end:
        grade, reason = end.grade, end.reason
    except OSError as exc:
        grade, reason = FAIL, f"could not run the scenario: {exc}"
    finally:
        await ctx.stop()
        await ctx.server.close()
        if ctx.backup is not None:
            await ctx.backup.close()
    code = ctx.process.returncode if ctx.process else None
    return ScenarioResult(
        scenario.id, scenario.role, scenario.title, grade, reason, time.monotonic() - ctx.started, code,
        ctx.stdout.decode("utf-8", "replace"), ctx.stderr.decode("utf-8", "replace"), ctx.trace,
    )


def select_scenarios(role: str, select: list[str] | None = None, exclude: list[str] | None = None) -> list[Scenario]:
    """Scenarios of one role chosen as `gearspec test` chooses cases (registry.select_cases):
    an ID, a glob, or a prefix ending at a "/" (`client` is every client scenario)."""
    chosen = {c.id for c in select_cases([scenario_case(s) for s in SCENARIOS if s.role == role],
                                        select or (), exclude or ())}
    return [s for s in SCENARIOS if s.id in chosen]


async def run_scenarios(
    role: str, command: str, *, timeout: float = 10.0, select: list[str] | None = None,
    exclude: list[str] | None = None, parallel: int = 1, progress: Callable[[ScenarioResult], None] | None = None,
) -> list[ScenarioResult]:
    """Run the selected scenarios of `role`, `parallel` at a time, in scenario order."""
    scenarios = select_scenarios(role, select, exclude)
    limit = asyncio.Semaphore(max(1, parallel))

    async def one(scenario: Scenario) -> ScenarioResult:
        async with limit:
            outcome = await run_scenario(scenario, command, timeout=timeout)
        if progress is not None:
            progress(outcome)
        return outcome

    return list(await asyncio.gather(*(one(s) for s in scenarios)))


# -- into the suite's results: one outcome vocabulary, one expectations mechanism, one report --

_SOURCE = "the driver contract (conformance/drivers/README.md), graded by the scripted server (conformance/roles.py)"
_TRACE_LINE = re.compile(r"\s*(\d+\.\d+) (?:\[([^\]]+)\] )?(.*)", re.S)


def _not_a_case(session: object) -> None:
    raise RuntimeError("a scenario runs through run_scenario, not as a server case")


def scenario_case(scenario: Scenario) -> Case:
    """The scenario as the reports see a case: its ID, title and level (MUST: every failure counts)."""
    return Case(
        id=scenario.id, requirement=scenario.title, level=Level.MUST, packets=(), admin=(), source=_SOURCE,
        alternatives={}, func=_not_a_case, timeout=scenario.timeout,
    )


def _trace_entry(line: str) -> TraceEntry:
    """A scenario trace line ("  0.012 [server#0] -> SUBMIT_JOB ...") as the suite's trace entry."""
    match = _TRACE_LINE.fullmatch(line)
    if match is None:
        return TraceEntry(0.0, "", "note", line)
    seconds, conn, text = match.groups()
    # The scripted server's arrows: "->" what the program sent it, "<-" what it sent back.
    direction = "recv" if text.startswith("-> ") else "send" if text.startswith("<- ") else "note"
    return TraceEntry(float(seconds), conn or "", direction, text[3:] if direction != "note" else text)


def as_result(outcome: ScenarioResult, expectations: Expectations) -> Result:
    """One scenario's grade as a suite result, the program's known deviations applied."""
    notes = [] if outcome.exit_code is None else [f"exit status {outcome.exit_code}"]
    for name, text in (("stdout", outcome.stdout), ("stderr", outcome.stderr)):
        if text.strip():
            notes.append(f"{name} (last lines):\n" + "\n".join(text.strip().splitlines()[-20:]))
    return Result(
        case=scenario_case(next(s for s in SCENARIOS if s.id == outcome.id)), outcome=outcome.grade,
        message=outcome.reason, duration=outcome.duration, trace=[_trace_entry(line) for line in outcome.trace],
        notes=notes, deviation=expectations.find(outcome.id),
    )


def driver_expectations(name: str) -> Path:
    """The expectations file of driver `name` (`--role ... --profile NAME`)."""
    from gearspec.conformance.impls import load_registry

    profiles = load_registry().driver_profiles()
    if name not in profiles:
        raise ExpectationsError(f"no driver profile {name!r}; known: {', '.join(profiles)}")
    return profiles[name]


def driver_command(name: str, role: str) -> str:
    """The --exec command for a driver of conformance/drivers (`--exec driver:perl`)."""
    from gearspec.conformance.drivers import DRIVERS

    try:
        driver = DRIVERS[name]
    except KeyError:
        raise ValueError(f"unknown driver {name!r}; known: {', '.join(DRIVERS)}") from None
    if role not in driver.roles:
        raise ValueError(f"driver {name!r} has no {role}")
    env = [f"{k}={shlex.quote(v)}" for k, v in driver.env.items()]
    prefix = ["env", *env] if env else []
    return " ".join([*prefix, *(shlex.quote(a) for a in driver.argv), role, "{args}"])


async def run_matrix(
    drivers: list[str], roles: tuple[str, ...] = ("client", "worker"), *, timeout: float = 10.0, parallel: int = 4,
    select: list[str] | None = None,
) -> dict[tuple[str, str], list[ScenarioResult]]:
    """Every scenario of every role for each named driver, `parallel` scenarios at a time."""
    limit = asyncio.Semaphore(max(1, parallel))
    jobs: list[tuple[str, str, Scenario]] = [
        (name, role, scenario) for name in drivers for role in roles for scenario in select_scenarios(role, select)
    ]

    async def one(name: str, role: str, scenario: Scenario) -> ScenarioResult:
        async with limit:
            return await run_scenario(scenario, driver_command(name, role), timeout=timeout)

    outcomes = await asyncio.gather(*(one(*job) for job in jobs))
    matrix: dict[tuple[str, str], list[ScenarioResult]] = {}
    for (name, role, _), outcome in zip(jobs, outcomes, strict=False):
        matrix.setdefault((name, role), []).append(outcome)
    return matrix


_MARK = {PASS: "pass", FAIL: "**FAIL**", UNSUPPORTED: "unsupported", INFO: "info"}


def format_markdown(matrix: dict[tuple[str, str], list[ScenarioResult]]) -> str:
    """One markdown table per role: scenarios as rows, drivers as columns, then the notes."""
    out: list[str] = []
    for role in ("client", "worker"):
        names = [name for (name, r) in matrix if r == role]
        if not names:
            continue
        scenario_ids = [o.id for o in matrix[(names[0], role)]]
        notes: dict[tuple[str, str], int] = {}  # (driver, reason) -> note number; repeats share one
        rows = []
        for index, sid in enumerate(scenario_ids):
            cells = []
            for name in names:
                outcome = matrix[(name, role)][index]
                cell = _MARK[outcome.grade]
                if outcome.grade != PASS:
                    reason = re.sub(r" \([^()]*\)$", "", outcome.reason)  # drop "(what it was doing)"
                    number = notes.setdefault((name, reason), len(notes) + 1)
                    cell += f" [{number}]"
                cells.append(cell)
            rows.append((sid, cells))
        out += markdown_table("scenario", names, rows)
        out.append("")
        out += [f"{number}. {name}: {reason}" for (name, reason), number in notes.items()]
        out.append("")
    return "\n".join(out)


def run_roles(args: argparse.Namespace) -> int:
    """`gearspec test --role client|worker --exec CMD`: graded, reported and exited as `gearspec
    test` is (0 nothing counts against the program, 1 something does, 2 nothing was graded)."""
    from gearspec.conformance import reports

    def usage(message: str) -> int:
        print(f"gearspec test: {message}", file=sys.stderr)
        return 2

    command, role = args.exec_cmd, args.role
    if not command:
        return usage("--role needs --exec 'COMMAND' (the client or worker program to test)")
    for flag in ("target", "local", "impl", "grab", "restart_command", "tls_ca", "tls_cert", "tls_key"):
        if getattr(args, flag, None):
            return usage(f"--{flag.replace('_', '-')} is for testing a server; --role tests the program of --exec")
    if args.jobs is not None and args.jobs < 1:
        return usage("-j must be at least 1")
    if not args.timeout > 0:
        return usage("--timeout must be a positive number of seconds")
    try:
        if args.profile and args.expect:
            raise ExpectationsError("use --profile or --expect, not both")
        path = driver_expectations(args.profile) if args.profile else args.expect
        expectations = load_expectations(path) if path else Expectations(name="no expectations")
    except ExpectationsError as exc:
        return usage(str(exc))
    if command.startswith("driver:"):
        try:
            command = driver_command(command[len("driver:"):], role)
        except ValueError as exc:
            return usage(str(exc))
    scenarios = select_scenarios(role, args.select, args.exclude)
    if args.list:
        for s in scenarios:
            print(f"{s.id:32} {s.title}")
        print(f"{len(scenarios)} scenarios")
        return 0
    if not scenarios:
        return usage("no scenario matches the selection")
    # One at a time unless asked: the hostile scenarios measure request rates and memory.
    jobs = args.jobs or expectations.jobs or 1
    stream = sys.stdout
    colour = reports.use_colour(stream)
    progress = reports.Progress(len(scenarios), stream, enabled=not args.quiet, colour=colour)
    print(f"gearspec test --role {role}: {len(scenarios)} scenarios against {command} "
          f"[{expectations.name}; -j {jobs}]", file=stream)
    progress.start()
    finished: dict[str, Result] = {}

    def done(outcome: ScenarioResult) -> None:
        finished[outcome.id] = as_result(outcome, expectations)
        progress.update(finished[outcome.id])

    started = time.monotonic()
    interrupted = False
    try:
        asyncio.run(run_scenarios(role, command, timeout=args.timeout, select=args.select, exclude=args.exclude,
                                  parallel=jobs, progress=done))
    except KeyboardInterrupt:
        interrupted = True
    progress.finish()
    results = [finished[s.id] for s in scenarios if s.id in finished]

    def rerun(case: Case) -> str:
        parts = ["gearspec", "test", "--role", role, "--exec", args.exec_cmd]
        if args.profile:
            parts += ["--profile", args.profile]
        if args.expect:
            parts += ["--expect", os.path.abspath(args.expect)]
        return shlex.join([*parts, "--timeout", f"{args.timeout:g}", "--select", case.id, "-v"])

    run = reports.RunInfo(
        target=f"{role} {command}", expectations=expectations.name, strict=args.strict, seed="-",
        elapsed=time.monotonic() - started, grab=None, rerun=rerun, interrupted=interrupted,
    )
    reports.print_summary(results, run, stream, verbose=args.verbose, colour=colour)
    reports.write_reports(results, run, {kind: getattr(args, kind) for kind in reports.REPORT_KINDS}, sys.stderr)
    if interrupted:
        return 130
    return 1 if any(r.counts_against(args.strict) for r in results) else 0


def main(argv: list[str] | None = None) -> int:
    """`python -m gearspec.conformance.roles [DRIVER...]`: the README's role table (markdown)."""
    parser = argparse.ArgumentParser(prog="python -m gearspec.conformance.roles", description=main.__doc__)
    parser.add_argument("drivers", nargs="*", help="driver names (default: every available driver)")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("-j", "--jobs", type=int, default=4)
    parser.add_argument("--json", metavar="FILE")
    options = parser.parse_args(argv)
    from gearspec.conformance.drivers import DRIVERS

    names = options.drivers or [n for n, d in DRIVERS.items() if d.available()]
    matrix = asyncio.run(run_matrix(names, timeout=options.timeout, parallel=options.jobs))
    print(format_markdown(matrix))
    if options.json:
        with open(options.json, "w", encoding="utf-8") as fh:
            json.dump({f"{n}/{r}": [o.as_data() for o in outs] for (n, r), outs in matrix.items()}, fh, indent=1)
    return 1 if any(o.grade == FAIL for outs in matrix.values() for o in outs) else 0


if __name__ == "__main__":
    sys.exit(main())
