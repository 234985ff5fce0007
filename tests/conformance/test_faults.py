"""Planted bugs: the suite passes a clean server and fails each planted bug with a fitting case.

A mutating proxy (gearspec.conformance.faults) sits between the suite and the reference
server; each fault rewrites one aspect of the traffic the way a buggy server would.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gearspec.conformance.faults import FAULTS, FaultProxy
from gearspec.conformance.harness import Target
from gearspec.conformance.registry import all_cases, select_cases
from gearspec.conformance.runner import RunConfig, Verdict, run_cases
from gearspec.conformance.servers import RunningServer

# fault -> the case that must catch it
CAUGHT_BY = {
    "request-magic": "framing/magic/1",
    "swallow-error": "framing/error/1",
    "drop-work-data": "work/forward/1",
    "drop-noop": "sleep/noop/1",
    "swap-status": "status/progress/1",
    "admin-spaces": "admin/status/1",
    "no-terminator": "admin/status/1",
    "no-coalesce": "coalesce/unique/1",
    "invert-priority": "priority/order/1",
}


def test_every_fault_has_a_catching_case() -> None:
    assert set(CAUGHT_BY) == set(FAULTS)


@pytest.fixture(scope="module")
def clean_server() -> Iterator[RunningServer]:
    from gearspec.conformance.servers import start_server

    server = start_server("reference")
    yield server
    server.stop()


def _run(server: RunningServer, faults: list[str], select: str) -> dict[str, Verdict]:
    cases = select_cases(all_cases(), [select])
    assert cases, select
    config = RunConfig(wait=0.5, timeout=5.0, seed="faults")
    with FaultProxy((server.host, server.port), faults) as proxy:
        results = run_cases(cases, Target(proxy.host, proxy.port), config, jobs=6)
    return {r.case.id: r.verdict for r in results}


def test_the_clean_proxy_is_transparent(clean_server: RunningServer) -> None:
    # Through a proxy without faults the reference server passes every MUST and SHOULD case
    # it passes directly (its profile lists what it does not).
    from gearspec.conformance.runner import builtin_profiles, load_expectations

    config = RunConfig(
        wait=0.5, timeout=5.0, seed="faults", strict=True,
        expectations=load_expectations(builtin_profiles()["reference"]),
    )
    with FaultProxy((clean_server.host, clean_server.port), []) as proxy:
        results = run_cases(all_cases(), Target(proxy.host, proxy.port), config, jobs=6)
    assert [r.case.id for r in results if r.counts_against(strict=True)] == []


@pytest.mark.parametrize("fault", sorted(CAUGHT_BY))
def test_fault_is_caught_by_a_fitting_case(fault: str, clean_server: RunningServer) -> None:
    case_id = CAUGHT_BY[fault]
    assert _run(clean_server, [], case_id)[case_id] is Verdict.PASS, f"{case_id} must pass without the fault"
    verdict = _run(clean_server, [fault], case_id)[case_id]
    assert verdict is Verdict.FAIL, f"{fault}: {case_id} gave {verdict.value}"
