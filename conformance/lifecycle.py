"""The target's life during a run: notice when it dies, and restart it when gearspec can.

A `TargetControl` is what the runner asks after each case: is the target still there? When
gearspec started the target (a local process) or was given `--restart-command`, a dead
target is restarted and the run goes on; the crash is recorded against the case that caused
it, with the server's log. Otherwise (an external target) the run stops, saying which case
killed it and how many were not run.

The same restart lets durability cases (conformance/cases/durability.py) check that
acknowledged background jobs survive a restart.

This is the one place that knows how to restart a target: `for_launched` for a server
gearspec started (conformance/servers: a local process keeps its command, folder and port; a
container is restarted and may come back on another port), `for_process` for a bare
`RunningServer`, `for_command` for `--restart-command`.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from gearspec.conformance.servers import LaunchError, RunningServer, Target

__all__ = ["Crash", "RestartError", "TargetControl"]


class RestartError(RuntimeError):
    """The target could not be restarted (the message says why)."""


@dataclass(frozen=True)
class Crash:
    """The target died during `case_ids` (one case when the runner could tell which)."""

    case_ids: tuple[str, ...]
    how: str  # "exited with status -11 (SIGSEGV)", "stopped accepting connections"
    log: str = ""  # the server's log up to the crash (when gearspec started it)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "stopped accepting connections"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


def _reachable(target: Target, timeout: float = 2.0) -> bool:
    import socket

    try:
        with socket.create_connection((target.host, target.port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class TargetControl:
    """The target of a run, watched between cases, with an optional way to restart it.

    `target` is the current address (it changes when a restart binds a new port).
    """

    target: Target
    _exit_code: Callable[[], int | None] | None = None  # a started process: its status, None while alive
    _restart: Callable[[bool], Target] | None = None  # (hard: SIGKILL rather than a clean stop)
    _logs: Callable[[], str] | None = None
    crashes: list[Crash] = field(default_factory=list)  # survived: restarted after each
    stopped: Crash | None = None  # the run stopped here: the target died and stayed dead
    not_run: list[str] = field(default_factory=list)  # IDs of the cases that never ran
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def can_restart(self) -> bool:
        return self._restart is not None

    def exited(self) -> str | None:
        """How the process gearspec started ended, or None (still running, or not ours)."""
        code = self._exit_code() if self._exit_code is not None else None
        return None if code is None else _describe_exit(code)

    def dead(self, answers: Callable[[Target], bool] | None = None) -> str | None:
        """None while the target lives, else how it died.

        Alive means: the process (when gearspec started it) has not exited, the target
        accepts a connection, and `answers(target)` (a round trip, when given) holds.
        """
        if self._exit_code is not None and self._exit_code() is not None:
            return _describe_exit(self._exit_code())
        if _reachable(self.target) and (answers is None or answers(self.target)):
            return None
        if self._exit_code is not None:
            # A dying process may still hold its listening socket for a moment: its exit
            # status says more than "stopped answering".
            deadline = time.monotonic() + 2.0
            while self._exit_code() is None and time.monotonic() < deadline:
                time.sleep(0.01)  # no portable event for "a child we do not wait on exited"
            if self._exit_code() is not None:
                return _describe_exit(self._exit_code())
            return "stopped answering (the process is still running)"
        return "stopped answering" if _reachable(self.target) else "stopped accepting connections"

    def logs(self) -> str:
        if self._logs is None:
            return ""
        try:
            return self._logs()
        except Exception as exc:  # a log we cannot read must not stop the run
            return f"(server log unavailable: {exc})"

    def restart(self, hard: bool = False) -> Target:
        """Start the target again (same queue, same files); returns its new address.

        `hard`: kill it first (SIGKILL, a crash) rather than stop it cleanly (SIGTERM); a
        --restart-command does what it does either way.
        """
        if self._restart is None:
            raise RestartError("gearspec did not start this target and has no --restart-command")
        with self._lock:
            self.target = self._restart(hard)
            return self.target

    # -- the ways gearspec can restart a target ----------------------------------------------
    @classmethod
    def for_launched(cls, target: Target) -> TargetControl:
        """A target gearspec started (`target.server`): restarted with the same command, in the
        same folder (so a queue file there survives); a local process also on the same port."""
        server = target.server
        if server is None:
            return cls(target, _logs=target.logs)
        process_of = server if isinstance(server, RunningServer) else None

        def exit_code() -> int | None:
            return process_of.process.poll() if process_of is not None else None

        def restart(hard: bool) -> Target:
            if hard and process_of is not None:
                process_of.kill(signal.SIGKILL)
                process_of.process.wait(10)
            try:
                server.restart()
            except LaunchError as exc:
                raise RestartError(f"cannot restart {target.description or target.address}: {exc}") from None
            return replace(target, host=server.host, port=server.port)

        return cls(target, exit_code if process_of is not None else None, restart, server.log)

    @classmethod
    def for_process(cls, server: RunningServer) -> TargetControl:
        """A `RunningServer` (conformance.servers.start_local), watched and restarted in place."""
        return cls.for_launched(Target(server.host, server.port, server.log, kind="local", server=server))

    @classmethod
    def for_command(cls, target: Target, command: str, timeout: float = 30.0) -> TargetControl:
        """An external target restarted by a shell command (`--restart-command`); it must come
        back at the same address within `timeout`."""

        def restart(hard: bool) -> Target:
            done = subprocess.run(command, shell=True, capture_output=True, timeout=timeout, check=False)
            if done.returncode != 0:
                why = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()[-1:] or [""]
                raise RestartError(f"--restart-command exited with status {done.returncode}: {why[0]}")
            deadline = time.monotonic() + timeout
            delay = 0.01
            while not _reachable(target, timeout=1.0):
                if time.monotonic() > deadline:
                    raise RestartError(f"{target.address} did not accept connections within {timeout:g} s of the restart")
                time.sleep(delay)  # no event to wait for: a server we did not start
                delay = min(delay * 2, 0.2)
            return target

        return cls(target, None, restart, target.logs)
