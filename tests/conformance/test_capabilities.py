"""The run's probe: cases use only routes the target answers, and never blame a missing one.

Real servers over real sockets: python gear's geard answers no ECHO_REQ and serves jobs only
for GRAB_JOB_UNIQ; Perl Gearman::Server refuses SUBMIT_JOB_HIGH_BG. Neither may fail a case
for that unless the case is about it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gearspec.conformance.capabilities import detect_capabilities
from gearspec.conformance.harness import Outcome, Target
from gearspec.conformance.registry import all_cases, select_cases
from gearspec.conformance.runner import RunConfig, run_cases
from gearspec.conformance.servers import RunningServer, server_available, start_server

from gearspec.spec import PacketType as T

# Framing cases whose rule (split input, pipelining, sizes, empty and NUL payloads, text and
# binary mixed, response magic) has nothing to do with ECHO: gear handles all of them.
FRAMING_NOT_ABOUT_ECHO = [
    "framing/magic/1", "framing/args/1", "framing/args/2", "framing/size/1", "framing/split/1",
    "framing/pipeline/1", "framing/text/3", "framing/text/4", "framing/text/5",
]


def _server(name: str) -> Iterator[RunningServer]:
    if not server_available(name):
        pytest.skip(f"{name} is not installed (scripts/install-peers.sh)")
    server = start_server(name)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gear() -> Iterator[RunningServer]:
    yield from _server("gear")


@pytest.fixture(scope="module")
def perl() -> Iterator[RunningServer]:
    yield from _server("perl")


def test_probe_finds_what_gear_answers(gear: RunningServer) -> None:
    found = detect_capabilities(gear.host, gear.port, wait=1.0, token="t1")
    assert (found.echo, found.status, found.admin) == (False, True, True)
    assert found.grabs == (T.GRAB_JOB_UNIQ,)
    assert (found.barrier, found.grab) == ("status", T.GRAB_JOB_UNIQ)


def test_probe_finds_everything_on_the_reference_server() -> None:
    with start_server("reference") as server:
        found = detect_capabilities(server.host, server.port, wait=1.0, token="t2")
    assert found.echo and found.status and found.admin
    assert found.grabs == (T.GRAB_JOB, T.GRAB_JOB_UNIQ, T.GRAB_JOB_ALL)
    assert found.barrier == "echo" and T.SUBMIT_JOB_HIGH_BG in found.submits


def test_bare_run_against_gear_blames_no_framing_case_on_echo(gear: RunningServer) -> None:
    # No profile: the barrier and the grab packet come from the probe alone.
    config = RunConfig(wait=1.0, timeout=8.0, seed="capabilities")
    results = run_cases(select_cases(all_cases(), ["framing"]), Target(gear.host, gear.port), config, jobs=4)
    by_id = {r.case.id: r for r in results}
    assert {i: by_id[i].outcome for i in FRAMING_NOT_ABOUT_ECHO} == {i: Outcome.PASS for i in FRAMING_NOT_ABOUT_ECHO}
    blamed = [r.case.id for r in results if r.outcome is Outcome.FAIL and (r.expected or "").startswith("ECHO_RES")]
    assert blamed == []


def test_fifo_within_high_uses_foreground_high_when_high_bg_is_refused(perl: RunningServer) -> None:
    # Perl refuses SUBMIT_JOB_HIGH_BG; foreground HIGH jobs test the same rule, and show that
    # Perl hands HIGH jobs out last in, first out (Gearman/Server.pm enqueue_job unshifts them).
    config = RunConfig(wait=1.0, timeout=8.0, seed="capabilities")
    [result] = run_cases(select_cases(all_cases(), ["priority/fifo/2"]), Target(perl.host, perl.port), config)
    assert result.outcome is Outcome.FAIL, result.message
    assert "job-5" in (result.actual or "")
