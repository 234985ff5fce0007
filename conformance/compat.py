"""The compatibility table: run the suite against local servers and tabulate the verdicts.

    python -m gearspec.conformance.compat                     # markdown table on stdout
    python -m gearspec.conformance.compat --servers gearmand perl --draft-expectations DIR

Each server runs with its built-in profile (expectations/NAME.toml). `--draft-expectations`
writes, per server, the deviations seen in this run (reason = what was on the wire) as a
starting point for its expectations file; read and edit the reasons before committing.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from gearspec.conformance.harness import Outcome, Target
from gearspec.conformance.launch import LaunchError, peer_available, start_peer
from gearspec.conformance.registry import Case, Level, all_cases
from gearspec.conformance.runner import (
    Expectations,
    Result,
    RunConfig,
    Verdict,
    builtin_profiles,
    load_expectations,
    run_cases,
)

__all__ = ["SERVERS", "compat_table", "draft_expectations", "main", "run_server"]

# local server name (launch.PEER_COMMANDS) -> (profile, column label)
SERVERS: dict[str, tuple[str, str]] = {
    "reference": ("reference", "gearspec reference"),
    "gearmand": ("gearmand", "gearmand 1.1.20"),
    "perl": ("perl", "Perl Gearman::Server 1.12"),
    "gear": ("gear", "python gear 0.16"),
}


def run_server(
    name: str, cases: Sequence[Case], jobs: int = 4, wait: float = 1.0, profile: bool = True
) -> list[Result]:
    """Start local server `name` on port 0, run `cases` with its profile, stop it."""
    expectations = load_expectations(builtin_profiles()[SERVERS[name][0]]) if profile else Expectations()
    if not profile:
        # Keep the grab packet and barrier from the profile: they are facts, not deviations.
        base = load_expectations(builtin_profiles()[SERVERS[name][0]])
        expectations = Expectations(base.name, base.grab, base.barrier, (), base.source)
    config = RunConfig(timeout=10.0, wait=wait, seed="compat", expectations=expectations)
    with start_peer(name) as server:
        return run_cases(cases, Target(server.host, server.port), config, jobs=jobs)


def _cell(results: Sequence[Result]) -> str:
    graded = [r for r in results if r.outcome is not Outcome.INFORMATIONAL]
    ok = sum(1 for r in graded if r.verdict in (Verdict.PASS, Verdict.NON_STRICT))
    if not graded:
        return "info only"
    return f"{ok}/{len(graded)}"


def compat_table(per_server: dict[str, list[Result]]) -> str:
    """Markdown: one row per area (passed/graded cases) and per level, one column per server."""
    names = list(per_server)
    any_results = next(iter(per_server.values()))
    areas = sorted({r.case.area for r in any_results})
    header = "| area | " + " | ".join(SERVERS.get(n, (n, n))[1] for n in names) + " |"
    lines = [header, "|---|" + "---|" * len(names)]
    for area in areas:
        cells = [_cell([r for r in per_server[n] if r.case.area == area]) for n in names]
        lines.append(f"| {area} | " + " | ".join(cells) + " |")
    for level in (Level.MUST, Level.SHOULD, Level.EXTENSION):
        cells = [_cell([r for r in per_server[n] if r.case.level is level]) for n in names]
        lines.append(f"| **all {level.value}** | " + " | ".join(cells) + " |")
    cells = [_cell(per_server[n]) for n in names]
    lines.append("| **all cases** | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Cells: cases passed (or passed with a tolerated alternative) / cases graded; "
        "informational cases are not graded. Each server's deviations are listed, with what was "
        "seen on the wire, in gearspec/conformance/expectations/NAME.toml."
    )
    return "\n".join(lines) + "\n"


_NAMES = re.compile(r"gs-[a-z0-9-]+-[0-9a-f]{8,12}")
_HANDLES = re.compile(r"H:[^:\s']+:[0-9]+")


def _toml_string(text: str) -> str:
    text = _HANDLES.sub("H:<host>:<n>", _NAMES.sub("<name>", text))
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")[:300] + '"'


def draft_expectations(name: str, results: Sequence[Result]) -> str:
    """TOML deviations for every result that is not a pass (reason = expected vs actual)."""
    # Keep the existing file's header (comments and [target] facts) as it is.
    existing = builtin_profiles()[SERVERS[name][0]].read_text()
    out = [existing.split("[[deviation]]", 1)[0].rstrip()]
    for r in results:
        if r.outcome in (Outcome.PASS, Outcome.INFORMATIONAL, Outcome.NON_STRICT):
            continue
        reason = r.message if r.expected is None else f"expected {r.expected}; got {r.actual}"
        out += ["", "[[deviation]]", f'case = "{r.case.id}"', f'outcome = ["{r.outcome.value}"]', f"reason = {_toml_string(reason)}"]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gearspec.conformance.compat", description=__doc__.split("\n")[0])
    parser.add_argument("--servers", nargs="+", default=list(SERVERS), choices=list(SERVERS))
    parser.add_argument("-j", "--jobs", type=int, default=4)
    parser.add_argument("--wait", type=float, default=1.0, help="seconds to wait for one reply (default 1)")
    parser.add_argument("--draft-expectations", metavar="DIR", help="write NAME.toml drafts of the deviations seen")
    parser.add_argument("--output", metavar="FILE", help="write the table here instead of stdout")
    args = parser.parse_args(argv)
    cases = all_cases()
    per_server: dict[str, list[Result]] = {}
    for name in args.servers:
        if not peer_available(name):
            print(f"compat: {name} is not installed; left out", file=sys.stderr)
            continue
        try:
            per_server[name] = run_server(name, cases, args.jobs, args.wait, profile=not args.draft_expectations)
        except LaunchError as exc:
            print(f"compat: {exc}", file=sys.stderr)
            return 2
        counts = Counter(r.verdict.value for r in per_server[name])
        print(f"compat: {name}: {dict(counts)}", file=sys.stderr)
        if args.draft_expectations:
            folder = Path(args.draft_expectations)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{name}.toml").write_text(draft_expectations(name, per_server[name]))
    if not per_server:
        return 2
    table = compat_table(per_server)
    if args.output:
        Path(args.output).write_text(table)
    else:
        sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
