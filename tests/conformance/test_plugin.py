"""The pytest entry point: `pytest --pyargs gearspec.conformance --gearman-target HOST:PORT`."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from gearspec.conformance.servers import RunningServer


def pytest_run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        capture_output=True, text=True, timeout=180, cwd=cwd,
    )


def test_cases_run_as_pytest_items(gearmand: RunningServer, tmp_path: Path) -> None:
    junit = tmp_path / "j.xml"
    out = pytest_run(
        "--pyargs", "gearspec.conformance", "--gearman-target", gearmand.address, "--gearman-profile", "gearmand",
        "-k", "framing/magic or admin/create_function", f"--junitxml={junit}", "-q", cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    names = [tc.get("name") for tc in ET.parse(junit).getroot().iter("testcase")]
    assert "framing/magic/1" in names and "admin/create_function/1" in names
    assert "xfailed" in out.stdout  # the listed gearmand deviation


def test_a_failing_case_fails_the_pytest_run(gearmand: RunningServer, tmp_path: Path) -> None:
    out = pytest_run(
        "--pyargs", "gearspec.conformance", "--gearman-target", gearmand.address,
        "-k", "admin/create_function/1", "-q", cwd=tmp_path,
    )
    assert out.returncode == 1
    assert "admin/create_function/1" in out.stdout and "expected: a status row for" in out.stdout


def test_plugin_is_inert_in_other_test_runs(tmp_path: Path) -> None:
    (tmp_path / "test_other.py").write_text("def test_one():\n    assert True\n")
    out = pytest_run("-q", str(tmp_path / "test_other.py"), cwd=tmp_path)
    assert out.returncode == 0, out.stdout
    assert "1 passed" in out.stdout
    help_text = pytest_run("--help", cwd=tmp_path).stdout
    assert "--gearman-target" in help_text


def test_dead_target_stops_the_session_with_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = pytest_run("--pyargs", "gearspec.conformance", "--gearman-target", f"127.0.0.1:{port}", "-q", cwd=tmp_path)
    assert out.returncode == 4, out.stdout[-2000:]  # pytest's usage-error status
    text = out.stdout + out.stderr
    assert f"gearspec: cannot reach 127.0.0.1:{port}: connection refused" in text
    assert "Traceback" not in text and "passed" not in out.stdout and " failed" not in out.stdout


def test_malformed_target_stops_the_session_with_one_line(tmp_path: Path) -> None:
    out = pytest_run("--pyargs", "gearspec.conformance", "--gearman-target", "host:notaport", "-q", cwd=tmp_path)
    assert out.returncode == 4, out.stdout[-2000:]
    assert "gearspec: target 'host:notaport' is not HOST:PORT" in out.stdout + out.stderr
