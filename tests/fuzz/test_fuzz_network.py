"""The network fuzzer against real servers and against deliberately broken toy servers."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from gearspec.conformance.servers import RunningServer, start_local
from gearspec.fuzz.network import FuzzConfig, TargetError, case_for_step, parse_duration, parse_target, run_network_fuzz

TOY = Path(__file__).with_name("toy_server.py")


def _toy(mode: str) -> RunningServer:
    return start_local([sys.executable, str(TOY), "--mode", mode], name=f"toy-{mode}")


def _gearspec(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gearspec", "fuzz", *args], capture_output=True, text=True, timeout=timeout
    )


def test_reference_server_survives_the_fuzzer(reference_server: RunningServer) -> None:
    config = FuzzConfig(
        reference_server.host, reference_server.port, budget=15.0, seed=1, pid=reference_server.process.pid,
        rss_limit=48 * 1024 * 1024,
    )
    report = run_network_fuzz(config)
    summary = report.as_data()["summary"]
    assert report.steps > 200, report.steps
    assert report.crashes == 0 and report.hangs == 0, [f.detail for f in report.findings]
    assert summary["resource_growth"] == 0, (report.rss_start, report.rss_max)
    assert reference_server.alive()
    assert set(report.families) >= {"valid", "oversize", "lying_length", "admin", "mutated"}


def test_fuzzer_detects_a_crashing_server() -> None:
    toy = _toy("crash")
    try:
        report = run_network_fuzz(FuzzConfig(toy.host, toy.port, budget=60, seed=3, pid=toy.process.pid, max_steps=5000))
        assert report.crashes == 1, report.as_data()
        crash = next(f for f in report.findings if f.kind == "crash")
        assert "gone" in crash.detail
        assert report.stopped.startswith("target down")
        assert not toy.alive()
    finally:
        toy.stop()
    # The finding replays alone: the same step crashes a fresh toy.
    again = _toy("crash")
    try:
        result = _gearspec("--target", again.address, "--seed", "3", "--first-step", str(crash.step), "--steps", "1")
        assert result.returncode == 1, result.stderr
        assert "crash" in result.stdout and "Traceback" not in result.stderr
        again.process.wait(5)
        assert not again.alive()
    finally:
        again.stop()


def test_fuzzer_detects_a_hanging_server() -> None:
    toy = _toy("hang")
    try:
        report = run_network_fuzz(FuzzConfig(toy.host, toy.port, budget=60, seed=3, deadline=0.5, max_steps=5000))
        assert report.hangs >= 1, report.as_data()
        assert report.findings[-1].kind == "hang"
        assert toy.alive()  # hung, not dead
    finally:
        toy.stop()


def test_fuzzer_detects_protocol_violations(tmp_path: Path) -> None:
    toy = _toy("badreply")
    out = tmp_path / "findings.json"
    try:
        result = _gearspec("--target", toy.address, "--budget", "30s", "--seed", "3", "--steps", "3000", "--json", str(out))
    finally:
        toy.stop()
    assert result.returncode == 1, result.stderr
    data = json.loads(out.read_text())
    violations = [f for f in data["findings"] if f["kind"] == "protocol_violation"]
    assert violations and "magic" in violations[0]["detail"]
    assert violations[0]["replay"].startswith("gearspec fuzz --target")
    assert data["summary"]["crash"] == 0


def test_dead_target_gets_a_clear_error() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    result = _gearspec("--target", f"127.0.0.1:{port}", "--budget", "5s")
    assert result.returncode == 2
    assert "does not answer" in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(TargetError, match="does not answer"):
        run_network_fuzz(FuzzConfig("127.0.0.1", port, budget=1))


def test_remote_targets_are_refused_without_permission() -> None:
    with pytest.raises(TargetError, match="not a loopback"):
        parse_target("192.0.2.1:4730")
    assert parse_target("192.0.2.1:4730", allow_remote=True) == ("192.0.2.1", 4730)
    assert parse_target("localhost:4730") == ("localhost", 4730)
    result = _gearspec("--target", "192.0.2.1:4730", "--budget", "1s")
    assert result.returncode == 2 and "--allow-remote" in result.stderr
    for bad in ("nohost", "127.0.0.1:", "127.0.0.1:99999"):
        with pytest.raises(TargetError):
            parse_target(bad)
    bad_flag = _gearspec("--target", "127.0.0.1:1", "--budget", "soon")
    assert bad_flag.returncode == 2 and "duration" in bad_flag.stderr


def test_steps_are_reproducible_from_the_seed() -> None:
    assert [case_for_step(7, i) for i in range(200)] == [case_for_step(7, i) for i in range(200)]
    assert [case_for_step(7, i).data for i in range(50)] != [case_for_step(8, i).data for i in range(50)]
    assert parse_duration("90s") == 90 and parse_duration("2m") == 120 and parse_duration("250ms") == 0.25
