"""gearspec.conformance.servers: one way to start or open a target (local processes here;
containers in tests/docker)."""

from __future__ import annotations

import signal
import socket

import pytest
from gearspec.conformance.servers import LaunchError, Target, TargetError, open_target, start_server


def _echo(host: str, port: int) -> bytes:
    request = b"\0REQ" + (16).to_bytes(4, "big") + (2).to_bytes(4, "big") + b"hi"
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(request)
        reply = b""
        while len(reply) < 14:
            chunk = sock.recv(64)
            assert chunk, "the server closed the connection"
            reply += chunk
    return reply


def test_a_dead_local_server_restarts_on_the_same_port() -> None:
    with start_server("reference") as server:
        port = server.port
        server.kill(signal.SIGKILL)
        server.process.wait(10)
        assert not server.alive()
        server.restart()
        assert server.alive() and server.port == port
        assert _echo(server.host, server.port).endswith(b"hi")


def test_a_target_restarts_its_server_and_an_address_cannot() -> None:
    with open_target("local:reference") as target:
        assert target.kind == "local" and target.server is not None
        target.server.kill(signal.SIGKILL)  # type: ignore[attr-defined]
        again = target.restart()
        assert again.address == target.address and _echo(again.host, again.port).endswith(b"hi")
    with pytest.raises(TargetError, match="was not started by gearspec"):
        Target.parse("127.0.0.1:4730").restart()


def test_variants_and_unknown_names(gearmand: object) -> None:  # the fixture skips when gearmand is missing
    with start_server("gearmand-threads") as threaded:
        assert "--threads=0" not in threaded.argv and _echo(threaded.host, threaded.port).endswith(b"hi")
    with pytest.raises(LaunchError, match=r"unknown local server 'nosuch'; known: .*reference"):
        start_server("nosuch")
    with pytest.raises(TargetError, match="unknown server 'nosuch'"), open_target("local:nosuch"):
        pass


def test_target_parse_is_the_core_parser() -> None:
    assert Target.parse("[::1]:7003") == Target("::1", 7003)
    assert Target.parse("example.org").port == 4730
    with pytest.raises(ValueError, match="target 'h:0' is not HOST:PORT: port 0"):
        Target.parse("h:0")
