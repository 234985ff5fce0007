"""`gearspec test`: run the conformance suite against a job server and grade it.

    gearspec test --target 127.0.0.1:4730 --profile gearmand -j 4 --html report.html
    gearspec test                      # starts the embedded reference server on port 0
    gearspec test --local gearmand     # starts a local server (gearmand, perl, gear, ...) on port 0
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
import dataclasses
import json
import os
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from gearspec.conformance import reports
from gearspec.conformance.harness import CONNECT_TIMEOUT
from gearspec.conformance.lifecycle import RestartError, TargetControl
from gearspec.conformance.registry import Case, CaseModuleError, all_cases, select_cases, uncovered
from gearspec.conformance.runner import (
    Expectations,
    ExpectationsError,
    Result,
    RunConfig,
    builtin_profiles,
    check_reachable,
    clean_up,
    load_expectations,
    run_cases,
)
from gearspec.conformance.servers.targets import Target, target_is_address
from gearspec.conformance.tls import check_tls, load_tls

from gearspec.cli import unwritable
from gearspec.errors import os_reason
from gearspec.spec import PacketType
from gearspec.wire.tls import add_client_options, context_from_options, split_scheme

__all__ = ["SUMMARIES", "configure_test", "run_test"]

SUMMARIES = {"test": "run the conformance suite against a job server"}
DEFAULT_JOBS = min(8, (os.cpu_count() or 1) * 2)  # cases in parallel when neither -j nor the profile says


def configure_test(parser: argparse.ArgumentParser) -> None:
    """Options of `gearspec test`."""
    parser.epilog = """\
examples:
  gearspec test --target 127.0.0.1:4730 --profile gearmand --html report.html
  gearspec test --server gearmand -k 'framing/*' -x
  gearspec test --target 127.0.0.1:4730 --lf        # only what failed last time

exit status:
  0    nothing counts against the target
  1    a counted failure (MUST/EXTENSION, SHOULD with --strict) or an unexpected pass
  2    nothing graded: bad usage, or a target that cannot be started or reached
  130  interrupted (Ctrl-C): the summary and reports cover what ran
"""
    where = parser.add_argument_group("target")
    where.add_argument("--target", metavar="HOST:PORT|docker:IMAGE", help="the server to test; also docker:IMAGE, impl:NAME, local:NAME (default: start the reference server)")
    where.add_argument(
        "--local", metavar="NAME",
        help="start a server of the registry (conformance/impls/) here on port 0 and test it: "
        f"{', '.join(_local_servers())} (default reference)",
    )
    # The old spelling, kept working: --server names a server to connect to in the other commands.
    where.add_argument("--server", dest="local", metavar="NAME", help=argparse.SUPPRESS)
    where.add_argument("--impl", metavar="NAME", help="a server of the registry, in Docker when an engine answers, else local")
    pick = parser.add_argument_group("cases")
    pick.add_argument("--select", "-k", action="append", default=[], metavar="GLOB", help="run only cases whose ID matches (repeatable; 'framing' selects an area)")
    pick.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip cases whose ID matches (repeatable)")
    pick.add_argument("--list", action="store_true", help="list the selected cases and exit")
    pick.add_argument("--lf", "--last-failed", dest="last_failed", action="store_true", help="run only the cases that failed in the last run against this target (all when none did)")
    pick.add_argument("--destructive", action="store_true", help="also run, last, cases that may stop the target (admin shutdown; a packet type that crashes gearmand 1.1.20)")
    grade = parser.add_argument_group("grading")
    grade.add_argument("--strict", action="store_true", help="SHOULD failures fail the run too")
    grade.add_argument("--profile", metavar="NAME", help=f"built-in expectations: {', '.join(builtin_profiles())}")
    grade.add_argument("--expect", metavar="FILE", help="an expectations file (TOML) listing the target's known deviations")
    grade.add_argument("--grab", choices=["GRAB_JOB", "GRAB_JOB_UNIQ", "GRAB_JOB_ALL"], help="the grab packet generic cases use (default: the profile's, else GRAB_JOB)")
    run = parser.add_argument_group("running")
    run.add_argument(
        "-j", "--jobs", type=int, default=None, metavar="N",
        help=f"cases run in parallel (default: the profile's [target] jobs, else {DEFAULT_JOBS})",
    )
    run.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="per-case timeout (default %(default)s)")
    run.add_argument("--wait", type=float, default=2.0, metavar="SECONDS", help="how long to wait for one expected reply (default %(default)s)")
    run.add_argument("--restart-command", metavar="CMD", help="a shell command that restarts an external target (at the same address): a crash is then recorded and the run goes on, and durability cases can run")
    run.add_argument("--durable", action="store_true", help="the target has a persistent queue: durability cases fail, rather than end unsupported, when no job survives a restart")
    run.add_argument("--seed", default=None, help="seed for names and data (default: random per run; set it to reproduce a trace)")
    run.add_argument("-x", "--exitfirst", dest="maxfail", action="store_const", const=1, help="stop after the first counted failure")
    run.add_argument("--maxfail", type=int, metavar="N", help="stop after N counted failures")
    run.add_argument("--no-cleanup", action="store_true", help="leave the jobs the cases queued on the target (default: drain them after the run)")
    out = parser.add_argument_group("reports")
    reports.add_report_options(out, {"markdown": "per-area grades"})
    out.add_argument("-q", "--quiet", action="store_true", help="no progress bar, only the summary")
    out.add_argument("-v", "--verbose", action="store_true", help="print the trace of every failed case")
    tls = add_client_options(parser, "--target tls://HOST:PORT; docs/conformance.md")
    tls.add_argument(
        "--tls-acl-identities", metavar="DIR",
        help="run the ACL cases as DIR/worker.pem, client.pem, admin.pem, nobody.pem (rights in docs/conformance.md)",
    )
    roles = parser.add_argument_group(
        "role testing (clients and workers instead of servers)",
        "The scripted server grades the program of --exec; --select/--exclude/--list, -j (default 1), "
        "--timeout, --strict, --expect, --profile DRIVER (a driver's known deviations: "
        f"{', '.join(_driver_profiles())}) and the reports work as for a server.",
    )
    roles.add_argument("--role", choices=["client", "worker"], help="test a client or worker program instead of a server")
    roles.add_argument("--exec", dest="exec_cmd", metavar="CMD", help="the program to test with --role (a shell command, or driver:NAME)")


def run_test(args: argparse.Namespace) -> int:
    """Run the suite; exit 0 when nothing counts against the target, 1 when something does, 2 when
    nothing was graded (bad usage; a target that cannot be started or reached)."""
    for path in (args.junit, args.json, args.html, args.markdown):
        # Refuse a report that cannot be written before the run, not after it.
        problem = unwritable(path) if path else None
        if problem:
            print(f"gearspec test: {problem}", file=sys.stderr)
            return 2
    if args.role:
        try:
            from gearspec.conformance.roles import run_roles
        except ImportError:
            print("gearspec test: --role needs gearspec.conformance.roles, which is not installed", file=sys.stderr)
            return 2
        return int(run_roles(args))
    if args.jobs is not None and args.jobs < 1:
        print("gearspec test: -j must be at least 1", file=sys.stderr)
        return 2
    if args.maxfail is not None and args.maxfail < 1:
        print("gearspec test: --maxfail must be at least 1", file=sys.stderr)
        return 2
    for flag, value in (("--timeout", args.timeout), ("--wait", args.wait)):
        if not value > 0:
            print(f"gearspec test: {flag} must be a positive number of seconds", file=sys.stderr)
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
    if args.last_failed:
        failed = _last_failed().get(_target_key(args), [])
        again = [c for c in cases if c.id in failed]
        if again:
            cases = again
        else:
            print("gearspec test: note: no failures recorded for this target; running the whole selection", file=sys.stderr)
    if args.jobs is None:
        args.jobs = expectations.jobs or DEFAULT_JOBS
    seed = args.seed if args.seed is not None else f"{int.from_bytes(os.urandom(4), 'big'):08x}"
    config = RunConfig(
        timeout=args.timeout, wait=args.wait, seed=seed, strict=args.strict, expectations=expectations,
        grab=PacketType[args.grab] if args.grab else None, destructive=args.destructive, durable=args.durable,
        run_token=args.seed[:4] if args.seed else "",
    )
    try:
        with _open_target(args) as (target, label):
            return _run(args, cases, target, label, config, _control(args, target))
    except _TargetError as exc:
        print(f"gearspec test: {exc}", file=sys.stderr)
        return 2


def _control(args: argparse.Namespace, target: Target) -> TargetControl:
    """What watches the target between cases, and restarts it when gearspec can: a server it
    started, or any target given --restart-command."""
    if args.restart_command:
        return TargetControl.for_command(target, args.restart_command)
    return TargetControl.for_launched(target)


def _local_servers() -> list[str]:
    from gearspec.conformance.impls import RegistryError, load_registry

    try:
        return load_registry().local_servers()
    except RegistryError:
        return ["reference"]  # the error is reported when a target is opened


def _driver_profiles() -> list[str]:
    from gearspec.conformance.impls import RegistryError, load_registry

    try:
        return list(load_registry().driver_profiles())
    except RegistryError:
        return []  # the error is reported when a profile is used


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
def _open_target(args: argparse.Namespace) -> Iterator[tuple[Target, str]]:
    """The target to test: --target SPEC, --impl NAME (impl:NAME) or --local NAME (local:NAME)."""
    from gearspec.conformance.servers import LaunchError, open_target

    if args.target is not None:  # an empty --target is an error, not "start the reference server"
        spec = args.target
    elif args.impl:
        spec = f"impl:{args.impl}"
    else:
        spec = f"local:{args.local or 'reference'}"
    is_tls, spec = split_scheme(spec)
    try:
        # tls://HOST:PORT: a running TLS server; the --tls-* options apply only there.
        if is_tls and not target_is_address(spec):
            raise ValueError("tls:// goes with HOST:PORT (a running server)")
        if not is_tls and args.tls_acl_identities:
            raise ValueError("--tls-acl-identities applies to a tls://HOST:PORT target")
        tls = load_tls(*_tls_options(args)) if is_tls else context_from_options(args, False, "a tls://HOST:PORT target")
    except ValueError as exc:
        raise _TargetError(str(exc)) from None
    try:
        opened = open_target(spec)
        target = opened.__enter__()
    except (LaunchError, OSError, ValueError) as exc:
        if args.target is None and not args.impl:
            name = args.local or "reference"
            hint = "" if name != "reference" else "\n(try --local gearmand, or --target HOST:PORT)"
            raise _TargetError(f"cannot start the {name} server: {exc}{hint}") from None
        raise _TargetError(str(exc) if target_is_address(spec) else f"{spec}: {exc}") from None
    with contextlib.ExitStack() as stack:
        stack.push(opened)
        if is_tls:
            target = dataclasses.replace(target, tls=tls)
        yield target, (args.target if target.kind == "address" else target.description)


def _tls_options(args: argparse.Namespace) -> tuple[str | None, str | None, str | None, str | None]:
    return args.tls_ca, args.tls_cert, args.tls_key, args.tls_acl_identities


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


def _rerun_command(args: argparse.Namespace, case: Case, config: RunConfig) -> str:
    """The command that runs `case` alone the way this run did: every option that changes what
    the case does or how it is graded, and the run's seed (names and data derive from it)."""
    parts = ["gearspec", "test"]
    if args.target:
        parts += ["--target", args.target]
    elif args.local:
        parts += ["--local", args.local]
    elif args.impl:
        parts += ["--impl", args.impl]
    if args.profile:
        parts += ["--profile", args.profile]
    if args.expect:
        parts += ["--expect", os.path.abspath(args.expect)]  # the line may be run from elsewhere
    if args.grab:
        parts += ["--grab", args.grab]
    if args.strict:
        parts.append("--strict")
    for flag in ("tls_ca", "tls_cert", "tls_key", "tls_acl_identities"):
        if getattr(args, flag, None):
            parts += ["--" + flag.replace("_", "-"), os.path.abspath(getattr(args, flag))]
    if args.destructive or case.destructive:
        parts.append("--destructive")
    if args.durable:
        parts.append("--durable")
    if args.restart_command:
        parts += ["--restart-command", args.restart_command]
    parts += ["--seed", config.seed, "--wait", f"{config.wait:g}", "--timeout", f"{config.timeout:g}"]
    parts += ["--select", case.id, "-v"]
    return shlex.join(parts)


class _MaxFail(Exception):
    """Raised from the result callback once --maxfail counted failures are in."""


def _last_failed_path() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "gearspec" / "last-failed.json"


def _target_key(args: argparse.Namespace) -> str:
    """Which target a run was against, for --last-failed (the same words the user typed)."""
    return args.target or (f"impl:{args.impl}" if args.impl else f"local:{args.local or 'reference'}")


def _last_failed() -> dict[str, list[str]]:
    try:
        data = json.loads(_last_failed_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remember_failures(args: argparse.Namespace, results: list[Result], strict: bool) -> None:
    """Update the cases that last failed against this target: those that ran now replace
    what was known about them; cases that did not run keep their old state (as pytest does)."""
    known = _last_failed()
    ran = {r.case.id for r in results}
    failed = {r.case.id for r in results if r.counts_against(strict)}
    key = _target_key(args)
    known[key] = sorted((set(known.get(key, [])) - ran) | failed)
    path = _last_failed_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(known, indent=1) + "\n")
    except OSError as exc:  # a cache we cannot write must not change the run's outcome
        print(f"gearspec test: note: cannot record the failures in {path}: {os_reason(exc)}", file=sys.stderr)


def _run(
    args: argparse.Namespace, cases: list[Case], target: Target, label: str, config: RunConfig, control: TargetControl
) -> int:
    stream = sys.stdout
    # One connect before any case: a dead address gets one clear line, not 267 errors.
    unreachable = check_reachable(target, timeout=min(CONNECT_TIMEOUT, args.timeout))
    if unreachable is not None:
        print(f"gearspec test: cannot reach {target.address}: {unreachable}", file=sys.stderr)
        return 2
    if target.tls is not None:
        # One handshake first: a port that does not speak TLS is one line, not a failure per case.
        not_tls = check_tls(target.host, target.port, target.tls, min(CONNECT_TIMEOUT, args.timeout),
                            config.expectations.barrier)
        if not_tls is not None:
            print(f"gearspec test: tls://{target.address}: {not_tls}", file=sys.stderr)
            return 2
    else:
        tls_only = [c for c in cases if c.area == "tls"]
        if tls_only:  # they need a TLS target
            cases = [c for c in cases if c.area != "tls"]
            if not cases:
                print("gearspec test: the tls cases need a --target tls://HOST:PORT", file=sys.stderr)
                return 2
    # What the target answers (ECHO, GET_STATUS, grab packets, submit variants), once: cases
    # pick their round trips and setup steps from it instead of blaming a missing feature.
    capabilities = config.probe(target)
    died = control.dead() if control.can_restart else None
    if died is not None:
        # A probe packet killed it (node abraxas dies of GRAB_JOB_ALL): start it again, and
        # the probe's answers stand (that grab is then graded by its own cases).
        try:
            target = control.restart()
        except RestartError as exc:
            print(f"gearspec test: the target died during the probe ({died}) and did not restart: {exc}",
                  file=sys.stderr)
            return 2
        print(f"gearspec test: the target died during the probe ({died}); restarted it", file=sys.stderr)
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
    colour = reports.use_colour(stream)
    progress = reports.Progress(len(cases), stream, enabled=not args.quiet, colour=colour)
    print(
        f"gearspec test: {len(cases)} cases against {label} "
        f"[{config.expectations.name}; grab {config.grab_type.name}; -j {args.jobs}; seed {config.seed}]",
        file=stream,
    )
    progress.start()
    # After the legend: the first line of the progress stays the legend, as pytest's is.
    print(f"gearspec test: probed: {capabilities.summary()}", file=sys.stderr)
    started = time.monotonic()
    finished: dict[str, Result] = {}

    def on_result(result: Result) -> None:
        finished[result.case.id] = result
        progress.update(result)
        if args.maxfail is not None and sum(r.counts_against(config.strict) for r in finished.values()) >= args.maxfail:
            raise _MaxFail

    interrupted = stopped = False
    try:
        results: list[Result] = run_cases(cases, target, config, jobs=args.jobs, on_result=on_result, control=control)
    except (KeyboardInterrupt, _MaxFail) as exc:
        # Ctrl-C or --maxfail: what ran is still graded and reported; cases still running are dropped.
        interrupted, stopped = isinstance(exc, KeyboardInterrupt), isinstance(exc, _MaxFail)
        results = [finished[c.id] for c in cases if c.id in finished]
    elapsed = time.monotonic() - started
    progress.finish()
    if not args.no_cleanup:
        note = clean_up(control.target, config)
        if note is not None:
            print(f"gearspec test: {note}", file=sys.stderr)
    if interrupted:
        print(f"gearspec test: interrupted after {len(results)} of {len(cases)} cases; the summary and reports cover those", file=sys.stderr)
    if stopped:
        print(f"gearspec test: stopped after {args.maxfail} counted failure(s) (--maxfail); {len(results)} of {len(cases)} cases ran", file=sys.stderr)
    _remember_failures(args, results, config.strict)
    run = reports.RunInfo(
        target=label, expectations=config.expectations.name, strict=config.strict, seed=config.seed,
        elapsed=elapsed, grab=config.grab_type.name, server_log=_server_log(control.target),
        rerun=lambda case: _rerun_command(args, case, config), interrupted=interrupted,
    )
    reports.print_summary(results, run, stream, verbose=args.verbose, colour=colour)
    _print_deaths(control, stream)
    reports.write_reports(results, run, {kind: getattr(args, kind) for kind in reports.REPORT_KINDS}, sys.stderr)
    if interrupted:
        return 130
    died = control.stopped is not None
    return 1 if died or any(r.counts_against(config.strict) for r in results) else 0


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
