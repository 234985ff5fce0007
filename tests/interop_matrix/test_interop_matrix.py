"""The interop matrix over local processes: real servers, real client and worker libraries.

Kept to a few pairs so it fits the normal test run (about a minute); `tox -e interop` and
scripts/docker-ci.sh run the whole matrix.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from gearspec.conformance.drivers import DRIVERS
from gearspec.conformance.impls import load_registry
from gearspec.conformance.interop import SCENARIOS, Matrix, grid_html, grid_markdown, render_grid, run_matrix
from gearspec.conformance.runner import Verdict
from gearspec.conformance.servers import server_available


def _need(*, servers: tuple[str, ...] = (), drivers: tuple[str, ...] = ()) -> None:
    missing = [s for s in servers if not server_available(s)]
    missing += [f"{d} ({DRIVERS[d].unavailable()})" for d in drivers if not DRIVERS[d].available()]
    if missing:
        message = f"not installed: {', '.join(missing)} (scripts/install-peers.sh installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _gearspec(*args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gearspec", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    """gearmand, Perl and the reference server against the reference, PHP and Perl libraries."""
    _need(servers=("gearmand", "perl"), drivers=("reference", "php", "perl"))
    return run_matrix(load_registry(), ["gearmand", "perl", "reference"], ["reference", "php", "perl"], timeout=10)


def grade(matrix: Matrix, server: str, client: str, scenario: str) -> Verdict:
    (result,) = [r for r in matrix.results if (r.server, r.client, r.scenario) == (server, client, scenario)]
    return result.verdict


def test_every_pair_ran_every_scenario_and_nothing_expected_broke(matrix: Matrix) -> None:
    assert len(matrix.results) == 3 * 3 * len(SCENARIOS)
    assert matrix.broken == [], render_grid(matrix)


@pytest.mark.parametrize("server", ["gearmand", "reference"])
@pytest.mark.parametrize("client", ["reference", "php"])
def test_full_featured_pairs_pass_everything(matrix: Matrix, server: str, client: str) -> None:
    assert {r.scenario: r.verdict for r in matrix.cell(server, client)} == dict.fromkeys(SCENARIOS, Verdict.PASS)


def test_known_deviations_are_graded_with_their_reasons(matrix: Matrix) -> None:
    # Perl Gearman::Server has no SUBMIT_JOB_LOW: the registry lists it, the matrix shows it.
    (prio,) = [r for r in matrix.cell("perl", "reference") if r.scenario == "priorities"]
    assert prio.verdict is Verdict.EXPECTED_FAIL and prio.deviation is not None
    assert "SUBMIT_JOB_LOW" in prio.deviation.reason and prio.case.id == "interop/perl/reference/priorities"
    # ... and it forwards no WORK_DATA: the result arrives, the stream does not.
    assert grade(matrix, "perl", "reference", "streaming") is Verdict.NON_STRICT
    # Perl's client leaves the exceptions option off (a driver limitation, as data): a
    # limitation lists fail and unsupported, so what works anyway keeps its own verdict.
    assert grade(matrix, "reference", "perl", "exception") is Verdict.NON_STRICT
    # libgearman's worker sends GRAB_JOB_ALL, which Perl's server does not serve.
    assert grade(matrix, "perl", "php", "foreground") is Verdict.EXPECTED_FAIL


def test_grid_html_and_markdown_describe_the_same_results(matrix: Matrix) -> None:
    grid = render_grid(matrix)
    assert grid.splitlines()[3].split() == ["client", "|", "gearmand", "perl", "reference"]
    assert "✓✓✓✓✓✓✓" in grid and "nothing counts against the run" in grid
    section = grid_html(matrix)
    assert all(f"<tr><th>{client}</th><td>" in section for client in ("reference", "php", "perl"))
    assert 'href="#interop/gearmand/php/foreground"' in section  # each mark links to its case
    assert "| reference | ✓✓✓✓✓✓✓ |" in grid_markdown(matrix)
    data = matrix.as_data()
    assert json.loads(json.dumps(data))["servers"] == ["gearmand", "perl", "reference"]


def test_cli_writes_json_and_html_and_exits_zero(tmp_path: Path) -> None:
    _need(servers=("gearmand",))
    out, page = tmp_path / "m.json", tmp_path / "m.html"
    done = _gearspec("interop", "--servers", "gearmand", "--clients", "reference",
                     "--scenarios", "foreground,failure", "--json", str(out), "--html", str(page))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "reference | ✓✓" in done.stdout
    results = json.loads(out.read_text())["cases"]
    assert [(r["scenario"], r["verdict"]) for r in results] == [("foreground", "pass"), ("failure", "pass")]
    assert "interop matrix" in page.read_text() and "interop/gearmand/reference/failure" in page.read_text()


BOGUS_SERVER = """
[[impl]]
name = "not-gearman"
description = "an HTTP server: accepts connections, speaks no Gearman"
roles = ["server"]
local = ["{python}", "-m", "http.server", "--bind", "{host}", "{port}"]
"""


def test_a_broken_pair_makes_the_exit_status_fail(tmp_path: Path) -> None:
    (tmp_path / "bogus.toml").write_text(BOGUS_SERVER)
    done = _gearspec("interop", "--impls", str(tmp_path / "bogus.toml"), "--servers", "not-gearman",
                     "--clients", "reference", "--scenarios", "foreground", "--timeout", "2")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "reference | ✗" in done.stdout and "1 result(s) count against the run" in done.stdout
    assert "FAIL interop/not-gearman/reference/foreground [MUST]" in done.stdout


def test_an_expected_failure_does_not_fail_the_run(tmp_path: Path) -> None:
    (tmp_path / "bogus.toml").write_text(
        BOGUS_SERVER + '\n[[expected]]\nserver = "not-gearman"\nreason = "it is an HTTP server, not a job server"\n'
    )
    done = _gearspec("interop", "--impls", str(tmp_path / "bogus.toml"), "--servers", "not-gearman",
                     "--clients", "reference", "--scenarios", "foreground", "--timeout", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "expected-fail: it is an HTTP server, not a job server" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--servers", "nosuch"], "unknown server: nosuch"),
        (["--clients", "gearmand,zzz"], "unknown client: zzz"),
        (["--scenarios", "teleport"], "unknown scenario: teleport"),
        (["--worker", "nosuch"], "nosuch is not a worker library"),
    ],
)
def test_bad_names_are_refused_clearly(args: list[str], message: str) -> None:
    done = _gearspec("interop", *args, timeout=60)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_a_server_that_dies_is_restarted_and_its_death_recorded_against_the_scenario() -> None:
    # libgearman's worker (the gearman CLI driver) grabs with GRAB_JOB_ALL, which kills node
    # abraxas (conformance/impls/abraxas/impl.toml); the matrix restarts it after each such
    # scenario and the next one runs against the new process instead of finding nobody there.
    _need(servers=("abraxas",), drivers=("gearman-cli",))
    matrix = run_matrix(load_registry(), ["abraxas"], ["gearmand"], ["foreground", "failure"], timeout=5)
    first, second = sorted(matrix.cell("abraxas", "gearmand"), key=lambda r: r.scenario != "foreground")
    assert first.verdict is Verdict.EXPECTED_FAIL
    assert "the server died during this scenario (exited with status 1)" in first.message
    assert first.deviation is not None and "GRAB_JOB_ALL" in first.deviation.reason  # the known row's reason
    assert any(n.startswith("abraxas died during gearmand foreground") and "restarted it" in n for n in matrix.notes)
    # The second scenario found a live server (restarted), which its worker killed again: two
    # deaths in the (cumulative) server log, each recorded against its own scenario.
    assert matrix.server_logs["abraxas"].count("Attempted to consume 0 bytes") == 2
    assert "the server died during this scenario" in second.message
    assert matrix.broken == []


# -- the suite's framework: cases, known deviations, verdicts, options and reports --------------

KNOWN_BUT_WORKING = """
[[expected]]
server = "reference"
client = "reference"
scenario = "foreground"
reason = "listed by this test, though gearspec's client and server work together"
"""


def _rerun_line(stdout: str, case_id: str) -> list[str]:
    """The rerun command printed under `case_id`'s problem, as argv for `python -m gearspec`."""
    after = stdout[stdout.index(f" {case_id} [MUST]"):]
    line = next(line for line in after.splitlines() if line.startswith("  rerun: "))
    argv = shlex.split(line[len("  rerun: "):])
    assert argv[:2] == ["gearspec", "interop"], line
    return argv[1:]


def test_an_unexpected_pass_fails_the_run_and_its_rerun_line_reruns_that_cell(tmp_path: Path) -> None:
    rows = tmp_path / "rows.toml"
    rows.write_text(KNOWN_BUT_WORKING)
    done = _gearspec("interop", "--impls", str(rows), "--servers", "reference", "--clients", "reference",
                     "--scenarios", "foreground,failure", "-q")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "UNEXPECTED-PASS interop/reference/reference/foreground [MUST]" in done.stdout
    assert "listed as a known deviation (listed by this test" in done.stdout
    assert "reference | !✓" in done.stdout
    report = tmp_path / "again.json"
    again = _gearspec(*_rerun_line(done.stdout, "interop/reference/reference/foreground"), "-q", "--json", str(report))
    assert again.returncode == 1, again.stdout + again.stderr
    data = json.loads(report.read_text())
    assert [(c["id"], c["verdict"]) for c in data["cases"]] == [("interop/reference/reference/foreground", "unexpected-pass")]
    assert data["failed"] is True and data["matrix"]["servers"] == ["reference"]


def test_a_row_listing_pass_among_its_outcomes_grades_a_pass_as_pass(tmp_path: Path) -> None:
    # A race: `outcomes = ["pass", "fail"]` accepts either, as an expectations file's outcome list does.
    rows = tmp_path / "rows.toml"
    rows.write_text(KNOWN_BUT_WORKING + 'outcomes = ["pass", "fail"]\n')
    report = tmp_path / "m.json"
    done = _gearspec("interop", "--impls", str(rows), "--servers", "reference", "--clients", "reference",
                     "--scenarios", "foreground", "-q", "--json", str(report))
    assert done.returncode == 0, done.stdout + done.stderr
    (case,) = json.loads(report.read_text())["cases"]
    assert case["verdict"] == "pass" and case["deviation"]["outcomes"] == ["fail", "pass"]
    assert case["deviation"]["reason"].startswith("listed by this test")


def test_every_report_kind_has_one_case_per_cell_and_the_grid(tmp_path: Path) -> None:
    xmlschema = pytest.importorskip("xmlschema")
    (tmp_path / "bogus.toml").write_text(BOGUS_SERVER)
    paths = {kind: tmp_path / f"m.{kind}" for kind in ("junit", "json", "html", "markdown")}
    done = _gearspec("interop", "--impls", str(tmp_path / "bogus.toml"), "--servers", "reference,not-gearman",
                     "--clients", "reference", "--scenarios", "foreground,failure", "--timeout", "2", "-q",
                     *(arg for kind, path in paths.items() for arg in (f"--{kind}", str(path))))
    assert done.returncode == 1, done.stdout + done.stderr
    xmlschema.XMLSchema(str(Path(__file__).parents[1] / "usability" / "junit.xsd")).validate(str(paths["junit"]))
    root = ET.parse(paths["junit"]).getroot()
    cases = {tc.get("name", "").split(" ")[0]: tc for tc in root.iter("testcase")}
    assert sorted(cases) == sorted(f"interop/{s}/reference/{x}" for s in ("reference", "not-gearman")
                                   for x in ("foreground", "failure"))
    assert root.get("tests") == "4" and root.get("failures") == "2"
    failure = cases["interop/not-gearman/reference/foreground"].find("failure")
    assert failure is not None and "rerun: gearspec interop" in (failure.text or "")
    data = json.loads(paths["json"].read_text())
    assert data["failed"] is True and data["totals"] == {"pass": 2, "fail": 2}
    assert {(c["server"], c["client"], c["worker"], c["scenario"]) for c in data["cases"]} == {
        (s, "reference", "reference", x) for s in ("reference", "not-gearman") for x in ("foreground", "failure")}
    assert data["matrix"]["mode"] == "local" and data["matrix"]["clients"] == ["reference"]
    page = paths["html"].read_text()
    assert '<table class="grid">' in page and 'id="interop/not-gearman/reference/failure"' in page
    assert "| reference | ✓✓ | ✗✗ |" in paths["markdown"].read_text()


def test_select_and_exclude_choose_cells_as_gearspec_test_chooses_cases(tmp_path: Path) -> None:
    listed = _gearspec("interop", "--servers", "reference,gear", "--clients", "reference,gear",
                       "-k", "interop/reference", "--exclude", "*/exception", "--list", timeout=60)
    assert listed.returncode == 0, listed.stderr
    ids = [line.split()[0] for line in listed.stdout.splitlines()[:-1]]
    assert ids == [f"interop/reference/{c}/{x}" for c in ("reference", "gear") for x in SCENARIOS if x != "exception"]
    # A server with no selected cell is not started: the matrix has only what was chosen.
    report = tmp_path / "m.json"
    done = _gearspec("interop", "--servers", "reference,perl", "--clients", "reference,php",
                     "-k", "interop/reference/reference/foreground", "-k", "interop/reference/*/failure",
                     "--exclude", "*/php/*", "-q",
                     "--json", str(report))
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(report.read_text())
    assert [c["id"] for c in data["cases"]] == ["interop/reference/reference/foreground",
                                                "interop/reference/reference/failure"]
    assert (data["matrix"]["servers"], data["matrix"]["clients"]) == (["reference"], ["reference"])
    nothing = _gearspec("interop", "--servers", "reference", "-k", "interop/nosuch", timeout=60)
    assert nothing.returncode == 2 and "no cell matches the selection" in nothing.stderr


def test_ctrl_c_reports_the_cells_that_finished_as_gearspec_test_does(tmp_path: Path) -> None:
    report = tmp_path / "partial.json"
    run = subprocess.Popen(
        [sys.executable, "-m", "gearspec", "interop", "--servers", "reference", "--clients", "reference,gear",
         "-j", "1", "--json", str(report)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        assert run.stdout is not None
        header = run.stdout.readline()
        assert header.startswith("gearspec interop: 14 cells"), header
        assert run.stdout.readline().startswith("progress: ")  # the legend of the letters
        assert len(run.stdout.read(2)) == 2  # two cells finished (one progress letter each)
        os.killpg(run.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        rest, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 130, rest + err
    assert "Traceback" not in err and "\nINTERRUPTED: " in rest, rest + err
    data = json.loads(report.read_text())
    assert data["run"]["interrupted"] is True and 2 <= len(data["cases"]) < 14, rest + err
    assert f"interrupted after {len(data['cases'])} of 14 cells" in err, err
