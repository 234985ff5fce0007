"""`gearspec test` end to end: selection, reports, rerun lines, bad input, odd targets."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from gearspec.conformance.registry import all_cases
from gearspec.conformance.servers import RunningServer

from gearspec.codec import Decoder, Packet
from gearspec.spec import Magic, PacketType


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
    out = gearspec_test("--target", gearmand.address, "--select", "admin/create_function/1", "--junit", str(junit), "--seed", "7")
    assert out.returncode == 1, out.stdout
    assert "FAIL admin/create_function/1" in out.stdout
    assert "expected: a status row for" in out.stdout
    rerun = next(line for line in out.stdout.splitlines() if "rerun:" in line).split("rerun:", 1)[1].strip()
    assert rerun == (
        f"gearspec test --target {gearmand.address} --seed 7 --wait 2 --timeout 10 --select admin/create_function/1 -v"
    )
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


def _unreachable(out: subprocess.CompletedProcess[str], address: str, reason: str) -> None:
    """One line on stderr naming the address and the reason, exit 2, no cases run, no traceback."""
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stderr == f"gearspec test: cannot reach {address}: {reason}\n"
    assert out.stdout == ""  # no banner, no progress, no all-error summary


def test_refused_target_stops_before_any_case_with_one_line(tmp_path: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here now
    report = tmp_path / "r.json"
    # No --select: all cases would run if the probe did not stop the run; the timeout catches that.
    out = gearspec_test("--target", f"127.0.0.1:{port}", "--json", str(report), timeout=60)
    _unreachable(out, f"127.0.0.1:{port}", "connection refused")
    assert not report.exists()  # no report that blames the server for an address that is down


def test_unresolvable_name_stops_before_any_case_with_one_line() -> None:
    out = gearspec_test("--target", "nohost.invalid", timeout=60)  # .invalid never resolves (RFC 2606)
    _unreachable(out, "nohost.invalid:4730", "name does not resolve")


def test_connect_without_answer_stops_after_the_connect_timeout() -> None:
    # On Linux a listener whose accept queue is full drops new SYNs, so connect() gets no
    # answer at all. listen(0) queues one connection; the filler takes that place.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    with listener, socket.create_connection(("127.0.0.1", port)):
        # The connect timeout is the suite's (5 s) capped by the per-case --timeout.
        out = gearspec_test("--target", f"127.0.0.1:{port}", "--timeout", "1", timeout=60)
    _unreachable(out, f"127.0.0.1:{port}", "no answer within 1 s")


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("host:notaport", "port 'notaport' is not a number"),
        ("host:99999", "port 99999 is not in 1-65535"),
        ("host:0", "port 0 ('any free port') is for listening only"),
        ("host:", "no port after ':'"),
        ("", "no host"),  # not "start the reference server"
        (":4730", "no host"),
        ("a:b:c", "write an IPv6 address as [::1]:4730"),
    ],
)
def test_malformed_target_is_one_line_and_exit_2(target: str, reason: str) -> None:
    out = gearspec_test("--target", target, timeout=60)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stderr.startswith(f"gearspec test: target {target!r} is not HOST:PORT")
    assert reason in out.stderr and out.stderr.count("\n") == 1, out.stderr
    assert out.stdout == ""


@pytest.fixture
def dies_after_probe() -> Iterator[int]:
    """A server that takes the reachability connect, answers one ECHO_REQ, then stops listening."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(30)

    def serve() -> None:
        with listener:
            try:
                listener.accept()[0].close()  # the reachability check only connects
                conn = listener.accept()[0]  # the ECHO round trip
                with conn:
                    decoder = Decoder(Magic.REQ)
                    while True:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        decoder.receive_data(chunk)
                        event = decoder.next_event()
                        if isinstance(event, Packet):
                            conn.sendall(Packet.response(PacketType.ECHO_RES, event["data"]).to_bytes())
                            return
            except OSError:
                return  # test over (or a timeout): the listener closes either way

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.close()
    thread.join(timeout=30)


def test_target_that_dies_midway_stops_the_run_naming_the_case(dies_after_probe: int) -> None:
    # An external target gearspec cannot restart: one line names the case during which it
    # died and how many cases were not run, instead of an error for each of them.
    out = gearspec_test("--target", f"127.0.0.1:{dies_after_probe}", "--select", "framing/magic", "-q", "-j", "1")
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "cannot reach" not in out.stderr and "Traceback" not in out.stdout + out.stderr
    assert "the target died during framing/magic/1 (stopped accepting connections)" in out.stdout
    not_run = len([c for c in all_cases() if c.id.startswith("framing/magic/")]) - 1
    assert f"{not_run} cases not run" in out.stdout and "ERROR framing/magic/2" not in out.stdout


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
    # It accepts connections, so it is reachable: a protocol-level hang is graded per case.
    out = gearspec_test("--target", f"127.0.0.1:{silent_server}", "--select", "framing/magic", "--wait", "0.3", "-q", timeout=30)
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
