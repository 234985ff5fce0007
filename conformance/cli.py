"""`gearspec test`: run the conformance suite against a job server and grade it.

    gearspec test --target 127.0.0.1:4730 --profile gearmand -j 4 --html report.html
    gearspec test                      # starts the embedded reference server on port 0
    gearspec test --server gearmand    # starts a local peer (gearmand, perl, gear) on port 0
    gearspec test --list --select 'framing/*'

The command runs cases with the suite's own runner (threads for -j, a deadline on every
wait); `pytest --pyargs gearspec.conformance --gearman-target HOST:PORT` runs the same
registry through pytest (conformance/plugin.py).

Exit status: 0 when nothing counts against the target; 1 when something does (a MUST or
EXTENSION failure or error, SHOULD too with --strict, or an unexpected pass); 2 when nothing
was graded: bad usage, a server that could not be started, or a target that cannot be reached
(the name does not resolve, the connection is refused, or the TCP connect gets no answer
within the connect timeout). In the last case one line on stderr says so and no report file
is written: an all-error report would blame the server for what is a wrong address or a
server that is down. A target that accepts connections and then hangs or dies midway is
still graded case by case.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from gearspec.conformance import reports
from gearspec.conformance.harness import CONNECT_TIMEOUT, Target
from gearspec.conformance.lifecycle import TargetControl
from gearspec.conformance.registry import Case, CaseModuleError, all_cases, select_cases, uncovered
from gearspec.conformance.runner import (
    Expectations,
    ExpectationsError,
    Result,
    RunConfig,
    builtin_profiles,
    check_reachable,
    load_expectations,
    run_cases,
)

from gearspec.spec import PacketType

__all__ = ["configure_test", "run_test"]


def configure_test(parser: argparse.ArgumentParser) -> None:
    """Options of `gearspec test`."""
    where = parser.add_argument_group("target")
    where.add_argument("--target", metavar="HOST:PORT|docker:IMAGE", help="the server to test; also docker:IMAGE, impl:NAME, local:NAME (default: start the reference server)")
    where.add_argument(
        "--server", metavar="NAME",
        help="start a local server on port 0 and test it: reference (default), gearmand, gearmand-threads, perl, gear",
    )
    where.add_argument("--impl", metavar="NAME", help="a server implementation from the Docker registry (conformance/impls.toml)")
    pick = parser.add_argument_group("cases")
    pick.add_argument("--select", "-k", action="append", default=[], metavar="GLOB", help="run only cases whose ID matches (repeatable; 'framing' selects an area)")
    pick.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip cases whose ID matches (repeatable)")
    pick.add_argument("--list", action="store_true", help="list the selected cases and exit")
    pick.add_argument("--destructive", action="store_true", help="also run, last, cases that may stop the target (admin shutdown; a packet type that crashes gearmand 1.1.20)")
    grade = parser.add_argument_group("grading")
    grade.add_argument("--strict", action="store_true", help="SHOULD failures fail the run too")
    grade.add_argument("--profile", metavar="NAME", help=f"built-in expectations: {', '.join(builtin_profiles())}")
    grade.add_argument("--expect", metavar="FILE", help="an expectations file (TOML) listing the target's known deviations")
    grade.add_argument("--grab", choices=["GRAB_JOB", "GRAB_JOB_UNIQ", "GRAB_JOB_ALL"], help="the grab packet generic cases use (default: the profile's, else GRAB_JOB)")
    run = parser.add_argument_group("running")
    run.add_argument("-j", "--jobs", type=int, default=min(8, (os.cpu_count() or 1) * 2), metavar="N", help="cases run in parallel (default %(default)s)")
    run.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="per-case timeout (default %(default)s)")
    run.add_argument("--wait", type=float, default=2.0, metavar="SECONDS", help="how long to wait for one expected reply (default %(default)s)")
    run.add_argument("--restart-command", metavar="CMD", help="a shell command that restarts an external target (at the same address): a crash is then recorded and the run goes on, and durability cases can run")
    run.add_argument("--durable", action="store_true", help="the target has a persistent queue: durability cases fail, rather than end unsupported, when no job survives a restart")
    run.add_argument("--seed", default=None, help="seed for names and data (default: random per run; set it to reproduce a trace)")
    out = parser.add_argument_group("reports")
    out.add_argument("--junit", metavar="FILE", help="write JUnit XML")
    out.add_argument("--json", metavar="FILE", help="write JSON results")
    out.add_argument("--html", metavar="FILE", help="write an HTML report")
    out.add_argument("--markdown", metavar="FILE", help="write a markdown summary (per-area grades)")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress bar, only the summary")
    out.add_argument("-v", "--verbose", action="store_true", help="print the trace of every failed case")
    roles = parser.add_argument_group("role testing (clients and workers instead of servers)")
    roles.add_argument("--role", choices=["client", "worker"], help="test a client or worker program instead of a server")
    roles.add_argument("--exec", dest="exec_cmd", metavar="CMD", help="the program to test with --role (a shell command)")


def run_test(args: argparse.Namespace) -> int:
    """Run the suite; exit 0 when nothing counts against the target, 1 when something does, 2 when
    nothing was graded (bad usage; a target that cannot be started or reached)."""
    if args.role:
        try:
            from gearspec.conformance.roles import run_roles
        except ImportError:
            print("gearspec test: --role needs gearspec.conformance.roles, which is not installed", file=sys.stderr)
            return 2
        return int(run_roles(args))
    if args.jobs < 1:
        print("gearspec test: -j must be at least 1", file=sys.stderr)
        return 2
    for flag, value in (("--timeout", args.timeout), ("--wait", args.wait)):
        if not value > 0:
            print(f"gearspec test: {flag} must be a positive number of seconds", file=sys.stderr)
            return 2
    for path in (args.junit, args.json, args.html, args.markdown):
        # Refuse a report that cannot be written before the run, not after it.
        folder = Path(path).parent if path else None
        if folder is not None and not folder.is_dir():
            print(f"gearspec test: cannot write {path}: no folder {str(folder)!r}", file=sys.stderr)
            return 2
    try:
        expectations = _expectations(args)
    except (ExpectationsError, KeyError) as exc:
        print(f"gearspec test: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 2
    try:
        cases = select_cases(all_cases(), args.select, args.exclude)
    except CaseModuleError as exc:
        print(f"gearspec test: {exc}", file=sys.stderr)
        return 2
    if args.list:
        for c in cases:
            print(f"{c.id:28} {c.level.value:9} {c.requirement}")
        print(f"{len(cases)} cases")
        return 0
    if not cases:
        print("gearspec test: no case matches the selection", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else f"{int.from_bytes(os.urandom(4), 'big'):08x}"
    config = RunConfig(
        timeout=args.timeout, wait=args.wait, seed=seed, strict=args.strict, expectations=expectations,
        grab=PacketType[args.grab] if args.grab else None, destructive=args.destructive, durable=args.durable,
        run_token=args.seed[:4] if args.seed else "",
    )
    try:
        with _open_target(args) as (target, label, control):
            try:
                return _run(args, cases, target, label, config, control)
            finally:
                control.close()
    except _TargetError as exc:
        print(f"gearspec test: {exc}", file=sys.stderr)
        return 2


def _expectations(args: argparse.Namespace) -> Expectations:
    if args.profile and args.expect:
        raise ExpectationsError("use --profile or --expect, not both")
    if args.profile:
        profiles = builtin_profiles()
        if args.profile not in profiles:
            raise ExpectationsError(f"no profile {args.profile!r}; known: {', '.join(profiles)}")
        return load_expectations(profiles[args.profile])
    if args.expect:
        return load_expectations(args.expect)
    return Expectations(name="no expectations")


class _TargetError(RuntimeError):
    pass


@contextlib.contextmanager
def _open_target(args: argparse.Namespace) -> Iterator[tuple[Target, str, TargetControl]]:
    """The target to test: HOST:PORT, a Docker target, or a local server started here, with
    the control that watches it (and restarts it: a local server, or --restart-command)."""

    def watched(target: Target) -> TargetControl:
        if args.restart_command:
            return TargetControl.for_command(target, args.restart_command)
        return TargetControl(target, _logs=target.logs)

    spec = args.target
    if args.impl and spec is None:
        spec = f"impl:{args.impl}"
    if spec and ":" in spec and spec.split(":", 1)[0] in ("docker", "impl", "local"):
        try:
            from gearspec.conformance.targets import open_target
        except ImportError:
            raise _TargetError(f"{spec}: Docker and registry targets need gearspec.conformance.targets") from None
        from gearspec.conformance.launch import LaunchError

        try:
            opened = open_target(spec)
            found = opened.__enter__()
        except (LaunchError, OSError, ValueError) as exc:
            raise _TargetError(f"{spec}: {exc}") from None
        with contextlib.ExitStack() as stack:
            stack.push(opened)
            if isinstance(found, tuple):  # (host, port, logs) form
                logs = found[2] if len(found) > 2 else None
                target = Target(found[0], int(found[1]), logs)
                yield target, spec, watched(target)
            else:
                target = Target(found.host, int(found.port), getattr(found, "logs", None))
                yield target, getattr(found, "description", spec), watched(target)
        return
    if spec is not None:  # an empty --target is an error, not "start the reference server"
        try:
            parsed = Target.parse(spec)
        except ValueError as exc:
            raise _TargetError(str(exc)) from None
        yield parsed, spec, watched(parsed)  # outside the try: a ValueError from the run is not a bad address
        return
    from gearspec.conformance.launch import PEER_COMMANDS, LaunchError, start_peer

    name = args.server or "reference"
    try:
        server = start_peer(name)
    except LaunchError as exc:
        hint = "" if name != "reference" else "\n(try --server gearmand, or --target HOST:PORT)"
        raise _TargetError(f"cannot start the {name} server: {exc}{hint}") from None
    try:
        control = TargetControl.for_process(server, PEER_COMMANDS[name])
        yield control.target, f"{name} (started on {server.address})", control
    finally:
        server.stop()


def _server_log(target: Target) -> str:
    """The started server's own output (container or process log), for the reports."""
    logs = target.logs
    if logs is None:
        return ""
    try:
        text = logs()
    except Exception as exc:  # a log we cannot read must not lose the run's results
        return f"(server log unavailable: {exc})"
    return text if isinstance(text, str) else bytes(text).decode("utf-8", "replace")


def _rerun_command(args: argparse.Namespace, case: Case, target_label: str) -> str:
    parts = ["gearspec", "test"]
    if args.target:
        parts += ["--target", args.target]
    elif args.server:
        parts += ["--server", args.server]
    elif args.impl:
        parts += ["--impl", args.impl]
    if args.profile:
        parts += ["--profile", args.profile]
    if args.expect:
        parts += ["--expect", args.expect]
    if args.grab:
        parts += ["--grab", args.grab]
    if args.strict:
        parts.append("--strict")
    parts += ["--select", case.id, "-v"]
    return shlex.join(parts)


def _run(
    args: argparse.Namespace, cases: list[Case], target: Target, label: str, config: RunConfig, control: TargetControl
) -> int:
    stream = sys.stdout
    # One connect before any case: a dead address gets one clear line, not 267 errors.
    unreachable = check_reachable(target, timeout=min(CONNECT_TIMEOUT, args.timeout))
    if unreachable is not None:
        print(f"gearspec test: cannot reach {target.address}: {unreachable}", file=sys.stderr)
        return 2
    # What the target answers (ECHO, GET_STATUS, grab packets, submit variants), once: cases
    # pick their round trips and setup steps from it instead of blaming a missing feature.
    capabilities = config.probe(target)
    if not capabilities.responsive:
        print(
            f"gearspec test: warning: {target.address} did not answer ECHO_REQ, GET_STATUS or any other "
            f"probe within {min(config.wait, 1.0):g} s; running every case anyway", file=sys.stderr,
        )
    elif config.barrier is None:
        print(
            f"gearspec test: warning: {target.address} answers neither ECHO_REQ nor GET_STATUS; cases "
            "that need a round trip end unsupported", file=sys.stderr,
        )
    packets, admin = uncovered(all_cases())
    if (packets or admin) and not (args.select or args.exclude):
        print(f"gearspec test: note: not exercised by any case: {', '.join(packets + admin)}", file=sys.stderr)
    progress = reports.Progress(len(cases), stream, enabled=not args.quiet)
    print(
        f"gearspec test: {len(cases)} cases against {label} "
        f"[{config.expectations.name}; grab {config.grab_type.name}; -j {args.jobs}; seed {config.seed}]",
        file=stream,
    )
    print(f"gearspec test: probed: {capabilities.summary()}", file=stream)
    started = time.monotonic()
    results: list[Result] = run_cases(cases, target, config, jobs=args.jobs, on_result=progress.update, control=control)
    elapsed = time.monotonic() - started
    progress.finish()
    run = reports.RunInfo(
        target=label, expectations=config.expectations.name, strict=config.strict, seed=config.seed,
        elapsed=elapsed, grab=config.grab_type.name, server_log=_server_log(target),
    )
    reports.print_summary(results, run, stream, verbose=args.verbose, rerun=lambda c: _rerun_command(args, c, label))
    _print_deaths(control, stream)
    for kind, path in (("junit", args.junit), ("json", args.json), ("html", args.html), ("markdown", args.markdown)):
        if path:
            try:
                getattr(reports, f"write_{kind}")(results, run, Path(path))
            except OSError as exc:
                print(f"gearspec test: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
                return 2
    stopped = control.stopped is not None
    return 1 if stopped or any(r.counts_against(config.strict) for r in results) else 0


def _print_deaths(control: TargetControl, stream: TextIO) -> None:
    """One line per crash the run survived, and why it stopped when the target stayed dead."""
    for crash in control.crashes:
        print(f"gearspec test: the target crashed during {crash.case_ids[0]} ({crash.how}); restarted it and went on", file=stream)
        _print_log_tail(crash.log, stream)
    if control.stopped is not None:
        during = " or ".join(control.stopped.case_ids)
        print(
            f"gearspec test: the target died during {during} ({control.stopped.how}) and gearspec cannot restart it "
            f"(give --restart-command); {len(control.not_run)} cases not run", file=stream,
        )
        _print_log_tail(control.stopped.log, stream)


def _print_log_tail(log: str, stream: TextIO, lines: int = 10) -> None:
    tail = log.strip().splitlines()[-lines:]
    if tail:
        print("  server log (last lines):", file=stream)
        for line in tail:
            print(f"    {line}", file=stream)
