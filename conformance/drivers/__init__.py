"""Drivers: one client or worker of a third-party Gearman library behind one command line.

Each driver is a small script in this folder; `DRIVERS` says how to run it, whether it can
run here, which library version it drives and what the library cannot do (as data, so tests
can say "unsupported" instead of skipping). The contract every driver follows is in
README.md next to this file:

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

from gearspec.conformance.drivers.contract import (
    EXIT_CONNECTION,
    EXIT_EXCEPTION,
    EXIT_FAIL,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_UNSUPPORTED,
    EXIT_USAGE,
)

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
    "ClientResult",
    "Driver",
    "run_client",
    "start_worker",
]

DRIVER_DIR = Path(__file__).resolve().parent
# npm packages live in the repository's git-ignored .peers/node (npm install gearman@2 there).
NODE_MODULES = Path(os.environ.get("GEARSPEC_NODE_MODULES", DRIVER_DIR.parent.parent / ".peers" / "node" / "node_modules"))

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


# -- availability and version probes --------------------------------------------------------


def _need_program(program: str, package: str) -> Callable[[], str | None]:
    return lambda: None if shutil.which(program) else f"{program} not found (install {package})"


def _need_module(module: str, package: str) -> Callable[[], str | None]:
    return lambda: None if importlib.util.find_spec(module) else f"python module {module} missing (pip install {package})"


def _check_perl() -> str | None:
    if not shutil.which("perl"):
        return "perl not found"
    code, out = _run_quiet(["perl", "-MGearman::Client", "-MGearman::Worker", "-e", "1"])
    return None if code == 0 else f"Gearman::Client/Worker missing (apt install libgearman-client-perl): {out[:120]}"


def _check_php() -> str | None:
    if not shutil.which("php"):
        return "php not found (apt install php-cli php-gearman)"
    code, _ = _run_quiet(["php", "-r", 'exit(class_exists("GearmanClient") ? 0 : 1);'])
    return None if code == 0 else "the PHP gearman extension is missing (apt install php-gearman)"


def _check_node() -> str | None:
    if not shutil.which("node"):
        return "node not found (apt install nodejs)"
    code, _ = _run_quiet(["node", "-e", "require('gearman')"], {"NODE_PATH": str(NODE_MODULES)})
    return None if code == 0 else f"npm package gearman missing (cd {NODE_MODULES.parent} && npm install gearman@2)"


def _check_python_gearman() -> str | None:
    if importlib.util.find_spec("gearman") is None:
        return "python module gearman missing (pip install gearman3)"
    return None


def _dist_version(name: str) -> Callable[[], str | None]:
    def probe() -> str | None:
        from importlib import metadata

        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            return None

    return probe


def _command_version(argv: Sequence[str], label: str, env: Mapping[str, str] | None = None) -> Callable[[], str | None]:
    def probe() -> str | None:
        code, out = _run_quiet(argv, env)
        return f"{label} {out}" if code == 0 and out else None

    return probe


def _python_gearman_version() -> str | None:
    from gearspec.conformance.drivers.python_gearman_driver import installed_distribution

    found = installed_distribution()
    return None if found is None else f"{found[0]} {found[1]}"


def _reference_version() -> str | None:
    import gearspec

    return f"gearspec {gearspec.__version__}"


def _python_gearman_limitations() -> dict[str, str]:
    """gearman3 cannot run on Python >= 3.9; pygearman can (when it is the one on disk)."""
    try:
        from gearspec.conformance.drivers.python_gearman_driver import installed_distribution

        found = installed_distribution()
    except Exception:
        found = None
    limits = {
        "client.exception": "python-gearman never sends OPTION_REQ exceptions, so WORK_EXCEPTION arrives as "
        "WORK_FAIL (its recv_work_exception in gearman/client_handler.py only records the data)",
    }
    if found is not None and found[0] == "gearman3" and sys.version_info >= (3, 9):
        reason = (
            f"gearman3 {found[1]} uses array.fromstring (gearman/connection.py read_data_from_socket), "
            "removed in Python 3.9: it fails on the first reply"
        )
        limits["client"] = reason
        limits["worker"] = reason
    return limits


def _py(module: str) -> tuple[str, ...]:
    return (sys.executable, "-m", f"gearspec.conformance.drivers.{module}")


_BOTH = frozenset({"client", "worker"})

DRIVERS: dict[str, Driver] = {
    driver.name: driver
    for driver in (
        Driver(
            "reference", "Python", "gearspec.reference (this project)", _BOTH, _py("reference_driver"),
            lambda: None, _reference_version,
        ),
        Driver(
            "gearman-cli", "C", "libgearman's gearman command (Debian gearman-tools)", _BOTH,
            _py("gearman_cli_driver"), _need_program("gearman", "gearman-tools"),
            _command_version(["dpkg-query", "-W", "-f=${Version}", "gearman-tools"], "gearman-tools"),
            {
                "client.stream": "the tool writes WORK_DATA and 'N% Complete' status lines to stdout with the "
                "result (bin/gearman.cc _client_data, _client_status)",
                "client.exception": "libgearman's client does not send OPTION_REQ exceptions, so WORK_EXCEPTION "
                "arrives as WORK_FAIL",
                "worker.status": "a command worker cannot send WORK_STATUS or WORK_DATA (bin/gearman.cc _worker_cb); "
                "the driver fails the 'status' job and says 'unsupported' on stderr",
            },
            install="apt install gearman-tools",
        ),
        Driver(
            "perl", "Perl", "Gearman::Client / Gearman::Worker (Debian libgearman-client-perl)", _BOTH,
            ("perl", str(DRIVER_DIR / "perl_driver.pl")), _check_perl,
            _command_version(["perl", "-MGearman::Client", "-e", "print $Gearman::Client::VERSION"], "Gearman::Client"),
            {
                "client.exception": "Gearman::Task::exception thaws WORK_EXCEPTION data with Storable "
                "(lib/Gearman/Task.pm), which only Perl workers send, so the driver leaves the option off "
                "and WORK_EXCEPTION arrives as WORK_FAIL",
            },
            install="apt install libgearman-client-perl",
        ),
        Driver(
            "php", "PHP", "pecl gearman extension on libgearman (Debian php-gearman)", _BOTH,
            ("php", str(DRIVER_DIR / "php_driver.php")), _check_php,
            _command_version(["php", "-r", 'echo phpversion("gearman");'], "php-gearman"),
            install="apt install php-cli php-gearman",
        ),
        Driver(
            "gear", "Python", "gear (PyPI, OpenStack)", _BOTH, _py("gear_driver"),
            _need_module("gear", "gear"), _dist_version("gear"), install="pip install gear",
        ),
        Driver(
            "gearman3", "Python", "the `gearman` module of PyPI gearman3 (python-gearman 2.x API; pygearman "
            "installs the same module name)", _BOTH, _py("python_gearman_driver"), _check_python_gearman,
            _python_gearman_version, install="pip install gearman3", found_limitations=_python_gearman_limitations,
        ),
        Driver(
            "node", "JavaScript", "npm gearman 2.x (mreinstein/node-gearman)", _BOTH,
            ("node", str(DRIVER_DIR / "node_driver.js")), _check_node,
            _command_version(
                ["node", "-e", "console.log(require('gearman/package.json').version)"], "gearman",
                {"NODE_PATH": str(NODE_MODULES)},
            ),
            env={"NODE_PATH": str(NODE_MODULES)},
            install=f"cd {NODE_MODULES.parent} && npm install gearman@2",
        ),
    )
}


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
    args = ["--host", host, "--port", str(port), "--function", function, "--data", data, "--priority", priority,
            "--timeout", str(timeout)]
    if unique is not None:
        args += ["--unique", unique]
    if background:
        args.append("--background")
    if exceptions:
        args.append("--exceptions")
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
    args = ["--host", host, "--port", str(port), "--function", function, "--timeout", str(timeout)]
    if count is not None:
        args += ["--count", str(count)]
    return subprocess.Popen(
        driver.command("worker", *args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=driver.environment(), start_new_session=True,
    )
