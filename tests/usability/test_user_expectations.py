"""What users of pytest, h2spec and fuzzers expect (issue 15 item 11): colour on a terminal
(NO_COLOR honoured), a legend for the progress letters, -x/--maxfail and --last-failed,
progress from `gearspec fuzz`, examples and exit codes in every --help, `-` for stdin."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from gearspec.conformance.servers import RunningServer

from gearspec.cli import commands
from gearspec.codec import Packet
from gearspec.wire.pcap import PcapWriter, TcpConversation

from .helpers import gearspec


def _on_a_terminal(*args: str, env: dict[str, str]) -> str:
    """Run gearspec with stdout on a pseudo-terminal; what it printed there."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "gearspec", *args], stdout=follower, stderr=subprocess.DEVNULL,
        env={**os.environ, "TERM": "xterm", **env},
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=120)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


def test_colour_on_a_terminal_unless_no_color(reference_server: RunningServer) -> None:
    args = ("test", "--target", reference_server.address, "-k", "echo/*")
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    coloured = _on_a_terminal(*args, env={**env, "NO_COLOR": ""})
    assert "\x1b[32mOK\x1b[0m" in coloured, coloured[-500:]
    plain = _on_a_terminal(*args, env={"NO_COLOR": "1"})
    assert "OK: " in plain and "\x1b[3" not in plain
    piped = gearspec(*args)
    assert "\x1b[" not in piped.stdout
    # Not on a terminal the progress is a line of letters: the legend says what they mean.
    assert "progress: . pass, n non-strict, i informational, u unsupported, x expected-fail, F fail, E error, X unexpected-pass" in piped.stdout


def test_exitfirst_and_last_failed(gearmand: RunningServer, tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    target = ("test", "--target", gearmand.address, "-k", "admin/*", "-j", "1", "-q")
    listed = gearspec("test", "--target", gearmand.address, "-k", "admin/*", "--list").stdout.splitlines()
    everything = int(listed[-1].split()[0])  # "N cases"
    first = gearspec(*target, "-x", "--json", str(tmp_path / "x.json"), env=env)
    assert first.returncode == 1, first.stdout[-2000:] + first.stderr
    assert "stopped after 1 counted failure(s) (--maxfail)" in first.stderr
    ran = json.loads((tmp_path / "x.json").read_text())["cases"]
    failed = [c["id"] for c in ran if c["counts_against"]]  # one of gearmand's known deviations
    assert len(ran) < everything and len(failed) == 1
    again = gearspec(*target, "--lf", "--json", str(tmp_path / "lf.json"), env=env)
    assert again.returncode == 1
    assert [c["id"] for c in json.loads((tmp_path / "lf.json").read_text())["cases"]] == failed
    # Graded with its profile the case passes; then nothing failed last and --lf runs all.
    assert gearspec(*target, "--lf", "--profile", "gearmand", env=env).returncode == 0
    rest = gearspec(*target, "--lf", "--profile", "gearmand", "--json", str(tmp_path / "all.json"), env=env)
    assert "no failures recorded for this target" in rest.stderr
    assert len(json.loads((tmp_path / "all.json").read_text())["cases"]) == everything


def test_fuzz_prints_progress_while_it_runs(reference_server: RunningServer) -> None:
    network = gearspec("fuzz", "--target", reference_server.address, "--budget", "2.5s", "--progress", "1")
    assert network.returncode == 0, network.stderr
    assert "steps," in network.stderr and "packets," in network.stderr and "findings" in network.stderr
    model = gearspec("fuzz", "--target", reference_server.address, "--model", "--budget", "2s", "--examples", "10", "--progress", "0.5")
    assert model.returncode == 0, model.stderr
    assert "gearspec fuzz: model: " in model.stderr and " runs, " in model.stderr


@pytest.mark.parametrize("command", sorted(commands()))
def test_every_help_has_examples_and_exit_codes(command: str) -> None:
    result = gearspec(command, "--help")
    assert result.returncode == 0
    assert "\nexamples:\n  gearspec " in result.stdout, result.stdout
    assert "\nexit status:\n  0 " in result.stdout, result.stdout


def test_dash_reads_standard_input(tmp_path: Path) -> None:
    echo = Packet.request("ECHO_REQ", b"test").to_bytes()
    decoded = gearspec("decode", "-", stdin=echo.decode("latin-1"))
    assert decoded.returncode == 0 and '"name": "ECHO_REQ"' in decoded.stdout, decoded.stderr
    capture = tmp_path / "echo.pcap"
    with PcapWriter(capture) as writer:
        conversation = TcpConversation(writer, ("192.0.2.1", 50000), ("192.0.2.2", 4730))
        conversation.send("to_server", echo)
        conversation.close()
    with open(capture, "rb") as stdin:
        dissected = subprocess.run([sys.executable, "-m", "gearspec", "dissect", "-"], stdin=stdin, capture_output=True, text=True, timeout=60)
    assert dissected.returncode == 0, dissected.stderr
    assert "ECHO_REQ" in dissected.stdout and "1 stream(s)" in dissected.stdout
