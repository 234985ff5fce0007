"""`gearspec serve` refuses impossible settings at start-up, with one clear line and exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--port", "70000"], "a TCP port is 0..65535"),
        (["--port", "-1"], "must not be negative"),
        (["--max-connections", "0"], "must be at least 1"),
        (["--max-packet-size", "0"], "must be at least 1"),
        (["--job-retries", "many"], "not a number"),
        (["--log-level", "loud"], "invalid choice"),
    ],
)
def test_bad_settings_are_refused(flags: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gearspec", "serve", "--queue", "memory", *flags],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
