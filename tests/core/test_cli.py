"""`gearspec spec`, `gearspec decode` and the dispatcher, run as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gearspec.admin import ADMIN_COMMANDS
from gearspec.codec import Packet
from gearspec.spec import PACKETS
from gearspec.vectors import vector

GEARSPEC = [sys.executable, "-m", "gearspec"]


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*GEARSPEC, *args], input=stdin, capture_output=True, timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_spec_json_has_both_tables() -> None:
    result = run("spec", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    packets = data["packets"]
    assert [p["code"] for p in packets] == list(range(43))
    assert [p["name"] for p in packets] == [row.name for row in PACKETS]
    submit = packets[32]
    assert submit["name"] == "SUBMIT_JOB_HIGH_BG"
    assert submit["submit"] == {"background": True, "priority": "HIGH", "scheduled": None, "reduce": False}
    assert submit["magic"] == ["REQ"] and submit["senders"] == ["client"]
    assert [a["name"] for a in submit["args"]] == ["function", "unique", "data"]
    assert packets[12]["magic"] == ["REQ", "RES"] and packets[12]["senders"] == ["worker", "server"]
    assert packets[0]["reserved"] and packets[5]["reserved"]
    assert all(p["source"] for p in packets)
    assert [c["command"] for c in data["admin_commands"]] == [c.name for c in ADMIN_COMMANDS]
    assert data["admin_commands"][0]["reply"] in {"line", "block"}


def test_spec_table_text() -> None:
    result = run("spec")
    assert result.returncode == 0
    assert "SUBMIT_REDUCE_JOB_BACKGROUND" in result.stdout and "show unique jobs" in result.stdout


def test_decode_stdin_file_and_hex(tmp_path: Path) -> None:
    wire = Packet.make("SUBMIT_JOB", "reverse", "u", b"\xff\0x").to_bytes() + b"status\r\n"
    expected = [
        {"magic": "REQ", "type": 7, "name": "SUBMIT_JOB",
         "args": {"function": "reverse", "unique": "u", "data": {"hex": "ff0078"}}},
        {"admin": "status", "terminator": {"hex": "0d0a"}},
    ]
    from_stdin = run("decode", stdin=wire)
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert json_lines(from_stdin.stdout) == expected
    path = tmp_path / "stream.bin"
    path.write_bytes(wire)
    assert json_lines(run("decode", str(path)).stdout) == expected
    assert json_lines(run("decode", "--hex", wire.hex(" ")).stdout) == expected
    with_offsets = json_lines(run("decode", "--offsets", "--direction", "to-server", "-", stdin=wire).stdout)
    assert [e["offset"] for e in with_offsets] == [0, len(wire) - 8]


def test_decode_direction() -> None:
    wire = vector("packet/17-ECHO_RES").data
    assert json_lines(run("decode", "--direction", "from-server", "--hex", wire.hex()).stdout)[0]["name"] == "ECHO_RES"
    refused = run("decode", "--direction", "to-server", "--hex", wire.hex())
    assert refused.returncode == 1
    (line,) = json_lines(refused.stdout)
    assert line == {"error": line["error"], "code": "INVALID_MAGIC", "offset": 0}
    assert "Traceback" not in refused.stderr and "INVALID_MAGIC" in refused.stderr


@pytest.mark.parametrize(
    ("vector_id", "code", "offset"),
    [
        ("malformed/bad-magic", "INVALID_MAGIC", 0),
        ("malformed/truncated-header", "LOST_CONNECTION", 12),
        ("malformed/oversize-length", "DATA_TOO_LARGE", 8),
        ("malformed/type-43", "INVALID_COMMAND", 4),
    ],
)
def test_decode_reports_errors_with_offsets(vector_id: str, code: str, offset: int) -> None:
    result = run("decode", "--hex", vector(vector_id).data.hex())
    assert result.returncode == 1
    errors = [e for e in json_lines(result.stdout) if "error" in e]
    assert errors[0]["code"] == code and errors[0]["offset"] == offset
    assert f"at byte {offset}" in result.stderr and "Traceback" not in result.stderr


def test_decode_lenient_keeps_going() -> None:
    data = vector("malformed/type-43").data
    result = run("decode", "--lenient", "--hex", data.hex())
    assert result.returncode == 0, result.stderr
    raw, echo = json_lines(result.stdout)
    assert raw["name"] == "UNKNOWN_43" and raw["error"]["code"] == "INVALID_COMMAND"  # type: ignore[index]
    assert echo["name"] == "ECHO_REQ"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["decode", "--hex", "0g"], "not hex"),
        (["decode", "/nonexistent/file"], "cannot read"),
        (["decode", "--direction", "sideways"], "invalid choice"),
        (["decode", "--no-such-flag"], "unrecognized arguments"),
        (["no-such-command"], "unknown command"),
        ([], "usage: gearspec"),
    ],
)
def test_usage_errors_exit_2_without_traceback(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_help_version_and_console_script() -> None:
    assert run("--help").returncode == 0
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("gearspec ")
    script = shutil.which("gearspec", path=str(Path(sys.executable).parent)) or shutil.which("gearspec")
    assert script is not None, "the gearspec console script is not installed"
    proc = subprocess.run([script, "spec", "--json"], capture_output=True, timeout=60)
    assert proc.returncode == 0 and json.loads(proc.stdout)["packets"]


def test_json_option_means_write_to_file(tmp_path: Path) -> None:
    """--json FILE writes FILE (as in test, fuzz and interop); bare --json (or -) is stdout."""
    path = tmp_path / "spec.json"
    result = run("spec", "--json", str(path))
    assert result.returncode == 0 and result.stdout == "", result.stderr
    assert json.loads(path.read_text()) == json.loads(run("spec", "--json").stdout) == json.loads(run("spec", "--json", "-").stdout)
