"""`gearspec test` end to end: selection, reports, rerun lines, bad input, odd targets."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from gearspec.conformance.launch import RunningServer


def gearspec_test(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gearspec", "test", *args], capture_output=True, text=True, timeout=timeout
    )


def test_list_shows_ids_levels_and_requirements() -> None:
    out = gearspec_test("--list", "--select", "framing/magic")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("framing/magic/1 ")
    assert "MUST" in lines[0]
    assert lines[-1].endswith("cases")
    excluded = gearspec_test("--list", "--select", "framing/magic", "--exclude", "framing/magic/1")
    assert "framing/magic/1 " not in excluded.stdout


def test_bad_options_give_a_clear_error() -> None:
    for args, message in (
        (["--profile", "nosuch"], "no profile 'nosuch'"),
        (["--select", "zzz/none"], "no case matches"),
        (["--target", "nohostport:"], "is not HOST:PORT"),
        (["--expect", "/nonexistent.toml"], "/nonexistent.toml"),
        (["-j", "0"], "-j must be at least 1"),
    ):
        out = gearspec_test(*args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert message in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr


def test_reports_against_gearmand(gearmand: RunningServer, tmp_path: Path) -> None:
    junit, js, page, md = (tmp_path / n for n in ("r.xml", "r.json", "r.html", "r.md"))
    out = gearspec_test(
        "--target", gearmand.address, "--profile", "gearmand", "--select", "framing", "--select", "admin/status",
        "--junit", str(junit), "--json", str(js), "--html", str(page), "--markdown", str(md), "-j", "4",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK:" in out.stdout and "framing" in out.stdout

    data = json.loads(js.read_text())
    ids = [c["id"] for c in data["cases"]]
    assert "framing/magic/1" in ids and "admin/status/1" in ids
    first = data["cases"][ids.index("framing/magic/1")]
    assert first["verdict"] == "pass"
    sent = [t for t in first["trace"] if t["dir"] == "send"]
    assert sent and sent[0]["hex"].startswith("00 52 45 51")  # \0REQ

    root = ET.parse(junit).getroot()
    names = [tc.get("name", "") for tc in root.iter("testcase")]
    assert len(names) == len(ids)
    assert any(n.startswith("framing/magic/1 ") for n in names)
    out_text = next(tc for tc in root.iter("testcase") if tc.get("name", "").startswith("framing/magic/1 "))
    assert "ECHO_RES" in (out_text.findtext("system-out") or "")

    html = page.read_text()
    assert "framing/magic/1" in html and "<details>" in html and "ECHO_RES" in html
    assert "| framing |" in md.read_text()

    table = subprocess.run(
        [sys.executable, "-m", "gearspec.conformance.compat", "--from-json", f"gearmand={js}"],
        capture_output=True, text=True, timeout=60,
    )
    assert table.returncode == 0, table.stderr
    assert "| area | gearmand 1.1.20 |" in table.stdout and "| **all MUST** |" in table.stdout


def test_failure_prints_expected_actual_and_a_rerun_line(gearmand: RunningServer, tmp_path: Path) -> None:
    # gearmand truncates names in 'create function' (text.cc passes arg_size - 2); without the
    # profile that is a counted EXTENSION failure.
    junit = tmp_path / "r.xml"
    out = gearspec_test("--target", gearmand.address, "--select", "admin/create_function/1", "--junit", str(junit))
    assert out.returncode == 1, out.stdout
    assert "FAIL admin/create_function/1" in out.stdout
    assert "expected: a status row for" in out.stdout
    rerun = next(line for line in out.stdout.splitlines() if "rerun:" in line).split("rerun:", 1)[1].strip()
    assert rerun == f"gearspec test --target {gearmand.address} --select admin/create_function/1 -v"
    failures = list(ET.parse(junit).getroot().iter("failure"))
    assert len(failures) == 1
    # With the profile it is an expected failure, and the run passes.
    assert gearspec_test("--target", gearmand.address, "--select", "admin/create_function/1", "--profile", "gearmand").returncode == 0


def test_a_listed_deviation_that_passes_fails_the_run(gearmand: RunningServer, tmp_path: Path) -> None:
    expect = tmp_path / "e.toml"
    expect.write_text('[target]\nname = "t"\n[[deviation]]\ncase = "framing/magic/1"\nreason = "pretend it fails"\n')
    out = gearspec_test("--target", gearmand.address, "--select", "framing/magic/1", "--expect", str(expect))
    assert out.returncode == 1
    assert "UNEXPECTED-PASS framing/magic/1" in out.stdout


def test_dead_target_gives_a_clear_message_and_does_not_hang() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here now
    started = time.monotonic()
    out = gearspec_test("--target", f"127.0.0.1:{port}", "--select", "framing", "-q")
    assert time.monotonic() - started < 30
    assert out.returncode == 1
    assert "cannot connect to" in out.stderr and "running every case anyway" in out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert "error" in out.stdout.splitlines()[-1]


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never answers (a hung job server)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()
    for conn in accepted:
        conn.close()


def test_hanging_target_times_out_case_by_case(silent_server: int) -> None:
    started = time.monotonic()
    out = gearspec_test("--target", f"127.0.0.1:{silent_server}", "--select", "framing/magic", "--wait", "0.3", "-q")
    assert time.monotonic() - started < 30
    assert out.returncode == 1
    assert "did not answer ECHO_REQ" in out.stderr
    assert "nothing within 0.3 s" in out.stdout


def test_case_timeout_ends_a_case_as_error(silent_server: int) -> None:
    out = gearspec_test(
        "--target", f"127.0.0.1:{silent_server}", "--select", "framing/magic/1", "--wait", "5", "--timeout", "0.5", "-q"
    )
    assert out.returncode == 1
    assert "ERROR framing/magic/1" in out.stdout and "timed out after 0.5 s" in out.stdout


def test_role_flag_dispatches_or_explains() -> None:
    out = gearspec_test("--role", "client", "--exec", "true", timeout=60)
    assert "Traceback" not in out.stderr
    assert out.returncode in (0, 1, 2)


def test_reports_carry_the_log_of_a_server_gearspec_started(tmp_path: Path) -> None:
    json_path, html_path, junit_path = tmp_path / "r.json", tmp_path / "r.html", tmp_path / "r.xml"
    result = gearspec_test(
        "--server", "reference", "--select", "echo", "--json", str(json_path), "--html", str(html_path),
        "--junit", str(junit_path), "-q",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    run = json.loads(json_path.read_text())["run"]
    assert "gearspec serve: listening on" in run["server_log"]
    assert 'id="server-log"' in html_path.read_text()
    suites = {s.get("name"): s for s in ET.parse(junit_path).getroot()}
    out = suites["gearspec.conformance.server-log"].find("system-out")
    assert out is not None and "listening on" in (out.text or "")


def test_reports_of_an_outside_target_have_no_server_log(gearmand: RunningServer, tmp_path: Path) -> None:
    json_path = tmp_path / "r.json"
    result = gearspec_test("--target", gearmand.address, "--select", "echo", "--json", str(json_path), "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(json_path.read_text())["run"]["server_log"] is None
