"""The Docker launcher against a real engine: servers in containers, logs, and cleanup.

Marked `docker`: scripts/docker-ci.sh runs them with an engine; elsewhere they are skipped
with the reason (or fail, when GEARSPEC_DOCKER_TESTS=1 says an engine must be there).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gearspec.conformance.impls import Registry, load_registry
from gearspec.conformance.servers import docker as launcher
from gearspec.conformance.servers import open_target

from gearspec.codec import NEED_DATA, Decoder, Packet
from gearspec.spec import Magic

pytestmark = pytest.mark.docker


def _admin(host: str, port: int, line: bytes) -> bytes:
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(line)
        return sock.recv(1000)


@pytest.mark.parametrize("name", ["gearmand", "perl", "gear", "reference", "abraxas", "rustygeard"])
def test_each_server_image_serves_gearman_and_is_removed(name: str, engine: Any, gearspec_containers: Any, image: Any, registry: Registry) -> None:
    image(name)
    with open_target(f"docker:{name}", registry=registry) as target:
        assert target.kind == "docker" and target.impl == name
        running = [c for c in gearspec_containers() if c.startswith(f"gearspec-{name}-")]
        assert running, "no labelled container"
        # A background submit gets JOB_CREATED from every server (gear has no ECHO_REQ).
        with socket.create_connection((target.host, target.port), timeout=10) as sock:
            sock.sendall(Packet.request("SUBMIT_JOB_BG", "docker_test", "", b"x").to_bytes())
            decoder = Decoder(accept=Magic.RES)
            while (event := decoder.next_event()) is NEED_DATA:
                chunk = sock.recv(100)
                assert chunk, "the server closed the connection"
                decoder.receive_data(chunk)
            assert isinstance(event, Packet) and event.name == "JOB_CREATED" and event["handle"]
        assert isinstance(target.logs(), str)
    assert not [c for c in running if c in gearspec_containers()]


def test_logs_are_captured_and_kept_after_removal(engine: Any, gearspec_containers: Any, image: Any, registry: Registry) -> None:
    impl = registry["gearmand"]
    image("gearmand")
    noisy = type(impl)(**{**{k: getattr(impl, k) for k in impl.__slots__}, "command": (
        "gearmand", "--listen={host}", "--port={port}", "--threads=0", "--log-file=stderr", "--verbose=INFO")})
    running = launcher.start_server(noisy, client=engine)
    try:
        assert _admin(running.host, running.port, b"version\n").startswith(b"OK ")
    finally:
        running.stop()
    assert "Listening on 127.0.0.1" in running.logs()
    assert running.name not in gearspec_containers()


def test_container_is_removed_when_the_block_raises(engine: Any, gearspec_containers: Any, image: Any, registry: Registry) -> None:
    image("gearmand")
    before = set(gearspec_containers())
    with pytest.raises(RuntimeError, match="boom"), open_target("docker:gearmand", registry=registry):
        assert set(gearspec_containers()) - before
        raise RuntimeError("boom")
    assert set(gearspec_containers()) == before


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_container_is_removed_on_ctrl_c_and_sigterm(sig: int, engine: Any, gearspec_containers: Any, image: Any) -> None:
    image("gearmand")
    before = set(gearspec_containers())
    script = (
        "import sys, threading\n"
        "from gearspec.conformance.servers import open_target\n"
        "with open_target('docker:gearmand') as t:\n"
        "    print('ready', t.port, flush=True)\n"
        "    threading.Event().wait(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ready"), proc.stderr.read() if proc.stderr else line
        assert set(gearspec_containers()) - before
        proc.send_signal(sig)
        proc.wait(60)
    finally:
        proc.kill()
        proc.wait()
    assert set(gearspec_containers()) == before


def test_an_image_that_exits_at_once_reports_its_logs(engine: Any, gearspec_containers: Any, image: Any) -> None:
    ref = image("gearmand")
    with pytest.raises(launcher.LaunchError) as info:
        launcher.start_container(ref, ["gearmand", "--no-such-flag", "--port={port}"], name="broken", client=engine, timeout=30)
    text = str(info.value)
    assert "exited with status" in text and "no-such-flag" in text
    assert not [c for c in gearspec_containers() if c.startswith("gearspec-broken-")]


def test_a_failing_build_names_the_step(engine: Any, gearspec_containers: Any, tmp_path: Path, image: Any) -> None:
    image("gearmand")  # the base image exists once any image built
    (tmp_path / "bad.Dockerfile").write_text("ARG BASE=gearspec-base:bookworm\nFROM ${BASE}\nRUN exit 7\n")
    (tmp_path / "bad.toml").write_text(
        f'[[impl]]\nname = "bad"\nimage = "gearspec-test-bad"\ndockerfile = "{tmp_path}/bad.Dockerfile"\n'
    )
    impl = load_registry([tmp_path / "bad.toml"])["bad"]
    with pytest.raises(launcher.ImageBuildError, match=r"cannot build gearspec-test-bad:latest .*exit 7"):
        launcher.build_image(impl, engine)


def test_a_missing_base_image_is_named(engine: Any, gearspec_containers: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launcher, "BASE_IMAGE", "gearspec-no-such-base:none")
    with pytest.raises(launcher.ImageBuildError, match=r"base image gearspec-no-such-base:none is missing.*docker-base.sh"):
        launcher.build_image(load_registry()["gearmand"], engine)


def test_interop_runs_with_servers_and_drivers_in_docker(engine: Any, gearspec_containers: Any, image: Any, tmp_path: Path) -> None:
    for name in ("gearmand", "peers"):
        image(name)
    out = tmp_path / "matrix.json"
    done = subprocess.run(
        [sys.executable, "-m", "gearspec", "interop", "--mode", "docker", "--servers", "gearmand",
         "--clients", "reference,php,node", "--scenarios", "foreground,failure", "--json", str(out), "-q"],
        capture_output=True, text=True, timeout=600, env={**os.environ},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["matrix"]["mode"] == "docker" and not data["failed"]
    assert data["totals"]["pass"] == 3 * 2, data["totals"]
    assert not gearspec_containers()
