"""Without a Docker engine: clear errors naming what is missing, and local fallbacks.

DOCKER_HOST points at a socket that does not exist, so these run (and must pass) anywhere.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from gearspec.conformance.servers import TargetError, open_target, server_available
from gearspec.conformance.servers import docker as launcher


@pytest.fixture
def no_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    address = f"unix://{tmp_path}/no-such-docker.sock"
    monkeypatch.setenv("DOCKER_HOST", address)
    return address


def _need_local(name: str) -> None:
    if not server_available(name):
        message = f"{name} is not installed (scripts/install-peers.sh installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _env(address: str) -> dict[str, str]:
    return {**os.environ, "DOCKER_HOST": address}


def test_connect_names_the_engine_address(no_engine: str) -> None:
    with pytest.raises(launcher.DockerUnavailable) as info:
        launcher.connect(timeout=2)
    text = str(info.value)
    assert no_engine in text and "no Docker engine answers" in text and "dockerd" in text


def test_docker_target_fails_with_the_reason(no_engine: str) -> None:
    with pytest.raises(launcher.DockerUnavailable, match="no Docker engine answers at unix://"), open_target("docker:gearmand"):
        pass


def test_impl_target_falls_back_to_a_local_process(no_engine: str, capsys: pytest.CaptureFixture[str]) -> None:
    _need_local("gearmand")
    with open_target("impl:gearmand") as target:
        assert target.kind == "local" and target.impl == "gearmand"
        with socket.create_connection((target.host, target.port), timeout=5) as sock:
            sock.sendall(b"version\n")
            assert sock.recv(100).startswith(b"OK ")
        pid_dir_log = target.logs()
        assert isinstance(pid_dir_log, str)
    note = capsys.readouterr().err
    assert "no Docker engine answers" in note and "starting gearmand as a local process instead" in note
    with pytest.raises(OSError):  # stopped when the block ended
        socket.create_connection((target.host, target.port), timeout=2).close()


def test_impl_target_without_docker_or_local_install_says_both(no_engine: str, tmp_path: Path) -> None:
    extra = tmp_path / "ghost.toml"
    extra.write_text(
        '[[impl]]\nname = "ghost"\nroles = ["server"]\nlocal = ["/nonexistent/ghostd", "--port={port}"]\n'
        'image = "ghost-image"\ncommand = ["ghostd", "--port={port}"]\n'
    )
    from gearspec.conformance.impls import load_registry

    with pytest.raises(TargetError) as info, open_target("impl:ghost", registry=load_registry([extra])):
        pass
    text = str(info.value)
    assert "no Docker engine answers" in text and "/nonexistent/ghostd not found" in text


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("impl:nosuch", "unknown implementation 'nosuch'"),
        ("impl:php", "php is not a server"),
        ("docker:", "name an image"),
        ("local:/nonexistent/server --port={port}", "cannot start local"),
        ("example.org:99999", "port 99999 is not in 1-65535"),
        ("::1:4730:x", "write an IPv6 address as [::1]:4730"),
        ("local:nosuch", "unknown server 'nosuch'; known: abraxas, gear, gearmand, perl, reference, rustygeard,"),
    ],
)
def test_bad_specs_get_clear_errors(spec: str, message: str) -> None:
    with pytest.raises(Exception) as info, open_target(spec):
        pass
    assert message in str(info.value)


def test_cli_test_command_reports_a_missing_engine(no_engine: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gearspec", "test", "--target", "docker:gearmand"],
        capture_output=True, text=True, timeout=60, env=_env(no_engine),
    )
    assert done.returncode != 0
    assert "no Docker engine answers" in done.stderr and no_engine in done.stderr
    assert "Traceback" not in done.stderr


def test_interop_in_docker_mode_reports_a_missing_engine(no_engine: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gearspec", "interop", "--mode", "docker", "--servers", "reference",
         "--clients", "reference", "--scenarios", "foreground"],
        capture_output=True, text=True, timeout=60, env=_env(no_engine),
    )
    assert done.returncode == 2
    assert "no Docker engine answers" in done.stderr and "Traceback" not in done.stderr


def test_interop_auto_mode_falls_back_to_local_processes(no_engine: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gearspec", "interop", "--mode", "auto", "--servers", "reference",
         "--clients", "reference", "--scenarios", "foreground", "-q"],
        capture_output=True, text=True, timeout=120, env=_env(no_engine),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "local process instead" in done.stdout and "1 pass" in done.stdout


def test_docker_tool_reports_a_missing_engine(no_engine: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gearspec.conformance.servers.docker", "list"],
        capture_output=True, text=True, timeout=60, env=_env(no_engine),
    )
    assert done.returncode == 1 and "no Docker engine answers" in done.stderr and "Traceback" not in done.stderr
