"""Shared test helpers: start the proxy CLI, run gearmand's command-line tools."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


def need(program: str) -> str:
    """The program's path; skip (fail under CI) when it is not installed."""
    path = shutil.which(program)
    if path is None:
        message = f"{program} is not installed"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@dataclass
class ProxyProcess:
    process: subprocess.Popen[str]
    host: str
    port: int

    def stop(self) -> str:
        """SIGTERM, wait, return everything it printed after the first line."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            out, _ = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        return out


@contextmanager
def proxy_process(upstream: str, *extra: str) -> Iterator[ProxyProcess]:
    """`gearspec proxy --listen 127.0.0.1:0 --upstream ...` as a process, stopped afterwards."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gearspec", "proxy", "--listen", "127.0.0.1:0", "--upstream", upstream, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # blocks until the proxy listens (or dies)
        match = re.search(r"listening on ([\d.]+):(\d+)", first)
        assert match, f"proxy did not start: {first!r}"
        yield ProxyProcess(process, match.group(1), int(match.group(2)))
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def run_gearman_job(host: str, port: int, function: str, data: str, timeout: float = 20) -> str:
    """One job through gearmand's CLI: a `gearman -w -c 1` worker and a `gearman` client."""
    gearman = need("gearman")
    worker = subprocess.Popen(
        [gearman, "-h", host, "-p", str(port), "-w", "-c", "1", "-f", function, "--", "rev"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        client = subprocess.run(
            [gearman, "-h", host, "-p", str(port), "-f", function, data],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        worker.wait(timeout)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert client.returncode == 0, client.stderr
    return client.stdout


def gearadmin_status(host: str, port: int) -> str:
    done = subprocess.run(
        [need("gearadmin"), "-h", host, "-p", str(port), "--status"],
        capture_output=True, text=True, timeout=20, check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _probe_until_written(port: int, path: Path, timeout: float = 20.0) -> None:
    start = path.stat().st_size if path.exists() else 0
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.stat().st_size > start):
        if time.monotonic() > deadline:
            pytest.fail(f"dumpcap wrote nothing within {timeout:.0f} s")
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        time.sleep(0.05)


@contextmanager
def dumpcap(port: int, path: Path) -> Iterator[None]:
    """Capture loopback traffic on `port` into `path` (pcapng) with dumpcap."""
    program = need("dumpcap")
    process = subprocess.Popen(
        [program, "-i", "lo", "-f", f"tcp port {port}", "-w", str(path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 20
        lines = []
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Capturing on"):
                break
        else:
            pytest.fail("dumpcap did not start capturing: " + "".join(lines))
        if process.poll() is not None:
            message = f"dumpcap cannot capture on lo: {''.join(lines)}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        # "Capturing on" comes before the kernel delivers packets, and dumpcap writes in
        # batches: probe with empty connections until the file grows, before and after.
        _probe_until_written(port, path)
        yield
        _probe_until_written(port, path)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
