"""`gearspec fuzz`: the network fuzzer, the stateful model and replays against a live target.

    gearspec fuzz --target 127.0.0.1:4730 --budget 60s --seed 1 --json findings.json
    gearspec fuzz --target 127.0.0.1:4730 --model --budget 10m --profile gearmand
    gearspec fuzz --target 127.0.0.1:4730 --replay failure.json

Exit status: 0 when nothing was found, 1 with findings (or a failed model run or replay),
2 on usage errors or a target that is down before the run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from gearspec.fuzz.network import (
    FuzzConfig,
    TargetError,
    describe,
    parse_duration,
    parse_target,
    probe,
    run_network_fuzz,
    working_probes,
)
from gearspec.fuzz.relay import TlsRelay
from gearspec.fuzz.strategies import FAMILIES

from gearspec.cli import unwritable
from gearspec.wire.tls import add_client_options, context_from_options, split_scheme

if TYPE_CHECKING:
    from gearspec.fuzz.model import ModelOptions, ModelStats

__all__ = ["SUMMARIES", "configure_fuzz", "run_fuzz"]

SUMMARIES = {"fuzz": "fuzz a job server over the network"}


def _profile_names() -> list[str]:
    """"spec" and every implementation with a [fuzz] table (conformance/impls/NAME/impl.toml)."""
    from gearspec.conformance.impls import RegistryError, load_registry

    try:
        return ["spec", *load_registry().fuzz_options()]
    except RegistryError:
        return ["spec"]  # the error is reported when the model runs


_TLS_SCOPE = "a tls://HOST:PORT target, reached through a local relay"


def configure_fuzz(parser: argparse.ArgumentParser) -> None:
    """Options of `gearspec fuzz`."""
    parser.epilog = """\
examples:
  gearspec fuzz --target 127.0.0.1:4730 --budget 60s --json findings.json
  gearspec fuzz --target 127.0.0.1:4730 --model --profile gearmand --budget 10m
  gearspec fuzz --target 127.0.0.1:4730 --replay failure.json

exit status:
  0    nothing found (the model agreed; the replay passed)
  1    findings, a model disagreement, or a failed replay
  2    bad usage, or a target that is down before the run
  130  interrupted (Ctrl-C): what was found so far is printed and saved
"""
    parser.add_argument("--target", required=True, metavar="HOST:PORT", help="the job server to fuzz (loopback only by default; tls://HOST:PORT through a local TLS relay)")
    add_client_options(parser, _TLS_SCOPE)
    parser.add_argument("--budget", default="60s", help="how long to run, e.g. 60s, 10m (default 60s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    parser.add_argument("--json", metavar="FILE", help="write the findings (or model failure) as JSON to FILE")
    parser.add_argument("--pid", type=int, help="PID of a local target: watch its memory and notice when it dies")
    parser.add_argument("--allow-remote", action="store_true", help="allow a target that is not on this machine")
    parser.add_argument("--deadline", type=float, default=2.0, metavar="SECONDS", help="wait this long for any answer (default 2)")
    parser.add_argument("--rss-limit", type=int, default=64, metavar="MIB", help="RSS growth reported as a finding (default 64 MiB)")
    parser.add_argument("--families", help=f"comma-separated generators to use (default all: {','.join(FAMILIES)})")
    parser.add_argument("--first-step", type=int, default=0, metavar="N", help="start at step N (to replay a finding)")
    parser.add_argument("--steps", type=int, metavar="N", help="stop after N steps")
    parser.add_argument("--progress", type=float, default=5.0, metavar="SECONDS", help="print progress and stats on stderr this often (default 5; 0: never)")
    mode = parser.add_argument_group("stateful model and replays")
    mode.add_argument("--model", action="store_true", help="check the target against the stateful job-server model instead")
    mode.add_argument("--profile", default="spec", metavar="NAME",
                      help=f"model options for a known server: {', '.join(_profile_names())} (default spec)")
    mode.add_argument("--examples", type=int, default=50, help="model runs per batch (default 50)")
    mode.add_argument("--model-steps", type=int, default=40, help="rules per model run (default 40)")
    mode.add_argument("--replay", metavar="FILE", help="replay a script written by a failed model run")
    mode.add_argument("--save-script", metavar="FILE", help="where a failed model run writes its replay script")
    parser.add_argument("--no-cleanup", action="store_true", help="leave the jobs the run queued on the target (default: take them back off at the end)")


def run_fuzz(args: argparse.Namespace) -> int:
    """Run `gearspec fuzz`."""
    try:
        is_tls, target = split_scheme(args.target)
        host, port = parse_target(target, args.allow_remote)
        budget = parse_duration(args.budget)
        context = context_from_options(args, is_tls, _TLS_SCOPE)
    except (TargetError, ValueError) as exc:
        print(f"gearspec fuzz: {exc}", file=sys.stderr)
        return 2
    problem = _bad_number(args) or next(filter(None, (unwritable(p) for p in (args.json, args.save_script) if p)), None)
    if problem:  # before the run: a budget must not be spent only to lose its findings
        print(f"gearspec fuzz: {problem}", file=sys.stderr)
        return 2
    if context is None:
        return _fuzz(args, host, port, budget)
    # The byte fuzzer half-closes (replies may follow for a while); the model and replays close
    # a connection to say "this client is gone", which the target must see at once.
    grace = 0.0 if args.model or args.replay else args.deadline
    with TlsRelay(host, port, context, grace) as (relay_host, relay_port):
        print(f"gearspec fuzz: relaying plaintext from {relay_host}:{relay_port} to tls://{host}:{port}", file=sys.stderr)
        return _fuzz(args, relay_host, relay_port, budget)


def _fuzz(args: argparse.Namespace, host: str, port: int, budget: float) -> int:
    if args.replay:
        return _replay(args, host, port)
    unknown = [f for f in _families(args) or () if f not in FAMILIES]
    if unknown:
        print(f"gearspec fuzz: unknown families {', '.join(unknown)}; known: {', '.join(FAMILIES)}", file=sys.stderr)
        return 2
    if args.model:
        from gearspec.conformance.impls import RegistryError

        try:
            from gearspec.fuzz.model import PROFILES
        except RegistryError as exc:  # a malformed [fuzz] table in an implementation's folder
            print(f"gearspec fuzz: {exc}", file=sys.stderr)
            return 2
        if args.profile not in PROFILES:
            print(f"gearspec fuzz: unknown profile {args.profile!r}; known: {', '.join(PROFILES)}", file=sys.stderr)
            return 2
    if not working_probes(host, port, args.deadline):
        problem = probe(host, port, args.deadline)
        print(f"gearspec fuzz: {host}:{port} does not answer ({problem}); is the server running?", file=sys.stderr)
        return 2
    if args.model:
        return _model(args, host, port, budget)
    families = _families(args)
    config = FuzzConfig(
        host, port, budget=budget, seed=args.seed, pid=args.pid, deadline=args.deadline,
        max_steps=args.steps, first_step=args.first_step, families=families,
        rss_limit=args.rss_limit * 1024 * 1024, cleanup=not args.no_cleanup,
        progress=_say if args.progress > 0 else None, progress_every=args.progress,
    )
    try:
        report = run_network_fuzz(config)
    except TargetError as exc:
        print(f"gearspec fuzz: {exc}", file=sys.stderr)
        return 2
    print(describe(report))
    if args.json:
        # The verdict stands even when its report cannot be written: the exit status says it.
        _write(args.json, report.to_json() + "\n")
    if report.findings:
        return 1
    return 130 if report.stopped == "interrupted" else 0


def _families(args: argparse.Namespace) -> tuple[str, ...] | None:
    if not args.families:
        return None
    return tuple(f.strip() for f in args.families.split(",") if f.strip())


def _say(message: str) -> None:
    print(f"gearspec fuzz: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _ticking(every: float, line: Callable[[], str]) -> Iterator[None]:
    """Print `line()` every `every` seconds from a helper thread while the body runs (the
    model's batches give control back only between batches)."""
    if every <= 0:
        yield
        return
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(every):
            _say(line())

    thread = threading.Thread(target=tick, name="gearspec-fuzz-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _bad_number(args: argparse.Namespace) -> str | None:
    """The first numeric option out of range, as a message."""
    checks = (
        ("--examples", args.examples, 1), ("--model-steps", args.model_steps, 1), ("--steps", args.steps, 1),
        ("--first-step", args.first_step, 0), ("--rss-limit", args.rss_limit, 1),
    )
    for flag, value, least in checks:
        if value is not None and value < least:
            return f"{flag} must be at least {least}, not {value}"
    if not args.deadline > 0:
        return f"--deadline must be a positive number of seconds, not {args.deadline:g}"
    if not args.progress >= 0:
        return f"--progress must be 0 (off) or a number of seconds, not {args.progress:g}"
    return None


def _write(path: str, text: str) -> bool:
    try:
        Path(path).write_text(text)
    except OSError as exc:
        print(f"gearspec fuzz: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return False
    return True


def _model(args: argparse.Namespace, host: str, port: int, budget: float) -> int:
    from gearspec.fuzz.model import PROFILES, ModelStats

    options = replace(PROFILES[args.profile], timeout=args.deadline)
    start = time.monotonic()
    stats = ModelStats()

    def line() -> str:
        shrinking = f"; found {stats.disagreements} disagreement(s), shrinking the first" if stats.disagreements else ""
        elapsed = time.monotonic() - start
        over = " (budget spent: finishing the batch of --examples runs)" if elapsed > budget and not shrinking else ""
        return f"model: {stats.runs} runs, {elapsed:.0f}s of {budget:g}s{shrinking}{over}"

    with _ticking(args.progress, line):
        return _model_batches(args, host, port, budget, options, stats, start)


def _model_batches(
    args: argparse.Namespace, host: str, port: int, budget: float, options: ModelOptions, stats: ModelStats, start: float
) -> int:
    from gearspec.fuzz.model import ModelFailure, check_target

    batches = 0
    # Hypothesis has no time budget: run seeded batches until the budget is spent.
    while time.monotonic() - start < budget:
        try:
            check_target(
                host, port, options, max_examples=args.examples, steps=args.model_steps, seed=args.seed + batches,
                cleanup=not args.no_cleanup, stats=stats,
            )
        except ModelFailure as exc:
            _report_model_failure(args, exc)
            return 1
        except BaseExceptionGroup as group:
            # Hypothesis reports a failure that did not repeat on re-run as a group (FlakyFailure):
            # the target behaved differently for the same packets, e.g. under a timeout.
            failures = [e for e in group.exceptions if isinstance(e, ModelFailure)]
            print(f"gearspec fuzz: the target failed inconsistently ({group.__class__.__name__}); first failure:", file=sys.stderr)
            if failures:
                _report_model_failure(args, failures[0])
            else:
                print(f"{group}", file=sys.stderr)
            return 1
        batches += 1
    print(
        f"gearspec fuzz: {host}:{port} agrees with the model (profile {args.profile}): "
        f"{batches} batches of {args.examples} runs in {time.monotonic() - start:.1f}s, seeds {args.seed}..{args.seed + batches - 1}"
    )
    return 0


def _report_model_failure(args: argparse.Namespace, exc: Exception) -> None:
    """The disagreement, and where its replay script is: --save-script (or --json), else a
    new file in the temporary folder; the command that replays it names that path."""
    script = getattr(exc, "script", None)
    print(getattr(exc, "reason", str(exc)), file=sys.stderr)
    if not script:
        return
    path = args.save_script or args.json
    if path is None:
        handle, path = tempfile.mkstemp(prefix="gearspec-replay-", suffix=".json")
        os.close(handle)
    if _write(path, script):
        print(f"gearspec fuzz: replay script written to {path}", file=sys.stderr)
        print(f"replay with: gearspec fuzz --replay {shlex.quote(os.path.abspath(path))} --target {args.target}", file=sys.stderr)
    else:
        print(script, file=sys.stderr)


def _replay(args: argparse.Namespace, host: str, port: int) -> int:
    from gearspec.fuzz.script import Mismatch, TargetDown, load_script, replay

    try:
        steps, options = load_script(Path(args.replay).read_text())
    except OSError as exc:
        print(f"gearspec fuzz: cannot read {args.replay}: {exc.strerror}", file=sys.stderr)
        return 2
    except (ValueError, KeyError) as exc:
        print(f"gearspec fuzz: {args.replay}: {exc}", file=sys.stderr)
        return 2
    try:
        session = replay(
            steps, host, port, timeout=args.deadline,
            allow_trailing_nul=bool(options.get("allow_trailing_nul")),
            allow_empty_numbers=bool(options.get("allow_empty_numbers")),
        )
    except (Mismatch, TargetDown) as exc:
        print(f"gearspec fuzz: replay failed: {exc}", file=sys.stderr)
        return 1
    except (ValueError, KeyError) as exc:
        print(f"gearspec fuzz: {args.replay}: bad step: {exc}", file=sys.stderr)
        return 2
    print(f"gearspec fuzz: replay of {len(steps)} steps passed against {host}:{port}")
    if session.deviations:
        print("deviations tolerated: " + "; ".join(sorted(set(session.deviations))))
    return 0
