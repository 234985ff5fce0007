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

# fault -> the case that must catch it (a fail, unless a verdict is given)
CAUGHT_BY: dict[str, str | tuple[str, Verdict]] = {
    "request-magic": "framing/magic/1",
    "swallow-error": "framing/error/1",
    "drop-work-data": "work/forward/1",
    "drop-noop": "sleep/noop/1",
    "swap-status": "status/progress/1",
    "admin-spaces": "admin/status/1",
    "no-terminator": "admin/status/1",
    "no-coalesce": "coalesce/unique/1",
    "invert-priority": "priority/order/1",
    # The grading audit (docs/conformance.md "Grading audit"): each of these cases passed the
    # fault before it was tightened (grab/uniq/1 always caught empty-assigned-unique; the
    # audited catcher of that one is bounds/payload/1, below).
    "error-to-close": ("framing/direction/1", Verdict.NON_STRICT),
    "malformed-error": ("framing/type/2", Verdict.NON_STRICT),
    "duplicate-error": "errors/unknown/1",
    "duplicate-ending": "work/forward/4",
    "duplicate-noop": "sleep/noop/7",
    "swap-priority-columns": "admin/prioritystatus/2",
    "cut-assigned-unique": "submit/unique/1",
    "empty-assigned-unique": "grab/uniq/1",
    "crlf-admin": ("admin/lines/1", Verdict.NON_STRICT),
    "duplicate-status-unique": "status/unique/1",
}

# More cases the audit tightened, each catching one of the faults above.
ALSO_CAUGHT_BY: dict[str, list[str | tuple[str, Verdict]]] = {
    "error-to-close": [("framing/magic/2", Verdict.NON_STRICT), ("framing/type/2", Verdict.NON_STRICT)],
    "duplicate-error": ["errors/client/1", "errors/foreign/2", "framing/type/2", "framing/direction/1"],
    "malformed-error": [("framing/magic/2", Verdict.NON_STRICT), ("framing/args/3", Verdict.NON_STRICT)],
    "empty-assigned-unique": ["bounds/payload/1"],
    "duplicate-ending": ["work/forward/5", "work/listeners/4", "exceptions/forward/3"],
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


def _catches(fault: str, catcher: str | tuple[str, Verdict], server: RunningServer) -> None:
    case_id, wanted = (catcher, Verdict.FAIL) if isinstance(catcher, str) else catcher
    assert _run(server, [], case_id)[case_id] is Verdict.PASS, f"{case_id} must pass without the fault"
    verdict = _run(server, [fault], case_id)[case_id]
    assert verdict is wanted, f"{fault}: {case_id} gave {verdict.value}, not {wanted.value}"


@pytest.mark.parametrize("fault", sorted(CAUGHT_BY))
def test_fault_is_caught_by_a_fitting_case(fault: str, clean_server: RunningServer) -> None:
    _catches(fault, CAUGHT_BY[fault], clean_server)


_ALSO = [(fault, catcher) for fault, catchers in sorted(ALSO_CAUGHT_BY.items()) for catcher in catchers]


@pytest.mark.parametrize(
    ("fault", "catcher"), _ALSO, ids=[f"{f}-{c if isinstance(c, str) else c[0]}" for f, c in _ALSO]
)
def test_audited_cases_catch_the_lax_behaviour(
    fault: str, catcher: str | tuple[str, Verdict], clean_server: RunningServer
) -> None:
    _catches(fault, catcher, clean_server)
