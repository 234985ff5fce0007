"""`gearspec diff`: run the same scripts against several servers and print where they differ.

    gearspec diff --targets reference,gearmand,perl,gear
    gearspec diff --targets gearmand,local:perl,127.0.0.1:4730 --source model --count 50 --seed 7
    gearspec diff --targets reference,gearmand --source cases --select framing --json diff.json

Three sources of scripts (`--source`, default all three), each run against every target:

- `cases`: every selected conformance case: what each server sent back, connection by
  connection, and the case's outcome;
- `model`: seeded scripts of the stateful model's actions (`gearspec.fuzz.model`): two
  clients and two workers submit in every variant, register, grab, sleep, report work, ask
  for status, set options and disconnect; after every action a round trip on every
  connection collects what each one received, so the transcript says which action caused
  which packet. A step that needs a job handle uses the one *this* server sent (the job its
  worker holds, the n-th handle of the run), so a script replays on any server;
- `streams`: seeded streams of valid request packets (the network fuzzer's `valid` family),
  each on a fresh connection, then everything the server sends until it has been quiet for
  `--quiet`.

Transcripts are normalised before they are compared: job handles become H#1, H#2... in order
of appearance, the round trips that order them (ECHO_RES, or STATUS_RES of a barrier token)
are dropped or folded to <barrier>, function names lose their per-run prefix, and timing is
dropped. Scripts whose differences look the same (the same targets agree, the first
differing line is the same) are grouped; the shortest of a group is shrunk (steps or packets
dropped while the difference stays) and printed with a command that runs it again. Targets
are what `gearspec test --target` takes (HOST:PORT, local:NAME, impl:NAME, docker:IMAGE) or a
bare registry name (reference, gearmand, perl, gear: started as local processes on port 0).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from gearspec.conformance.capabilities import detect_capabilities
from gearspec.conformance.harness import Target, describe, is_barrier_reply
from gearspec.conformance.registry import all_cases, select_cases
from gearspec.conformance.runner import RunConfig, run_cases

from gearspec.cli import unwritable
from gearspec.codec import CLOSED, NEED_DATA, Decoder, Packet, RawPacket
from gearspec.errors import ProtocolError, os_reason
from gearspec.spec import Magic, PacketType

__all__ = [
    "SOURCES",
    "Difference",
    "Step",
    "configure_diff",
    "diff_targets",
    "model_scripts",
    "normalise",
    "run_diff",
    "run_model_script",
    "valid_streams",
]

SOURCES = ("cases", "model", "streams")

_HANDLE = re.compile(r"H:[^\s'\\]*?:\d+")
_BARRIER = re.compile(r"(ECHO_RES data|STATUS_RES handle|STATUS_RES payload)='gs-barrier-[0-9a-f]+[^']*'[^|]*")


def normalise(lines: Sequence[str]) -> list[str]:
    """Handles renamed by order of appearance, barrier replies folded, per script."""
    names: dict[str, str] = {}

    def handle(match: re.Match[str]) -> str:
        return names.setdefault(match.group(0), f"H#{len(names) + 1}")

    return [_HANDLE.sub(handle, _BARRIER.sub("<barrier>", line)) for line in lines]


# -- differences and their grouping --------------------------------------------------------------

_STEP_NUMBER = re.compile(r"^\d+: (?:[cw]\d )?")
_NUMBERED = re.compile(r"H#\d+")
_VALUE = re.compile(r"(\w+)='(?:[^'\\]|\\.)*'(?:…\(\d+ bytes\))?")
_REQUEST = re.compile(r" -> (?:REQ )?(\w+)")


def _shape(line: str) -> str:
    """A line without what varies between scripts that show the same difference: step
    numbers, connection names, handle numbers and argument values (ERROR codes stay)."""

    def value(match: re.Match[str]) -> str:
        return match.group(0) if match.group(1) == "code" else f"{match.group(1)}=…"

    return _VALUE.sub(value, _NUMBERED.sub("H#", _STEP_NUMBER.sub("", line)))


@dataclass
class Difference:
    """One script whose normalised transcript is not the same on every target.

    `script` names it ("case framing/magic/2", "model/7", "stream/17"); `sent` is what it
    sends, `transcripts` what each target sent back (normalised). `also` lists the other
    scripts that showed the same difference (see `signature`); `rerun` runs this one again.
    """

    script: str
    sent: list[str]
    transcripts: dict[str, list[str]] = field(default_factory=dict)  # target -> lines
    also: list[str] = field(default_factory=list)
    rerun: str = ""
    shrunk_from: int | None = None  # steps or packets before shrinking

    def groups(self) -> list[tuple[list[str], list[str]]]:
        """(targets, transcript) with targets that agree grouped together."""
        out: list[tuple[list[str], list[str]]] = []
        for name, lines in self.transcripts.items():
            for names, seen in out:
                if seen == lines:
                    names.append(name)
                    break
            else:
                out.append(([name], lines))
        return out

    def first_divergence(self) -> int:
        """The index of the first line where the transcripts differ."""
        lists = list(self.transcripts.values())
        index = 0
        while all(index < len(lines) for lines in lists) and len({lines[index] for lines in lists}) == 1:
            index += 1
        return index

    def signature(self) -> tuple[Any, ...]:
        """Which targets agree, the first line where they part (its shape: see `_shape`)
        and, for a model script, the request before it: equal signatures are one difference."""
        index = self.first_divergence()
        kind = self.script.split("/")[0].split(" ")[0]
        if kind == "model":  # the request that made the targets part
            before = [
                m.group(1) for line in next(iter(self.transcripts.values()))[:index] if (m := _REQUEST.search(line))
            ]
            kind += f" after {before[-1]}" if before else ""
        return kind, tuple(
            (tuple(names), _shape(lines[index]) if index < len(lines) else "(end)") for names, lines in self.groups()
        )

    def graded(self) -> str | None:
        """For a case: how its outcome differs (the case grades the difference), else None."""
        outcomes = {
            name: lines[-1] for name, lines in self.transcripts.items() if lines and lines[-1].startswith("outcome: ")
        }
        if not self.script.startswith("case ") or len(set(outcomes.values())) < 2:
            return None
        return "; ".join(f"{name} {outcome.removeprefix('outcome: ')}" for name, outcome in outcomes.items())

    def to_data(self) -> dict[str, Any]:
        return {
            "script": self.script,
            "sent": self.sent,
            "transcripts": self.transcripts,
            "also": self.also,
            "rerun": self.rerun,
            "graded": self.graded(),
            "shrunk_from": self.shrunk_from,
        }


def _differs(transcripts: dict[str, list[str]]) -> bool:
    return len({tuple(lines) for lines in transcripts.values()}) > 1


# -- the stateful model's scripts -------------------------------------------------------------

_CLIENTS = ("c0", "c1")
_WORKERS = ("w0", "w1")
_CONNS = (*_CLIENTS, *_WORKERS)
_FUNCTIONS = ("f0", "f1", "f0")  # f0 twice: jobs and workers meet more often
_UNIQUES = ("u0", "", "u1")
_DATA = ("d", "", "x\0y")
_SUBMITS = (
    "SUBMIT_JOB",
    "SUBMIT_JOB_BG",
    "SUBMIT_JOB_HIGH",
    "SUBMIT_JOB_HIGH_BG",
    "SUBMIT_JOB_LOW",
    "SUBMIT_JOB_LOW_BG",
)
_GRABS = ("GRAB_JOB", "GRAB_JOB_UNIQ", "GRAB_JOB_ALL")
_WORK = ("WORK_DATA", "WORK_WARNING", "WORK_STATUS", "WORK_COMPLETE", "WORK_FAIL", "WORK_EXCEPTION")
_ASSIGNS = ("JOB_ASSIGN", "JOB_ASSIGN_UNIQ", "JOB_ASSIGN_ALL")
# The model's actions and how often each is drawn.
_WEIGHTS = {
    "submit": 4,
    "can_do": 2,
    "grab": 4,
    "work": 4,
    "pre_sleep": 2,
    "cant_do": 1,
    "status": 1,
    "option": 1,
    "echo": 1,
    "unknown_work": 1,
    "disconnect": 1,
}


@dataclass(frozen=True)
class Step:
    """One action of a model script: `op` on connection `conn` with `args` (names, not bytes:
    function names get a per-run prefix, handles are looked up on the target)."""

    op: str
    conn: str
    args: tuple[str, ...] = ()

    def __str__(self) -> str:
        return " ".join([self.conn, self.op, *(repr(a) for a in self.args)])


def _draw_step(rng: random.Random) -> Step:
    op = rng.choices(list(_WEIGHTS), weights=list(_WEIGHTS.values()))[0]
    client, worker = rng.choice(_CLIENTS), rng.choice(_WORKERS)
    if op == "submit":
        return Step(op, client, (rng.choice(_SUBMITS), rng.choice(_FUNCTIONS), rng.choice(_UNIQUES), rng.choice(_DATA)))
    if op in ("can_do", "cant_do"):
        return Step(op, worker, (rng.choice(_FUNCTIONS),))
    if op == "grab":
        return Step(op, worker, (rng.choice(_GRABS),))
    if op == "work":
        return Step(op, worker, (rng.choice(_WORK), rng.choice(_DATA)))
    if op == "status":
        return Step(op, client, (str(rng.randrange(8)),))
    if op == "echo":
        return Step(op, rng.choice(_CONNS), (rng.choice(_DATA),))
    if op == "disconnect":
        return Step(op, rng.choice(_CONNS))
    return Step(op, client if op == "option" else worker)


def model_scripts(seed: str, count: int, length: int = 12, first: int = 1) -> dict[str, list[Step]]:
    """`count` seeded model scripts ("model/N" -> steps), each drawn from its own seed (so
    model/N is the same script whatever `count` is). Half start with w0 able to do f0."""
    out = {}
    for number in range(first, first + count):
        rng = random.Random(f"diff-model/{seed}/{number}")
        steps = [Step("can_do", "w0", ("f0",))] if rng.random() < 0.5 else []
        steps += [_draw_step(rng) for _ in range(length - len(steps))]
        out[f"model/{number}"] = steps
    return out


class _ModelRun:
    """One run of a model script against one target: connections, handles, transcript."""

    def __init__(self, target: Target, barrier: str | None, wait: float) -> None:
        self.target = target
        self.barrier = barrier
        self.wait = wait
        self.prefix = f"gsd{random.getrandbits(32):08x}_"
        self.socks: dict[str, socket.socket] = {}
        self.decoders: dict[str, Decoder] = {}
        self.handles: list[bytes] = []  # in order of appearance
        self.held: dict[str, bytes] = {}  # worker -> handle of the job it was last assigned
        self.lines: list[str] = []
        self.counter = 0

    def fn(self, name: str) -> bytes:
        return (self.prefix + name).encode()

    def open(self, conn: str) -> None:
        sock = socket.create_connection((self.target.host, self.target.port), timeout=5.0)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.socks[conn] = sock
        self.decoders[conn] = Decoder(Magic.RES, lenient=True, admin=False)

    def close(self, conn: str) -> None:
        sock = self.socks.pop(conn, None)
        if sock is not None:
            sock.close()

    def send(self, number: int, conn: str, packet: Packet) -> None:
        if conn not in self.socks:
            self.open(conn)
            self.lines.append(f"{number}: {conn} reconnected")
        self.lines.append(f"{number}: {conn} -> {describe(packet).replace(self.prefix, '')}")
        try:
            self.socks[conn].sendall(packet.to_bytes())
        except OSError as exc:
            self.lines.append(f"{number}: {conn} send failed: {os_reason(exc)}")
            self.close(conn)

    def _note(self, conn: str, event: Packet | RawPacket) -> None:
        handle = event.args[0] if isinstance(event, Packet) and event.args else None
        if handle is None or event.type not in (PacketType.JOB_CREATED, *map(PacketType.__getitem__, _ASSIGNS)):
            return
        if handle not in self.handles:
            self.handles.append(handle)
        if event.type.name in _ASSIGNS:
            self.held[conn] = handle

    def collect(self, number: int, conn: str) -> None:
        """A round trip on `conn`; what arrived before its reply goes to the transcript."""
        sock, decoder = self.socks[conn], self.decoders[conn]
        self.counter += 1
        token = f"gs-barrier-{self.counter:08x}".encode()
        if self.barrier is not None:
            request = PacketType.ECHO_REQ if self.barrier == "echo" else PacketType.GET_STATUS
            with contextlib.suppress(OSError):
                sock.sendall(Packet.request(request, token).to_bytes())
        deadline = time.monotonic() + (self.wait if self.barrier else min(self.wait, 0.2))
        while True:
            try:
                event = decoder.next_event()
            except ProtocolError as exc:
                self.lines.append(f"{number}: {conn} <- undecodable: {exc.message}")
                self.close(conn)
                return
            if event is CLOSED:
                self.lines.append(f"{number}: {conn} closed by the server")
                self.close(conn)
                return
            if isinstance(event, (Packet, RawPacket)):
                if is_barrier_reply(event, token):
                    return
                self._note(conn, event)
                self.lines.append(f"{number}: {conn} <- {describe(event).replace(self.prefix, '')}")
                continue
            assert event is NEED_DATA
            left = deadline - time.monotonic()
            if left <= 0:
                if self.barrier is not None:
                    self.lines.append(f"{number}: {conn} no reply to the round trip")
                return
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            decoder.receive_data(data)

    def packet(self, step: Step) -> Packet | None:
        """The packet a step sends on this target (handles are this target's), or None."""
        op, args = step.op, step.args
        if op == "submit":
            return Packet.request(args[0], self.fn(args[1]), args[2].encode(), args[3].encode())
        if op in ("can_do", "cant_do"):
            return Packet.request(op.upper(), self.fn(args[0]))
        if op == "grab":
            return Packet.request(args[0])
        if op == "pre_sleep":
            return Packet.request("PRE_SLEEP")
        if op == "work":
            handle = self.held.get(step.conn, self.handles[-1] if self.handles else b"H:none:0")
            if args[0] == "WORK_STATUS":
                return Packet.request(args[0], handle, b"1", b"4")
            if args[0] == "WORK_FAIL":
                return Packet.request(args[0], handle)
            return Packet.request(args[0], handle, args[1].encode())
        if op == "unknown_work":
            return Packet.request("WORK_COMPLETE", b"H:none:0", b"")
        if op == "status":
            known = self.handles or [b"H:none:0"]
            return Packet.request("GET_STATUS", known[int(args[0]) % len(known)])
        if op == "option":
            return Packet.request("OPTION_REQ", b"exceptions")
        if op == "echo":
            return Packet.request("ECHO_REQ", args[0].encode())
        return None

    def run(self, steps: Sequence[Step]) -> list[str]:
        try:
            for conn in _CONNS:
                self.open(conn)
        except OSError as exc:
            return [f"connect failed: {os_reason(exc)}"]
        try:
            for number, step in enumerate(steps, start=1):
                if step.op == "disconnect":
                    self.close(step.conn)
                    self.held.pop(step.conn, None)
                    self.lines.append(f"{number}: {step.conn} disconnects")
                    with contextlib.suppress(OSError):
                        self.open(step.conn)
                else:
                    packet = self.packet(step)
                    assert packet is not None
                    try:
                        self.send(number, step.conn, packet)
                    except OSError as exc:
                        self.lines.append(f"{number}: {step.conn} cannot reconnect: {os_reason(exc)}")
                        continue
                for conn in sorted(self.socks, key=lambda c: (c != step.conn, c)):
                    self.collect(number, conn)
        finally:
            for conn in list(self.socks):
                self.close(conn)
            if self.target.kind == "address":  # a shared server: take this run's jobs back
                from gearspec.reference.cleanup import drain

                with contextlib.suppress(OSError):
                    drain(self.target.host, self.target.port, [self.fn(f) for f in set(_FUNCTIONS)], timeout=5.0)
        return self.lines


def run_model_script(
    target: Target, steps: Sequence[Step], barrier: str | None = "echo", wait: float = 1.0
) -> list[str]:
    """Run one model script against `target`; its transcript (not yet normalised).

    `barrier` is the round trip that collects what each connection received after a step:
    "echo", "status" (GET_STATUS of a token, for servers without ECHO) or None (wait for
    quiet)."""
    return _ModelRun(target, barrier, wait).run(steps)


# -- packet streams ---------------------------------------------------------------------------


def valid_streams(seed: str, count: int, length: int = 4, first: int = 1) -> dict[str, list[bytes]]:
    """`count` seeded streams ("stream/N" -> packets) of `length` valid request packets (the
    fuzzer's `valid` family); stream/N does not depend on `count`."""
    from gearspec.fuzz.strategies import RandomChooser, valid_packet

    out = {}
    for number in range(first, first + count):
        chooser = RandomChooser(random.Random(f"diff-stream/{seed}/{number}"))
        out[f"stream/{number}"] = [valid_packet(chooser).to_bytes() for _ in range(length)]
    return out


def _stream_transcript(target: Target, packets: Sequence[bytes], quiet: float) -> list[str]:
    try:
        sock = socket.create_connection((target.host, target.port), timeout=5.0)
    except OSError as exc:
        return [f"connect failed: {os_reason(exc)}"]
    lines: list[str] = []
    decoder = Decoder(Magic.RES, lenient=True)
    with sock:
        try:
            sock.sendall(b"".join(packets))
        except OSError as exc:
            return [f"send failed: {os_reason(exc)}"]
        deadline = time.monotonic() + 5.0  # a stream that makes a server talk without end
        while time.monotonic() < deadline:
            sock.settimeout(quiet)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except OSError:
                lines.append("reset by the server")
                break
            if not chunk:
                lines.append("closed by the server")
                break
            decoder.receive_data(chunk)
            try:
                lines += [describe(event) for event in decoder]
            except ProtocolError as exc:
                lines.append(f"undecodable: {exc.message}")
                break
    return lines


def _decoded(raw: bytes) -> list[str]:
    from gearspec.codec import decode

    return [describe(event) for event in decode(raw, lenient=True)]


# -- running against every target ---------------------------------------------------------------

T = TypeVar("T")


def _on_all(targets: dict[str, Target], work: Callable[[str, Target], T]) -> dict[str, T]:
    """`work` for every target at once (one thread each); the first exception is raised."""
    results: dict[str, T] = {}
    errors: dict[str, str] = {}

    def run(name: str, target: Target) -> None:
        try:
            results[name] = work(name, target)
        except Exception as exc:  # one target's failure must not hide the others
            errors[name] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=run, args=item, name=f"diff {item[0]}") for item in targets.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError("; ".join(f"{spec}: {why}" for spec, why in errors.items()))
    return {name: results[name] for name in targets}


def _target_spec(spec: str) -> str:
    """A bare registry name (gearmand) means its local server (local:gearmand)."""
    from gearspec.conformance.impls import load_registry
    from gearspec.conformance.servers.targets import target_is_address

    if target_is_address(spec) and ":" not in spec and spec in load_registry().local_servers():
        return f"local:{spec}"
    return spec


@contextlib.contextmanager
def _opened(specs: Sequence[str]) -> Iterator[dict[str, Target]]:
    from gearspec.conformance.servers.targets import open_target

    with contextlib.ExitStack() as stack:
        opened: dict[str, Target] = {}
        for number, spec in enumerate(specs):
            name = spec if spec not in opened else f"{spec}#{number + 1}"  # the same server twice
            target = opened[name] = stack.enter_context(open_target(_target_spec(spec)))
            try:  # a target that does not answer is bad usage, not a difference
                socket.create_connection((target.host, target.port), timeout=5.0).close()
            except OSError as exc:
                raise RuntimeError(f"{spec} does not answer ({os_reason(exc)}); is the server running?") from None
        yield opened


def _case_transcripts(
    target: Target, select: Sequence[str], seed: str, wait: float
) -> dict[str, tuple[list[str], list[str]]]:
    cases = select_cases(all_cases(), select)
    config = RunConfig(wait=wait, timeout=10.0, seed=seed, run_token=seed[:4])
    out = {}
    for result in run_cases(cases, target, config, jobs=4):
        sent = [f"{e.conn} -> {e.summary}" for e in result.trace if e.direction == "send"]
        got = [f"{e.conn} <- {e.summary}" for e in result.trace if e.direction == "recv"]
        got += [
            f"{e.conn} -- {e.summary}"
            for e in result.trace
            if e.direction == "event" and "closed by the server" in e.summary
        ]
        got.append(f"outcome: {result.outcome.value}")
        out[f"case {result.case.id}"] = (sent, got)
    return out


@dataclass
class _Plan:
    """What one diff runs: sources, seed and sizes (also what a rerun line repeats)."""

    sources: Sequence[str] = SOURCES
    select: Sequence[str] = ()
    count: int = 30
    seed: str = "diff"
    wait: float = 1.0
    quiet: float = 0.3
    only: Sequence[str] = ()  # "model/7", "stream/3": run just these
    shrink: int = 10  # reruns allowed per difference while shrinking

    def wanted(self, script: str) -> bool:
        return not self.only or script in self.only

    def rerun(self, targets: Sequence[str], script: str) -> str:
        head = f"gearspec diff --targets {','.join(targets)}"
        if script.startswith("case "):
            return f"{head} --source cases --select {script.removeprefix('case ')}"
        kind = script.split("/")[0]
        return f"{head} --source {kind if kind == 'model' else 'streams'} --seed {self.seed} --only {script}"


def diff_targets(
    targets: Sequence[str],
    select: Sequence[str] = (),
    count: int = 30,
    seed: str = "diff",
    wait: float = 1.0,
    quiet: float = 0.3,
    sources: Sequence[str] = SOURCES,
    only: Sequence[str] = (),
    shrink: int = 10,
) -> list[Difference]:
    """Run the scripts of `sources` against every target; the differences, grouped.

    Each returned `Difference` is the shortest (and, for model scripts and streams, shrunk)
    script of its group; `also` names the other scripts of the group."""
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        raise ValueError(f"unknown source {', '.join(unknown)}; known: {', '.join(SOURCES)}")
    plan = _Plan(sources, select, count, seed, wait, quiet, only, shrink)
    models = (
        {k: v for k, v in model_scripts(seed, _span(only, "model", count)).items() if plan.wanted(k)}
        if "model" in sources
        else {}
    )
    streams = (
        {k: v for k, v in valid_streams(seed, _span(only, "stream", count)).items() if plan.wanted(k)}
        if "streams" in sources
        else {}
    )
    with _opened(targets) as opened:
        barriers = _on_all(opened, lambda _, t: detect_capabilities(t.host, t.port, wait).barrier) if models else {}

        def model_run(steps: Sequence[Step]) -> dict[str, list[str]]:
            got = _on_all(opened, lambda name, t: run_model_script(t, steps, barriers[name], wait))
            return {name: normalise(lines) for name, lines in got.items()}

        def stream_run(packets: Sequence[bytes]) -> dict[str, list[str]]:
            got = _on_all(opened, lambda _, t: _stream_transcript(t, packets, quiet))
            return {name: normalise(lines) for name, lines in got.items()}

        def whole(name: str, target: Target) -> dict[str, tuple[list[str], list[str]]]:
            out = _case_transcripts(target, select, seed, wait) if "cases" in sources and not only else {}
            for script, steps in models.items():
                out[script] = (_step_lines(steps), run_model_script(target, steps, barriers[name], wait))
            for script, packets in streams.items():
                out[script] = (_packet_lines(packets), _stream_transcript(target, packets, quiet))
            return out

        found = _on_all(opened, whole)
        names = list(opened)
        differences = []
        for script, (sent, _) in found[names[0]].items():
            transcripts = {name: normalise(found[name][script][1]) for name in names if script in found[name]}
            if _differs(transcripts):
                differences.append(Difference(script, normalise(sent), transcripts))
        grouped = _group(differences, models, streams)
        for difference in grouped:
            script = difference.script
            if script in models and len(models[script]) > 1:
                steps, difference.transcripts = _shrink(models[script], difference, model_run, plan.shrink)
                if len(steps) < len(models[script]):
                    difference.shrunk_from = len(models[script])
                difference.sent = _step_lines(steps)
            elif script in streams and len(streams[script]) > 1:
                packets, difference.transcripts = _shrink(streams[script], difference, stream_run, plan.shrink)
                if len(packets) < len(streams[script]):
                    difference.shrunk_from = len(streams[script])
                difference.sent = _packet_lines(packets)
            difference.rerun = plan.rerun(targets, script)
    return grouped


def _span(only: Sequence[str], kind: str, count: int) -> int:
    """How many scripts of `kind` to make: `count`, or up to the highest one `only` names."""
    numbers = [int(s.split("/")[1]) for s in only if s.startswith(f"{kind}/") and s.split("/")[1].isdigit()]
    return (max(numbers) if numbers else 0) if only else count


def _step_lines(steps: Sequence[Step]) -> list[str]:
    return [f"{n}: {step}" for n, step in enumerate(steps, start=1)]


def _packet_lines(packets: Sequence[bytes]) -> list[str]:
    return [line for raw in packets for line in _decoded(raw)]


def _group(
    differences: list[Difference], models: dict[str, list[Step]], streams: dict[str, list[bytes]]
) -> list[Difference]:
    """One difference per signature: the one with the shortest script, the rest in `also`."""

    def size(d: Difference) -> tuple[int, int]:
        return (len(models.get(d.script, streams.get(d.script, d.sent))), len(d.sent))

    groups: dict[tuple[Any, ...], list[Difference]] = {}
    for difference in differences:
        groups.setdefault(difference.signature(), []).append(difference)
    out = []
    for members in groups.values():
        best = min(members, key=size)
        best.also = [d.script for d in members if d is not best]
        out.append(best)
    return out


U = TypeVar("U")


def _shrink(
    units: list[U], difference: Difference, run: Callable[[Sequence[U]], dict[str, list[str]]], budget: int
) -> tuple[list[U], dict[str, list[str]]]:
    """Drop units (steps or packets) while the script still shows the same difference;
    at most `budget` reruns. Returns the shortest script found and its transcripts."""
    want = difference.signature()
    best, transcripts = list(units), difference.transcripts
    chunk = max(1, len(best) // 2)
    while budget > 0 and chunk >= 1:
        progress = False
        start = len(best) - chunk
        while start >= 0 and budget > 0:
            candidate = best[:start] + best[start + chunk :]
            if candidate:
                budget -= 1
                got = run(candidate)
                trial = Difference(difference.script, [], got)
                if _differs(got) and trial.signature() == want:
                    best, transcripts, progress = candidate, got, True
            start -= chunk
        if not progress:
            chunk //= 2
    return best, transcripts


# -- the command --------------------------------------------------------------------------------


SUMMARIES = {"diff": "run the same scripts against several servers and print the differences"}


def configure_diff(parser: argparse.ArgumentParser) -> None:
    parser.epilog = """\
examples:
  gearspec diff --targets reference,gearmand,perl,gear
  gearspec diff --targets gearmand,127.0.0.1:4730 --source model,streams --count 100 --seed 7
  gearspec diff --targets reference,gearmand --source cases --select 'priority/*' --json diff.json
  gearspec diff --targets reference,perl --source model --seed 7 --only model/12

exit status:
  0    every target behaved the same
  1    differences found (printed, and in --json)
  2    bad usage, or a target that cannot be started or reached
"""
    parser.add_argument(
        "--targets",
        required=True,
        metavar="A,B[,C...]",
        help="servers, comma-separated: local server names (reference, gearmand, perl, gear), HOST:PORT, "
        "local:NAME, impl:NAME or docker:IMAGE",
    )
    parser.add_argument(
        "--source",
        default=",".join(SOURCES),
        metavar="S[,S...]",
        help=f"scripts to run: {', '.join(SOURCES)} (default: all)",
    )
    parser.add_argument(
        "--select", "-k", action="append", default=[], metavar="GLOB", help="cases to diff (default: all)"
    )
    parser.add_argument(
        "--count",
        type=int,
        default=30,
        metavar="N",
        help="model scripts and packet streams to make (each; default %(default)s)",
    )
    parser.add_argument(
        "--seed", default="diff", help="seed of names, payloads, model scripts and streams (default %(default)s)"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="SCRIPT",
        help="run only this model script or stream (model/7, stream/3), as the rerun lines do",
    )
    parser.add_argument(
        "--shrink",
        type=int,
        default=10,
        metavar="N",
        help="reruns allowed to shrink each difference (0: do not shrink; default %(default)s)",
    )
    parser.add_argument("--wait", type=float, default=1.0, metavar="S", help="the wait for one reply or round trip")
    parser.add_argument(
        "--quiet", type=float, default=0.3, metavar="S", help="a stream's transcript ends after S seconds of silence"
    )
    parser.add_argument("--json", metavar="FILE", help="write the differences as JSON")


_ONLY = re.compile(r"(model|stream)/[1-9]\d*")


def print_differences(differences: Sequence[Difference], out: Any = sys.stdout) -> None:
    """The report: one block per difference, targets that agree grouped."""
    for difference in differences:
        also = (
            f" (and {len(difference.also)} more alike: {', '.join(difference.also[:6])}{', ...' if len(difference.also) > 6 else ''})"
            if difference.also
            else ""
        )
        print(f"== {difference.script}{also}", file=out)
        graded = difference.graded()
        if graded:
            print(f"   graded by the case: {graded}", file=out)
        print(f"   rerun: {difference.rerun}", file=out)
        if difference.shrunk_from:
            print(f"   shrunk from {difference.shrunk_from} to {len(difference.sent)}", file=out)
        for line in difference.sent[:12]:
            print(f"   sent {line}", file=out)
        skip = max(0, difference.first_divergence() - 4)
        for names, lines in difference.groups():
            print(f"   {', '.join(names)}:", file=out)
            if skip:
                print(f"      ... {skip} equal lines", file=out)
            for line in lines[skip : skip + 12]:
                print(f"      {line}", file=out)


def run_diff(args: argparse.Namespace) -> int:
    """Print the differences; exit 0 when there are none, 1 when there are, 2 on bad usage."""
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    sources = [s.strip() for s in args.source.split(",") if s.strip()]
    problem = None
    if len(targets) < 2:
        problem = "--targets needs at least two servers"
    elif not sources or set(sources) - set(SOURCES):
        problem = f"--source: unknown {', '.join(sorted(set(sources) - set(SOURCES))) or 'nothing'}; known: {', '.join(SOURCES)}"
    elif args.count < 0 or args.shrink < 0:
        problem = "--count and --shrink must be 0 or more"
    elif any(not _ONLY.fullmatch(s) for s in args.only):
        problem = f"--only takes model/N or stream/N, not {next(s for s in args.only if not _ONLY.fullmatch(s))!r}"
    elif args.json:
        problem = unwritable(args.json)  # before the run, not after minutes of it
    if problem is not None:
        print(f"gearspec diff: {problem}", file=sys.stderr)
        return 2
    try:
        differences = diff_targets(
            targets, args.select, args.count, args.seed, args.wait, args.quiet, sources, args.only, args.shrink
        )
    except (RuntimeError, ValueError, OSError) as exc:
        print(f"gearspec diff: {exc}", file=sys.stderr)
        return 2
    print_differences(differences)
    scripts = sum(1 + len(d.also) for d in differences)
    ungraded = sum(1 for d in differences if not d.graded())
    print(
        f"gearspec diff: {len(differences)} differences ({scripts} scripts; {ungraded} not graded by a case outcome) "
        f"among {', '.join(targets)}"
    )
    if args.json:
        try:
            Path(args.json).write_text(json.dumps([d.to_data() for d in differences], indent=1))
        except OSError as exc:  # the verdict above stands; its exit status too
            print(f"gearspec diff: cannot write {args.json}: {os_reason(exc)}", file=sys.stderr)
    return 1 if differences else 0
