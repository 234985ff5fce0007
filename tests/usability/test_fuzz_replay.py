"""A saved model-fuzz script replays against any fresh server (issue 15 item 2)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from gearspec.conformance.servers import RunningServer, start_server

from .helpers import gearspec


def test_a_saved_script_replays_against_fresh_servers(reference_server: RunningServer, gearmand: RunningServer, tmp_path: Path) -> None:
    # The reference server is checked against gearmand's model profile, so the model finds
    # where the two differ (e.g. a client that submitted one job twice gets WORK_DATA once).
    script = tmp_path / "found.json"
    for seed in range(1, 6):
        found = gearspec(
            "fuzz", "--model", "--profile", "gearmand", "--target", reference_server.address, "--deadline", "0.3",
            "--seed", str(seed), "--budget", "10s", "--save-script", str(script),
        )
        assert "Traceback" not in found.stderr, found.stderr
        if found.returncode == 1:
            break
    assert found.returncode == 1, found.stdout + found.stderr
    # The message names the file it wrote and the command to replay it, no placeholders.
    assert f"replay with: gearspec fuzz --replay {script} --target {reference_server.address}" in found.stderr, found.stderr
    assert "FILE" not in found.stderr and "HOST:PORT" not in found.stderr
    text = script.read_text()
    steps = json.loads(text)["steps"]
    assert '{"fresh": ' in text  # function names are made up afresh by each replay
    assert not re.search(r'"H:(?!no-such-job)', text), text  # handles are variables
    assert any(s["op"] == "send" and s["packet"]["type"].startswith("SUBMIT") for s in steps)
    fresh_reference = start_server("reference")
    try:
        for server, expected in ((reference_server, 1), (fresh_reference, 1), (gearmand, 0), (gearmand, 0)):
            # Twice against gearmand: the first replay's jobs do not meet the second's.
            replayed = gearspec("fuzz", "--replay", str(script), "--target", server.address, "--deadline", "1")
            assert replayed.returncode == expected, (server.address, replayed.stdout, replayed.stderr)
            assert "Traceback" not in replayed.stderr
    finally:
        fresh_reference.stop()
