"""Ctrl-C: `work` finishes the running job, `test` reports what ran (issue 15 item 7).

Ctrl-C at a terminal sends SIGINT to the whole foreground process group; the tests do the
same with killpg on a process started in a group of its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gearspec.conformance.servers import RunningServer

GEARSPEC = [sys.executable, "-m", "gearspec"]


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_ctrl_c_lets_the_running_job_finish(reference_server: RunningServer, tmp_path: Path) -> None:
    started = tmp_path / "started"
    worker = subprocess.Popen(
        [*GEARSPEC, "work", "-s", reference_server.address, "-f", "slow", "--",
         "sh", "-c", f"touch {started}; sleep 1; tr a-z A-Z"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    client = subprocess.Popen(
        [*GEARSPEC, "submit", "-s", reference_server.address, "-f", "slow", "-t", "60", "hello"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        _wait_for(started)
        os.killpg(worker.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        out, err = client.communicate(timeout=60)
        assert (client.returncode, out) == (0, "HELLO"), err
        _, worker_err = worker.communicate(timeout=60)
        assert worker.returncode == 0, worker_err
        assert "Traceback" not in worker_err and "WORK_FAIL" not in worker_err, worker_err
    finally:
        for process in (worker, client):
            if process.poll() is None:
                process.kill()
                process.wait()


def test_ctrl_c_prints_the_summary_so_far_and_writes_reports(reference_server: RunningServer, tmp_path: Path) -> None:
    report = tmp_path / "partial.json"
    run = subprocess.Popen(
        [*GEARSPEC, "test", "--target", reference_server.address, "-j", "1", "--json", str(report)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        assert run.stdout is not None
        header = run.stdout.readline()
        assert header.startswith("gearspec test: "), header
        total = int(header.split()[2])
        assert run.stdout.readline().startswith("progress: ")  # the legend of the letters
        assert len(run.stdout.read(5)) == 5  # five cases finished (one progress letter each)
        os.killpg(run.pid, signal.SIGINT)
        rest, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 130, err
    assert "Traceback" not in err
    assert "\nINTERRUPTED: " in rest, rest
    data = json.loads(report.read_text())
    assert data["run"]["interrupted"] is True
    assert 5 <= len(data["cases"]) < total
    assert f"interrupted after {len(data['cases'])} of {total} cases" in err
