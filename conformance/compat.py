"""The compatibility table: run the suite against local servers and tabulate the verdicts.

    python -m gearspec.conformance.compat                     # markdown table on stdout
    python -m gearspec.conformance.compat --servers gearmand perl --draft-expectations DIR
    python -m gearspec.conformance.compat --from-json gearmand=g.json perl=p.json

The servers are the registry's (conformance/impls/NAME/) that have a local command; each runs
with its own expectations (conformance/impls/NAME/expectations.toml). `--draft-expectations`
writes, per server, the deviations seen in this run (reason = what was on the wire) as a
starting point for its expectations file; read and edit the reasons before committing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gearspec.conformance.harness import Outcome
from gearspec.conformance.impls import Registry, load_registry
from gearspec.conformance.lifecycle import TargetControl
from gearspec.conformance.registry import Case, Level, all_cases
from gearspec.conformance.runner import (
    Expectations,
    Result,
    RunConfig,
    Verdict,
    load_expectations,
    run_cases,
)
from gearspec.conformance.servers import LaunchError, start_server

__all__ = ["compat_servers", "compat_table", "draft_expectations", "main", "run_server"]


def compat_servers(registry: Registry | None = None) -> list[str]:
    """The servers the table covers: every registry server with a local command and expectations."""
    registry = registry if registry is not None else load_registry()
    return [i.name for i in registry.with_role("server") if i.local and i.expectations]


def _profile(name: str, registry: Registry | None = None) -> Path:
    path = (registry if registry is not None else load_registry())[name].expectations
    assert path is not None, name  # compat_servers has only servers with expectations
    return path


def run_server(
    name: str, cases: Sequence[Case], jobs: int = 4, wait: float = 1.0, profile: bool = True
) -> list[Result]:
    """Start local server `name` on port 0, run `cases` with its expectations, stop it.

    A server that dies is restarted and the crash recorded against its case (as `gearspec
    test` does); the profile's [target] jobs, when it gives one, overrides `jobs`.
    """
    expectations = load_expectations(_profile(name))
    if not profile:
        # Keep the grab packet, barrier and jobs from the profile: facts, not deviations.
        expectations = Expectations(
            expectations.name, expectations.grab, expectations.barrier, (), expectations.source, expectations.jobs
        )
    config = RunConfig(timeout=10.0, wait=wait, seed="compat", expectations=expectations)
    with start_server(name) as server:
        control = TargetControl.for_process(server)
        config.probe(control.target)
        if control.dead() is not None:  # a probe packet killed it (abraxas: GRAB_JOB_ALL), as in `gearspec test`
            control.restart()
        return run_cases(cases, control.target, config, jobs=expectations.jobs or jobs, control=control)


@dataclass(frozen=True, slots=True)
class Row:
    """What the table needs of one result (from a run, or from a --json report)."""

    area: str
    level: str
    outcome: str
    verdict: str

    @classmethod
    def of(cls, result: Result) -> Row:
        return cls(result.case.area, result.case.level.value, result.outcome.value, result.verdict.value)


def _cell(rows: Sequence[Row]) -> str:
    graded = [r for r in rows if r.outcome not in (Outcome.INFORMATIONAL.value, Outcome.UNSUPPORTED.value)]
    ok = sum(1 for r in graded if r.verdict in (Verdict.PASS.value, Verdict.NON_STRICT.value))
    unsupported = sum(1 for r in rows if r.outcome == Outcome.UNSUPPORTED.value)
    text = f"{ok}/{len(graded)}" if graded else "n/a"
    return text + (f" ({unsupported} unsupported)" if unsupported else "")


def compat_table(per_server: dict[str, list[Row]], registry: Registry | None = None) -> str:
    """Markdown: one row per area and per level, one column per server."""
    registry = registry if registry is not None else load_registry()
    names = list(per_server)
    areas = sorted({r.area for rows in per_server.values() for r in rows})
    header = "| area | " + " | ".join(registry[n].title if n in registry else n for n in names) + " |"
    lines = [header, "|---|" + "---|" * len(names)]
    for area in areas:
        cells = [_cell([r for r in per_server[n] if r.area == area]) for n in names]
        lines.append(f"| {area} | " + " | ".join(cells) + " |")
    for level in (Level.MUST, Level.SHOULD, Level.EXTENSION):
        cells = [_cell([r for r in per_server[n] if r.level == level.value]) for n in names]
        lines.append(f"| **all {level.value}** | " + " | ".join(cells) + " |")
    cells = [_cell(per_server[n]) for n in names]
    lines.append("| **all cases** | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Cells: cases passed (or passed with a tolerated alternative) / cases graded, where "
        "informational and unsupported cases are not graded (unsupported: an optional feature the "
        "server lacks). Each server's deviations are listed, with what was seen on the wire, in "
        "conformance/impls/NAME/expectations.toml."
    )
    return "\n".join(lines) + "\n"


def rows_from_json(path: Path) -> list[Row]:
    """Rows from a `gearspec test --json` report."""
    data = json.loads(path.read_text())
    return [Row(c["area"], c["level"], c["outcome"], c["verdict"]) for c in data["cases"]]


_NAMES = re.compile(r"gs-[a-z0-9-]+-[0-9a-f]{8,12}")
_HANDLE_HOSTS = re.compile(r"H:[^:\s']+:(?=[0-9])")


def _toml_string(text: str) -> str:
    text = _HANDLE_HOSTS.sub("H:<host>:", _NAMES.sub("<name>", text))
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")[:300] + '"'


def draft_expectations(name: str, runs: Sequence[Sequence[Result]]) -> str:
    """TOML deviations for every case that did not pass in some run (reason = expected vs actual).

    A case that passed in one run and not in another gets "pass" among its outcomes (a
    deviation seen only sometimes), so neither outcome fails a later run.
    """
    # Keep the existing file's header (comments and [target] facts) as it is.
    existing = _profile(name).read_text()
    out = [existing.split("[[deviation]]", 1)[0].rstrip()]
    by_case: dict[str, list[Result]] = {}
    for results in runs:
        for r in results:
            by_case.setdefault(r.case.id, []).append(r)
    for case_id, seen in by_case.items():
        bad = [r for r in seen if r.outcome not in (Outcome.PASS, Outcome.INFORMATIONAL, Outcome.NON_STRICT)]
        if not bad:
            continue
        outcomes = sorted({r.outcome.value for r in bad} | ({"pass"} if len(bad) < len(seen) else set()))
        r = bad[0]
        reason = r.message if r.expected is None else f"expected {r.expected}; got {r.actual}"
        if len(bad) < len(seen):
            reason = f"in {len(bad)} of {len(seen)} runs: {reason}"
        out += [
            "", "[[deviation]]", f'case = "{case_id}"', "outcome = [" + ", ".join(f'"{o}"' for o in outcomes) + "]",
            f"reason = {_toml_string(reason)}",
        ]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gearspec.conformance.compat", description=__doc__.split("\n")[0])
    servers = compat_servers()
    parser.add_argument("--servers", nargs="+", default=servers, metavar="NAME",
                        help=f"servers, by name or A,B as in gearspec interop (default: {', '.join(servers)})")
    parser.add_argument("-j", "--jobs", type=int, default=4)
    parser.add_argument("--wait", type=float, default=1.0, help="seconds to wait for one reply (default 1)")
    parser.add_argument("--draft-expectations", metavar="DIR", help="write NAME.toml drafts of the deviations seen")
    parser.add_argument("--runs", type=int, default=1, help="runs per server for drafts (finds flaky deviations)")
    parser.add_argument("--output", metavar="FILE", help="write the table here instead of stdout")
    parser.add_argument(
        "--from-json", nargs="+", metavar="NAME=FILE",
        help="build the table from earlier `gearspec test --json` reports instead of running",
    )
    args = parser.parse_args(argv)
    args.servers = [n for item in args.servers for n in item.split(",") if n]
    unknown = sorted(set(args.servers) - set(servers))
    if unknown:
        parser.error(f"unknown server(s) {', '.join(unknown)}; known: {', '.join(servers)}")
    if args.from_json:
        from_reports: dict[str, list[Row]] = {}
        for item in args.from_json:
            name, sep, file = item.partition("=")
            if not sep:
                parser.error(f"--from-json wants NAME=FILE, got {item!r}")
            try:
                from_reports[name] = rows_from_json(Path(file))
            except (OSError, ValueError, KeyError) as exc:
                print(f"compat: {file}: {exc}", file=sys.stderr)
                return 2
        _emit(compat_table(from_reports), args.output)
        return 0
    cases = all_cases()
    per_server: dict[str, list[Result]] = {}
    for name in args.servers:
        if not load_registry()[name].local_available():
            print(f"compat: {name} is not installed; left out", file=sys.stderr)
            continue
        try:
            runs = [
                run_server(name, cases, args.jobs, args.wait, profile=not args.draft_expectations)
                for _ in range(max(1, args.runs) if args.draft_expectations else 1)
            ]
        except LaunchError as exc:
            print(f"compat: {exc}", file=sys.stderr)
            return 2
        per_server[name] = runs[0]
        counts = Counter(r.verdict.value for r in per_server[name])
        print(f"compat: {name}: {dict(counts)}", file=sys.stderr)
        if args.draft_expectations:
            folder = Path(args.draft_expectations)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{name}.toml").write_text(draft_expectations(name, runs))
    if not per_server:
        return 2
    _emit(compat_table({n: [Row.of(r) for r in rs] for n, rs in per_server.items()}), args.output)
    return 0


def _emit(table: str, output: str | None) -> None:
    if output:
        Path(output).write_text(table)
    else:
        sys.stdout.write(table)


if __name__ == "__main__":
    sys.exit(main())
