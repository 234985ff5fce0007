"""Reports of a conformance run: terminal progress and summary, JUnit XML, JSON, HTML, markdown.

Every report is made from the same `Result` list (runner.py) and a `RunInfo` header. The
HTML page is one self-contained file (template: report_template.html) with a grade per
area, each case's requirement, expected vs actual, and the decoded trace of both
directions with the hex of each packet behind a <details>.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import string
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from gearspec.conformance.registry import Case
from gearspec.conformance.runner import Result, Verdict

__all__ = [
    "Progress",
    "RunInfo",
    "area_grades",
    "format_trace",
    "legend",
    "markdown_table",
    "print_summary",
    "results_as_data",
    "use_colour",
    "write_html",
    "write_json",
    "write_junit",
    "write_markdown",
]

VERDICT_ORDER = (
    Verdict.PASS, Verdict.NON_STRICT, Verdict.INFORMATIONAL, Verdict.UNSUPPORTED,
    Verdict.EXPECTED_FAIL, Verdict.FAIL, Verdict.ERROR, Verdict.UNEXPECTED_PASS,
)
_SYMBOL = {
    Verdict.PASS: ".", Verdict.NON_STRICT: "n", Verdict.INFORMATIONAL: "i", Verdict.UNSUPPORTED: "u",
    Verdict.EXPECTED_FAIL: "x", Verdict.FAIL: "F", Verdict.ERROR: "E", Verdict.UNEXPECTED_PASS: "X",
}


_COLOURS = {"red": "31", "green": "32", "yellow": "33", "bold": "1"}
_VERDICT_COLOUR = {
    Verdict.PASS: "green", Verdict.NON_STRICT: "yellow", Verdict.EXPECTED_FAIL: "yellow",
    Verdict.FAIL: "red", Verdict.ERROR: "red", Verdict.UNEXPECTED_PASS: "red",
}
_GRADE_COLOUR = {"A": "green", "B": "yellow", "C": "yellow", "D": "red", "F": "red"}


def use_colour(stream: TextIO) -> bool:
    """Colour on a terminal, unless NO_COLOR is set (https://no-color.org) or TERM=dumb."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def _paint(text: str, colour: str | None, enabled: bool) -> str:
    if not enabled or colour is None:
        return text
    return f"\033[{_COLOURS[colour]}m{text}\033[0m"


def legend() -> str:
    """What the progress letters mean (one letter per finished case)."""
    return "progress: " + ", ".join(f"{_SYMBOL[v]} {v.value}" for v in VERDICT_ORDER)


@dataclass
class RunInfo:
    """What was tested and how."""

    target: str
    expectations: str
    strict: bool
    seed: str
    elapsed: float
    grab: str | None = "GRAB_JOB"  # None: no grab packet applies (role tests play the server)
    server_log: str = ""  # the target's own log, when gearspec started it (container or process)
    rerun: Callable[[Case], str] | None = None  # the command that runs one case again, as this run did
    interrupted: bool = False  # Ctrl-C: the results are the cases that finished before it
    # What a command adds to the shared reports (`gearspec interop`: its grid and cell coordinates):
    extra_html: str = ""  # a section above the cases in the HTML page
    extra_markdown: str = ""  # appended to the markdown summary
    extra_data: dict[str, Any] = field(default_factory=dict)  # more top-level JSON fields
    case_data: Callable[[Result], dict[str, Any]] | None = None  # more fields of each case in the JSON
    command: str = "gearspec test"  # the command, in the lines about the reports

    def rerun_line(self, case: Case) -> str | None:
        return self.rerun(case) if self.rerun is not None else None


# -- terminal -------------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on a terminal; a dot line otherwise."""

    def __init__(self, total: int, stream: TextIO, enabled: bool = True, colour: bool = False) -> None:
        self.total = total
        self.stream = stream
        self.enabled = enabled
        self.colour = colour
        self.done = 0
        self.counts: Counter[Verdict] = Counter()
        self.tty = bool(getattr(stream, "isatty", lambda: False)())

    def start(self) -> None:
        """The legend of the letters, when letters are what the progress shows."""
        if self.enabled and not self.tty:
            self.stream.write(legend() + "\n")

    def update(self, result: Result) -> None:
        self.done += 1
        self.counts[result.verdict] += 1
        if not self.enabled:
            return
        if self.tty:
            width = 30
            filled = int(width * self.done / max(1, self.total))
            bad = self.counts[Verdict.FAIL] + self.counts[Verdict.ERROR] + self.counts[Verdict.UNEXPECTED_PASS]
            failed = _paint(f"failed {bad}", "red" if bad else None, self.colour)
            self.stream.write(
                f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}"
                f"  {failed}  {result.case.id[:40]:40}"
            )
        else:
            self.stream.write(_paint(_SYMBOL[result.verdict], _VERDICT_COLOUR.get(result.verdict), self.colour))
            if self.done % 60 == 0:
                self.stream.write(f" {self.done}/{self.total}\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\n" if not self.tty else "\r" + " " * 110 + "\r")
            self.stream.flush()


def format_trace(result: Result, limit: int = 60) -> str:
    lines = [entry.format() for entry in result.trace]
    if len(lines) > limit:
        lines = [*lines[: limit // 2], f"   ... {len(lines) - limit} more ...", *lines[-limit // 2:]]
    return "\n".join(lines)


def area_grades(results: Sequence[Result]) -> dict[str, Counter[Verdict]]:
    grades: dict[str, Counter[Verdict]] = {}
    for r in results:
        grades.setdefault(r.case.area, Counter())[r.verdict] += 1
    return grades


def _grade_letter(counts: Counter[Verdict]) -> str:
    graded = sum(counts.values()) - counts[Verdict.INFORMATIONAL] - counts[Verdict.UNSUPPORTED]
    bad = counts[Verdict.FAIL] + counts[Verdict.ERROR] + counts[Verdict.UNEXPECTED_PASS] + counts[Verdict.EXPECTED_FAIL]
    if graded <= 0:
        return "-"
    score = 1 - bad / graded
    return "A" if score >= 0.99 else "B" if score >= 0.9 else "C" if score >= 0.75 else "D" if score >= 0.5 else "F"


def print_summary(
    results: Sequence[Result],
    run: RunInfo,
    stream: TextIO = sys.stdout,
    *,
    verbose: bool = False,
    rerun: Callable[[Case], str] | None = None,
    colour: bool = False,
) -> None:
    """Problems first (with a rerun command each), then per-area counts and the totals."""
    w = stream.write
    rerun = rerun or run.rerun
    problems = [r for r in results if r.counts_against(run.strict)]
    shoulds = [r for r in results if r.verdict in (Verdict.FAIL, Verdict.ERROR) and not r.counts_against(run.strict)]
    for r in problems + shoulds:
        counted = "" if r in problems else "  (SHOULD: not counted without --strict)"
        heading = _paint(r.verdict.value.upper(), "red" if r in problems else "yellow", colour)
        w(f"\n{heading} {r.case.id} [{r.case.level.value}]{counted}\n")
        w(f"  requirement: {r.case.requirement}\n")
        if r.verdict is Verdict.UNEXPECTED_PASS and r.deviation is not None:
            w(f"  listed as a known deviation ({r.deviation.reason}) but passed: update the expectations\n")
        elif r.expected is not None:
            w(f"  expected: {r.expected}\n  actual:   {r.actual}\n")
        else:
            w(f"  {r.message}\n")
        if verbose:
            w("  trace:\n" + "\n".join("    " + line for line in format_trace(r).splitlines()) + "\n")
        if rerun is not None:
            w(f"  rerun: {rerun(r.case)}\n")
    if verbose:
        for r in results:
            if r.verdict in (Verdict.NON_STRICT, Verdict.INFORMATIONAL, Verdict.UNSUPPORTED, Verdict.EXPECTED_FAIL):
                w(f"{r.verdict.value:15} {r.case.id}: {r.message}\n")
    w("\n")
    grades = area_grades(results)
    shown = [v for v in VERDICT_ORDER if any(c[v] for c in grades.values())]
    w(f"{'area':14} {'grade':5} " + " ".join(f"{v.value:>15}" for v in shown) + "\n")
    for area, counts in sorted(grades.items()):
        letter = _grade_letter(counts)
        w(f"{area:14} {_paint(f'{letter:5}', _GRADE_COLOUR.get(letter), colour)} " + " ".join(f"{counts[v]:>15}" for v in shown) + "\n")
    totals: Counter[Verdict] = Counter(r.verdict for r in results)
    parts = ", ".join(f"{totals[v]} {v.value}" for v in VERDICT_ORDER if totals[v])
    verdict = "INTERRUPTED" if run.interrupted else "FAILED" if problems else "OK"
    verdict = _paint(verdict, {"OK": "green", "FAILED": "red"}.get(verdict, "yellow"), colour)
    w(f"\n{verdict}: {len(results)} cases in {run.elapsed:.1f} s against {run.target}: {parts}\n")
    stream.flush()


# -- data reports ---------------------------------------------------------------------------


_JSON_HEX_LIMIT = 64 * 1024  # bytes of hex per trace entry in JSON; "size" has the full length


def _show(data: bytes) -> str:
    return data.hex(" ")


def results_as_data(results: Sequence[Result], run: RunInfo) -> dict[str, Any]:
    """Everything a machine reader needs, JSON-ready."""
    return {
        **run.extra_data,
        "run": {
            "target": run.target, "expectations": run.expectations, "strict": run.strict, "seed": run.seed,
            "elapsed": round(run.elapsed, 3), "grab": run.grab, "server_log": run.server_log or None,
            "interrupted": run.interrupted,
        },
        "totals": {v.value: n for v, n in Counter(r.verdict for r in results).items()},
        "failed": any(r.counts_against(run.strict) for r in results),
        "cases": [
            {
                "id": r.case.id,
                "area": r.case.area,
                "level": r.case.level.value,
                "requirement": r.case.requirement,
                "packets": [p.name for p in r.case.packets],
                "admin": list(r.case.admin),
                "source": r.case.source,
                "outcome": r.outcome.value,
                "verdict": r.verdict.value,
                "counts_against": r.counts_against(run.strict),
                "message": r.message,
                "expected": r.expected,
                "actual": r.actual,
                "alternative": r.alternative,
                "deviation": None if r.deviation is None else {
                    "case": r.deviation.case, "reason": r.deviation.reason,
                    "outcomes": sorted(o.value for o in r.deviation.outcomes),
                },
                "rerun": run.rerun_line(r.case),
                "duration": round(r.duration, 4),
                "notes": r.notes,
                "trace": [
                    {
                        "t": round(e.time, 6), "conn": e.conn, "dir": e.direction, "summary": e.summary,
                        "size": len(e.data), "hex": _show(e.data[:_JSON_HEX_LIMIT]),
                    }
                    for e in r.trace
                ],
                **(run.case_data(r) if run.case_data is not None else {}),
            }
            for r in results
        ],
    }


def write_json(results: Sequence[Result], run: RunInfo, path: Path) -> None:
    path.write_text(json.dumps(results_as_data(results, run), indent=1) + "\n")


def _xml_safe(text: str) -> str:
    # XML 1.0 forbids most control characters, which decoded traces can contain.
    return "".join(c if c in "\t\n\r" or (" " <= c <= "\ud7ff") or ("\ue000" <= c <= "\ufffd") else f"\\x{ord(c):02x}" for c in text)


def _junit_skip_reason(r: Result) -> str | None:
    """Why a result that does not fail the run is not a plain pass, as a CI dashboard shows it
    (a <skipped> element), or None for a pass."""
    verdict = r.verdict
    if verdict is Verdict.EXPECTED_FAIL:
        return f"expected-fail: known deviation: {r.deviation.reason if r.deviation is not None else r.message}"
    if verdict in (Verdict.FAIL, Verdict.ERROR):  # not counted: a SHOULD without --strict
        return f"{verdict.value} ({r.case.level.value}, not counted without --strict): {r.message}"
    if verdict is Verdict.UNSUPPORTED:
        return f"unsupported: {r.message}"
    if verdict is Verdict.NON_STRICT:
        return f"non-strict: tolerated alternative: {r.message}"
    if verdict is Verdict.INFORMATIONAL and r.case.destructive:
        return f"not run: {r.message}"
    return None


def write_junit(results: Sequence[Result], run: RunInfo, path: Path) -> None:
    """JUnit XML: one testsuite per area, one testcase per case named by its ID.

    A dashboard reads it as the terminal does: what fails the run is a <failure> (or <error>),
    what is tolerated or not counted (SHOULD failures without --strict, known deviations,
    unsupported features, destructive cases not run) is <skipped> with the reason, and
    everything else passes. <testsuites> carries the totals.
    """
    root = ET.Element("testsuites", name="gearspec conformance")
    totals: Counter[str] = Counter()
    for area in sorted({r.case.area for r in results}):
        mine = [r for r in results if r.case.area == area]
        counts: Counter[str] = Counter(tests=len(mine))
        suite = ET.SubElement(root, "testsuite", name=f"gearspec.conformance.{area}")
        for r in mine:
            tc = ET.SubElement(
                suite, "testcase", classname=f"gearspec.conformance.{area}",
                name=f"{r.case.id} [{r.case.level.value}] {r.case.requirement}", time=f"{r.duration:.3f}",
            )
            rerun = run.rerun_line(r.case)
            detail = _xml_safe(f"{r.message}\nexpected: {r.expected}\nactual: {r.actual}" + (f"\nrerun: {rerun}" if rerun else ""))
            skip = _junit_skip_reason(r)
            if r.counts_against(run.strict):
                tag = "error" if r.verdict is Verdict.ERROR else "failure"
                counts["errors" if tag == "error" else "failures"] += 1
                ET.SubElement(tc, tag, message=_xml_safe(f"{r.verdict.value}: {r.message}"[:500]), type=r.verdict.value).text = detail
            elif skip is not None:
                counts["skipped"] += 1
                ET.SubElement(tc, "skipped", message=_xml_safe(skip[:500])).text = detail
            ET.SubElement(tc, "system-out").text = _xml_safe(
                f"verdict: {r.verdict.value}\nsource: {r.case.source}\n" + (f"rerun: {rerun}\n" if rerun else "") + f"{r.message}\n\n"
                + "\n".join(f"{e.format()}\n{'':14}{_show(e.data[:4096])}{' ...' if len(e.data) > 4096 else ''}" if e.data else e.format() for e in r.trace)
            )
        for key in ("tests", "failures", "errors", "skipped"):
            suite.set(key, str(counts[key]))
        suite.set("time", f"{sum(r.duration for r in mine):.3f}")
        totals.update(counts)
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(totals[key]))
    root.set("time", f"{run.elapsed:.3f}")
    if run.server_log:
        log_suite = ET.SubElement(
            root, "testsuite", name="gearspec.conformance.server-log", tests="0", failures="0", errors="0",
            skipped="0", time="0",
        )
        ET.SubElement(log_suite, "system-out").text = _xml_safe(run.server_log)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def write_markdown(results: Sequence[Result], run: RunInfo, path: Path) -> None:
    path.write_text(markdown_summary(results, run))


def markdown_table(corner: str, columns: Sequence[str], rows: Iterable[tuple[str, Sequence[str]]]) -> list[str]:
    """A markdown table's lines: a heading row (`corner`, then `columns`), then each row's name
    and cells. The one table writer of the markdown reports, the interop grid and the README's
    role table (`python -m gearspec.conformance.roles`)."""
    return [
        f"| {corner} | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
        *(f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows),
    ]


def markdown_summary(results: Sequence[Result], run: RunInfo) -> str:
    grades = area_grades(results)
    cols = [v for v in VERDICT_ORDER if any(c[v] for c in grades.values())]
    lines = [
        f"Conformance of **{run.target}** ({run.expectations}): {len(results)} cases in {run.elapsed:.1f} s",
        "",
        *markdown_table("area", ["grade", *(v.value for v in cols)], (
            (area, [_grade_letter(counts), *(str(counts[v]) for v in cols)]) for area, counts in sorted(grades.items()))),
    ]
    return "\n".join(lines) + "\n" + (f"\n{run.extra_markdown}" if run.extra_markdown else "")


# -- HTML -----------------------------------------------------------------------------------

_VERDICT_CLASS = {
    Verdict.PASS: "pass", Verdict.NON_STRICT: "nonstrict", Verdict.INFORMATIONAL: "info",
    Verdict.UNSUPPORTED: "unsupported", Verdict.EXPECTED_FAIL: "xfail", Verdict.FAIL: "fail",
    Verdict.ERROR: "error", Verdict.UNEXPECTED_PASS: "fail",
}


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _trace_html(result: Result) -> str:
    rows = []
    for entry in result.trace:
        cls = {"send": "send", "recv": "recv", "note": "note", "event": "event"}[entry.direction]
        hexdump = ""
        if entry.data:
            shown = entry.data[:4096]
            more = f" … ({len(entry.data)} bytes)" if len(entry.data) > len(shown) else ""
            hexdump = f"<details><summary>hex</summary><pre>{_e(shown.hex(' '))}{more}</pre></details>"
        rows.append(
            f'<tr class="{cls}"><td>{entry.time * 1000:.1f} ms</td><td>{_e(entry.conn)}</td>'
            f"<td>{_e(entry.arrow())}</td><td><code>{_e(entry.summary)}</code>{hexdump}</td></tr>"
        )
    return '<table class="trace">' + "".join(rows) + "</table>"


def write_html(results: Sequence[Result], run: RunInfo, path: Path) -> None:
    grades = area_grades(results)
    cols = [v for v in VERDICT_ORDER if any(c[v] for c in grades.values())]
    head = "".join(f"<th>{_e(v.value)}</th>" for v in cols)
    area_rows = "".join(
        f'<tr><td><a href="#area-{_e(area)}">{_e(area)}</a></td><td class="grade">{_grade_letter(c)}</td>'
        + "".join(f'<td class="{_VERDICT_CLASS[v] if c[v] else ""}">{c[v]}</td>' for v in cols)
        + "</tr>"
        for area, c in sorted(grades.items())
    )
    sections = []
    for area in sorted(grades):
        items = []
        for r in (r for r in results if r.case.area == area):
            v = r.verdict
            open_attr = " open" if r.counts_against(run.strict) else ""
            extra = ""
            if r.expected is not None:
                extra += f"<p><b>expected</b> {_e(r.expected)}<br><b>actual</b> {_e(r.actual)}</p>"
            elif r.message:
                extra += f"<p>{_e(r.message)}</p>"
            if r.notes:
                extra += "<ul>" + "".join(f"<li><pre>{_e(n)}</pre></li>" for n in r.notes) + "</ul>"
            if r.deviation is not None:
                extra += f"<p><b>known deviation</b>: {_e(r.deviation.reason)}</p>"
            rerun = run.rerun_line(r.case)
            if rerun:
                extra += f'<p class="rerun"><b>rerun</b> <code>{_e(rerun)}</code></p>'

            rows = ", ".join(p.name for p in r.case.packets) + (
                ("; admin: " + ", ".join(r.case.admin)) if r.case.admin else ""
            )
            items.append(
                f'<details class="case {_VERDICT_CLASS[v]}" id="{_e(r.case.id)}"{open_attr}>'
                f'<summary><span class="badge {_VERDICT_CLASS[v]}">{_e(v.value)}</span> '
                f"<code>{_e(r.case.id)}</code> <small>{_e(r.case.level.value)}</small> {_e(r.case.requirement)}</summary>"
                f'<div class="body"><p class="meta">spec rows: {_e(rows) or "-"}<br>source: {_e(r.case.source)}'
                f"<br>time: {r.duration * 1000:.0f} ms</p>{extra}{_trace_html(r)}</div></details>"
            )
        sections.append(f'<h2 id="area-{_e(area)}">{_e(area)}</h2>' + "".join(items))
    totals = Counter(r.verdict for r in results)
    template = string.Template((resources.files("gearspec.conformance") / "report_template.html").read_text())
    page = template.substitute(
        title=_e(f"gearspec conformance: {run.target}"),
        target=_e(run.target),
        expectations=_e(run.expectations),
        summary=_e(", ".join(f"{totals[v]} {v.value}" for v in VERDICT_ORDER if totals[v])),
        verdict=_e(_headline(results, run, grades)),
        details=_e(f"{len(results)} cases in {run.elapsed:.1f} s; seed {run.seed}; "
                  + (f"grab {run.grab}; " if run.grab else "") + f"strict {run.strict}"),
        head=head,
        areas=area_rows,
        sections=run.extra_html + "".join(sections) + _server_log_html(run),
    )
    path.write_text(page)


def _headline(results: Sequence[Result], run: RunInfo, grades: dict[str, Counter[Verdict]]) -> str:
    """FAILED or OK as the exit status says, and, beside OK, the areas that are not graded A."""
    if run.interrupted:
        return f"INTERRUPTED after {len(results)} cases"
    if any(r.counts_against(run.strict) for r in results):
        return "FAILED"
    weak = [f"{area} {letter}" for area, counts in sorted(grades.items()) if (letter := _grade_letter(counts)) not in ("A", "-")]
    if weak:
        return f"PASSED with known deviations (nothing counts against the target), not fully conformant: {', '.join(weak)}"
    return "OK"


def _server_log_html(run: RunInfo) -> str:
    if not run.server_log:
        return ""
    return (
        '<h2 id="server-log">server log</h2><details class="case info"><summary>the target\'s own output '
        f"({len(run.server_log.splitlines())} lines)</summary><div class=\"body\"><pre>{_e(run.server_log)}</pre>"
        "</div></details>"
    )


REPORT_KINDS = ("junit", "json", "html", "markdown")  # the --junit/--json/--html/--markdown options
_REPORT_HELP = {"junit": "write JUnit XML", "json": "write JSON results", "html": "write an HTML report",
                "markdown": "write a markdown summary"}


def add_report_options(group: argparse._ArgumentGroup, notes: dict[str, str]) -> None:
    """The report files (REPORT_KINDS) as options, the same for every command that runs cases;
    `notes` adds what a command's report of that kind holds besides the suite's."""
    for kind in REPORT_KINDS:
        note = notes.get(kind)
        group.add_argument(f"--{kind}", metavar="FILE", help=_REPORT_HELP[kind] + (f" ({note})" if note else ""))


def write_reports(results: Sequence[Result], run: RunInfo, paths: dict[str, str | None], errors: TextIO) -> None:
    """Write each report asked for ({kind: path}); one that cannot be written is a line on
    `errors`, and the verdict already printed (and the exit status) stand."""
    writers = {"junit": write_junit, "json": write_json, "html": write_html, "markdown": write_markdown}
    for kind in REPORT_KINDS:
        path = paths.get(kind)
        if path:
            try:
                writers[kind](results, run, Path(path))
            except OSError as exc:
                errors.write(f"{run.command}: cannot write {path}: {exc.strerror or exc}\n")
