"""Evidence for the profiles of node abraxas and rustygeard (conformance/impls/abraxas, rustygeard):
the whole suite run by `gearspec test --local NAME --profile NAME` ends clean (every listed
deviation happens, nothing else fails), and abraxas's deaths on single packets are recorded
against the case that sent them while the run goes on.

Both profiles run one case at a time ([target] jobs = 1, which these runs rely on by giving no
-j): abraxas exits on some packets, and a death fails the cases running beside it; rustygeard
delivers a closed connection's results to the next connection that gets its descriptor. Both servers are installed
by scripts/install-peers.sh (npm abraxas in .peers/node, cargo rustygeard in .peers/cargo).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from gearspec.conformance.impls import load_registry


def _installed(name: str) -> None:
    if not load_registry()[name].local_available() or load_registry()[name].probe_version() is None:
        pytest.skip(f"{name} is not installed here (scripts/install-peers.sh)")


def _suite(name: str, tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    report = tmp_path / f"{name}.json"
    out = subprocess.run(
        [sys.executable, "-m", "gearspec", "test", "--local", name, "--wait", "1", "-q", "--json", str(report), *extra],
        capture_output=True, text=True, timeout=400,
    )
    return out, json.loads(report.read_text())


@pytest.mark.parametrize("name", ["abraxas", "rustygeard"])
def test_the_suite_matches_the_profile(name: str, tmp_path: Path) -> None:
    _installed(name)
    out, data = _suite(name, tmp_path, "--profile", name)
    assert out.returncode == 0, f"{name}: exit {out.returncode}\n{out.stdout[-6000:]}\n{out.stderr[-3000:]}"
    assert data["failed"] is False
    assert data["totals"].get("expected-fail", 0) > 50 and data["totals"].get("pass", 0) > 50
    assert "; -j 1; seed" in out.stdout  # the profile's [target] jobs
    if name == "abraxas":
        # The probe's GRAB_JOB_ALL kills abraxas; it goes last and alone, so the other probes
        # still see every submit variant served, and the server is restarted before the cases.
        assert "the target died during the probe (exited with status 1); restarted it" in out.stderr
        (probed,) = [line for line in out.stderr.splitlines() if "probed:" in line]
        assert "refused" not in probed and "GRAB_JOB/GRAB_JOB_UNIQ" in probed, probed


def test_abraxas_deaths_are_recorded_against_their_cases_and_the_run_goes_on(tmp_path: Path) -> None:
    # A zero-length packet of an unknown type kills abraxas (gearman-packet's Parser.packetSkip
    # throws); each such case is a fail naming the crash, and the ECHO cases after it still pass.
    _installed("abraxas")
    selection = ["framing/type/1", "framing/type/2", "framing/type/3", "echo/*"]
    out, data = _suite("abraxas", tmp_path, "-j", "1", *[a for s in selection for a in ("--select", s)])
    assert out.returncode == 1, out.stderr
    by_id = {c["id"]: c for c in data["cases"]}
    for case_id in ("framing/type/1", "framing/type/2", "framing/type/3"):
        assert by_id[case_id]["outcome"] == "fail"
        assert "crashed during this case: exited with status 1" in by_id[case_id]["message"]
        assert any("Attempted to consume 0 bytes" in note for note in by_id[case_id]["notes"])  # its log
        assert f"the target crashed during {case_id}" in out.stdout + out.stderr
    echoes = [c for c in data["cases"] if c["id"].startswith("echo/")]
    assert echoes and all(c["outcome"] == "pass" for c in echoes)
    assert not [c["id"] for c in data["cases"] if c["outcome"] == "error"]


def test_interop_on_a_server_without_admin_grades_what_it_can_see(tmp_path: Path) -> None:
    # abraxas answers no admin `status`: the background scenario checks its job with GET_STATUS
    # of the printed handle instead (and passes); the scenarios that order their steps by
    # the queue are unsupported there, not failed.
    _installed("abraxas")
    report = tmp_path / "interop.json"
    out = subprocess.run(
        [sys.executable, "-m", "gearspec", "interop", "--servers", "abraxas", "--clients", "reference",
         "--scenarios", "background,priorities,coalescing", "-q", "--json", str(report)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    grades = {cell["scenario"]: (cell["verdict"], cell["message"]) for cell in json.loads(report.read_text())["cases"]}
    assert grades["background"][0] == "pass", grades
    for scenario in ("priorities", "coalescing"):
        assert grades[scenario][0] == "unsupported" and "admin `status`" in grades[scenario][1], grades
