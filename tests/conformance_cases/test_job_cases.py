"""The job-semantics case areas (submit, coalesce, priority, work, ...) checked against real servers.

The whole suite's evidence runs in tests/conformance/test_targets.py. These tests pin what
the job cases themselves must do: pass the reference server strictly, and catch deviations
that real servers show on the wire (so a case that cannot fail would be noticed here).
"""

from __future__ import annotations

import pytest
from gearspec.conformance.harness import Outcome, Target
from gearspec.conformance.registry import Level, all_cases, get_case, select_cases
from gearspec.conformance.runner import Result, RunConfig, Verdict, builtin_profiles, load_expectations, run_cases
from gearspec.conformance.servers import RunningServer

from gearspec.spec import PacketType

JOB_AREAS = [
    "submit", "handles", "coalesce", "priority", "grab", "sleep", "work", "exceptions", "status", "echo",
    "client_id", "timeout", "disconnect", "epoch", "reduce", "sched", "abilities", "errors",
]
JOB_CASES = select_cases(all_cases(), JOB_AREAS)


def test_each_job_area_lives_in_its_own_module_with_cited_sources() -> None:
    assert len(JOB_CASES) >= 100
    for c in JOB_CASES:
        assert c.module == f"gearspec.conformance.cases.{c.area}", c.id
        assert c.packets, f"{c.id} exercises no packet"
        assert "PROTOCOL" in c.source or ".cc" in c.source or ".pm" in c.source, f"{c.id}: {c.source}"
    assert {c.area for c in JOB_CASES} == set(JOB_AREAS)


def test_extension_packets_are_graded_as_extensions() -> None:
    # gearmand-only packets must never make a core (MUST) case fail on servers without them.
    extension = {PacketType.SUBMIT_REDUCE_JOB, PacketType.SUBMIT_REDUCE_JOB_BACKGROUND, PacketType.GRAB_JOB_ALL,
                 PacketType.GET_STATUS_UNIQUE, PacketType.SUBMIT_JOB_EPOCH}
    for c in JOB_CASES:
        if extension & set(c.packets):
            assert c.level is not Level.MUST, c.id


def _run(server: RunningServer, ids: list[str], profile: str | None = None, strict: bool = False) -> list[Result]:
    """Run cases; a profile only supplies the target's grab packet and barrier here."""
    cases = [get_case(i) for i in ids]
    config = RunConfig(wait=1.0, timeout=8.0, seed="job-cases", strict=strict)
    if profile is not None:
        config = RunConfig(
            wait=1.0, timeout=8.0, seed="job-cases", strict=strict,
            expectations=load_expectations(builtin_profiles()[profile]),
        )
    return run_cases(cases, Target(server.host, server.port), config, jobs=6)


def test_reference_server_passes_every_job_case(reference_server: RunningServer) -> None:
    results = _run(reference_server, [c.id for c in JOB_CASES], strict=True)
    bad = {r.case.id: r.message for r in results if r.verdict in (Verdict.FAIL, Verdict.ERROR)}
    assert bad == {}


# (server fixture, profile for grab/barrier settings, case, outcome, what the server does on the wire)
DEVIATIONS = [
    ("gearmand", None, "exceptions/forward/3", Outcome.FAIL, "WORK_FAIL for a WORK_EXCEPTION carries 'H:..\\0'"),
    ("gearmand", None, "epoch/wake/1", Outcome.FAIL, "1.1.20 has no timer waking sleepers at the epoch"),
    ("gearmand", None, "priority/cross/1", Outcome.NON_STRICT, "1.1.x applies priority per function"),
    ("perl_server", "perl", "exceptions/ends/1", Outcome.FAIL, "WORK_EXCEPTION leaves the job running"),
    ("perl_server", "perl", "status/unknown/2", Outcome.NON_STRICT, "empty numerator/denominator"),
    ("perl_server", "perl", "disconnect/worker/1", Outcome.NON_STRICT, "WORK_FAIL instead of a retry"),
    ("perl_server", "perl", "work/forward/1", Outcome.FAIL, "no WORK_DATA support (server_error)"),
    ("gear_server", "gear", "errors/foreign/1", Outcome.FAIL, "forwards a forged WORK_COMPLETE"),
    ("gear_server", "gear", "exceptions/forward/2", Outcome.FAIL, "WORK_EXCEPTION without the option"),
    ("gear_server", "gear", "coalesce/unique/1", Outcome.FAIL, "no coalescing"),
]


@pytest.mark.parametrize(
    ("fixture", "profile", "case_id", "outcome", "why"), DEVIATIONS, ids=[f"{d[0]}:{d[2]}" for d in DEVIATIONS]
)
def test_real_deviation_is_caught(
    request: pytest.FixtureRequest, fixture: str, profile: str | None, case_id: str, outcome: Outcome, why: str
) -> None:
    server: RunningServer = request.getfixturevalue(fixture)
    (result,) = _run(server, [case_id], profile)
    assert result.outcome is outcome, f"{case_id} on {fixture} ({why}): {result.outcome.value}: {result.message}"
