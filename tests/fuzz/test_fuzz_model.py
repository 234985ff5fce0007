"""The stateful job-server model against live servers, and its replay scripts."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from gearspec.conformance.servers import RunningServer
from gearspec.fuzz.model import PROFILES, ModelFailure, check_target
from gearspec.fuzz.script import Expect, Session, Var

from gearspec.codec import Packet

# Small budgets for CI; `gearspec fuzz --model --budget 10m` is the long run (docs/fuzz.md).
EXAMPLES, STEPS = 40, 30


def _gearspec(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gearspec", "fuzz", *args], capture_output=True, text=True, timeout=120)


def test_reference_server_agrees_with_the_model(reference_server: RunningServer) -> None:
    check_target(reference_server.host, reference_server.port, PROFILES["reference"], max_examples=EXAMPLES, steps=STEPS)


def test_gearmand_agrees_with_the_model_given_its_deviations(gearmand: RunningServer) -> None:
    check_target(gearmand.host, gearmand.port, PROFILES["gearmand"], max_examples=EXAMPLES, steps=STEPS)


def test_model_catches_gearmand_deviations_and_the_script_replays(gearmand: RunningServer, tmp_path: Path) -> None:
    # Told to expect JOB_ASSIGN_ALL for GRAB_JOB_ALL (gearmand sends JOB_ASSIGN_UNIQ for jobs
    # without a reducer), the model must find the deviation, shrink it and write a script
    # that fails again on replay.
    strict = replace(PROFILES["gearmand"], grab_all_plain="all", timeout=0.5)
    found: ModelFailure | None = None
    for seed in range(1, 9):  # a few seeded batches; each finds it with high probability
        try:
            check_target(gearmand.host, gearmand.port, strict, max_examples=200, steps=8, seed=seed)
        except ModelFailure as failure:
            found = failure
            break
    assert found is not None, "the model did not notice JOB_ASSIGN_UNIQ where it expected JOB_ASSIGN_ALL"
    assert "JOB_ASSIGN_UNIQ" in str(found)
    script = tmp_path / "failure.json"
    script.write_text(found.script)
    assert len(found.script.splitlines()) < 60  # shrunk to a short sequence
    result = _gearspec("--replay", str(script), "--target", gearmand.address)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "replay failed" in result.stderr and "Traceback" not in result.stderr


def test_replay_of_a_passing_script(reference_server: RunningServer, tmp_path: Path) -> None:
    session = Session(reference_server.host, reference_server.port)
    session.open("c0")
    session.open("w0")
    session.send("w0", Packet.request("CAN_DO", b"replay-fn"))
    session.sync("w0")
    session.request("c0", Packet.request("SUBMIT_JOB_BG", b"replay-fn", b"u", b"x"), Expect("JOB_CREATED", (Var("h1"),)))
    session.request("w0", Packet.request("GRAB_JOB"), Expect("JOB_ASSIGN", (Var("h1"), b"replay-fn", b"x")))
    session.send("w0", Packet.request("WORK_STATUS", session.bindings["h1"], b"1", b"4"))
    session.sync("w0")
    status = Expect("STATUS_RES", (Var("h1"), b"1", b"1", b"1", b"4"))
    session.request("c0", Packet.request("GET_STATUS", session.bindings["h1"]), status)
    session.close_all()
    script = tmp_path / "ok.json"
    script.write_text(session.script())
    assert '{"var": "h1"}' in script.read_text()  # handles are replayed as the new server's
    for _ in range(2):  # the second replay gets other handles from the same server
        result = _gearspec("--replay", str(script), "--target", reference_server.address)
        assert result.returncode == 0, result.stderr
        assert "passed" in result.stdout
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    bad = _gearspec("--replay", str(broken), "--target", reference_server.address)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_model_cli_reports_agreement(reference_server: RunningServer) -> None:
    result = _gearspec("--target", reference_server.address, "--model", "--budget", "1s", "--examples", "5")
    assert result.returncode == 0, result.stderr
    assert "agrees with the model" in result.stdout
