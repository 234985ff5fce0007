"""Run `gearspec` as a user does (a subprocess) and check its output the way a user reads it."""

from __future__ import annotations

import os
import subprocess
import sys

TIMEOUT = 240.0


def gearspec(*args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """`gearspec ARGS...` in a fresh interpreter, with its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "gearspec", *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})}, input=stdin,
    )


def assert_clean_error(result: subprocess.CompletedProcess[str], *words: str, code: int = 2) -> None:
    """Exit status `code`, no traceback, and one line on stderr that names `words`."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, (result.returncode, result.stdout[-2000:], result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
