"""OPTION_REQ only where a scenario needs it, and never an endless wait for OPTION_RES
(issue 15 item 10). python gear's geard never answers OPTION_REQ (gear/__init__.py: Server
does not override BaseClientServer.handleOptionReq, which only logs the packet)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from gearspec.conformance.drivers import DRIVERS
from gearspec.conformance.impls import load_registry
from gearspec.conformance.interop import SCENARIOS, run_matrix
from gearspec.conformance.servers import RunningServer, server_available

from .helpers import gearspec


def test_the_reference_client_carries_on_without_an_unanswered_option(gear_server: RunningServer) -> None:
    worker = subprocess.Popen(
        [sys.executable, "-m", "gearspec", "work", "-s", gear_server.address, "-f", "rev", "-c", "1", "--", "rev"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        # -t 8: the old client spent its whole request timeout waiting for OPTION_RES.
        result = gearspec("submit", "-s", gear_server.address, "-f", "rev", "-t", "8", "hello")
        worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert (result.returncode, result.stdout.strip()) == (0, "olleh"), result.stderr
    assert "did not answer OPTION_REQ exceptions within 2s; carrying on without it" in result.stderr


@pytest.mark.skipif(not server_available("gear") or not DRIVERS["gear"].available(), reason="needs python gear")
def test_gear_client_against_gear_server_passes_what_it_really_passes() -> None:
    matrix = run_matrix(load_registry(), ["gear"], ["gear", "reference"], timeout=10)
    for client in ("gear", "reference"):
        grades = {r.scenario: r.verdict.value for r in matrix.cell("gear", client)}
        # geard does not coalesce (a listed deviation); everything else works, the
        # exception scenario too (geard passes WORK_EXCEPTION through without the option).
        assert grades == {**dict.fromkeys(SCENARIOS, "pass"), "coalescing": "expected-fail"}, (client, grades)
    assert matrix.broken == []
