"""Messages name the real cause in a user's words: no Python internals (issue 15 item 9)."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from pathlib import Path

from gearspec.conformance.servers import RunningServer

from .helpers import assert_clean_error, gearspec

PYTHON_INTERNALS = re.compile(r"b'|<RES |<REQ |\[Errno|Connect call failed|Traceback|status -\d")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_refused_connection_reads_connection_refused() -> None:
    server = f"127.0.0.1:{_free_port()}"
    for command in (("submit", "-s", server, "-f", "f", "x"), ("admin", "-s", server, "status")):
        result = gearspec(*command)
        assert_clean_error(result, "connection refused")
        assert not PYTHON_INTERNALS.search(result.stderr), result.stderr


def test_a_job_command_killed_by_a_signal_is_named_as_such(reference_server: RunningServer) -> None:
    worker = subprocess.Popen(
        [sys.executable, "-m", "gearspec", "work", "-s", reference_server.address, "-f", "die", "-c", "1",
         "--", "sh", "-c", "kill -9 $$"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        submitted = gearspec("submit", "-s", reference_server.address, "-f", "die", "-t", "60", "x")
        assert submitted.returncode == 3, submitted.stderr
        _, errors = worker.communicate(timeout=60)
    finally:
        worker.kill()
    assert "sh was killed by signal 9 (SIGKILL)" in errors, errors
    assert not PYTHON_INTERNALS.search(errors), errors


def test_output_files_and_queues_name_the_real_cause(reference_server: RunningServer, tmp_path: Path) -> None:
    trace = tmp_path / "missing" / "t.jsonl"
    result = gearspec("proxy", "--listen", "127.0.0.1:0", "--upstream", reference_server.address, "--trace", str(trace))
    assert_clean_error(result, str(trace), "no folder")
    assert "cannot listen" not in result.stderr
    result = gearspec("serve", "--port", "0", "--queue", "sqlite:/etc/passwd/q.sqlite3")
    assert_clean_error(result, "/etc/passwd is a file, not a folder", code=result.returncode)
    assert result.returncode != 0 and "File exists" not in result.stderr


def test_dissect_names_an_unsupported_link_type(tmp_path: Path) -> None:
    # A pcap of one frame of link type 147 (DLT_USER0), which dissect cannot read.
    capture = tmp_path / "user0.pcap"
    capture.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 147) + struct.pack("<IIII", 0, 0, 4, 4) + b"abcd")
    result = gearspec("dissect", str(capture))
    assert "link type 147 is not supported" in result.stderr, result.stderr
    assert "no TCP traffic" not in result.stderr


def test_failure_messages_show_values_not_python_reprs(gearmand: RunningServer, tmp_path: Path) -> None:
    # gearmand still knows a cancelled job: the case compares b"0" with b"1".
    result = gearspec("test", "--target", gearmand.address, "-k", "admin/cancel_job/3", "-q")
    assert "known after cancel = '0'" in result.stdout, result.stdout
    assert not PYTHON_INTERNALS.search(result.stdout + result.stderr), result.stdout
    # A replay whose echo comes back different: the mismatch shows both packets readably.
    script = tmp_path / "echo.json"
    script.write_text(json.dumps({"format": "gearspec-replay/1", "steps": [
        {"op": "open", "conn": "c0"},
        {"op": "send", "conn": "c0", "packet": {"type": "ECHO_REQ", "args": ["ping"]}},
        {"op": "expect", "conn": "c0", "one_of": [{"type": "ECHO_RES", "args": ["pong"]}]},
    ]}))
    result = gearspec("fuzz", "--target", gearmand.address, "--replay", str(script))
    assert result.returncode == 1
    assert "got ECHO_RES('ping'), expected ECHO_RES('pong')" in result.stderr, result.stderr
    assert not PYTHON_INTERNALS.search(result.stderr), result.stderr


def test_the_proxy_names_an_unreachable_upstream_in_words() -> None:
    import signal
    import socket
    import subprocess

    proxy = subprocess.Popen(
        [sys.executable, "-m", "gearspec", "proxy", "--listen", "127.0.0.1:0", "--upstream", f"127.0.0.1:{_free_port()}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proxy.stdout is not None
        listening = proxy.stdout.readline()
        found = re.search(r"listening on ([\d.]+):(\d+),", listening)
        assert found, listening
        host, port = found.groups()
        with socket.create_connection((host, int(port)), timeout=10) as peer:
            peer.settimeout(10)
            assert peer.recv(100) == b""  # the proxy drops the peer whose upstream is down
        proxy.send_signal(signal.SIGINT)
        out, err = proxy.communicate(timeout=30)
    finally:
        if proxy.poll() is None:
            proxy.kill()
            proxy.wait()
    assert "cannot reach upstream" in out and "connection refused" in out, out
    assert not PYTHON_INTERNALS.search(out + err), out + err
