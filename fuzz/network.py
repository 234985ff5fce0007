"""The network fuzzer: send generated and mutated input to a live job server and watch it.

Each step draws one `Case` from the families in `gearspec.fuzz.strategies` with a random
generator seeded by (seed, step), so any step can be replayed alone. A step:

1. opens a connection and sends the case's bytes (in one or a few writes);
2. when the case is framed (ends on a packet or line boundary), sends a probe request
   (ECHO_REQ, or admin `status` for servers without ECHO) after it on the same connection and
   waits, with a deadline, for the answer or for the server to close the connection; a
   stall is a *connection hang*. Otherwise it half-closes and listens briefly;
3. decodes everything the server sent: bytes that do not decode (wrong magic, bad framing,
   bad arguments) are a *protocol violation*;
4. checks the target still answers on a fresh connection (rotating through the probes it
   answered at the start: ECHO_REQ, admin `version`, admin `status`) within the deadline:
   a refused connection or a vanished process is a *crash*, no answer is a *hang*,
   connections closed unanswered by a live process is *broken*; the run stops there;
5. with a PID, samples the target's RSS: growth beyond `rss_limit` is *resource growth*.

Only the given target is touched; non-loopback targets need `allow_remote`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import random
import re
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from gearspec.fuzz.strategies import FAMILIES, Case, RandomChooser

from gearspec.address import AddressError, parse_address
from gearspec.codec import AdminLine, Decoder, Packet
from gearspec.errors import ProtocolError
from gearspec.export import event_as_data
from gearspec.spec import Magic, PacketType

__all__ = [
    "PROBES",
    "Finding",
    "FuzzConfig",
    "FuzzReport",
    "TargetError",
    "case_for_step",
    "parse_duration",
    "parse_target",
    "probe",
    "read_rss",
    "run_network_fuzz",
    "working_probes",
]


class TargetError(Exception):
    """The target cannot be fuzzed (dead, not loopback without permission, bad address)."""


def parse_target(text: str, allow_remote: bool = False) -> tuple[str, int]:
    """``HOST:PORT`` → (host, port); refuses non-loopback hosts unless `allow_remote`."""
    try:
        host, port = parse_address(text, None)
    except AddressError as exc:
        raise TargetError(f"target {exc}") from None
    if not allow_remote:
        try:
            addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
        except socket.gaierror as exc:
            raise TargetError(f"cannot resolve {host!r}: {exc.strerror}") from None
        remote = sorted(a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback)
        if remote:
            raise TargetError(
                f"{host} is not a loopback address ({', '.join(remote)}); fuzzing someone else's server "
                "can take it down: pass --allow-remote if it is yours"
            )
    return host, port


def parse_duration(text: str) -> float:
    """``60``, ``60s``, ``5m``, ``1h`` or ``250ms`` → seconds."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix):
            number, scale = text[: -len(suffix)], units[suffix]
            break
    else:
        number, scale = text, 1.0
    try:
        value = float(number) * scale
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (use e.g. 60s, 5m, 250ms)") from None
    if value <= 0:
        raise ValueError(f"duration must be positive: {text!r}")
    return value


@dataclass
class FuzzConfig:
    """What to fuzz and for how long. `families` limits the generators (None: all)."""

    host: str
    port: int
    budget: float = 60.0
    seed: int = 0
    pid: int | None = None
    deadline: float = 2.0  # seconds for any expected answer
    quiet: float = 0.05  # seconds to listen after a case that leaves the server waiting
    max_steps: int | None = None
    first_step: int = 0
    families: tuple[str, ...] | None = None
    probes: tuple[str, ...] | None = None  # None: every probe in PROBES the target answers
    rss_limit: int = 64 * 1024 * 1024  # bytes of RSS growth that count as a finding
    cleanup: bool = True  # drain the jobs the run submitted when it ends
    progress: Callable[[str], None] | None = None
    progress_every: float = 5.0  # seconds between progress lines


@dataclass
class Finding:
    """One problem, with what is needed to reproduce it."""

    # crash: refused connections or the process is gone; hang: a fresh connection gets no
    # answer; broken: fresh connections are closed unanswered while the process lives;
    # connection_hang: the fuzzing connection stalled after a complete case;
    # protocol_violation: a reply that does not decode; resource_growth: RSS over the limit.
    kind: str
    step: int
    seed: int
    family: str
    detail: str
    sent_hex: str = ""
    note: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    replay: str = ""  # this step alone, on a fresh server
    replay_run: str = ""  # every step up to this one (for findings that need earlier state)
    repeats: int = 0  # later steps with the same kind, family and detail (not listed again)


@dataclass
class FuzzReport:
    """The outcome of a run; `as_data()` is what `--json` writes."""

    target: str
    seed: int
    budget: float
    steps: int = 0
    packets_sent: int = 0
    checks: int = 0
    elapsed: float = 0.0
    stopped: str = ""
    rss_start: int | None = None
    rss_max: int | None = None
    families: dict[str, int] = field(default_factory=dict)
    probes: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    drained: int = 0  # jobs the run had queued and took back off the server at its end

    @property
    def crashes(self) -> int:
        return sum(f.kind == "crash" for f in self.findings)

    @property
    def hangs(self) -> int:
        return sum(f.kind in ("hang", "connection_hang") for f in self.findings)

    def as_data(self) -> dict[str, Any]:
        data = asdict(self)
        data["summary"] = {kind: sum(f.kind == kind for f in self.findings) for kind in _KINDS}
        data["packets_per_second"] = round(self.packets_sent / self.elapsed, 1) if self.elapsed else 0.0
        return data

    def to_json(self) -> str:
        return json.dumps(self.as_data(), indent=2)


_KINDS = ("crash", "hang", "broken", "connection_hang", "protocol_violation", "resource_growth")


def case_for_step(seed: int, step: int, families: tuple[str, ...] | None = None) -> Case:
    """The case a run with `seed` sends at `step` (independent of every other step)."""
    rng = random.Random(f"gearspec-fuzz:{seed}:{step}")
    names = families or tuple(FAMILIES)
    return FAMILIES[rng.choice(names)](RandomChooser(rng))


def read_rss(pid: int) -> int | None:
    """Resident set size of a process in bytes (Linux /proc), None when it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2:][:1] != b"Z"


def _exits_within(pid: int, seconds: float) -> bool:
    """True when the process is gone, or goes within `seconds`: a crashing server may reset
    connections a moment before it exits, and "gone" says more than "refused"."""
    deadline = time.monotonic() + seconds
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)  # no event for the exit of a process we did not start
    return True


# Admin replies may echo long request tokens back: the 8 KiB request-line cap does not apply.
_MAX_REPLY_LINE = 1 << 20


def _reply_decoder() -> Decoder:
    return Decoder(Magic.RES, max_line=_MAX_REPLY_LINE)


def _connect(host: str, port: int, deadline: float) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=deadline)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


PROBES = ("echo", "version", "status")
"""Ways to ask a server whether it is alive: ECHO_REQ, admin `version`, admin `status`."""

_PROBE_TOKEN = b"gearspec-probe"


def _probe_request(kind: str, token: bytes = _PROBE_TOKEN) -> bytes:
    if kind == "echo":
        return Packet.request(PacketType.ECHO_REQ, token).to_bytes()
    return b"version\n" if kind == "version" else b"status\n"


def _is_probe_answer(kind: str, event: object, token: bytes = _PROBE_TOKEN) -> bool:
    if kind == "echo":
        return isinstance(event, Packet) and event.type == PacketType.ECHO_RES and event.args[0] == token
    if not isinstance(event, AdminLine):
        return False
    # `version` answers one line: "OK 1.1.20" (gearmand) or a bare "1.12" (Perl
    # Gearman::Server, Client.pm TXTCMD_version); any other line (an HTTP server's
    # "HTTP/1.0 400 ...") is not a Gearman answer. `status` ends its block with a lone "."
    # (or one ERR line).
    if kind == "version":
        return event.text.startswith((b"OK ", b"ERR")) or event.text[:1].isdigit()
    return event.text == b"." or event.text.startswith(b"ERR")


def probe(host: str, port: int, deadline: float = 2.0, kind: str = "echo") -> str | None:
    """None when the target answers a probe (`PROBES`) on a fresh connection in time.

    Otherwise what failed: "refused: ..." when no connection could be made or it was closed,
    "timeout: ..." when the target accepted but did not answer, "violation: ..." when the
    answer does not decode.
    """
    try:
        sock = _connect(host, port, deadline)
    except OSError as exc:
        return f"refused: {exc.strerror or exc}"
    try:
        end = time.monotonic() + deadline
        sock.sendall(_probe_request(kind))
        decoder = _reply_decoder()
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return f"timeout: no answer to the {kind} probe within {deadline}s"
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                return f"refused: connection reset while probing ({exc.strerror or exc})"
            if not data:
                return "refused: connection closed before the answer"
            decoder.receive_data(data)
            try:
                for event in decoder:
                    if _is_probe_answer(kind, event):
                        return None
            except ProtocolError as exc:
                return f"violation: probe answer does not decode: {exc}"
    finally:
        sock.close()


def working_probes(host: str, port: int, deadline: float = 2.0) -> tuple[str, ...]:
    """The probes the target answers (python gear's server, for one, has no ECHO or version)."""
    return tuple(kind for kind in PROBES if probe(host, port, deadline, kind) is None)


class _Step:
    """Sending one case on one connection and collecting the answer."""

    def __init__(self, config: FuzzConfig, case: Case, rng: random.Random, marker: str) -> None:
        self.config = config
        self.marker = marker
        self.case = case
        self.rng = rng
        self.received = b""
        self.packets_sent = 0

    def run(self) -> tuple[str | None, str]:
        """(problem kind or None, detail)."""
        cfg = self.config
        try:
            sock = _connect(cfg.host, cfg.port, cfg.deadline)
        except OSError as exc:
            return "crash", f"connection refused before sending: {exc.strerror or exc}"
        token = b"gearspec-fuzz-step"
        try:
            data = self.case.data
            if self.case.framed:
                data += _probe_request(self.marker, token)
            try:
                for chunk in self._chunks(data):
                    sock.sendall(chunk)
                    self.packets_sent += 1
                if not self.case.framed:
                    sock.shutdown(socket.SHUT_WR)
            except OSError:
                # The server may close on bad input before reading everything: fine.
                pass
            return self._collect(sock, token)
        finally:
            sock.close()

    def _chunks(self, data: bytes) -> list[bytes]:
        if len(data) < 2 or self.rng.random() < 0.7:
            return [data]
        cuts = sorted(self.rng.sample(range(1, len(data)), min(len(data) - 1, self.rng.randint(1, 3))))
        bounds = [0, *cuts, len(data)]
        return [data[a:b] for a, b in itertools.pairwise(bounds)]

    def _collect(self, sock: socket.socket, token: bytes) -> tuple[str | None, str]:
        cfg = self.config
        # After an unframed case the server may rightly wait for more bytes: read what it
        # says for a short while only (liveness is the probe's job).
        end = time.monotonic() + (cfg.deadline if self.case.framed else min(cfg.deadline, cfg.quiet))
        decoder = _reply_decoder()
        while True:
            left = end - time.monotonic()
            if left <= 0:
                if self.case.framed:
                    return "connection_hang", (
                        f"no answer to a {self.marker} probe within {cfg.deadline}s after a complete {self.case.family} case "
                        "(the connection neither answered nor closed)"
                    )
                return None, "server kept the half-closed connection open"  # allowed: it may wait
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            if not data:
                decoder.receive_data(b"")
            else:
                self.received += data
                decoder.receive_data(data)
            try:
                for event in decoder:
                    if _is_probe_answer(self.marker, event, token):
                        return None, "answered"
            except ProtocolError as exc:
                if exc.code.value == "LOST_CONNECTION" and not data:
                    return "protocol_violation", f"the server closed the connection inside a reply: {exc}"
                return "protocol_violation", f"reply does not decode: {exc.message} [{exc.code.value}]"
            if not data:
                return None, "closed"

    def received_events(self) -> list[dict[str, Any]]:
        decoder = Decoder(Magic.RES, lenient=True, max_line=_MAX_REPLY_LINE)
        decoder.receive_data(self.received)
        out: list[dict[str, Any]] = []
        try:
            for event in decoder:
                out.append(event_as_data(event))
        except ProtocolError as exc:
            out.append({"error": str(exc), "rest_hex": self.received[decoder.offset:][:256].hex()})
        return out


def run_network_fuzz(config: FuzzConfig) -> FuzzReport:
    """Fuzz the target until the budget or step limit is spent, or it crashes or hangs."""
    target = f"{config.host}:{config.port}"
    report = FuzzReport(target=target, seed=config.seed, budget=config.budget)
    probes = config.probes or working_probes(config.host, config.port, config.deadline)
    if not probes:
        problem = probe(config.host, config.port, config.deadline)
        raise TargetError(f"{target} does not answer before fuzzing ({problem}); is the server running?")
    report.probes = list(probes)
    if config.pid is not None:
        report.rss_start = report.rss_max = read_rss(config.pid)
        if report.rss_start is None:
            raise TargetError(f"no process with PID {config.pid}")
    start = time.monotonic()
    stop_at = start + config.budget
    step = config.first_step
    last_rss_check = last_progress = start
    submitted: set[bytes] = set()  # function names the run submitted jobs for
    created: set[bytes] = set()  # handles of the jobs the server created for the run
    try:
        while True:
            if time.monotonic() >= stop_at:
                report.stopped = "budget spent"
                break
            if config.max_steps is not None and step - config.first_step >= config.max_steps:
                report.stopped = "step limit reached"
                break
            case = case_for_step(config.seed, step, config.families)
            report.families[case.family] = report.families.get(case.family, 0) + 1
            runner = _Step(config, case, random.Random(f"gearspec-chunks:{config.seed}:{step}"), probes[0])
            kind, detail = runner.run()
            report.packets_sent += runner.packets_sent
            report.steps += 1
            submitted.update(_submitted_functions(case.data))
            created.update(_created_handles(runner.received))
            fatal = False
            if kind is not None:
                _add(report, _finding(kind, step, config, case, detail, runner))
                fatal = kind == "crash"
            if not fatal:
                outcome = probe(config.host, config.port, config.deadline, probes[step % len(probes)])
                report.checks += 1
                report.packets_sent += 1
                if outcome is not None:
                    if config.pid is not None and _exits_within(config.pid, 2.0 if outcome.startswith("refused") else 0.0):
                        kind, detail = "crash", f"the target process {config.pid} is gone ({outcome})"
                    elif outcome.startswith("refused: connection closed") and (config.pid is None or _pid_alive(config.pid)):
                        kind, detail = "broken", f"the target accepts connections but closes them unanswered ({outcome})"
                    elif outcome.startswith("refused"):
                        kind, detail = "crash", f"the target stopped accepting connections ({outcome})"
                    elif outcome.startswith("violation"):
                        kind, detail = "protocol_violation", outcome
                    else:
                        kind, detail = "hang", f"the target no longer answers a fresh connection ({outcome})"
                    _add(report, _finding(kind, step, config, case, detail, runner))
                    fatal = kind in ("crash", "hang", "broken")
            if config.pid is not None and (fatal or time.monotonic() - last_rss_check > 0.5):
                last_rss_check = time.monotonic()
                rss = read_rss(config.pid)
                if rss is not None and report.rss_max is not None:
                    report.rss_max = max(report.rss_max, rss)
            if config.progress is not None and time.monotonic() - last_progress >= config.progress_every:
                last_progress = time.monotonic()
                config.progress(
                    f"{report.steps} steps, {report.packets_sent} packets, {len(report.findings)} findings, "
                    f"{last_progress - start:.0f}s of {config.budget:g}s"
                )
            step += 1
            if fatal:
                report.stopped = f"target down after step {step - 1}"
                break
    except KeyboardInterrupt:
        # Ctrl-C: keep what was found so far; the CLI still prints and saves it.
        report.stopped = "interrupted"
    report.elapsed = time.monotonic() - start
    if config.cleanup and submitted:
        report.drained = _drain(config, submitted, created)
    if config.pid is not None and report.rss_start is not None:
        end_rss = read_rss(config.pid)
        if end_rss is not None:
            report.rss_max = max(report.rss_max or 0, end_rss)
        if report.rss_max is not None and report.rss_max - report.rss_start > config.rss_limit:
            report.findings.append(
                Finding(
                    "resource_growth", step - 1, config.seed, "",
                    f"RSS grew from {report.rss_start // 1024} KiB to {report.rss_max // 1024} KiB "
                    f"(limit {config.rss_limit // 1024} KiB of growth)",
                    replay=_replay_command(config, config.first_step, step - config.first_step),
                )
            )
    return report


def _submitted_functions(data: bytes) -> set[bytes]:
    """The function names of the SUBMIT_* packets in a case's bytes, as a server reads them."""
    decoder = Decoder(Magic.REQ, lenient=True)
    decoder.receive_data(data)
    names: set[bytes] = set()
    try:
        for event in decoder:
            if isinstance(event, Packet) and event.spec.submit is not None:
                names.add(event.args[0])
    except ProtocolError:
        pass  # the rest does not decode: no more packets a server would take either
    return names


def _created_handles(received: bytes) -> set[bytes]:
    decoder = Decoder(Magic.RES, lenient=True, max_line=_MAX_REPLY_LINE)
    decoder.receive_data(received)
    handles: set[bytes] = set()
    with contextlib.suppress(ProtocolError):
        for event in decoder:
            if isinstance(event, Packet) and event.type is PacketType.JOB_CREATED:
                handles.add(event.args[0])
    return handles


def _drain(config: FuzzConfig, functions: set[bytes], handles: set[bytes]) -> int:
    """Take the jobs the run queued back off the server, so that its next worker does not
    get them: grab and fail what can be grabbed, cancel (admin) the epoch jobs not due yet.
    Best effort: the target may be down after a finding."""
    from gearspec.reference.cleanup import cancel, drain, leftover

    timeout = max(10.0, config.deadline * 5)
    try:
        drained = drain(config.host, config.port, functions, timeout=timeout)
        if leftover(config.host, config.port, functions) != 0:  # epoch jobs not due yet, or unknown
            drained += cancel(config.host, config.port, handles, timeout=timeout)
    except OSError:
        return 0
    return drained


def _add(report: FuzzReport, finding: Finding) -> None:
    # The same problem usually shows on many steps: keep the first, count the others.
    def key(f: Finding) -> tuple[str, str]:
        return f.kind, re.sub(r"\d+", "N", f.detail)[:100]

    for known in report.findings:
        if key(known) == key(finding):
            known.repeats += 1
            return
    report.findings.append(finding)


def _replay_command(config: FuzzConfig, step: int, steps: int = 1) -> str:
    families = f" --families {','.join(config.families)}" if config.families else ""
    return (
        f"gearspec fuzz --target {config.host}:{config.port} --seed {config.seed} "
        f"--first-step {step} --steps {steps}{families}"
    )


def _finding(kind: str, step: int, config: FuzzConfig, case: Case, detail: str, runner: _Step) -> Finding:
    return Finding(
        kind=kind,
        step=step,
        seed=config.seed,
        family=case.family,
        detail=detail,
        sent_hex=case.data[:4096].hex(),
        note=case.note,
        received=runner.received_events()[:20],
        replay=_replay_command(config, step),
        replay_run=_replay_command(config, config.first_step, step - config.first_step + 1),
    )


def describe(report: FuzzReport) -> str:
    """A short human summary of a report."""
    summary = report.as_data()["summary"]
    lines = [
        f"gearspec fuzz: {report.target} seed {report.seed}: {report.steps} steps, "
        f"{report.packets_sent} packets in {report.elapsed:.1f}s "
        f"({report.as_data()['packets_per_second']}/s); stopped: {report.stopped}",
        "findings: " + ", ".join(f"{k} {v}" for k, v in summary.items()),
    ]
    if report.rss_start is not None:
        lines.append(f"RSS: {report.rss_start // 1024} KiB at start, {(report.rss_max or 0) // 1024} KiB max")
    if report.drained:
        lines.append(f"cleanup: took {report.drained} job(s) the run had queued back off the server")
    for f in report.findings[:20]:
        lines.append(f"- {f.kind} at step {f.step} ({f.family} {f.note}): {f.detail}")
        if f.sent_hex:
            lines.append(f"    sent: {f.sent_hex[:120]}{'...' if len(f.sent_hex) > 120 else ''}")
        lines.append(f"    replay: {f.replay}")
        if f.replay_run and f.replay_run != f.replay:
            lines.append(f"    or with the state before it: {f.replay_run}")
    if len(report.findings) > 20:
        lines.append(f"... and {len(report.findings) - 20} more (see --json)")
    return "\n".join(lines)

