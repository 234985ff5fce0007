"""`gearspec diff` against the four local servers: the same scripts, normalised, compared.

Real servers on port 0: the reference server, C gearmand, Perl Gearman::Server and python
gear's geard. A known deviation must show (Perl hands HIGH jobs out last in, first out), and
normalisation must hide what is not a behaviour (handle names, barrier routes, timing).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from gearspec.conformance.diff import diff_targets, normalise
from gearspec.conformance.servers import server_available

FOUR = ["reference", "gearmand", "perl", "gear"]


def test_normalise_renames_handles_and_folds_barriers() -> None:
    lines = [
        "c1 <- RES JOB_CREATED handle='H:box:17'", "c1 <- RES ECHO_RES data='gs-barrier-1a2b3c4d'",
        "w1 <- RES JOB_ASSIGN handle='H:box:17' function='f' data='x'", "c1 <- RES JOB_CREATED handle='H:127.0.0.1:3'",
    ]
    assert normalise(lines) == [
        "c1 <- RES JOB_CREATED handle='H#1'", "c1 <- RES <barrier>",
        "w1 <- RES JOB_ASSIGN handle='H#1' function='f' data='x'", "c1 <- RES JOB_CREATED handle='H#2'",
    ]


def test_the_same_server_twice_shows_no_difference() -> None:
    assert diff_targets(["reference", "reference"], select=["handles", "submit"], streams=10) == []


@pytest.mark.skipif(not all(server_available(n) for n in FOUR), reason="needs all four local servers (scripts/install-peers.sh)")
def test_diff_of_the_four_local_servers_shows_known_deviations() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gearspec", "diff", "--targets", ",".join(FOUR),
         "--select", "priority/fifo", "--select", "echo/data/1", "--streams", "8"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 1, out.stderr
    block = out.stdout.split("== case priority/fifo/2\n")[1].split("\n== ")[0]
    assert "reference, gearmand" in block and "perl:" in block  # Perl hands HIGH jobs out LIFO
    assert "== case echo/data/1" in out.stdout  # gear answers no ECHO_REQ
    assert "scripts differ among reference, gearmand, perl, gear" in out.stdout
