"""Start a job server as a local process on an ephemeral port and find the port it bound.

Every server is started with port 0 (never a guessed free port); the port is read back from
the kernel: the listening TCP sockets owned by the process tree (/proc/PID/net/tcp and the
socket inodes in /proc/PID/fd). Processes run in their own session so that `stop` ends
the whole tree, and output goes to a log file that reports can attach. `restart` starts the
same command again on the same port (for a target that died during a run).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gearspec.conformance.impls import fill

from gearspec.address import format_address
from gearspec.errors import GearspecError

__all__ = ["LaunchError", "RunningServer", "listening_ports", "start_local"]


class LaunchError(GearspecError, RuntimeError):
    """A server could not be started or did not start listening."""


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def listening_ports(pid: int, host: str = "127.0.0.1") -> list[int]:
    """TCP ports on which the process tree of `pid` listens at `host` (or any address)."""
    want = {socket.inet_aton(host)[::-1].hex().upper(), "00000000"} if ":" not in host else set()
    specific: list[int] = []
    wildcard: list[int] = []
    for p in _descendants(pid):
        inodes = set()
        try:
            for fd in os.listdir(f"/proc/{p}/fd"):
                try:
                    target = os.readlink(f"/proc/{p}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
        for table in ("tcp", "tcp6"):
            try:
                lines = Path(f"/proc/{p}/net/{table}").read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                cols = line.split()
                local, state, inode = cols[1], cols[3], cols[9]
                if state != "0A" or inode not in inodes:  # 0A = LISTEN
                    continue
                addr, port_hex = local.split(":")
                if table == "tcp" and want and addr not in want:
                    continue
                port = int(port_hex, 16)
                bucket = wildcard if addr.strip("0") == "" else specific
                if port not in bucket:
                    bucket.append(port)
    # A specific address beats the wildcard (Perl's server also listens on 0.0.0.0 at a random port).
    return specific + [p for p in wildcard if p not in specific]


@dataclass
class RunningServer:
    """A started server process; `stop()` (or leaving a `with` block) ends its process tree."""

    name: str
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    workdir: Path
    _owns_workdir: bool = field(default=True, repr=False)
    argv: tuple[str, ...] = field(default=(), repr=False)  # the command, {port} not yet filled
    env: dict[str, str] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return format_address(self.host, self.port)

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        """The process's output, then its own log file if it writes one (gearmand --log-file)."""
        parts = []
        for path in (self.log_path, self.workdir / "server-own.log"):
            try:
                parts.append(path.read_text(errors="replace"))
            except OSError:
                continue
        return "".join(parts)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send a signal to the whole process tree (SIGKILL by default: a crash)."""
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def restart(self, timeout: float = 15.0) -> None:
        """End the process tree if it still runs, then start the same command on the same port.

        For a target that died (or hangs) in the middle of a run: host and port stay as
        they were, so whoever holds them (a `Target`) can go on. Raises `LaunchError` when
        the command exits or does not listen on that port again within `timeout`.
        """
        self._end(timeout)
        again = _spawn(self.argv, self.name, self.host, self.port, self.workdir, self.env, self.log_path, "ab")
        self.process = again
        _wait_listening(self, timeout, want=self.port)

    def _end(self, timeout: float) -> None:
        if self.process.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.process.wait(timeout)
        else:
            self.kill(signal.SIGKILL)  # stray children of a dead leader

    def stop(self, timeout: float = 5.0) -> None:
        self._end(timeout)
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _spawn(
    argv: Sequence[str], name: str, host: str, port: int, workdir: Path, env: dict[str, str] | None,
    log_path: Path, mode: str = "wb",
) -> subprocess.Popen[bytes]:
    filled = fill(argv, host=host, dir=workdir, log=workdir / "server-own.log", port=port)
    with open(log_path, mode) as log:
        try:
            return subprocess.Popen(
                filled, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=workdir, env={**os.environ, **(env or {})},
            )
        except OSError as exc:
            raise LaunchError(f"cannot start {name} ({filled[0]}): {exc.strerror}") from None


def _wait_listening(server: RunningServer, timeout: float, want: int | None = None) -> None:
    """Wait until the process tree listens (on port `want`, if given); stop it on failure."""
    deadline = time.monotonic() + timeout
    # The kernel offers no event for "a process started listening": poll /proc briefly.
    delay = 0.005
    while True:
        process = server.process
        if process.poll() is not None:
            text = server.log()[-2000:]
            server.stop()
            raise LaunchError(f"{server.name} exited with status {process.returncode} before listening:\n{text}")
        ports = listening_ports(process.pid, server.host)
        if ports and (want is None or want in ports):
            server.port = ports[0] if want is None else want
            return
        if time.monotonic() > deadline:
            server.stop()
            where = server.host if want is None else format_address(server.host, want)
            raise LaunchError(f"{server.name} did not listen on {where} within {timeout:.0f}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def start_local(
    argv: Sequence[str],
    *,
    name: str = "server",
    host: str = "127.0.0.1",
    timeout: float = 15.0,
    env: dict[str, str] | None = None,
    workdir: Path | None = None,
) -> RunningServer:
    """Start `argv` and wait until it listens.

    Placeholders: {host}, {port} (0 here: the port the server binds is read back), {dir}
    (a scratch folder, the working directory) and {log} (a file the log also shows).
    """
    owns = workdir is None
    wd = Path(tempfile.mkdtemp(prefix=f"gearspec-{name}-")) if workdir is None else workdir
    log_path = wd / "server.log"
    try:
        process = _spawn(argv, name, host, 0, wd, env, log_path)
    except LaunchError:
        if owns:
            shutil.rmtree(wd, ignore_errors=True)
        raise
    server = RunningServer(name, host, 0, process, log_path, wd, owns, tuple(argv), env)
    _wait_listening(server, timeout)
    return server
