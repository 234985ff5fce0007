"""The harness on its own: target parsing, names, traces, and targets that are not Gearman."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from gearspec.conformance.harness import CaseEnd, Outcome, Session, Target, describe
from gearspec.conformance.registry import all_cases, get_case
from gearspec.conformance.runner import RunConfig, load_expectations, run_case, run_cases
from gearspec.conformance.servers import RunningServer

from gearspec.codec import AdminLine, Packet
from gearspec.spec import PacketType as T


def test_target_parse() -> None:
    assert Target.parse("127.0.0.1:4730") == Target("127.0.0.1", 4730)
    assert Target.parse("example.org") == Target("example.org", 4730)
    assert Target.parse("[::1]:7003") == Target("::1", 7003)
    assert Target.parse("[::1]") == Target.parse("::1") == Target("::1", 4730)
    assert Target("::1", 7003).address == "[::1]:7003"
    for bad in ("", "host:", "host:0", "host:http", ":4730", "host:99999", "host:٤٧٣٠", "[::1", "[::1]7003", "a:b:c"):
        with pytest.raises(ValueError):
            Target.parse(bad)


def test_names_are_unique_per_case_and_reproducible_per_seed() -> None:
    case = get_case("framing/magic/1")
    a = Session(case, Target("127.0.0.1", 1), seed="s", run_token="t")
    b = Session(case, Target("127.0.0.1", 1), seed="s", run_token="t")
    names = [a.name("fn") for _ in range(50)]
    assert len(set(names)) == 50
    assert names[0] == b.name("fn")
    assert names[0].startswith("gs-framing-magic-1-fn-t")
    other = Session(get_case("framing/magic/2"), Target("127.0.0.1", 1), seed="s", run_token="t")
    assert other.name("fn") not in names


def test_describe_is_one_readable_line() -> None:
    assert describe(Packet.response(T.JOB_CREATED, b"H:x:1")) == "RES JOB_CREATED handle='H:x:1'"
    assert describe(AdminLine(b"OK", b"\r\n")) == "text 'OK' [CRLF]"
    assert "…(100 bytes)" in describe(Packet.response(T.ECHO_RES, b"x" * 100))


def test_outcome_helpers_raise_case_end() -> None:
    s = Session(get_case("framing/magic/3"), Target("127.0.0.1", 1))
    with pytest.raises(CaseEnd) as info:
        s.fail("A", "B")
    assert (info.value.outcome, info.value.expected, info.value.actual) == (Outcome.FAIL, "A", "B")
    with pytest.raises(CaseEnd) as info:
        s.non_strict("error-kept-open", "ERROR")
    assert info.value.outcome is Outcome.NON_STRICT
    with pytest.raises(CaseEnd) as info:
        s.non_strict("not-declared")
    assert info.value.outcome is Outcome.ERROR  # a case bug is reported, not graded


@pytest.fixture
def http_server() -> Iterator[int]:
    """A web server on the port a job server was expected on (a real misconfiguration)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def answer(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                pass

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()


def test_a_target_that_is_not_gearman_fails_cases_without_harness_errors(http_server: int) -> None:
    results = run_cases(all_cases(), Target("127.0.0.1", http_server), RunConfig(wait=0.5, timeout=3), jobs=8)
    outcomes = Counter(r.outcome for r in results)
    assert outcomes[Outcome.ERROR] == 0, [r.message for r in results if r.outcome is Outcome.ERROR][:5]
    assert outcomes[Outcome.PASS] == 0
    assert outcomes[Outcome.FAIL] > 150


def test_trace_records_both_directions_with_bytes(gearmand: RunningServer) -> None:
    result = run_case(get_case("framing/pipeline/1"), Target(gearmand.host, gearmand.port), RunConfig())
    assert result.outcome is Outcome.PASS
    sent = [e for e in result.trace if e.direction == "send"]
    received = [e for e in result.trace if e.direction == "recv"]
    assert len(received) == 20 and received[0].summary == "RES ECHO_RES data='p0'"
    assert received[0].data == Packet.response(T.ECHO_RES, b"p0").to_bytes()
    assert sent[0].data.startswith(b"\0REQ")
    assert all(b.time >= a.time for a, b in zip(result.trace, result.trace[1:], strict=False))


def test_the_public_read_ahead_api_puts_back_drops_and_peeks(reference_server: RunningServer) -> None:
    """Cases read ahead through `has_event`, `unread`, `unread_events` and `drop_unread`
    (never the connection's private buffer), and each keeps the order the server sent."""
    s = Session(get_case("framing/pipeline/1"), Target(reference_server.host, reference_server.port))
    try:
        conn = s.connect("peek")
        assert not conn.has_event()
        conn.send(T.ECHO_REQ, b"a")
        conn.send(T.ECHO_REQ, b"b")
        first, second = conn.receive(), conn.receive()
        assert isinstance(first, Packet) and first.args == (b"a",)
        assert isinstance(second, Packet) and second.args == (b"b",)
        conn.unread(first, second)
        assert conn.has_event()
        assert [e.args for e in conn.unread_events if isinstance(e, Packet)] == [(b"a",), (b"b",)]
        assert conn.describe_received(conn.receive()) == "RES ECHO_RES data='a'"
        assert len(conn.drop_unread()) == 1 and not conn.has_event()
        assert conn.describe_received(None, 0.5) == "nothing within 0.5 s"
    finally:
        s.close_all()


def test_a_profile_s_jobs_is_the_run_s_default_and_minus_j_overrides_it(tmp_path: Path) -> None:
    profile = tmp_path / "one.toml"
    profile.write_text('[target]\nname = "one at a time"\njobs = 1\n')
    assert load_expectations(profile).jobs == 1
    for extra, shown in (((), "-j 1;"), (("-j", "3"), "-j 3;")):
        done = subprocess.run(
            [sys.executable, "-m", "gearspec", "test", "--expect", str(profile), "--select", "echo/data/1", *extra],
            capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert shown in done.stdout, done.stdout


def test_expectations_file_errors_are_clear(tmp_path: Path) -> None:
    from gearspec.conformance.runner import ExpectationsError

    bad = tmp_path / "bad.toml"
    for text, message in (
        ("[target\n", "not valid TOML"),
        ('[target]\ngrab = "NOOP"\n', "not a GRAB_\\* packet"),
        ('[[deviation]]\ncase = "x/y/1"\n', "needs 'case' and 'reason'"),
        ('[[deviation]]\ncase = "x/y/1"\nreason = "r"\noutcome = "broken"\n', "unknown outcome"),
        ("[target]\njobs = 0\n", "jobs must be a whole number of at least 1, not 0"),
        ('[target]\njobs = "1"\n', "jobs must be a whole number"),
    ):
        bad.write_text(text)
        with pytest.raises(ExpectationsError, match=message):
            load_expectations(bad)
