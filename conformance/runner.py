"""Run cases against a target: one `Session` per case, in parallel threads, never hanging.

Both entry points use this module: `gearspec test` (conformance/cli.py) runs whole selections
with `run_cases`, and the pytest plugin (conformance/plugin.py) runs one case per test item
with `run_case`. Known deviations of a target come from an expectations file (TOML, see
`load_expectations`) and turn matching failures into expected failures; a case that then
passes is an "unexpected pass", which fails the run so that a fix is noticed.
"""

from __future__ import annotations

import enum
import fnmatch
import os
import queue
import socket
import threading
import time
import tomllib
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gearspec.conformance.capabilities import Capabilities, detect_capabilities
from gearspec.conformance.harness import (
    CONNECT_TIMEOUT,
    DEFAULT_WAIT,
    CaseEnd,
    Outcome,
    Session,
    Target,
    TraceEntry,
    describe,
)
from gearspec.conformance.lifecycle import Crash, RestartError, TargetControl
from gearspec.conformance.registry import Case, Level

from gearspec.admin import AdminError
from gearspec.codec import Decoder, Packet
from gearspec.errors import RemoteProtocolError, os_reason
from gearspec.spec import Magic, PacketType

__all__ = [
    "Deviation",
    "Expectations",
    "Result",
    "RunConfig",
    "Verdict",
    "builtin_profiles",
    "check_reachable",
    "deviation_outcomes",
    "load_expectations",
    "probe_target",
    "run_case",
    "run_cases",
]


# -- expectations: a target's known deviations, as data --------------------------------------


@dataclass(frozen=True, slots=True)
class Deviation:
    """One known deviation: cases matching `case` (a glob) are expected to end in `outcomes`."""

    case: str
    outcomes: frozenset[Outcome]
    reason: str

    def matches(self, case_id: str) -> bool:
        return fnmatch.fnmatchcase(case_id, self.case)


_DEFAULT_DEVIATION_OUTCOMES = frozenset({Outcome.FAIL, Outcome.ERROR, Outcome.UNSUPPORTED, Outcome.NON_STRICT})


def deviation_outcomes(raw: object) -> frozenset[Outcome]:
    """The outcomes a known deviation lists (a name or a list of names; None: any but pass).

    One reading for expectations files (`outcome`) and the interop rows of impl.toml
    (`outcomes`): listing "pass" too makes a deviation seen only sometimes (a race)."""
    names = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else [] if raw is None else [raw]
    try:
        return frozenset(Outcome(n) for n in names) or _DEFAULT_DEVIATION_OUTCOMES
    except (ValueError, TypeError):
        known = ", ".join(o.value for o in Outcome)
        raise ValueError(f"unknown outcome in {names} (known: {known})") from None


@dataclass(frozen=True, slots=True)
class Expectations:
    """A target profile: its name, the grab packet generic cases use, and its deviations."""

    name: str = "unnamed target"
    grab: PacketType | None = None
    barrier: str | None = None  # None: the round trip the target was seen to answer
    deviations: tuple[Deviation, ...] = ()
    source: str = ""
    jobs: int | None = None  # cases run in parallel against it, unless -j says; None: the default

    def find(self, case_id: str) -> Deviation | None:
        for deviation in self.deviations:
            if deviation.matches(case_id):
                return deviation
        return None


def builtin_profiles() -> dict[str, Path]:
    """Profile name -> expectations file: each implementation's conformance/impls/NAME/expectations.toml."""
    from gearspec.conformance.impls import load_registry

    return load_registry().profiles()


class ExpectationsError(ValueError):
    """An expectations file that cannot be used (with the file and the problem)."""


def load_expectations(path: str | Path) -> Expectations:
    """Read an expectations file:

        [target]
        name = "gearmand 1.1.20"
        grab = "GRAB_JOB"            # optional: the grab packet generic cases use
        barrier = "echo"             # optional: force "echo" or "status" (default: probed)
        jobs = 1                     # optional: cases in parallel unless -j is given (a
                                     # target that dies on some packets takes others with it)

        [[deviation]]
        case = "admin/version/1"     # an ID or a glob, or a list of them (one reason for all)
        outcome = ["fail"]           # optional; default: any outcome but pass; list
                                     # "pass" too for a deviation seen only sometimes
        reason = "what was seen on the wire"
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ExpectationsError(f"{path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ExpectationsError(f"{path}: not valid TOML: {exc}") from None
    target = data.get("target", {})
    if not isinstance(target, dict):
        raise ExpectationsError(f"{path}: [target] must be a table")
    grab = target.get("grab")
    try:
        grab_type = PacketType[grab] if grab else None
    except (KeyError, TypeError):
        raise ExpectationsError(f"{path}: [target] grab = {grab!r} is not a packet type") from None
    if grab_type is not None and not grab_type.spec.grab:
        raise ExpectationsError(f"{path}: [target] grab = {grab!r} is not a GRAB_* packet")
    barrier = target.get("barrier")
    if barrier not in (None, "echo", "status"):
        raise ExpectationsError(f"{path}: [target] barrier must be 'echo' or 'status', not {barrier!r}")
    jobs = target.get("jobs")
    if jobs is not None and (not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1):
        raise ExpectationsError(f"{path}: [target] jobs must be a whole number of at least 1, not {jobs!r}")
    deviations: list[Deviation] = []
    rows = data.get("deviation", [])
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ExpectationsError(f"{path}: 'deviation' must be a list of [[deviation]] tables")
    for i, row in enumerate(rows):
        if "case" not in row or "reason" not in row:
            raise ExpectationsError(f"{path}: deviation #{i + 1} needs 'case' and 'reason'")
        if not isinstance(row["reason"], str):
            raise ExpectationsError(f"{path}: deviation #{i + 1}: reason must be a string, not {row['reason']!r}")
        globs = [row["case"]] if isinstance(row["case"], str) else row["case"]
        if not isinstance(globs, list) or not globs or not all(isinstance(g, str) for g in globs):
            raise ExpectationsError(
                f"{path}: deviation #{i + 1}: case must be a string or a list of strings, not {row['case']!r}"
            )
        try:
            outcomes = deviation_outcomes(row.get("outcome"))
        except ValueError as exc:
            raise ExpectationsError(f"{path}: deviation {globs[0]}: {exc}") from None
        deviations.extend(Deviation(glob, outcomes, row["reason"]) for glob in globs)
    name = target.get("name", path.stem)
    if not isinstance(name, str):
        raise ExpectationsError(f"{path}: [target] name must be a string, not {name!r}")
    return Expectations(name, grab_type, barrier, tuple(deviations), source=str(path), jobs=jobs)


# -- results -----------------------------------------------------------------------------------


class Verdict(enum.Enum):
    """A result after expectations are applied: what the summary and exit status count."""

    PASS = "pass"
    NON_STRICT = "non-strict"
    FAIL = "fail"
    UNSUPPORTED = "unsupported"
    INFORMATIONAL = "informational"
    ERROR = "error"
    EXPECTED_FAIL = "expected-fail"  # a listed deviation, seen as listed
    UNEXPECTED_PASS = "unexpected-pass"  # a listed deviation that no longer happens


@dataclass
class RunConfig:
    """Options shared by every case of one run."""

    timeout: float = 10.0
    wait: float = DEFAULT_WAIT
    seed: str = "0"
    run_token: str = ""
    strict: bool = False
    expectations: Expectations = field(default_factory=Expectations)
    grab: PacketType | None = None  # overrides the profile's grab packet
    destructive: bool = False
    names_used: set[str] = field(default_factory=set)  # every name a case made: drained after the run
    handles_created: set[bytes] = field(default_factory=set)  # jobs not due yet are cancelled
    # The target has a persistent queue: losing every job across a restart fails durability/*.
    durable: bool = False
    # What the target answers (probed once by `run_cases`, or given); None: not probed yet.
    capabilities: Capabilities | None = None

    def __post_init__(self) -> None:
        if not self.run_token:
            # Names must differ between runs against one long-lived server (queued jobs stay).
            self.run_token = f"{int.from_bytes(os.urandom(2), 'big'):04x}"

    @property
    def grab_type(self) -> PacketType:
        """The --grab option, else the profile's, else the first grab packet the target answers."""
        detected = self.capabilities.grab if self.capabilities is not None else None
        return self.grab or self.expectations.grab or detected or PacketType.GRAB_JOB

    @property
    def barrier(self) -> str | None:
        """The profile's barrier, else the round trip the target answers (None: neither)."""
        if self.expectations.barrier is not None:
            return self.expectations.barrier
        return self.capabilities.barrier if self.capabilities is not None else "echo"

    def probe(self, target: Target) -> Capabilities:
        """Probe the target once (later calls return the first result)."""
        with _PROBE_LOCK:
            if self.capabilities is None:
                self.capabilities = detect_capabilities(
                    target.host, target.port, wait=min(self.wait, 1.0), token=self.run_token,
                    tls=target.tls.context if target.tls is not None else None,
                )
        return self.capabilities


_PROBE_LOCK = threading.Lock()


@dataclass
class Result:
    """How one case went, with everything a report shows."""

    case: Case
    outcome: Outcome
    message: str = ""
    expected: str | None = None
    actual: str | None = None
    alternative: str | None = None
    duration: float = 0.0
    trace: list[TraceEntry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    deviation: Deviation | None = None

    @property
    def verdict(self) -> Verdict:
        if self.deviation is not None:
            if self.outcome is Outcome.PASS:
                # A deviation seen only sometimes lists "pass" among its outcomes.
                return Verdict.PASS if Outcome.PASS in self.deviation.outcomes else Verdict.UNEXPECTED_PASS
            if self.outcome in self.deviation.outcomes:
                return Verdict.EXPECTED_FAIL
        return Verdict(self.outcome.value)

    def counts_against(self, strict: bool) -> bool:
        """Whether this result makes the run fail."""
        verdict = self.verdict
        if verdict is Verdict.UNEXPECTED_PASS:
            return True
        if verdict not in (Verdict.FAIL, Verdict.ERROR):
            return False
        level = self.case.level
        return level.counts or (strict and level is Level.SHOULD)


def run_case(case: Case, target: Target, config: RunConfig, control: TargetControl | None = None) -> Result:
    """Run one case in the calling thread; never raises for anything the target does.

    `control`: lets the case restart the target (durability cases), when it can.
    """
    timeout = max(config.timeout, case.timeout or 0.0)
    capabilities = config.probe(target)
    session = Session(
        case, target, timeout=timeout, wait=min(config.wait, timeout), seed=config.seed,
        run_token=config.run_token, grab_type=config.grab_type, barrier=config.barrier, capabilities=capabilities,
        restarter=control.restart if control is not None and control.can_restart else None, durable=config.durable,
    )
    result = Result(case, Outcome.PASS)
    started = time.monotonic()
    if case.destructive and not config.destructive:
        result.outcome = Outcome.INFORMATIONAL
        result.message = "not run: this case may stop the target (run with --destructive)"
    else:
        try:
            case.func(session)
            if case.level is Level.INFO:
                result.outcome = Outcome.INFORMATIONAL
                result.message = "; ".join(session.notes) or "observed"
        except CaseEnd as end:
            result.outcome = end.outcome
            result.message = end.message
            result.expected = end.expected
            result.actual = end.actual
            result.alternative = end.alternative
        except RemoteProtocolError as exc:  # a parser refused what the target sent
            result.outcome = Outcome.FAIL
            result.message = f"malformed reply: {exc}"
            result.expected, result.actual = "a well-formed reply", str(exc)
        except AdminError as exc:  # an ERR line where the case needed OK
            result.outcome = Outcome.FAIL
            result.message = f"admin command refused: {exc}"
            result.expected, result.actual = "OK", str(exc)
        except Exception as exc:  # a bug in the case or the harness: report it, go on
            result.outcome = Outcome.ERROR
            result.message = f"harness error: {type(exc).__name__}: {exc}"
            session.note("".join(traceback.format_exception(exc)).rstrip())
        finally:
            session.close_all()
    if result.outcome is Outcome.FAIL and case.level is Level.INFO:
        result.outcome = Outcome.INFORMATIONAL
    result.duration = time.monotonic() - started
    config.names_used.update(session.names_used)
    config.handles_created.update(session.handles_created)
    result.trace = session.trace
    result.notes = session.notes
    result.deviation = config.expectations.find(case.id)
    return result


def run_cases(
    cases: Sequence[Case],
    target: Target,
    config: RunConfig,
    jobs: int = 1,
    on_result: Callable[[Result], None] | None = None,
    control: TargetControl | None = None,
) -> list[Result]:
    """Run cases, `jobs` at a time, in ID order of results.

    Cases marked `serial` run alone after the others; destructive ones run last. A case
    stuck beyond its timeout (plus a grace) is abandoned as an error so the run goes on.

    After each case the target is checked (`control`; by default a TCP connect). When it
    died, the cases that were running are rerun one at a time on a restarted target to find
    the one that kills it, which ends as a failure "the target crashed" with the server's
    log; the run goes on. When the target cannot be restarted, the run stops there:
    `control.stopped` says during which case(s), and the cases not run get no result.
    """
    control = control if control is not None else TargetControl(target)
    config.probe(control.target)  # once, before the cases' threads start
    parallel = [c for c in cases if not c.serial and not c.destructive]
    serial = [c for c in cases if c.serial and not c.destructive]
    last = [c for c in cases if c.destructive]
    results: dict[str, Result] = {}

    def finish(result: Result) -> None:
        results[result.case.id] = result
        if on_result is not None:
            on_result(result)

    for batch, width in ((parallel, max(1, jobs)), (serial, 1), (last, 1)):
        if control.stopped is None:
            _run_batch(batch, control, config, width, finish)
    control.not_run = [c.id for c in cases if c.id not in results]
    return [results[c.id] for c in cases if c.id in results]


_GRACE = 3.0  # seconds past its timeout before a stuck case is abandoned


def _run_batch(
    cases: Sequence[Case], control: TargetControl, config: RunConfig, jobs: int, finish: Callable[[Result], None]
) -> None:
    todo = list(cases)
    done: queue.Queue[Result] = queue.Queue()
    running: dict[str, tuple[Case, float]] = {}

    def work(case: Case) -> None:
        done.put(run_case(case, control.target, config, control))

    def start(case: Case) -> None:
        running[case.id] = (case, time.monotonic() + max(config.timeout, case.timeout or 0.0) + _GRACE)
        # Daemon threads: a case stuck outside the harness cannot keep the process alive.
        threading.Thread(target=work, args=(case,), name=f"case {case.id}", daemon=True).start()

    def abandon(case: Case, late: float) -> Result:
        stuck = Result(case, Outcome.ERROR, f"abandoned: still running {late:.0f} s after its timeout")
        stuck.deviation = config.expectations.find(case.id)
        return stuck

    while todo or running:
        while todo and len(running) < jobs:
            start(todo.pop(0))
        next_deadline = min(deadline for _, deadline in running.values())
        try:
            result = done.get(timeout=max(0.01, next_deadline - time.monotonic()))
        except queue.Empty:
            now = time.monotonic()
            for case_id, (case, deadline) in list(running.items()):
                if deadline <= now:
                    del running[case_id]
                    finish(abandon(case, deadline - now + _GRACE))
            continue
        if result.case.id not in running:
            continue
        del running[result.case.id]
        how = _target_dead(control, config, result)
        if how is None:
            finish(result)
            continue
        # The target died during this case or one running beside it: let those end (their
        # verdicts are about a dead server), then find out which case it was.
        suspects = [result.case] + [case for case, _ in running.values()]
        first = {result.case.id: result}
        while running:
            try:
                other = done.get(timeout=max(0.01, min(d for _, d in running.values()) - time.monotonic()))
            except queue.Empty:
                break
            if other.case.id in running:
                del running[other.case.id]
                first[other.case.id] = other
        running.clear()
        if not _after_death(suspects, first, how, control, config, finish):
            return


def _target_dead(control: TargetControl, config: RunConfig, after: Result) -> str | None:
    """How the target died during or after `after`, or None while it lives.

    After a failure or error, alive also means answering a round trip (a server may accept
    connections and never answer again), unless it never answered one to begin with.
    """
    if after.outcome not in (Outcome.FAIL, Outcome.ERROR):
        return control.exited()  # it answered the case: only a process exit is worth a look
    round_trip = None
    if config.capabilities is not None and config.capabilities.responsive:
        barrier = config.barrier or "echo"

        def round_trip(target: Target) -> bool:
            # Patient: a busy single-threaded server (gear) accepts slowly under load.
            return probe_target(target, timeout=max(CONNECT_TIMEOUT, config.wait), barrier=barrier) is None

    return control.dead(round_trip)


def _after_death(
    suspects: list[Case],
    first: dict[str, Result],
    how: str,
    control: TargetControl,
    config: RunConfig,
    finish: Callable[[Result], None],
) -> bool:
    """Restart the target and rerun `suspects` one at a time, recording the crash against
    the case after which it dies again. False when the run must stop (no restart)."""
    log = control.logs()
    if not control.can_restart:
        if len(suspects) == 1:
            finish(_crashed(first[suspects[0].id], how, log, config))
        else:
            for case in suspects:
                if case.id in first:
                    finish(first[case.id])
        control.stopped = Crash(tuple(c.id for c in suspects), how, log)
        return False

    def revive() -> bool:
        try:
            if control.dead() is not None:
                control.restart()
            return True
        except RestartError as exc:
            control.stopped = Crash(tuple(c.id for c in suspects), f"{how}; {exc}", log)
            return False

    for case in suspects:
        if not revive():
            return False
        result = run_case(case, control.target, config, control)
        died = _target_dead(control, config, result)
        if died is None:
            finish(result)
            continue
        if result.outcome in (Outcome.PASS, Outcome.INFORMATIONAL, Outcome.NON_STRICT):
            # It asked the target to stop (admin shutdown) and it did: not a crash.
            result.notes.append(f"the target stopped after this case ({died}); restarted")
            finish(result)
            continue
        crash_log = control.logs()
        control.crashes.append(Crash((case.id,), died, crash_log))
        finish(_crashed(result, died, crash_log, config))
    return revive()


def _crashed(result: Result, how: str, log: str, config: RunConfig) -> Result:
    """`result` turned into the record of a crash: a failure naming how the target died."""
    crash = Result(
        result.case, Outcome.FAIL, f"the target crashed during this case: {how}",
        expected="the server survives the case", actual=f"the server {how}",
        duration=result.duration, trace=result.trace, notes=list(result.notes),
    )
    if result.message:
        crash.notes.append(f"the case saw: {result.message}")
    if log.strip():
        crash.notes.append("server log (last lines):\n" + "\n".join(log.strip().splitlines()[-40:]))
    crash.deviation = config.expectations.find(result.case.id)
    return crash


def check_reachable(target: Target, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """None when a TCP connection to the target opens within `timeout`, else why not, briefly.

    The reasons read after "cannot reach HOST:PORT: ": "name does not resolve", "connection
    refused", "no answer within 5 s", or the system's words for anything else. The name is
    looked up in a helper thread because getaddrinfo has no timeout of its own.
    """
    addresses = _resolve(target.host, target.port, timeout)
    if isinstance(addresses, str):
        return addresses
    deadline = time.monotonic() + timeout
    first_problem: str | None = None
    for family, kind, proto, _, address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.settimeout(remaining)
                sock.connect(address)
            return None
        except ConnectionRefusedError:
            problem = "connection refused"
        except TimeoutError:
            problem = f"no answer within {timeout:g} s"
        except OSError as exc:
            problem = _lower_first(exc.strerror or str(exc))
        first_problem = first_problem or problem  # like socket.create_connection: the first error
    return first_problem or f"no answer within {timeout:g} s"


_AddressInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]


def _resolve(host: str, port: int, timeout: float) -> Sequence[_AddressInfo] | str:
    """The target's addresses, or why there are none (the lookup may take at most `timeout`)."""
    found: list[Sequence[_AddressInfo] | BaseException] = []

    def look_up() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:  # UnicodeError: a name IDNA cannot encode
            found.append(exc)

    # A daemon thread, so a resolver stuck past the timeout does not hold up the exit.
    thread = threading.Thread(target=look_up, name="gearspec-resolve", daemon=True)
    thread.start()
    thread.join(timeout)
    if not found:
        return f"the name did not resolve within {timeout:g} s"
    result = found[0]
    if isinstance(result, socket.gaierror):
        if result.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)):
            return "name does not resolve"
        return f"name lookup failed: {_lower_first(result.strerror or str(result))}"
    if isinstance(result, BaseException):
        return f"name lookup failed: {result}"
    return result or "name does not resolve"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def clean_up(target: Target, config: RunConfig) -> str | None:
    """Drain every job queued under the run's function names (they are unique to the run), so
    a long-lived server does not keep, or replay at its next start, what the cases left.

    Returns a line for the user when jobs could not be drained or are still queued, else None.
    """
    from gearspec.reference.cleanup import cancel, drain, leftover

    tls = target.tls.context if target.tls is not None else None
    try:
        drain(target.host, target.port, config.names_used, timeout=max(10.0, config.timeout), tls=tls)
        if leftover(target.host, target.port, config.names_used, tls=tls) != 0:  # epoch jobs not due yet, or unknown
            cancel(target.host, target.port, config.handles_created, tls=tls)
        left = leftover(target.host, target.port, config.names_used, tls=tls)
    except OSError as exc:  # TimeoutError and ConnectionError included
        if config.destructive:  # a destructive case may have stopped the target on purpose
            return None
        return f"warning: could not drain the run's jobs from {target.address}: {os_reason(exc)}"
    if left:
        return f"note: {left} job(s) of this run are still queued on {target.address} (not due yet, or running)"
    return None


def probe_target(target: Target, timeout: float = 3.0, barrier: str = "echo") -> str | None:
    """None when the target accepts a connection and answers a round trip, else what is wrong.

    The round trip is ECHO_REQ, or GET_STATUS for targets without ECHO (`barrier="status"`).
    """
    if barrier == "status":
        request, reply, what = Packet.request(PacketType.GET_STATUS, b"gearspec-probe"), "STATUS_RES", "GET_STATUS"
    else:
        request, reply, what = Packet.request(PacketType.ECHO_REQ, b"gearspec-probe"), "ECHO_RES", "ECHO_REQ"
    try:
        sock = socket.create_connection((target.host, target.port), timeout=timeout)
        if target.tls is not None:
            sock = target.tls.context.wrap_socket(sock, server_hostname=target.host)
    except TimeoutError:
        return f"no answer from {target.address} within {timeout:g} s (connect timed out)"
    except OSError as exc:
        return f"cannot connect to {target.address}: {exc.strerror or exc}"
    with sock:
        try:
            sock.settimeout(timeout)
            sock.sendall(request.to_bytes())
            decoder = Decoder(Magic.RES, lenient=True)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    return f"{target.address} closed the connection instead of answering {what}"
                decoder.receive_data(chunk)
                for event in decoder:
                    if getattr(event, "name", None) == reply:
                        return None
                    return f"{target.address} answered {what} with {describe(event)}"
        except TimeoutError:
            return f"{target.address} accepted a connection but did not answer {what} within {timeout:g} s"
        except OSError as exc:
            return f"{target.address}: {exc.strerror or exc}"
        except Exception as exc:
            return f"{target.address} sent bytes that are not Gearman: {exc}"
    return f"{target.address} did not answer {what} within {timeout:g} s"
