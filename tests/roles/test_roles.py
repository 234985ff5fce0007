"""`gearspec test --role client|worker`: the suite plays the server for real libraries.

Every driver of conformance/drivers (gearmand's `gearman` CLI, Perl Gearman::Client/Worker,
PHP gearman, python gear and gearman3, node gearman, gearspec's own client and worker, and
the libraries of issue 16) runs every scenario against the scripted server; every grade must
be a pass or as its `conformance/impls/NAME/driver-expectations.toml` lists it (the same
mechanism as a server's profile). A grade changing is a behaviour change of the library or
of the grader, and either deserves a look. Scripted misbehaving programs show the grader can fail.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from gearspec.conformance.drivers import DRIVERS
from gearspec.conformance.impls import load_registry
from gearspec.conformance.reports import markdown_table
from gearspec.conformance.roles import (
    FAIL,
    INFO,
    SCENARIOS,
    ScenarioResult,
    as_result,
    format_markdown,
    run_matrix,
    run_scenarios,
)
from gearspec.conformance.runner import Expectations, Verdict, load_expectations

TIMEOUT = 8.0  # per scenario; hung programs cost this much


def _expectations(driver: str) -> Expectations:
    profiles = load_registry().driver_profiles()
    return load_expectations(profiles[driver]) if driver in profiles else Expectations(name="no expectations")


def _need_driver(name: str) -> None:
    reason = DRIVERS[name].unavailable()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"driver {name} cannot run: {reason}")
        pytest.skip(f"driver {name} cannot run: {reason}")


@pytest.mark.parametrize("driver", list(DRIVERS))
def test_library_grades_match_its_driver_expectations(driver: str) -> None:
    _need_driver(driver)
    roles = tuple(role for role in ("client", "worker") if role in DRIVERS[driver].roles)  # some are workers only
    expectations = _expectations(driver)
    matrix = asyncio.run(run_matrix([driver], roles, timeout=TIMEOUT, parallel=4))
    outcomes: list[ScenarioResult] = [o for outs in matrix.values() for o in outs]
    assert len(outcomes) == len([s for s in SCENARIOS if s.id.split("/")[0] in roles])
    # Exact: a listed grade that turns into a pass is an unexpected pass, an unlisted
    # informational grade is a difference too.
    differences = [
        f"{r.case.id}: got {r.outcome.value} ({r.message}), expected "
        + ("pass" if r.deviation is None else " or ".join(sorted(o.value for o in r.deviation.outcomes)))
        for r in (as_result(o, expectations) for o in outcomes)
        if r.verdict not in (Verdict.PASS, Verdict.EXPECTED_FAIL)
    ]
    assert differences == [], "\n".join(differences)
    for outcome in outcomes:
        assert outcome.reason and outcome.trace[0].split()[1] == "[exec]"


def test_every_driver_lists_its_deviations_by_scenario_with_a_reason() -> None:
    profiles = load_registry().driver_profiles()
    assert set(profiles) == set(DRIVERS), "every driver has a driver-expectations.toml"
    for driver, path in profiles.items():
        ids = [s.id for s in SCENARIOS if s.role in DRIVERS[driver].roles]
        for deviation in load_expectations(path).deviations:
            assert any(fnmatch.fnmatchcase(i, deviation.case) for i in ids), f"{path}: {deviation.case} names no scenario"
            assert len(deviation.reason) > 20, f"{path}: {deviation.case}: say why"


def _script(tmp_path: Path, body: str) -> str:
    """A tiny client written against raw sockets, run as `python FILE`."""
    path = tmp_path / "client.py"
    path.write_text(textwrap.dedent(body))
    return f"{sys.executable} {path}"


_RAW_CLIENT = """
    import os, socket, struct, sys, time
    sock = socket.create_connection((os.environ["GEARMAN_HOST"], int(os.environ["GEARMAN_PORT"])))
    payload = b"\\0".join([os.environ["GEARSPEC_FUNCTION"].encode(), b"", os.environ["GEARSPEC_DATA"].encode()])
    sock.sendall(b"\\0REQ" + struct.pack(">II", {ptype}, len(payload)) + payload)
    {after}
"""


def test_a_client_sending_the_wrong_submit_fails(tmp_path: Path) -> None:
    command = _script(tmp_path, _RAW_CLIENT.format(ptype=18, after="sock.recv(100)"))  # SUBMIT_JOB_BG
    outcomes = asyncio.run(run_scenarios("client", command, timeout=TIMEOUT, select=["client/submit"]))
    assert [(o.grade, o.reason) for o in outcomes] == [(FAIL, "sent SUBMIT_JOB_BG, expected SUBMIT_JOB")]


def test_a_client_that_ignores_errors_is_graded_hung(tmp_path: Path) -> None:
    command = _script(tmp_path, _RAW_CLIENT.format(ptype=7, after="time.sleep(60)"))
    outcomes = asyncio.run(run_scenarios("client", command, timeout=2.0, select=["client/error-reply"]))
    assert [(o.grade, o.reason) for o in outcomes] == [(FAIL, "hung after an ERROR reply to its SUBMIT_JOB")]


def test_a_client_claiming_success_after_work_fail_fails(tmp_path: Path) -> None:
    command = _script(tmp_path, _RAW_CLIENT.format(ptype=7, after="sock.recv(100); sys.exit(0)"))
    outcomes = asyncio.run(run_scenarios("client", command, timeout=TIMEOUT, select=["client/work-fail"]))
    assert [o.grade for o in outcomes] == [FAIL]
    assert "exit status 0 (success) after WORK_FAIL" in outcomes[0].reason


def test_a_worker_that_never_registers_fails(tmp_path: Path) -> None:
    command = _script(tmp_path, """
        import os, socket, struct
        sock = socket.create_connection((os.environ["GEARMAN_HOST"], int(os.environ["GEARMAN_PORT"])))
        sock.sendall(b"\\0REQ" + struct.pack(">II", 9, 0))  # GRAB_JOB without CAN_DO
        sock.recv(100)
    """)
    outcomes = asyncio.run(run_scenarios("worker", command, timeout=TIMEOUT, select=["worker/job"]))
    assert [o.grade for o in outcomes] == [FAIL]
    assert "GRAB_JOB where CAN_DO or CAN_DO_TIMEOUT was expected" in outcomes[0].reason


def _gearspec_test(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gearspec", "test", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_cli_writes_every_report_format_and_placeholders_reach_the_command(tmp_path: Path) -> None:
    reports = {kind: tmp_path / f"roles.{kind}" for kind in ("json", "junit", "html", "markdown")}
    done = _gearspec_test(
        "--role", "client", "--exec", "driver:reference", "-k", "client/submit", "-k", "client/work-fail",
        "--timeout", str(TIMEOUT), *(arg for kind, path in reports.items() for arg in (f"--{kind}", str(path))),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(reports["json"].read_text())  # the suite's own report format
    assert data["totals"] == {"pass": 2} and data["failed"] is False
    assert [(c["id"], c["verdict"]) for c in data["cases"]] == [("client/submit", "pass"), ("client/work-fail", "pass")]
    exec_entry = data["cases"][0]["trace"][0]
    assert exec_entry["conn"] == "exec"
    assert "--function gearspec_reverse --data hello" in exec_entry["summary"] and "{args}" not in exec_entry["summary"]
    assert "SUBMIT_JOB" in [e["summary"].split()[0] for e in data["cases"][0]["trace"] if e["dir"] == "recv"]
    root = ET.parse(reports["junit"]).getroot()
    assert (root.get("tests"), root.get("failures")) == ("2", "0")
    assert "client/work-fail" in reports["html"].read_text() and "client" in reports["markdown"].read_text()


def test_cli_applies_a_driver_profile_and_runs_scenarios_side_by_side(tmp_path: Path) -> None:
    # gearspec's own client drops the connection on an unknown packet type: informational,
    # and listed in conformance/impls/reference/driver-expectations.toml.
    args = ["--role", "client", "--exec", "driver:reference", "-k", "client/hostile-unknown-packet",
            "-k", "client/submit", "-j", "2", "--json", str(tmp_path / "r.json")]
    done = _gearspec_test(*args)
    assert done.returncode == 0 and "-j 2" in done.stdout, done.stdout + done.stderr
    verdicts = {c["id"]: c["verdict"] for c in json.loads((tmp_path / "r.json").read_text())["cases"]}
    assert verdicts == {"client/submit": "pass", "client/hostile-unknown-packet": "informational"}
    done = _gearspec_test(*args, "--profile", "reference")
    assert done.returncode == 0, done.stdout + done.stderr
    cases = json.loads((tmp_path / "r.json").read_text())["cases"]
    listed = next(c for c in cases if c["id"] == "client/hostile-unknown-packet")
    assert listed["verdict"] == "expected-fail" and "refuse a packet type" in listed["deviation"]["reason"]
    assert "reference driver" in done.stdout


def test_cli_an_unexpected_pass_fails_the_run(tmp_path: Path) -> None:
    expect = tmp_path / "expect.toml"
    expect.write_text('[[deviation]]\ncase = "client/submit"\noutcome = ["fail"]\nreason = "listed to see it unlisted"\n')
    done = _gearspec_test("--role", "client", "--exec", "driver:reference", "-k", "client/submit", "--expect", str(expect))
    assert done.returncode == 1 and "UNEXPECTED-PASS client/submit" in done.stdout, done.stdout + done.stderr
    assert "rerun: gearspec test --role client --exec driver:reference --expect" in done.stdout


@pytest.mark.parametrize(("args", "said"), [
    (["--profile", "no-such-driver"], "no driver profile 'no-such-driver'; known: "),
    (["--target", "127.0.0.1:4730"], "--target is for testing a server"),
    (["-j", "0"], "-j must be at least 1"),
    (["-k", "nothing/like/this"], "no scenario matches the selection"),
])
def test_cli_role_usage_errors_are_one_line(args: list[str], said: str) -> None:
    done = _gearspec_test("--role", "client", "--exec", "driver:reference", *args, timeout=60)
    assert done.returncode == 2 and said in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_cli_exit_status_is_1_when_a_scenario_fails_and_2_without_exec(tmp_path: Path) -> None:
    command = _script(tmp_path, _RAW_CLIENT.format(ptype=18, after="sock.recv(100)"))
    done = subprocess.run(
        [sys.executable, "-m", "gearspec", "test", "--role", "client", "--exec", command, "-k", "client/submit"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 1 and "FAIL" in done.stdout
    done = subprocess.run([sys.executable, "-m", "gearspec", "test", "--role", "worker"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "--exec" in done.stderr and "Traceback" not in done.stderr


# -- the hostile scenarios' measurements can fail a program ------------------------------------

_CONNECT = """
    import os, signal, socket, struct, sys, time
    def connect():
        return socket.create_connection((os.environ["GEARMAN_HOST"], int(os.environ["GEARMAN_PORT"])))
    def submit(sock):
        payload = b"\\0".join([os.environ["GEARSPEC_FUNCTION"].encode(), b"", os.environ["GEARSPEC_DATA"].encode()])
        sock.sendall(b"\\0REQ" + struct.pack(">II", 7, len(payload)) + payload)
"""


def _hostile(tmp_path: Path, role: str, scenario: str, body: str, timeout: float = TIMEOUT) -> ScenarioResult:
    command = _script(tmp_path, _CONNECT + textwrap.indent(textwrap.dedent(body), "    "))
    outcomes = asyncio.run(run_scenarios(role, command, timeout=timeout, select=[scenario]))
    assert len(outcomes) == 1
    return outcomes[0]


def test_a_client_resubmitting_in_a_tight_loop_is_a_busy_loop(tmp_path: Path) -> None:
    outcome = _hostile(tmp_path, "client", "client/hostile-unanswered", """
        sock = connect()
        for _ in range(400):
            submit(sock)
            time.sleep(0.002)
        sys.exit(6)
    """)
    assert outcome.grade == FAIL and outcome.reason.startswith("busy loop: "), outcome.reason
    assert "packets within one second" in outcome.reason


def test_a_worker_reconnecting_at_once_is_a_reconnect_storm(tmp_path: Path) -> None:
    outcome = _hostile(tmp_path, "worker", "worker/hostile-close-after-grab", """
        fn = os.environ["GEARSPEC_FUNCTION"].encode()
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            try:
                sock = connect()
                sock.sendall(b"\\0REQ" + struct.pack(">II", 1, len(fn)) + fn + b"\\0REQ" + struct.pack(">II", 9, 0))
                sock.recv(100)  # the close
                sock.close()
            except OSError:
                pass
        sys.exit(6)
    """)
    assert outcome.grade == FAIL and "a reconnect storm" in outcome.reason, outcome.reason


@pytest.mark.parametrize(("crash", "seen"), [
    ("raise RuntimeError('library bug')", "with a stack trace (stderr: "),
    ("os.kill(os.getpid(), signal.SIGSEGV)", "killed by signal 11"),
    ("os._exit(255)", "exit status 255, outside the contract"),
])
def test_a_client_that_crashes_is_graded_with_its_stderr(tmp_path: Path, crash: str, seen: str) -> None:
    outcome = _hostile(tmp_path, "client", "client/hostile-coalesced", f"""
        sock = connect()
        submit(sock)
        sock.recv(100)
        print("about to fail", file=sys.stderr, flush=True)
        {crash}
    """)
    assert outcome.grade == FAIL and outcome.reason.startswith("crashed: "), outcome.reason
    assert seen in outcome.reason
    if "stack trace" in seen:
        assert "RuntimeError: library bug" in outcome.reason


def test_a_client_printing_another_jobs_result_is_a_wrong_result(tmp_path: Path) -> None:
    outcome = _hostile(tmp_path, "client", "client/hostile-other-handle", """
        sock = connect()
        submit(sock)
        sock.recv(100)
        sys.stdout.write("not-yours")
    """)
    assert (outcome.grade, outcome.reason) == (
        FAIL, "wrong result after a WORK_COMPLETE for another handle first: printed b'not-yours', expected b'olleh'")


def test_a_client_ignoring_its_timeout_is_graded_hung(tmp_path: Path) -> None:
    outcome = _hostile(tmp_path, "client", "client/hostile-unanswered", """
        sock = connect()
        submit(sock)
        time.sleep(60)
    """, timeout=2.0)
    assert outcome.grade == FAIL and "(hung)" in outcome.reason, outcome.reason


def test_a_client_whose_memory_balloons_on_a_large_result_is_noted(tmp_path: Path) -> None:
    outcome = _hostile(tmp_path, "client", "client/hostile-large-result", """
        sock = connect()
        submit(sock)
        want = 12 + 12 + 12 + 12 + 2 * 1024 * 1024 + 7  # both headers, the handle twice, NULs, the data
        data = b""
        while len(data) < want - 40:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        ballast = [bytearray(1 << 20) for _ in range(96)]  # 96 MiB, touched
        for block in ballast:
            block[::4096] = b"x" * len(block[::4096])
        time.sleep(0.3)  # long enough for the sampler
        sys.stdout.buffer.write(data[data.rindex(b"\\0") + 1:])
    """)
    assert outcome.grade == INFO and outcome.reason.startswith("resource growth: "), outcome.reason


def test_the_readme_role_table_is_written_by_the_reports_table_writer() -> None:
    # `python -m gearspec.conformance.roles` (the README's table) and the reports' markdown
    # (per-area grades, the interop grid) share one table writer (reports.markdown_table).
    matrix = asyncio.run(run_matrix(["reference"], ("client",), select=["client/submit", "client/work-fail"]))
    table = format_markdown(matrix).splitlines()
    assert table[:4] == ["| scenario | reference |", "|---|---|", "| client/submit | pass |", "| client/work-fail | pass |"]
    assert markdown_table("x", ["a", "b"], [("r", ["1", "2"])]) == ["| x | a | b |", "|---|---|---|", "| r | 1 | 2 |"]
