"""pytest plugin: run the conformance cases as pytest items.

    pytest --pyargs gearspec.conformance --gearman-target 127.0.0.1:4730 [--gearman-profile gearmand]
    pytest --pyargs gearspec.conformance --gearman-local gearmand -k framing

The plugin is registered as the `gearspec` pytest11 entry point, so it is loaded by every
pytest run on a machine where gearspec is installed. It stays inert there: it only adds its
options, and collects cases only when pytest walks the gearspec.conformance package itself.
Each case becomes one item named by its ID; the same runner as `gearspec test` runs it.
Verdicts map to pytest outcomes: pass, non-strict and informational pass (with a report
section), unsupported skips, a listed deviation xfails, an unexpected pass or a counted
failure fails, and a SHOULD failure without --gearman-strict xfails.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["CaseItem", "pytest_addoption", "pytest_collect_file"]

_CASES_INIT = Path(__file__).resolve().parent / "cases" / "__init__.py"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gearspec", "gearspec conformance suite (pytest --pyargs gearspec.conformance)")
    group.addoption(
        "--gearman-target", metavar="HOST:PORT",
        help="the job server to test; also docker:IMAGE, impl:NAME, local:NAME (as gearspec test --target)",
    )
    group.addoption(
        "--gearman-local", "--gearman-server", metavar="NAME", dest="gearman_local",
        help="start a server of the registry here on port 0 instead (default reference; as gearspec test --local)",
    )
    group.addoption("--gearman-profile", metavar="NAME", help="built-in expectations (known deviations)")
    group.addoption("--gearman-expect", metavar="FILE", help="an expectations file")
    group.addoption("--gearman-strict", action="store_true", help="SHOULD failures fail")
    group.addoption("--gearman-timeout", type=float, default=10.0, metavar="SECONDS", help="per-case timeout")
    group.addoption("--gearman-wait", type=float, default=2.0, metavar="SECONDS", help="wait for one reply")
    group.addoption("--gearman-seed", default="0", help="seed for names and data")
    group.addoption("--gearman-destructive", action="store_true", help="also run cases that may stop the target")
    group.addoption(
        "--gearman-no-cleanup", action="store_true",
        help="leave the jobs the cases queued on the target (default: drain them at the end of the session)",
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    # Only the gearspec.conformance.cases package turns into conformance items.
    if file_path.name == "__init__.py" and file_path.resolve() == _CASES_INIT:
        return CaseCollector.from_parent(parent, path=file_path)
    return None


class _Target:
    """The session's target, opened on first use and closed at the end of the session."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.stack = contextlib.ExitStack()
        self.value: Any = None
        self.run_config: Any = None
        self.error: str | None = None

    def get(self) -> tuple[Any, Any]:
        from gearspec.conformance.runner import (
            Expectations,
            ExpectationsError,
            RunConfig,
            builtin_profiles,
            check_reachable,
            load_expectations,
        )
        from gearspec.conformance.servers import LaunchError, open_target

        if self.error is not None:
            pytest.exit(self.error, returncode=pytest.ExitCode.USAGE_ERROR)
        if self.value is None:
            opt = self.config.getoption
            try:
                expectations = Expectations(name="no expectations")
                if opt("gearman_profile"):
                    profiles = builtin_profiles()
                    if opt("gearman_profile") not in profiles:
                        raise ExpectationsError(f"no profile {opt('gearman_profile')!r}; known: {', '.join(profiles)}")
                    expectations = load_expectations(profiles[opt("gearman_profile")])
                elif opt("gearman_expect"):
                    expectations = load_expectations(opt("gearman_expect"))
                spec = opt("gearman_target") or f"local:{opt('gearman_local') or 'reference'}"
                target = self.stack.enter_context(open_target(spec))
                if target.kind == "address":
                    # One connect before any case: a dead address stops the session with one
                    # line rather than failing every case.
                    unreachable = check_reachable(target, timeout=min(5.0, opt("gearman_timeout")))
                    if unreachable is not None:
                        raise ValueError(f"cannot reach {target.address}: {unreachable}")
                self.value = target
            except (ExpectationsError, ValueError, LaunchError) as exc:
                self.error = f"gearspec: {exc}"
                pytest.exit(self.error, returncode=pytest.ExitCode.USAGE_ERROR)
            self.run_config = RunConfig(
                timeout=opt("gearman_timeout"), wait=opt("gearman_wait"), seed=opt("gearman_seed"),
                strict=opt("gearman_strict"), expectations=expectations, destructive=opt("gearman_destructive"),
            )
        return self.value, self.run_config


_TARGET_KEY = pytest.StashKey[_Target]()


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = session.config.stash.get(_TARGET_KEY, None)
    if target is None:
        return
    try:
        if target.value is not None and not session.config.getoption("gearman_no_cleanup"):
            # As `gearspec test` does: what the cases queued under the session's names is taken back.
            from gearspec.conformance.runner import clean_up

            note = clean_up(target.value, target.run_config)
            if note is not None:
                reporter = session.config.pluginmanager.get_plugin("terminalreporter")
                if reporter is not None:
                    reporter.write_line(f"gearspec: {note}")
    finally:
        target.stack.close()


class CaseCollector(pytest.File):
    """Every registered case, as items named by case ID."""

    def collect(self) -> Iterator[pytest.Item]:
        from gearspec.conformance.registry import all_cases

        if _TARGET_KEY not in self.config.stash:
            self.config.stash[_TARGET_KEY] = _Target(self.config)
        for c in all_cases():
            item = CaseItem.from_parent(self, name=c.id)
            item.case = c
            item.add_marker(pytest.mark.gearspec_conformance)
            yield item


class CaseFailure(Exception):
    """A case that counts against the target."""


class CaseItem(pytest.Item):
    case: Any

    def runtest(self) -> None:
        from gearspec.conformance.reports import format_trace
        from gearspec.conformance.runner import Verdict, run_case

        target, run_config = self.config.stash[_TARGET_KEY].get()
        result = run_case(self.case, target, run_config)
        verdict = result.verdict
        text = f"{verdict.value}: {result.message}"
        if result.expected is not None:
            text += f"\nexpected: {result.expected}\nactual:   {result.actual}"
        self.add_report_section("call", "gearspec", f"{text}\n\n{format_trace(result)}")
        if verdict is Verdict.UNSUPPORTED:
            pytest.skip(f"unsupported: {result.message}")
        if verdict is Verdict.EXPECTED_FAIL:
            reason = result.deviation.reason if result.deviation is not None else result.message
            pytest.xfail(f"known deviation: {reason}")
        if verdict is Verdict.UNEXPECTED_PASS:
            reason = result.deviation.reason if result.deviation is not None else ""
            raise CaseFailure(f"unexpectedly passed: listed as a known deviation ({reason}); update the expectations")
        if verdict in (Verdict.FAIL, Verdict.ERROR):
            if not result.counts_against(run_config.strict):
                pytest.xfail(f"{self.case.level.value} not met (counts with --gearman-strict): {result.message}")
            raise CaseFailure(f"{text}\n\ntrace:\n{format_trace(result)}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, CaseFailure):
            return f"{self.case.describe()}\nsource: {self.case.source}\n{excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.case.id} [{self.case.level.value}]"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gearspec_conformance: a gearspec conformance case (set by the plugin)")
