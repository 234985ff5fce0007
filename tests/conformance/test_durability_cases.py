"""Durability cases: acknowledged background jobs survive a restart, for each queue offered.

Real servers, really restarted by gearspec (conformance/lifecycle.py): the reference server
and gearmand with their sqlite queues keep every job; with memory queues nothing comes back,
which is "no persistent queue" (unsupported), not a failure.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from gearspec.conformance.registry import all_cases
from gearspec.conformance.servers import server_available

DURABILITY = [c.id for c in all_cases() if c.id.startswith("durability/")]
# Not about the queue: a restarted process wakes its first sleeper, whatever it keeps.
ANY_QUEUE = ["durability/restart/7"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gearspec", "test", "--select", "durability", "-q", "--seed", "7", *args],
        capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize("server", ["reference-sqlite", "gearmand-sqlite"])
def test_sqlite_queues_keep_acknowledged_jobs_across_restarts(server: str) -> None:
    if not server_available(server):
        pytest.skip(f"{server} is not installed")
    out = _run("--local", server)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(DURABILITY)} cases" in out.stdout and f": {len(DURABILITY)} pass" in out.stdout


@pytest.mark.parametrize("server", ["reference", "gearmand"])
def test_memory_queues_are_unsupported_not_failed(server: str) -> None:
    if not server_available(server):
        pytest.skip(f"{server} is not installed")
    out = _run("--local", server, "-v")
    kept = len(DURABILITY) - len(ANY_QUEUE)
    assert out.returncode == 0 and f": {len(ANY_QUEUE)} pass, {kept} unsupported" in out.stdout, out.stdout


def test_an_external_target_without_restart_command_is_unsupported() -> None:
    from gearspec.conformance.servers import start_server

    with start_server("reference-sqlite") as server:
        out = _run("--target", server.address, "--json", "/dev/stdout")
    assert out.returncode == 0 and "needs a target gearspec can restart" in out.stdout
