"""Shared fixtures: real job servers started on ephemeral ports, stopped after each use.

A peer that is not installed skips its tests locally; under CI (CI=true) it fails instead,
because .ci/run installs every peer and a silent skip would hide a broken install.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from gearspec.conformance.servers import RunningServer, server_available, start_server


def _start(name: str) -> RunningServer:
    if not server_available(name):
        message = f"{name} is not installed (scripts/install-peers.sh installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return start_server(name)


@pytest.fixture
def gearmand() -> Iterator[RunningServer]:
    """C gearmand 1.1.x (Debian gearman-job-server), single-threaded."""
    server = _start("gearmand")
    yield server
    server.stop()


@pytest.fixture
def perl_server() -> Iterator[RunningServer]:
    """Perl Gearman::Server (Debian gearman-server)."""
    server = _start("perl")
    yield server
    server.stop()


@pytest.fixture
def gear_server() -> Iterator[RunningServer]:
    """python gear's geard (PyPI gear)."""
    server = _start("gear")
    yield server
    server.stop()


@pytest.fixture
def reference_server() -> Iterator[RunningServer]:
    """gearspec's reference server as a separate process (`gearspec serve --port 0`)."""
    server = _start("reference")
    yield server
    server.stop()
