"""`gearspec diff`: run the same scripts against several servers and print where they differ.

    gearspec diff --targets reference,gearmand,perl,gear
    gearspec diff --targets gearmand,127.0.0.1:4730 --select framing --streams 50 --json diff.json

Two kinds of script, each run against every target with the same seed (so function names,
unique ids and payloads are the same everywhere):

- every selected conformance case: what each server sent back, connection by connection,
  and the case's outcome;
- seeded streams of valid request packets (the network fuzzer's `valid` family), each on a
  fresh connection, then everything the server sends until it has been quiet for `--quiet`.

Transcripts are normalised before they are compared: job handles become H#1, H#2... in order
of appearance, the ordering round trip (ECHO_RES or STATUS_RES of a gs-barrier token) becomes
<barrier>, and timing is dropped. Targets are local server names (reference, gearmand, perl,
gear, ...: started on port 0 and stopped afterwards) or HOST:PORT. Every difference found is
how the next deviation is found: grade it with a case, or list it in docs/findings.md.
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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gearspec.conformance.harness import Target, describe
from gearspec.conformance.registry import all_cases, select_cases
from gearspec.conformance.runner import RunConfig, run_cases

from gearspec.cli import unwritable
from gearspec.codec import Decoder
from gearspec.errors import ProtocolError, os_reason
from gearspec.spec import Magic

__all__ = ["Difference", "configure_diff", "diff_targets", "normalise", "run_diff"]

_HANDLE = re.compile(r"H:[^\s'\\]*?:\d+")
_BARRIER = re.compile(r"(ECHO_RES data|STATUS_RES handle|STATUS_RES payload)='gs-barrier-[0-9a-f]+[^']*'[^|]*")


def normalise(lines: Sequence[str]) -> list[str]:
    """Handles renamed by order of appearance, barrier replies folded, per script."""
    names: dict[str, str] = {}

    def handle(match: re.Match[str]) -> str:
        return names.setdefault(match.group(0), f"H#{len(names) + 1}")

    return [_HANDLE.sub(handle, _BARRIER.sub("<barrier>", line)) for line in lines]


@dataclass
class Difference:
    """One script whose normalised transcript is not the same on every target."""

    script: str  # "case framing/magic/2" or "stream 17"
    sent: list[str]
    transcripts: dict[str, list[str]] = field(default_factory=dict)  # target -> lines

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


# -- running the scripts ----------------------------------------------------------------------


def _case_transcripts(target: Target, select: Sequence[str], seed: str, wait: float) -> dict[str, tuple[list[str], list[str]]]:
    cases = select_cases(all_cases(), select)
    config = RunConfig(wait=wait, timeout=10.0, seed=seed, run_token=seed[:4])
    out = {}
    for result in run_cases(cases, target, config, jobs=4):
        sent = [f"{e.conn} -> {e.summary}" for e in result.trace if e.direction == "send"]
        got = [f"{e.conn} <- {e.summary}" for e in result.trace if e.direction == "recv"]
        got += [f"{e.conn} -- {e.summary}" for e in result.trace if e.direction == "event" and "closed by the server" in e.summary]
        got.append(f"outcome: {result.outcome.value}")
        out[f"case {result.case.id}"] = (sent, got)
    return out


def valid_streams(seed: str, count: int, length: int = 4) -> list[list[bytes]]:
    """`count` seeded streams of `length` valid request packets (the fuzzer's `valid` family)."""
    from gearspec.fuzz.strategies import RandomChooser, valid_packet

    chooser = RandomChooser(random.Random(f"diff/{seed}"))
    return [[valid_packet(chooser).to_bytes() for _ in range(length)] for _ in range(count)]


def _stream_transcript(target: Target, packets: list[bytes], quiet: float) -> list[str]:
    try:
        sock = socket.create_connection((target.host, target.port), timeout=5.0)
    except OSError as exc:
        return [f"connect failed: {exc.strerror or exc}"]
    lines: list[str] = []
    decoder = Decoder(Magic.RES, lenient=True)
    with sock:
        try:
            sock.sendall(b"".join(packets))
        except OSError as exc:
            return [f"send failed: {exc.strerror or exc}"]
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


@contextlib.contextmanager
def _opened(spec: str) -> Iterator[Target]:
    if ":" in spec:
        yield Target.parse(spec)
        return
    from gearspec.conformance.servers import start_server

    with start_server(spec) as server:
        yield Target(server.host, server.port, server.log)


def diff_targets(
    targets: Sequence[str],
    select: Sequence[str] = (),
    streams: int = 30,
    seed: str = "diff",
    wait: float = 1.0,
    quiet: float = 0.3,
    cases: bool = True,
) -> list[Difference]:
    """Run the scripts against every target (in parallel, one thread each); the differences."""
    found: dict[str, dict[str, tuple[list[str], list[str]]]] = {}
    errors: dict[str, str] = {}
    stream_scripts = valid_streams(seed, streams)

    def run(spec: str) -> None:
        try:
            with _opened(spec) as target:
                scripts = _case_transcripts(target, select, seed, wait) if cases else {}
                for number, packets in enumerate(stream_scripts, start=1):
                    sent = [describe(event) for raw in packets for event in _decoded(raw)]
                    scripts[f"stream {number}"] = (sent, _stream_transcript(target, packets, quiet))
                found[spec] = scripts
        except Exception as exc:  # one target that cannot start must not hide the others
            errors[spec] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=run, args=(spec,), name=f"diff {spec}") for spec in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError("; ".join(f"{spec}: {why}" for spec, why in errors.items()))
    differences = []
    first = found[targets[0]]
    for script, (sent, _) in first.items():
        transcripts = {spec: normalise(found[spec][script][1]) for spec in targets if script in found[spec]}
        if len({tuple(lines) for lines in transcripts.values()}) > 1:
            differences.append(Difference(script, normalise(sent), transcripts))
    return differences


def _decoded(raw: bytes) -> list[object]:
    from gearspec.codec import decode

    return list(decode(raw, lenient=True))


# -- the command --------------------------------------------------------------------------------


SUMMARIES = {"diff": "run the same scripts against several servers and print the differences"}


def configure_diff(parser: argparse.ArgumentParser) -> None:
    parser.epilog = """\
examples:
  gearspec diff --targets reference,gearmand,perl,gear
  gearspec diff --targets gearmand,127.0.0.1:4730 --select 'priority/*' --streams 10 --json diff.json

exit status:
  0    every target behaved the same
  1    differences found (printed, and in --json)
  2    bad usage, or a target that cannot be started or reached
"""
    parser.add_argument("--targets", required=True, metavar="A,B[,C...]", help="local server names (reference, gearmand, perl, gear) or HOST:PORT, comma-separated")
    parser.add_argument("--select", "-k", action="append", default=[], metavar="GLOB", help="cases to diff (default: all)")
    parser.add_argument("--no-cases", action="store_true", help="only the packet streams")
    parser.add_argument("--streams", type=int, default=30, metavar="N", help="seeded valid packet streams (default %(default)s)")
    parser.add_argument("--seed", default="diff", help="seed of names, payloads and streams (default %(default)s)")
    parser.add_argument("--wait", type=float, default=1.0, metavar="S", help="the cases' wait for one reply")
    parser.add_argument("--quiet", type=float, default=0.3, metavar="S", help="a stream's transcript ends after S seconds of silence")
    parser.add_argument("--json", metavar="FILE", help="write the differences as JSON")


def run_diff(args: argparse.Namespace) -> int:
    """Print the differences; exit 0 when there are none, 1 when there are, 2 on bad usage."""
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if len(targets) < 2:
        print("gearspec diff: --targets needs at least two servers", file=sys.stderr)
        return 2
    problem = unwritable(args.json) if args.json else None
    if problem is not None:  # before the run, not after minutes of it
        print(f"gearspec diff: {problem}", file=sys.stderr)
        return 2
    try:
        differences = diff_targets(
            targets, args.select, args.streams, args.seed, args.wait, args.quiet, cases=not args.no_cases
        )
    except (RuntimeError, ValueError) as exc:
        print(f"gearspec diff: {exc}", file=sys.stderr)
        return 2
    for difference in differences:
        print(f"== {difference.script}")
        for line in difference.sent[:6]:
            print(f"   sent {line}")
        for names, lines in difference.groups():
            print(f"   {', '.join(names)}:")
            for line in lines[:12]:
                print(f"      {line}")
    print(f"gearspec diff: {len(differences)} scripts differ among {', '.join(targets)}")
    if args.json:
        data = [{"script": d.script, "sent": d.sent, "transcripts": d.transcripts} for d in differences]
        try:
            Path(args.json).write_text(json.dumps(data, indent=1))
        except OSError as exc:  # the verdict above stands; its exit status too
            print(f"gearspec diff: cannot write {args.json}: {os_reason(exc)}", file=sys.stderr)
    return 1 if differences else 0
