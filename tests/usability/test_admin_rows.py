"""`gearspec admin` reads the rows gearadmin prints, TABs in names included (issue 15 item 6)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest
from gearspec.conformance.servers import RunningServer

from .helpers import gearspec

NAMES = ("tab\there", "two\ttabs\there", "plain")


def test_status_rows_with_tabs_match_gearadmin(gearmand: RunningServer) -> None:
    for name in NAMES:
        submitted = gearspec("submit", "-s", gearmand.address, "-b", "-f", name, "x")
        assert submitted.returncode == 0, submitted.stderr
    result = gearspec("admin", "-s", gearmand.address, "status", "--json")
    assert result.returncode == 0, result.stderr
    ours = {"\t".join(row.values()) for row in json.loads(result.stdout)}
    assert {row["function"] for row in json.loads(result.stdout)} >= set(NAMES)
    table = gearspec("admin", "-s", gearmand.address, "status")
    assert table.returncode == 0 and "two\\ttabs\\there  1" in table.stdout, table.stdout
    if shutil.which("gearadmin") is None:
        pytest.skip("gearadmin is not installed (scripts/install-peers.sh installs gearman-tools)")
    # gearadmin (gearman-tools) prints each row as the server sent it, up to the "." line.
    theirs = subprocess.run(
        ["gearadmin", "-h", gearmand.host, "-p", str(gearmand.port), "--status"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout.splitlines()
    assert set(theirs[: theirs.index(".")]) == ours


@pytest.fixture
def odd_admin_server() -> Iterator[tuple[str, int]]:
    """A job server whose 'status' has a row without enough columns (a planted bug)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(100)
                conn.sendall(b"good\t1\t0\t0\nbroken row\t7\n.\n")

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[:2]
    listener.close()


def test_rows_that_cannot_be_split_are_printed_and_named(odd_admin_server: tuple[str, int]) -> None:
    host, port = odd_admin_server
    result = gearspec("admin", "-s", f"{host}:{port}", "status")
    assert result.returncode == 5, result.stderr  # documented: rows that could not be split
    assert "good" in result.stdout and "broken row\t7" in result.stdout
    assert "Traceback" not in result.stderr
    assert "1 'status' row(s) could not be split" in result.stderr and "broken row\\t7" in result.stderr
