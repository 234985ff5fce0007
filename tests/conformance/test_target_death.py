"""A target that dies mid-run: the crash is recorded once, against its case, and the run goes on
(gearspec started the target) or stops saying so (an external target).

The dying server is real: tests/conformance/crashing_server.py exits on a packet of reserved
type 5 (framing/type/2 sends one); gearmand 1.1.20 dies on type 0xFFFFFFFF (framing/type/4).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from gearspec.conformance.harness import Outcome
from gearspec.conformance.lifecycle import TargetControl
from gearspec.conformance.registry import all_cases, select_cases
from gearspec.conformance.runner import RunConfig, run_cases
from gearspec.conformance.servers import server_available, start_local

CRASHING = [sys.executable, str(Path(__file__).with_name("crashing_server.py")), "{host}", "{port}"]
# framing/type/2 kills it; the others are answered (or refused with ERROR) and run on.
SELECTION = ["framing/type/1", "framing/type/2", "framing/type/3", "framing/split/1", "framing/pipeline/1"]


def _cases() -> list:
    return select_cases(all_cases(), SELECTION)


@pytest.mark.parametrize("jobs", [1, 4])
def test_a_started_target_is_restarted_and_the_crash_recorded_once(jobs: int) -> None:
    server = start_local(CRASHING, name="crashing")
    control = TargetControl.for_process(server)
    try:
        results = run_cases(_cases(), control.target, RunConfig(wait=1.0, timeout=5.0, seed="death"), jobs=jobs, control=control)
    finally:
        server.stop()
    by_id = {r.case.id: r for r in results}
    assert sorted(by_id) == sorted(SELECTION)  # every case ran
    crash = by_id["framing/type/2"]
    assert crash.outcome is Outcome.FAIL and "crashed during this case: exited with status 3" in crash.message
    assert any("fatal: packet type 5" in note for note in crash.notes)  # the server's log
    assert [c.case_ids for c in control.crashes] == [("framing/type/2",)]
    assert control.stopped is None
    assert [r.case.id for r in results if r.outcome is Outcome.ERROR] == []
    assert by_id["framing/split/1"].outcome is Outcome.PASS


def test_an_external_target_stops_the_run_with_the_case_that_killed_it() -> None:
    server = start_local(CRASHING, name="crashing")
    try:
        out = subprocess.run(
            [sys.executable, "-m", "gearspec", "test", "--target", server.address, "-j", "1", "-q", "--wait", "1",
             *[arg for case_id in SELECTION for arg in ("--select", case_id)]],
            capture_output=True, text=True, timeout=60,
        )
    finally:
        server.stop()
    assert out.returncode == 1, out.stderr
    # IDs sort framing/pipeline/1, framing/split/1, framing/type/1, 2, 3: one is left.
    assert "the target died during framing/type/2 (stopped accepting connections)" in out.stdout
    assert "1 cases not run" in out.stdout
    assert "\nERROR " not in out.stdout


@pytest.mark.skipif(not server_available("gearmand"), reason="gearmand is not installed")
def test_gearmand_crash_on_type_0xffffffff_is_recorded_and_the_run_goes_on() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gearspec", "test", "--local", "gearmand", "--destructive", "-q",
         "--select", "framing/type", "--select", "admin/status/1"],
        capture_output=True, text=True, timeout=60,
    )
    assert "the target crashed during framing/type/4" in out.stdout
    assert "FAIL framing/type/4" in out.stdout and "\nERROR " not in out.stdout
    assert "gearmand" in out.stdout.split("server log (last lines):")[1]
