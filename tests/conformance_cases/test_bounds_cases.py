"""The boundary and interaction cases (bounds/*, interact/*): what they must catch.

They pass the reference server strictly; each catches a bug planted in front of it by a
mutating proxy (a value cut at a limit, a number wrapped at 32 bits, a payload cut at a
buffer size, a priority moved, an epoch wrapped into the past, a requeued job still shown
running); and each catches the real deviation it found in gearmand, Perl Gearman::Server or
python gear.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gearspec.conformance.faults import TO_CLIENT, TO_SERVER, Fault, FaultProxy, Rewrite
from gearspec.conformance.harness import Outcome, Target
from gearspec.conformance.registry import all_cases, get_case, select_cases
from gearspec.conformance.runner import Result, RunConfig, Verdict, run_cases
from gearspec.conformance.servers import RunningServer

from gearspec.codec import Event, Packet
from gearspec.spec import PacketType as T

CASES = select_cases(all_cases(), ["bounds", "interact"])
_SUBMITS = {t for t in T if t.spec.submit is not None}
_ASSIGNS = {T.JOB_ASSIGN, T.JOB_ASSIGN_UNIQ, T.JOB_ASSIGN_ALL}


def test_cases_live_in_their_modules_and_cite_the_limits_they_test() -> None:
    assert len(CASES) >= 35
    for c in CASES:
        module = {"bounds": "bounds", "interact": "interactions"}[c.area]
        assert c.module == f"gearspec.conformance.cases.{module}", c.id
        assert c.packets or c.admin, f"{c.id} exercises nothing"
        assert any(s in c.source for s in ("PROTOCOL", ".cc", ".h", ".pm", ".py")), f"{c.id}: {c.source}"


def _run(server: RunningServer | tuple[str, int], ids: list[str], strict: bool = True) -> list[Result]:
    host, port = (server.host, server.port) if isinstance(server, RunningServer) else server
    config = RunConfig(wait=1.0, timeout=10.0, seed="bounds", strict=strict, destructive=True)
    return run_cases([get_case(i) for i in ids], Target(host, port), config, jobs=4)


def test_reference_server_passes_every_case(reference_server: RunningServer) -> None:
    results = _run(reference_server, [c.id for c in CASES])
    assert {r.case.id: r.message for r in results if r.outcome is not Outcome.PASS} == {}


# -- planted bugs -----------------------------------------------------------------------------


def _rewrite(types: set[T], change: Callable[[Packet], Packet]) -> Callable[[], Rewrite]:
    def make() -> Rewrite:
        def rewrite(event: Event) -> bytes:
            if isinstance(event, Packet) and event.type in types:
                return change(event).to_bytes()
            return event.to_bytes()

        return rewrite

    return make


def _with_arg(packet: Packet, index: int, value: bytes) -> Packet:
    args = list(packet.args)
    args[index] = value
    return Packet(packet.magic, packet.type, tuple(args))


def _cut_unique(p: Packet) -> Packet:  # a server keeping 63 bytes of a 64-byte unique
    return _with_arg(p, 1, p.args[1][:63])


def _cut_payload(p: Packet) -> Packet:  # a server whose 8 KiB buffer cuts the job data
    return _with_arg(p, -1, p.args[-1][:8192])


def _wrap_status(p: Packet) -> Packet:  # numbers kept as uint32
    args = list(p.args)
    for i in (3, 4):
        if args[i].isdigit():
            args[i] = str(int(args[i]) % 2**32).encode()
    return Packet(p.magic, p.type, tuple(args))


def _bg_to_high(p: Packet) -> Packet:  # SUBMIT_JOB_BG queued at HIGH
    return Packet(p.magic, T.SUBMIT_JOB_HIGH_BG, p.args)


def _wrap_epoch(p: Packet) -> Packet:  # a far-future epoch wrapped into the past
    return _with_arg(p, 2, str(int(p.args[2]) % 2**32).encode())


def _stale_running(p: Packet) -> Packet:  # a requeued job still reported running
    return _with_arg(p, 2, b"1") if p.args[1] == b"1" else p


# (planted bug, the case that must catch it)
PLANTED = [
    (Fault("cut-unique-64", TO_SERVER, "uniques cut to 63 bytes", _rewrite(_SUBMITS, _cut_unique)), "bounds/unique/1"),
    (
        Fault("cut-payload-8k", TO_CLIENT, "assigned data cut to 8 KiB", _rewrite(_ASSIGNS, _cut_payload)),
        "bounds/payload/2",
    ),
    (
        Fault("wrap-status-32", TO_CLIENT, "STATUS_RES numbers mod 2**32", _rewrite({T.STATUS_RES}, _wrap_status)),
        "bounds/number/2",
    ),
    (
        Fault("bg-to-high", TO_SERVER, "SUBMIT_JOB_BG queued at HIGH", _rewrite({T.SUBMIT_JOB_BG}, _bg_to_high)),
        "interact/priority/1",
    ),
    (
        Fault("wrap-epoch", TO_SERVER, "epochs mod 2**32", _rewrite({T.SUBMIT_JOB_EPOCH}, _wrap_epoch)),
        "bounds/number/5",
    ),
    (
        Fault("stale-running", TO_CLIENT, "a known job always running", _rewrite({T.STATUS_RES}, _stale_running)),
        "interact/disconnect/2",
    ),
]


@pytest.fixture(scope="module")
def clean_server() -> Iterator[RunningServer]:
    from gearspec.conformance.servers import start_server

    server = start_server("reference")
    yield server
    server.stop()


@pytest.mark.parametrize(("fault", "case_id"), PLANTED, ids=[f[0].name for f in PLANTED])
def test_planted_bug_is_caught(fault: Fault, case_id: str, clean_server: RunningServer) -> None:
    with FaultProxy((clean_server.host, clean_server.port)) as proxy:
        (clean,) = _run((proxy.host, proxy.port), [case_id])
        assert clean.verdict is Verdict.PASS, f"{case_id} must pass through a clean proxy: {clean.message}"
        proxy.faults = [fault]
        (result,) = _run((proxy.host, proxy.port), [case_id])
    assert result.verdict is Verdict.FAIL, f"{fault.name}: {case_id} gave {result.verdict.value}: {result.message}"


# -- real deviations --------------------------------------------------------------------------

# (server fixture, case, what the server does on the wire)
DEVIATIONS = [
    ("gearmand", "bounds/unique/1", "a 64-byte unique is assigned cut to 63 bytes"),
    ("gearmand", "bounds/unique/3", "GET_STATUS_UNIQUE of a 64-byte unique closes the connection"),
    ("gearmand", "bounds/number/2", "WORK_STATUS numbers stored as uint32 (atoi)"),
    ("perl_server", "interact/disconnect/4", "a background job is dropped when its worker leaves"),
    ("gear_server", "interact/disconnect/1", "a running job is forgotten when its client leaves"),
]


@pytest.mark.parametrize(("fixture", "case_id", "why"), DEVIATIONS, ids=[f"{d[0]}:{d[1]}" for d in DEVIATIONS])
def test_real_deviation_is_caught(request: pytest.FixtureRequest, fixture: str, case_id: str, why: str) -> None:
    server: RunningServer = request.getfixturevalue(fixture)
    (result,) = _run(server, [case_id])
    assert result.outcome is Outcome.FAIL, f"{case_id} on {fixture} ({why}): {result.outcome.value}: {result.message}"


def test_a_crash_at_a_limit_is_recorded_against_its_case(tmp_path: Path) -> None:
    # A 20-digit CAN_DO_TIMEOUT kills gearmand 1.1.20 (log.cc gearmand_log_perror): with
    # --destructive and a server gearspec started, the crash is failed against the case.
    if shutil.which("/usr/sbin/gearmand") is None:
        pytest.skip("gearmand is not installed")
    report = tmp_path / "run.json"
    argv = ["--local", "gearmand", "--select", "bounds/number/6", "--destructive", "-q", "--json", str(report)]
    done = subprocess.run(
        [sys.executable, "-m", "gearspec", "test", *argv], capture_output=True, text=True, timeout=120
    )
    (result,) = json.loads(report.read_text())["cases"]
    assert (result["outcome"], done.returncode) == ("fail", 0), done.stdout + done.stderr
    assert "crashed" in result["message"], result["message"]
