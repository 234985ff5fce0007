"""`gearspec diff` against the four local servers: the same scripts, normalised, compared.

Real servers on port 0: the reference server, C gearmand, Perl Gearman::Server and python
gear's geard. A known deviation must show (Perl hands HIGH jobs out last in, first out), and
normalisation must hide what is not a behaviour (handle names, barrier routes, timing).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from gearspec.conformance.diff import diff_targets, model_scripts, normalise
from gearspec.conformance.servers import server_available, start_server

from gearspec.codec import AdminLine, Decoder, Packet
from gearspec.spec import Magic

FOUR = ["reference", "gearmand", "perl", "gear"]


def test_normalise_renames_handles_and_folds_barriers() -> None:
    lines = [
        "c1 <- RES JOB_CREATED handle='H:box:17'",
        "c1 <- RES ECHO_RES data='gs-barrier-1a2b3c4d'",
        "w1 <- RES JOB_ASSIGN handle='H:box:17' function='f' data='x'",
        "c1 <- RES JOB_CREATED handle='H:127.0.0.1:3'",
    ]
    assert normalise(lines) == [
        "c1 <- RES JOB_CREATED handle='H#1'",
        "c1 <- RES <barrier>",
        "w1 <- RES JOB_ASSIGN handle='H#1' function='f' data='x'",
        "c1 <- RES JOB_CREATED handle='H#2'",
    ]


def test_the_same_server_twice_shows_no_difference() -> None:
    assert diff_targets(["reference", "reference"], select=["handles", "submit"], count=10) == []


def test_model_scripts_are_seeded() -> None:
    assert model_scripts("7", 5) == model_scripts("7", 5)
    assert model_scripts("7", 5)["model/3"] == model_scripts("7", 3)["model/3"]  # model/N does not depend on count
    assert model_scripts("7", 5) != model_scripts("8", 5)


@contextlib.contextmanager
def _relay_renaming_error_codes(upstream: tuple[str, int]) -> Iterator[str]:
    """A misbehaving server: the reference server behind a relay that turns every ERROR code
    into `bad_code` (everything else passes unchanged)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def downstream(server: socket.socket, client: socket.socket) -> None:
        decoder = Decoder(Magic.RES, lenient=True)  # admin replies too (the run's probes)
        with contextlib.suppress(OSError):
            while chunk := server.recv(65536):
                decoder.receive_data(chunk)
                out = b""
                for event in decoder:
                    if isinstance(event, Packet) and event.name == "ERROR":
                        event = Packet.response("ERROR", b"bad_code", event.args[1])
                    out += event.text + event.terminator if isinstance(event, AdminLine) else event.to_bytes()
                client.sendall(out)
        for sock in (client, server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def upstream_copy(client: socket.socket, server: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := client.recv(65536):
                server.sendall(chunk)
        for sock in (client, server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(upstream)
            for work, args in ((downstream, (server, client)), (upstream_copy, (client, server))):
                threading.Thread(target=work, args=args, daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()


def test_the_model_source_finds_a_planted_difference_and_shrinks_it() -> None:
    with start_server("reference") as server, _relay_renaming_error_codes((server.host, server.port)) as relay:
        runs = [diff_targets(["reference", relay], sources=["model"], count=8, seed="planted") for _ in range(2)]
    found = runs[0]
    assert found, "the relay's ERROR codes went unnoticed"
    assert [(d.script, d.sent, d.also) for d in runs[1]] == [(d.script, d.sent, d.also) for d in found]  # seeded
    for difference in found:
        line = difference.first_divergence()
        (_, ours), (_, theirs) = difference.groups()
        assert "ERROR code=" in ours[line] and "ERROR code='bad_code'" in theirs[line], difference
        assert difference.rerun.endswith(f"--source model --seed planted --only {difference.script}")
    shortest = min(len(d.sent) for d in found)
    assert shortest <= 2, [d.sent for d in found]  # one step that earns an ERROR (shrunk from 12)


@pytest.mark.skipif(
    not all(server_available(n) for n in FOUR), reason="needs all four local servers (scripts/install-peers.sh)"
)
def test_diff_of_the_four_local_servers_shows_known_deviations() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gearspec",
            "diff",
            "--targets",
            ",".join(FOUR),
            "--select",
            "priority/fifo",
            "--select",
            "echo/data/1",
            "--count",
            "4",
            "--shrink",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 1, out.stderr
    block = out.stdout.split("== case priority/fifo/2\n")[1].split("\n== ")[0]
    assert "reference, gearmand" in block and "perl:" in block  # Perl hands HIGH jobs out LIFO
    assert "== case echo/data/1" in out.stdout  # gear answers no ECHO_REQ
    assert "graded by the case: " in block and "rerun: gearspec diff --targets" in block
    assert "among reference, gearmand, perl, gear" in out.stdout
    assert "== model/" in out.stdout and "--source model --seed diff --only model/" in out.stdout


def test_a_target_that_does_not_answer_is_one_line_and_status_2() -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    out = subprocess.run(
        [sys.executable, "-m", "gearspec", "diff", "--targets", f"reference,127.0.0.1:{port}", "--source", "model"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert (
        out.stderr.strip()
        == f"gearspec diff: 127.0.0.1:{port} does not answer (connection refused); is the server running?"
    )
    bad = subprocess.run(
        [sys.executable, "-m", "gearspec", "diff", "--targets", "reference,gearmand", "--source", "model,nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (bad.returncode, bad.stderr.strip()) == (
        2,
        "gearspec diff: --source: unknown nope; known: cases, model, streams",
    )
