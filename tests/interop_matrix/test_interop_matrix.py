"""The interop matrix over local processes: real servers, real client and worker libraries.

Kept to a few pairs so it fits the normal test run (about a minute); `tox -e interop` and
scripts/docker-ci.sh run the whole matrix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from gearspec.conformance.drivers import DRIVERS
from gearspec.conformance.impls import load_registry
from gearspec.conformance.interop import SCENARIOS, Matrix, render_grid, render_html, run_matrix
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


def grade(matrix: Matrix, server: str, client: str, scenario: str) -> str:
    (result,) = [r for r in matrix.results if (r.server, r.client, r.scenario) == (server, client, scenario)]
    return str(result.grade)


def test_every_pair_ran_every_scenario_and_nothing_expected_broke(matrix: Matrix) -> None:
    assert len(matrix.results) == 3 * 3 * len(SCENARIOS)
    assert matrix.broken == [], render_grid(matrix)


@pytest.mark.parametrize("server", ["gearmand", "reference"])
@pytest.mark.parametrize("client", ["reference", "php"])
def test_full_featured_pairs_pass_everything(matrix: Matrix, server: str, client: str) -> None:
    assert {r.scenario: r.grade for r in matrix.cell(server, client)} == dict.fromkeys(SCENARIOS, "pass")


def test_known_deviations_are_graded_with_their_reasons(matrix: Matrix) -> None:
    # Perl Gearman::Server has no SUBMIT_JOB_LOW: the registry lists it, the matrix shows it.
    (prio,) = [r for r in matrix.cell("perl", "reference") if r.scenario == "priorities"]
    assert prio.grade == "expected-fail" and "SUBMIT_JOB_LOW" in prio.detail
    # ... and it forwards no WORK_DATA: the result arrives, the stream does not.
    assert grade(matrix, "perl", "reference", "streaming") == "non-strict"
    # Perl's client leaves the exceptions option off (a driver limitation, as data).
    assert grade(matrix, "reference", "perl", "exception") == "non-strict"
    # libgearman's worker sends GRAB_JOB_ALL, which Perl's server does not serve.
    assert grade(matrix, "perl", "php", "foreground") == "expected-fail"


def test_grid_html_and_json_describe_the_same_results(matrix: Matrix) -> None:
    grid = render_grid(matrix)
    assert grid.splitlines()[3].split() == ["client", "|", "gearmand", "perl", "reference"]
    assert "✓✓✓✓✓✓✓" in grid and "no expected-to-work pair broke" in grid
    page = render_html(matrix)
    assert page.startswith("<!doctype html>")
    assert all(f"<tr><th>{client}</th><td>" in page for client in ("reference", "php", "perl"))
    data = matrix.as_data()
    assert data["ok"] is True and len(data["results"]) == len(matrix.results)
    assert json.loads(json.dumps(data))["counts"] == matrix.counts()


def test_cli_writes_json_and_html_and_exits_zero(tmp_path: Path) -> None:
    _need(servers=("gearmand",))
    out, page = tmp_path / "m.json", tmp_path / "m.html"
    done = _gearspec("interop", "--servers", "gearmand", "--clients", "reference",
                     "--scenarios", "foreground,failure", "--json", str(out), "--html", str(page))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "reference | ✓✓" in done.stdout
    results = json.loads(out.read_text())["results"]
    assert [(r["scenario"], r["grade"]) for r in results] == [("foreground", "pass"), ("failure", "pass")]
    assert "gearspec interop matrix" in page.read_text()


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
    assert "reference | ✗" in done.stdout and "1 expected-to-work result(s) broke" in done.stdout


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
    assert first.grade == "expected-fail" and "the server died during this scenario (exited with status 1)" in first.detail
    assert "GRAB_JOB_ALL" in first.detail  # the known row's reason
    assert any(n.startswith("abraxas died during gearmand foreground") and "restarted it" in n for n in matrix.notes)
    # The second scenario found a live server (restarted), which its worker killed again: two
    # deaths in the (cumulative) server log, each recorded against its own scenario.
    assert matrix.server_logs["abraxas"].count("Attempted to consume 0 bytes") == 2
    assert "the server died during this scenario" in second.detail
    assert matrix.broken == []
