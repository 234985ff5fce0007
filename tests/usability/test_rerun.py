"""Every printed rerun line reproduces its case's verdict (issue 15 item 1)."""

from __future__ import annotations

import html
import json
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from gearspec.conformance.servers import server_available

from .helpers import gearspec

# Against gearmand 1.1.20: framing/type/4 crashes it (runs only with --destructive);
# admin/create_function/1 fails (an EXTENSION); admin/cancel_job/3 and exceptions/forward/3
# fail as SHOULDs (counted here because of --strict); the expectations file lists the last one.
CASES = ("framing/type/4", "admin/create_function/1", "admin/cancel_job/3", "exceptions/forward/3")


@pytest.mark.skipif(not server_available("gearmand"), reason="needs gearmand (scripts/install-peers.sh)")
def test_each_rerun_line_of_a_failing_run_reproduces_the_verdict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expect = tmp_path / "known.toml"
    expect.write_text('[[deviation]]\ncase = "exceptions/forward/3"\nreason = "WORK_FAIL with a trailing NUL"\n')
    monkeypatch.chdir(tmp_path)  # the rerun lines are run from elsewhere: paths must be absolute
    selection = [arg for case in CASES for arg in ("-k", case)]
    first = gearspec(
        "test", "--server", "gearmand", "--destructive", "--strict", "--expect", "known.toml", "--seed", "5eed",
        "--wait", "1.5", "--timeout", "8", "-j", "2", *selection,
        "--json", "run.json", "--html", "run.html", "--junit", "run.xml",
    )
    assert first.returncode == 1, first.stdout + first.stderr
    verdicts = {c["id"]: c["verdict"] for c in json.loads((tmp_path / "run.json").read_text())["cases"]}
    assert verdicts["framing/type/4"] == "fail" and verdicts["exceptions/forward/3"] == "expected-fail", verdicts
    lines = [line.split("rerun: ", 1)[1] for line in first.stdout.splitlines() if line.startswith("  rerun: ")]
    assert len(lines) >= 3, first.stdout  # every counted failure
    data = {c["id"]: c for c in json.loads((tmp_path / "run.json").read_text())["cases"]}
    page = html.unescape((tmp_path / "run.html").read_text())
    junit = ET.parse(tmp_path / "run.xml").getroot()
    junit_text = "\n".join(e.text or "" for e in junit.iter() if e.text)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for line in lines:
        case = shlex.split(line)[shlex.split(line).index("--select") + 1]
        # The same line in every report.
        assert data[case]["rerun"] == line
        assert line in page and line in junit_text, case
        again = gearspec(*shlex.split(line)[1:], "--json", str(elsewhere / "again.json"))
        assert "Traceback" not in again.stderr
        rerun = {c["id"]: c["verdict"] for c in json.loads((elsewhere / "again.json").read_text())["cases"]}
        assert rerun == {case: verdicts[case]}, (line, again.stdout)
        assert again.returncode == first.returncode


def test_rerun_line_carries_durability_and_restart_options(tmp_path: Path) -> None:
    # --durable and --restart-command change what durability cases do: the line keeps them.
    import argparse

    from gearspec.conformance.cli import _rerun_command, configure_test
    from gearspec.conformance.registry import all_cases
    from gearspec.conformance.runner import RunConfig

    parser = argparse.ArgumentParser()
    configure_test(parser)
    args = parser.parse_args(["--target", "127.0.0.1:4730", "--durable", "--restart-command", "systemctl restart gearmand"])
    case = next(c for c in all_cases() if c.id.startswith("durability/"))
    line = _rerun_command(args, case, RunConfig(seed="5eed"))
    assert "--durable" in line and "--restart-command 'systemctl restart gearmand'" in line and "--seed 5eed" in line
