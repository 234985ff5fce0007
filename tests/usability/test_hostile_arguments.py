"""Every subcommand, given malformed or hostile arguments: no traceback, one line on stderr
that names the real cause, a non-zero exit status (issue 15)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import assert_clean_error, gearspec

REFUSED = "127.0.0.1:1"  # nothing listens on port 1 here

CASES: list[tuple[list[str], list[str]]] = [
    (["test", "--target", ""], ["no host"]),
    (["test", "--target", ":::"], ["[::1]:4730"]),
    (["test", "--target", "127.0.0.1:99999"], ["port 99999"]),
    (["test", "--target", "127.0.0.1:abc"], ["'abc' is not a number"]),
    (["test", "-j", "0"], ["-j must be at least 1"]),
    (["test", "-j", "x"], ["-j/--jobs", "'x'"]),
    (["test", "--timeout", "nan"], ["--timeout must be a positive number"]),
    (["test", "--wait", "-1"], ["--wait must be a positive number"]),
    (["test", "--profile", "nope"], ["no profile 'nope'"]),
    (["test", "--expect", "/nonexistent.toml"], ["/nonexistent.toml", "No such file"]),
    (["test", "--expect", "/etc/passwd"], ["/etc/passwd", "not valid TOML"]),
    (["test", "--grab", "FOO"], ["--grab", "'FOO'"]),
    (["test", "--maxfail", "0"], ["--maxfail must be at least 1"]),
    (["test", "--json", "/proc/gearspec.json"], ["cannot write /proc/gearspec.json"]),
    (["test", "--html", "/tmp"], ["/tmp: it is a folder"]),
    (["test", "--server", "nope"], ["unknown server 'nope'"]),
    (["test", "--role", "client"], ["--role needs --exec"]),
    (["test", "--target", "impl:nope"], ["unknown implementation 'nope'"]),
    (["test", "--target", REFUSED], ["cannot reach", "connection refused"]),
    (["serve", "--port", "70000"], ["--port", "70000"]),
    (["serve", "--port", "abc"], ["--port", "'abc'"]),
    (["serve", "--queue", "bogus:x"], ["unknown queue 'bogus:x'"]),
    (["serve", "--port", "0", "--queue", "sqlite:/etc/passwd/q.sqlite3"], ["/etc/passwd is a file, not a folder"]),
    (["submit", "-s", "", "-f", "f", "x"], ["no host"]),
    (["submit", "-s", "127.0.0.1:99999", "-f", "f", "x"], ["is not HOST:PORT", "port 99999 is not in"]),
    (["submit", "-s", REFUSED, "-f", "f", "x"], ["connection refused"]),
    (["submit", "-f", "f", "--epoch", "5", "x"], ["--epoch needs --background"]),
    (["submit", "-f", "f", "-t", "-1", "x"], ["--timeout must be a positive number"]),
    (["work", "-f", "f"], ["give the command to run after --"]),
    (["work", "-f", "f", "-c", "0", "--", "cat"], ["--count must be at least 1"]),
    (["work", "-s", "bad:port", "-f", "f", "--", "cat"], ["'bad:port' is not HOST:PORT", "not a number"]),
    (["admin", "-s", "bad:port", "status"], ["is not HOST:PORT", "not a number"]),
    (["admin", "-s", REFUSED, "-s", "127.0.0.1:2", "status"], ["give a single -s"]),
    (["admin", "--timeout", "0", "status"], ["--timeout must be a positive number"]),
    (["admin", "-s", REFUSED, "status"], ["connection refused"]),
    (["fuzz", "--target", "nope"], ["HOST:PORT", "'nope'"]),
    (["fuzz", "--target", "192.0.2.1:4730"], ["not a loopback address", "--allow-remote"]),
    (["fuzz", "--target", REFUSED, "--budget", "xyz"], ["not a duration: 'xyz'"]),
    (["fuzz", "--target", REFUSED, "--families", "nope"], ["unknown families nope"]),
    (["fuzz", "--target", REFUSED, "--model", "--profile", "nope"], ["unknown profile 'nope'"]),
    (["fuzz", "--target", REFUSED, "--replay", "/missing.json"], ["cannot read /missing.json"]),
    (["fuzz", "--target", REFUSED, "--replay", "/etc/passwd"], ["not a gearspec replay script"]),
    (["fuzz", "--target", REFUSED, "--examples", "-3", "--model"], ["--examples must be at least 1"]),
    (["fuzz", "--target", REFUSED, "--progress", "-1"], ["--progress"]),
    (["fuzz", "--target", REFUSED], ["does not answer", "is the server running"]),
    (["interop", "--servers", "nope"], ["unknown server: nope"]),
    (["interop", "--scenarios", "nope"], ["unknown scenario: nope"]),
    (["interop", "--timeout", "-1"], ["--timeout must be a positive number"]),
    (["interop", "--jobs", "0"], ["--jobs must be at least 1"]),
    (["interop", "--html", "/proc/grid.html"], ["cannot write /proc/grid.html"]),
    (["dissect", "/missing.pcap"], ["cannot read /missing.pcap"]),
    (["dissect", "/etc/passwd"], ["not a pcap or pcapng file"]),
    (["dissect", "/tmp"], ["cannot read /tmp", "Is a directory"]),
    (["proxy", "--upstream", "bad:port"], ["is not HOST:PORT", "not a number"]),
    (["proxy", "--listen", "127.0.0.1:99999", "--upstream", REFUSED], ["is not HOST:PORT", "port 99999 is not in"]),
    (["proxy", "--listen", "127.0.0.1:0", "--upstream", REFUSED, "--pcap", "/proc/t.pcap"], ["cannot write /proc/t.pcap"]),
    (["spec", "--bogus"], ["unrecognized arguments: --bogus"]),
    (["decode", "--hex", "zz"], ["'z' is not a hex digit"]),
    (["decode", "/missing.bin"], ["cannot read /missing.bin"]),
    (["decode", "--direction", "sideways"], ["--direction", "'sideways'"]),
    (["no-such-command"], ["unknown command 'no-such-command'"]),
]


@pytest.mark.parametrize(("args", "words"), CASES, ids=[" ".join(a) or "''" for a, _ in CASES])
def test_bad_arguments_get_one_clear_line(args: list[str], words: list[str], tmp_path: Path) -> None:
    result = gearspec(*args, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode != 0, (result.stdout, result.stderr)
    assert_clean_error(result, *words, code=result.returncode)
