"""A run leaves nothing behind on a persistent server (issue 15 item 8)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from gearspec.conformance.servers import RunningServer, start_local

from .helpers import gearspec


def _serve(queue: Path) -> RunningServer:
    return start_local([sys.executable, "-m", "gearspec", "serve", "--host", "{host}", "--port", "0", "--queue", f"sqlite:{queue}"])


def _queued(server: RunningServer, prefix: str = "gs-") -> int:
    result = gearspec("admin", "-s", server.address, "status", "--json")
    assert result.returncode in (0, 5), result.stderr  # 5: rows a name with a newline broke
    rows = [row for row in json.loads(result.stdout) if "function" in row]
    return sum(int(row["total"]) for row in rows if row["function"].startswith(prefix))


def test_a_suite_run_leaves_no_jobs_on_a_persistent_server(tmp_path: Path) -> None:
    queue = tmp_path / "queue.sqlite3"
    server = _serve(queue)
    try:
        result = gearspec("test", "--target", server.address, "-q")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr
        assert _queued(server) == 0, "jobs left queued by the run"
    finally:
        server.stop()
    restarted = _serve(queue)  # nothing is replayed from the durable queue either
    try:
        assert _queued(restarted) == 0
        # --no-cleanup keeps them (for debugging): the check above can fail.
        kept = gearspec("test", "--target", restarted.address, "-q", "-k", "epoch/future/*", "-k", "submit/*", "--no-cleanup")
        assert kept.returncode == 0, kept.stdout[-3000:]
        assert _queued(restarted) > 0
    finally:
        restarted.stop()


def test_fuzz_runs_take_their_jobs_back_off_the_server(tmp_path: Path) -> None:
    # The sqlite queue also checks that what the fuzzer sends (epochs up to 2**64-1) does not
    # stop the server's durable queue.
    network = ("fuzz", "--steps", "300", "--seed", "4", "--families", "valid,arg_count,mutated")
    for cleanup, check in ((False, lambda n: n > 0), (True, lambda n: n == 0)):
        server = _serve(tmp_path / f"queue-{cleanup}.sqlite3")
        try:
            flags = () if cleanup else ("--no-cleanup",)
            result = gearspec(*network, "--target", server.address, *flags)
            assert result.returncode == 0, result.stdout + result.stderr
            assert ("cleanup: took" in result.stdout) == cleanup, result.stdout
            model = gearspec("fuzz", "--target", server.address, "--model", "--budget", "1s", "--examples", "10", *flags)
            assert model.returncode == 0, model.stdout + model.stderr
            left = _queued(server, prefix="")
            assert check(left), (cleanup, left)
        finally:
            server.stop()


def test_a_plugin_session_leaves_no_jobs_on_a_persistent_server(tmp_path: Path) -> None:
    # The pytest plugin drains what its cases queued, as `gearspec test` does.
    server = _serve(tmp_path / "queue.sqlite3")
    try:
        # Cleaning first; then --gearman-no-cleanup keeps them (so the first check can fail).
        for extra, check in (((), lambda n: n == 0), (("--gearman-no-cleanup",), lambda n: n > 0)):
            result = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs", "gearspec.conformance",
                 "--gearman-target", server.address, "-k", "submit or epoch", *extra],
                capture_output=True, text=True, timeout=600, cwd=tmp_path,
            )
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr
            left = _queued(server)
            assert check(left), (extra, left)
    finally:
        server.stop()
