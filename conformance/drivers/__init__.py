"""Drivers: one client or worker of a third-party Gearman library behind one command line.

Each driver is a small script in its implementation's folder (conformance/impls/NAME/), and
its ``[driver]`` table there says how to run it, how to tell whether it can run here, which
library version it drives and what the library cannot do (as data, so tests can say
"unsupported" instead of skipping). `DRIVERS` is built from those tables. The contract every
driver follows is in README.md next to this file (and in contract.py for Python drivers):

    DRIVER client --host H --port P --function F [--unique U] [--background]
                  [--priority high|normal|low] [--data D] [--timeout SECONDS]
    DRIVER worker --host H --port P --function F [--count N] [--timeout SECONDS]

    from gearspec.conformance.drivers import DRIVERS, run_client, start_worker
    worker = start_worker(DRIVERS["php"], "127.0.0.1", port, "reverse", count=1)
    result = run_client(DRIVERS["perl"], "127.0.0.1", port, "reverse", data="hello")
    assert result.exit == 0 and result.stdout == b"olleh"
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gearspec.conformance.drivers.contract import (
    EXIT_CONNECTION,
    EXIT_EXCEPTION,
    EXIT_FAIL,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_UNSUPPORTED,
    EXIT_USAGE,
    client_argv,
    worker_argv,
)
from gearspec.conformance.impls import NODE_MODULES, PEERS_DIR, DriverSpec, Implementation, Registry, load_registry

__all__ = [
    "DRIVERS",
    "DRIVER_DIR",
    "EXIT_CONNECTION",
    "EXIT_EXCEPTION",
    "EXIT_FAIL",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_UNSUPPORTED",
    "EXIT_USAGE",
    "FEATURES",
    "NODE_MODULES",
    "PEERS",
    "ClientResult",
    "Driver",
    "load_drivers",
    "run_client",
    "start_worker",
]

DRIVER_DIR = Path(__file__).resolve().parent
# Libraries that are not system packages live in the checkout's git-ignored .peers
# (conformance/impls PEERS_DIR; scripts/install-peers.sh fills it): npm packages in node/,
# pip --target folders in python/NAME, cargo builds in rust/, maven builds in java/.
PEERS = PEERS_DIR

# What a driver may lack. A role name alone ("client", "worker") means the whole role.
FEATURES: dict[str, str] = {
    "client.foreground": "submit a job and print its WORK_COMPLETE data",
    "client.background": "submit a background job and print its handle",
    "client.priority": "submit HIGH and LOW jobs",
    "client.unique": "send a chosen unique id",
    "client.fail": "exit 3 on WORK_FAIL",
    "client.exception": "exit 4 on WORK_EXCEPTION (needs the exceptions option)",
    "client.stream": "report WORK_DATA and WORK_STATUS on stderr, apart from the result",
    "worker.complete": "answer jobs with WORK_COMPLETE",
    "worker.fail": "answer the job 'fail' with WORK_FAIL",
    "worker.status": "send WORK_STATUS 1/2 and WORK_DATA 'partial' for the job 'status'",
}


def _run_quiet(argv: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 20.0) -> tuple[int, str]:
    try:
        done = subprocess.run(
            list(argv), capture_output=True, timeout=timeout, env={**os.environ, **(env or {})}, text=True
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return done.returncode, (done.stdout.strip() or done.stderr.strip())


@dataclass(frozen=True)
class Driver:
    """How to run one library's client and worker under the driver contract."""

    name: str
    language: str
    library: str  # what it drives, and where it comes from
    roles: frozenset[str]
    argv: tuple[str, ...]  # the command prefix; "client ..." or "worker ..." follows
    check: Callable[[], str | None]  # None when runnable here, else why not
    probe: Callable[[], str | None]  # the library's version, if it can be found
    limitations: Mapping[str, str] = field(default_factory=dict)  # feature -> why not
    env: Mapping[str, str] = field(default_factory=dict)
    install: str = ""  # how to install the library
    # Limitations that depend on what is installed, worked out on first use.
    found_limitations: Callable[[], Mapping[str, str]] | None = None

    def all_limitations(self) -> dict[str, str]:
        """Every known limitation: the fixed ones and those of what is installed here."""
        found = _cached_limits(self.name, self.found_limitations) if self.found_limitations else {}
        return {**self.limitations, **found}

    def unavailable(self) -> str | None:
        """None when the driver can run here, else the reason (missing program or package)."""
        return _cached_check(self.name, self.check)

    def available(self) -> bool:
        return self.unavailable() is None

    def version(self) -> str | None:
        return _cached_check(self.name + "/version", self.probe)

    def limitation(self, feature: str) -> str | None:
        """Why the driver lacks `feature` ("client.priority"...), or None if it has it."""
        if feature not in FEATURES:
            raise KeyError(f"unknown feature {feature!r}; known: {', '.join(FEATURES)}")
        role = feature.split(".")[0]
        if role not in self.roles:
            return f"{self.name} has no {role} driver"
        limits = self.all_limitations()
        return limits.get(role) or limits.get(feature)

    def supports(self, feature: str) -> bool:
        return self.limitation(feature) is None

    def command(self, role: str, *args: str) -> list[str]:
        if role not in self.roles:
            raise ValueError(f"{self.name} has no {role} driver")
        return [*self.argv, role, *args]

    def environment(self) -> dict[str, str]:
        return {**os.environ, **self.env}


_CHECKS: dict[str, str | None] = {}
_LIMITS: dict[str, Mapping[str, str]] = {}


def _cached_limits(key: str, find: Callable[[], Mapping[str, str]]) -> Mapping[str, str]:
    if key not in _LIMITS:
        _LIMITS[key] = find()
    return _LIMITS[key]


def _cached_check(key: str, check: Callable[[], str | None]) -> str | None:
    if key not in _CHECKS:
        _CHECKS[key] = check()
    return _CHECKS[key]


# -- drivers from the implementations' folders ------------------------------------------------


def _fill(argv: Sequence[str]) -> list[str]:
    return [
        a.replace("{python}", sys.executable).replace("{node_modules}", str(NODE_MODULES)).replace("{peers}", str(PEERS))
        for a in argv
    ]


def _check(spec: DriverSpec, env: Mapping[str, str]) -> Callable[[], str | None]:
    install = _fill([spec.install])[0]

    def check() -> str | None:
        if not spec.check:
            return None
        argv = _fill(spec.check)
        if shutil.which(argv[0]) is None and not Path(argv[0]).is_file():
            return f"{argv[0]} not found ({install})" if install else f"{argv[0]} not found"
        if len(argv) == 1:
            return None
        code, out = _run_quiet(argv, env)
        return None if code == 0 else f"{spec.library} cannot be used here ({install}): {out[:120]}"

    return check


def _probe_module(path: Path) -> Any:
    """A driver's `probes` file, loaded by path (it is a script in a data folder, not a module)."""
    loaded = importlib.util.spec_from_file_location(f"_gearspec_probes_{path.parent.name}", path)
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return module


def _version(impl: Implementation, spec: DriverSpec, env: Mapping[str, str]) -> Callable[[], str | None]:
    def probe() -> str | None:
        if spec.probes is not None and hasattr(module := _probe_module(spec.probes), "version"):
            return module.version()
        code, out = _run_quiet(_fill(spec.version or impl.version), env)
        return out.splitlines()[0] if code == 0 and out else None

    return probe


def _found_limitations(spec: DriverSpec) -> Callable[[], Mapping[str, str]] | None:
    if spec.probes is None:
        return None
    path = spec.probes

    def found() -> Mapping[str, str]:
        try:
            module = _probe_module(path)
            return dict(module.found_limitations()) if hasattr(module, "found_limitations") else {}
        except Exception:  # a probe that breaks must not break the run: the driver just runs
            return {}

    return found


def load_drivers(registry: Registry | None = None) -> dict[str, Driver]:
    """Every driver the implementations' folders define (their [driver] tables), by name."""
    registry = registry if registry is not None else load_registry()
    drivers = {}
    for impl, spec in registry.drivers():
        env = {key: _fill([value])[0] for key, value in spec.env}
        roles = frozenset(impl.roles & {"client", "worker"}) or frozenset({"client", "worker"})
        drivers[spec.name] = Driver(
            spec.name, spec.language, spec.library, roles, tuple(_fill(spec.argv)), _check(spec, env),
            _version(impl, spec, env), dict(spec.limitations), env, _fill([spec.install])[0],
            _found_limitations(spec),
        )
    return dict(sorted(drivers.items()))


DRIVERS: dict[str, Driver] = load_drivers()


# -- running drivers ------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientResult:
    """What a driver client did: exit status, stdout (the result or handle), stderr."""

    driver: str
    exit: int
    stdout: bytes
    stderr: str

    @property
    def unsupported(self) -> bool:
        return self.exit == EXIT_UNSUPPORTED

    def describe(self) -> str:
        return f"{self.driver} client exit {self.exit}, stdout {self.stdout[:200]!r}, stderr {self.stderr[-500:]!r}"


def run_client(
    driver: Driver,
    host: str,
    port: int,
    function: str,
    *,
    data: str = "",
    unique: str | None = None,
    background: bool = False,
    priority: str = "normal",
    timeout: float = 10.0,
    exceptions: bool = False,
) -> ClientResult:
    """Run the driver's client once and wait for it (killed after `timeout` + 10 s)."""
    args = client_argv(host, port, function, data=data, unique=unique, background=background, priority=priority,
                       timeout=timeout, exceptions=exceptions)
    try:
        done = subprocess.run(
            driver.command("client", *args), capture_output=True, timeout=timeout + 10, env=driver.environment(),
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        return ClientResult(driver.name, -9, exc.stdout or b"", f"killed: no exit within {timeout + 10:g}s")
    return ClientResult(driver.name, done.returncode, done.stdout, done.stderr.decode("utf-8", "replace"))


def start_worker(
    driver: Driver, host: str, port: int, function: str, *, count: int | None = None, timeout: float = 60.0
) -> subprocess.Popen[bytes]:
    """Start the driver's worker; the caller waits for it (or kills it)."""
    args = worker_argv(host, port, function, count=count, timeout=timeout)
    return subprocess.Popen(
        driver.command("worker", *args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=driver.environment(), start_new_session=True,
    )
