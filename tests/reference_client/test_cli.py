"""`gearspec submit`, `gearspec work` and `gearspec admin` as processes against gearmand."""

from __future__ import annotations

import json
import subprocess
import sys

from gearspec.conformance.servers import RunningServer

GEARSPEC = [sys.executable, "-m", "gearspec"]
# A job command: reverse stdin; "fail" exits 1.
REVERSE = [sys.executable, "-S", "-c",
           "import sys; d = sys.stdin.buffer.read(); sys.exit(1) if d == b'fail' else sys.stdout.buffer.write(d[::-1])"]


def gearspec(*args: str, stdin: bytes | None = None, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*GEARSPEC, *args], input=stdin, capture_output=True, timeout=timeout)


def test_submit_work_and_admin(gearmand: RunningServer) -> None:
    server = gearmand.address
    worker = subprocess.Popen(
        [*GEARSPEC, "work", "-s", server, "-f", "rev", "-c", "5", "--client-id", "cli-worker", "--", *REVERSE],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        done = gearspec("submit", "-s", server, "-f", "rev", "hello")
        assert (done.returncode, done.stdout) == (0, b"olleh"), done
        done = gearspec("submit", "-s", server, "-f", "rev", stdin=b"from\0stdin")
        assert (done.returncode, done.stdout) == (0, b"nidts\0morf"), done
        done = gearspec("submit", "-s", server, "-f", "rev", "-p", "high", "-u", "key-1", "abc")
        assert (done.returncode, done.stdout) == (0, b"cba"), done
        done = gearspec("submit", "-s", server, "-f", "rev", "fail")
        assert done.returncode == 3 and b"failed" in done.stderr, done
        done = gearspec("submit", "-s", server, "-f", "rev", "--background", "bg")
        assert done.returncode == 0 and done.stdout.startswith(b"H:"), done
        worker.wait(20)
        assert worker.returncode == 0, worker.stderr.read() if worker.stderr else ""
        assert b"WORK_FAIL" in (worker.stderr.read() if worker.stderr else b"")
    finally:
        worker.kill()
        worker.wait()

    done = gearspec("submit", "-s", server, "-f", "queued_only", "--background", "-p", "low", "x")
    assert done.returncode == 0
    table = gearspec("admin", "-s", server, "status")
    assert table.returncode == 0
    lines = table.stdout.decode().splitlines()
    assert lines[0].split() == ["FUNCTION", "TOTAL", "RUNNING", "WORKERS"]
    assert ["queued_only", "1", "0", "0"] in [line.split() for line in lines[1:]]
    rows = json.loads(gearspec("admin", "-s", server, "status", "--json").stdout)
    assert {"function": "queued_only", "total": "1", "running": "0", "workers": "0"} in rows
    version = gearspec("admin", "-s", server, "version")
    assert version.returncode == 0 and version.stdout.startswith(b"1.1")
    jobs = gearspec("admin", "-s", server, "show", "jobs")
    assert jobs.returncode == 0 and jobs.stdout.split()[:4] == [b"HANDLE", b"RETRIES", b"IGNORED", b"PERSISTED"]
    unknown = gearspec("admin", "-s", server, "no_such_command")
    assert unknown.returncode == 1 and b"UNKNOWN_COMMAND" in unknown.stderr


def test_usage_errors_are_clear() -> None:
    done = gearspec("work", "-f", "x")
    assert done.returncode == 2 and b"give the command to run" in done.stderr
    done = gearspec("submit", "-f", "x", "--epoch", "5", "y")
    assert done.returncode == 2 and b"--epoch needs --background" in done.stderr
    done = gearspec("submit", "-s", "host:notaport", "-f", "x", "y")
    assert done.returncode == 2 and b"port 'notaport' is not a number" in done.stderr and b"Traceback" not in done.stderr


def test_submit_timeout_bounds_the_wait_when_no_worker_ever_comes(gearmand: RunningServer) -> None:
    # No worker for the function: only --timeout can end the wait (exit 6, one line).
    done = gearspec("submit", "-s", gearmand.address, "-f", "nobody_does_this", "--timeout", "0.5", "x", timeout=15)
    assert done.returncode == 6, done
    assert done.stderr.count(b"\n") == 1 and b"Traceback" not in done.stderr, done
