"""Walls: the broker and the stores never import asyncio or socket (nor read the clock)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import gearspec.reference

REFERENCE = Path(gearspec.reference.__file__).parent


def test_broker_and_store_are_sans_io() -> None:
    code = (
        "import sys\n"
        "import gearspec.reference.broker, gearspec.reference.store\n"
        "bad = sorted(m for m in ('asyncio', 'socket', 'selectors') if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == "", f"sans-IO modules pulled in: {out.stdout.strip()}"


def test_broker_takes_time_as_an_input() -> None:
    for name in ("broker.py", "store.py"):
        tree = ast.parse((REFERENCE / name).read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not imported & {"time", "asyncio", "socket", "selectors", "datetime"}, (name, imported)


def test_broker_dispatch_covers_every_request_packet() -> None:
    from gearspec.reference.broker import Broker

    from gearspec.spec import PACKETS, Magic

    requests = {p.code for p in PACKETS if Magic.REQ in p.magics and not p.reserved}
    assert set(Broker().handlers) == requests


def test_the_launcher_command_for_reference_still_works(reference_server) -> None:
    """The registry's local command for reference (conformance/impls/reference/impl.toml) starts this server."""
    from gearspec.spec import PacketType as T

    from .conftest import Conn

    conn = Conn(reference_server)
    conn.send(T.ECHO_REQ, b"launched")
    conn.expect(T.ECHO_RES, b"launched")
    conn.close()
