"""gearmand's own CLIs (`gearman`, `gearadmin`) against `gearspec serve`."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from gearspec.spec import PacketType as T

from .conftest import Conn, wait_for


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt gearman-tools)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _run(*argv: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, input=input, capture_output=True, timeout=20, check=False)


def test_gearman_cli_worker_and_client_round_trips(server) -> None:
    gearman = _tool("gearman")
    port = str(server.port)
    worker = subprocess.Popen(
        [gearman, "-h", server.host, "-p", port, "-w", "-c", "2", "-f", "cli-rev", "--", "rev"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        admin = Conn(server)
        wait_for(lambda: any(" : cli-rev" in line for line in admin.admin("workers").lines), "the CLI worker")
        fg = _run(gearman, "-h", server.host, "-p", port, "-f", "cli-rev", input=b"hello")
        assert fg.returncode == 0, fg.stderr
        assert fg.stdout.strip() == b"olleh"
        bg = _run(gearman, "-h", server.host, "-p", port, "-b", "-f", "cli-rev", "-s")
        assert bg.returncode == 0, bg.stderr
        assert worker.wait(20) == 0  # -c 2: the background job ran too
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.wait(10)


def test_gearman_cli_client_with_our_raw_worker(server) -> None:
    gearman = _tool("gearman")
    worker = Conn(server)
    worker.send(T.CAN_DO, b"cli-upper")
    client = subprocess.Popen(
        [gearman, "-h", server.host, "-p", str(server.port), "-I", "-u", "cli-u", "-f", "cli-upper", "shout"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        worker.send(T.PRE_SLEEP)
        worker.expect(T.NOOP)
        worker.send(T.GRAB_JOB_UNIQ)
        handle, function, unique, data = worker.expect(T.JOB_ASSIGN_UNIQ).args
        assert (function, unique, data) == (b"cli-upper", b"cli-u", b"shout")
        worker.send(T.WORK_DATA, handle, b"SH")
        worker.send(T.WORK_COMPLETE, handle, b"OUT")
        out, err = client.communicate(timeout=20)
        assert client.returncode == 0, err
        assert out == b"SHOUT"
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(10)


def test_gearadmin_reads_our_admin_replies(server) -> None:
    gearadmin = _tool("gearadmin")
    conn, worker = Conn(server), Conn(server)
    worker.send(T.SET_CLIENT_ID, b"ga-worker")
    worker.send(T.CAN_DO, b"ga-fn")
    conn.send(T.SUBMIT_JOB_BG, b"ga-fn", b"ga-u", b"")
    handle = conn.expect(T.JOB_CREATED).handle.decode()
    host, port = server.host, str(server.port)

    status = _run(gearadmin, "-h", host, "-p", port, "--status")
    assert status.returncode == 0
    assert "ga-fn\t1\t0\t1" in status.stdout.decode().splitlines()
    workers = _run(gearadmin, "-h", host, "-p", port, "--workers").stdout.decode().splitlines()
    assert any(line.endswith("ga-worker : ga-fn") for line in workers)
    jobs = _run(gearadmin, "-h", host, "-p", port, "--show-jobs").stdout.decode().splitlines()
    assert f"{handle}\t0\t0\t0" in jobs
    pid = _run(gearadmin, "-h", host, "-p", port, "--getpid").stdout.decode().strip()
    assert pid == str(server.process.pid)
    unique = _run(gearadmin, "-h", host, "-p", port, "--show-unique-jobs").stdout.decode().splitlines()
    assert "ga-u" in unique
    cancel = _run(gearadmin, "-h", host, "-p", port, "--cancel-job", handle)
    assert cancel.returncode == 0
    after = _run(gearadmin, "-h", host, "-p", port, "--status").stdout.decode().splitlines()
    assert "ga-fn\t0\t0\t1" in after
