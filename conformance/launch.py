"""Start a job server as a local process on an ephemeral port and find the port it bound.

Every server is started with port 0 (never a guessed free port); the port is read back from
the kernel: the listening TCP sockets owned by the process tree (/proc/PID/net/tcp and the
socket inodes in /proc/PID/fd). Processes run in their own session so that `stop` ends
the whole tree, and output goes to a log file that reports can attach.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "PEER_COMMANDS",
    "LaunchError",
    "RunningServer",
    "listening_ports",
    "peer_available",
    "start_local",
    "start_peer",
]


class LaunchError(RuntimeError):
    """A server could not be started or did not start listening."""


# Known local servers. "{host}" is replaced by the listen address; each binds port 0.
# Sources for the flags: gearmand --help (1.1.20); Perl Gearman::Server's gearmand script;
# python gear's geard (gear/cmd/geard.py).
PEER_COMMANDS: dict[str, list[str]] = {
    "reference": [sys.executable, "-m", "gearspec", "serve", "--host", "{host}", "--port", "0", "--queue", "memory"],
    "gearmand": [
        "/usr/sbin/gearmand", "--listen={host}", "--port=0", "--threads=0",
        "--log-file={log}", "--pid-file={dir}/gearmand.pid", "--verbose=WARNING",
    ],
    "gearmand-threads": [
        "/usr/sbin/gearmand", "--listen={host}", "--port=0",
        "--log-file={log}", "--pid-file={dir}/gearmand.pid", "--verbose=WARNING",
    ],
    # Persistent queues in {dir}, which a restart by gearspec keeps (durability/*).
    "reference-sqlite": [
        sys.executable, "-m", "gearspec", "serve", "--host", "{host}", "--port", "0", "--queue", "sqlite:{dir}/queue.db",
    ],
    "gearmand-sqlite": [
        "/usr/sbin/gearmand", "--listen={host}", "--port=0", "--threads=0", "--queue-type=libsqlite3",
        "--libsqlite3-db={dir}/queue.db", "--log-file={log}", "--pid-file={dir}/gearmand.pid", "--verbose=WARNING",
    ],
    "perl": ["/usr/bin/gearmand", "--listen={host}", "--port=0"],
    "gear": ["geard", "-d", "-p", "0", "--listen-address", "{host}", "--log-config", "{dir}/gear-log.conf"],
}

_GEAR_LOG_CONFIG = """[loggers]
keys=root
[handlers]
keys=stderr
[formatters]
keys=plain
[logger_root]
level=WARNING
handlers=stderr
[handler_stderr]
class=StreamHandler
level=WARNING
formatter=plain
args=(sys.stderr,)
[formatter_plain]
format=%(asctime)s %(levelname)s %(name)s: %(message)s
"""


def peer_available(name: str) -> bool:
    """True when the peer's program is installed on this machine."""
    argv = PEER_COMMANDS[name]
    program = argv[0]
    if name.startswith("reference"):
        return True
    return shutil.which(program) is not None or Path(program).exists()


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

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

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

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.process.wait(timeout)
        else:
            self.kill(signal.SIGKILL)  # stray children of a dead leader
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_local(
    argv: Sequence[str],
    *,
    name: str = "server",
    host: str = "127.0.0.1",
    timeout: float = 15.0,
    env: dict[str, str] | None = None,
    workdir: Path | None = None,
) -> RunningServer:
    """Start `argv` (with {host}, {dir} and {log} filled in) and wait until it listens."""
    owns = workdir is None
    wd = Path(tempfile.mkdtemp(prefix=f"gearspec-{name}-")) if workdir is None else workdir
    log_path = wd / "server.log"
    (wd / "gear-log.conf").write_text(_GEAR_LOG_CONFIG)
    filled = [a.format(host=host, dir=wd, log=wd / "server-own.log") for a in argv]
    log = open(log_path, "wb")
    try:
        process = subprocess.Popen(
            filled, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=wd, env={**os.environ, **(env or {})},
        )
    except OSError as exc:
        log.close()
        if owns:
            shutil.rmtree(wd, ignore_errors=True)
        raise LaunchError(f"cannot start {name} ({filled[0]}): {exc.strerror}") from None
    finally:
        if not log.closed:
            log.close()
    server = RunningServer(name, host, 0, process, log_path, wd, owns)
    deadline = time.monotonic() + timeout
    # The kernel offers no event for "a process started listening": poll /proc briefly.
    delay = 0.005
    while True:
        if process.poll() is not None:
            text = server.log()[-2000:]
            server.stop()
            raise LaunchError(f"{name} exited with status {process.returncode} before listening:\n{text}")
        ports = listening_ports(process.pid, host)
        if ports:
            server.port = ports[0]
            return server
        if time.monotonic() > deadline:
            server.stop()
            raise LaunchError(f"{name} did not listen on {host} within {timeout:.0f}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def start_peer(name: str, host: str = "127.0.0.1", timeout: float = 15.0) -> RunningServer:
    """Start one of the known servers in `PEER_COMMANDS` on an ephemeral port."""
    if name not in PEER_COMMANDS:
        raise LaunchError(f"unknown server {name!r}; known: {', '.join(PEER_COMMANDS)}")
    if not peer_available(name):
        raise LaunchError(f"{name} is not installed here ({PEER_COMMANDS[name][0]} not found)")
    return start_local(PEER_COMMANDS[name], name=name, host=host, timeout=timeout)
