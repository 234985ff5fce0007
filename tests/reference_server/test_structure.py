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


def test_server_frames_through_the_core_decoder() -> None:
    """One framer: the server has no plans, splitter or header parsing of its own, and the
    core's C module holds nothing for the server (no handler table): bytes in, packets out."""
    from gearspec.reference.server import Config, GearmanProtocol, Server

    from gearspec import codec

    server = Server(Config(port=0, queue="memory"))
    protocol = GearmanProtocol(server)
    assert isinstance(protocol.framer, codec.Decoder) and protocol.framer.accept is codec.Magic.REQ
    assert protocol.handlers is server.broker.handlers
    tree = ast.parse((REFERENCE / "server.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not imported & {"struct", "PLANS", "FRAME_PLANS", "is_number", "LARGE_PAYLOAD", "_speedups"}, imported
    if codec.ACCELERATED:
        import gearspec._speedups as speedups

        assert sorted(n for n in vars(speedups) if not n.startswith("__")) == ["DecoderCore"]
