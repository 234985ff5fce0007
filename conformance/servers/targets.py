"""Open a target from a spec string, starting a server when the spec asks for one.

Spec strings (`gearspec test --target`, `pytest --gearman-target`):

- ``HOST:PORT`` (or ``HOST``, port 4730; ``[v6addr]:PORT``): a server already running.
- ``docker:IMAGE``: run IMAGE with host networking. When IMAGE (or a registry name, e.g.
  ``docker:gearmand``) is in the implementations registry, its command is used and the image
  is built from its Dockerfile if missing; otherwise the image's own command runs.
- ``impl:NAME`` (what ``--impl NAME`` means): the registry's server NAME, Docker first, else a
  local process (`open_server`, mode "auto"; the reason for the fallback is printed to stderr).
- ``local:NAME``: the registry's server NAME (or a variant, e.g. gearmand-threads) as a local
  process (what ``--server NAME`` means); ``local:ARGV...`` any command line (placeholders
  {host}, {port} = 0, {dir}, {log}; the port it binds is read back).

`open_target` is a context manager yielding a `Target`; the server it started (process or
container) is stopped and removed when the block ends, whatever the reason. `open_server`
holds the one Docker-then-local policy, which the interop matrix uses too.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from gearspec.conformance.impls import Implementation, Registry, load_registry
from gearspec.conformance.servers.local import LaunchError, RunningServer, start_local

from gearspec.address import AddressError, format_address, parse_address

if TYPE_CHECKING:
    from gearspec.conformance.tls import TlsSettings

__all__ = [
    "MODES",
    "Launched",
    "Target",
    "TargetError",
    "open_server",
    "open_target",
    "server_available",
    "start_server",
    "target_is_address",
]

# Where `open_server` starts a server: a local process; Docker only; Docker, else local.
MODES = ("local", "docker", "auto")


class TargetError(LaunchError, ValueError):
    """A target spec is malformed, or its server cannot be started (the message says why)."""


class Launched(Protocol):
    """A server gearspec started: a local process (`RunningServer`) or a container."""

    host: str
    port: int

    def log(self) -> str: ...
    def restart(self) -> None: ...
    def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Target:
    """Where the suite connects, and, when gearspec started the server, how to read its log.

    `server` is the launched process or container (None for a plain address); `restart()`
    starts it again and returns the target to use from then on.
    """

    host: str
    port: int
    logs: Callable[[], str] | None = field(default=None, compare=False, repr=False)
    spec: str = field(default="", compare=False)
    kind: str = field(default="address", compare=False)  # "address", "docker" or "local"
    description: str = field(default="", compare=False)
    impl: str | None = field(default=None, compare=False)
    server: Launched | None = field(default=None, compare=False, repr=False)
    # A TLS target (`tls://HOST:PORT`): every connection is opened with `tls.context`.
    tls: TlsSettings | None = field(default=None, compare=False, repr=False)

    @property
    def address(self) -> str:
        return format_address(self.host, self.port)

    @classmethod
    def parse(cls, text: str) -> Target:
        """HOST:PORT, [V6]:PORT, or HOST, [V6] or a bare V6 address alone (port 4730).

        Raises `TargetError` (a ValueError too) with a one-line message that says what is wrong.
        """
        try:
            host, port = parse_address(text)
        except AddressError as exc:
            raise TargetError(f"target {exc}") from None
        return cls(host, port, spec=text, description=f"server at {text}")

    @classmethod
    def of(cls, server: Launched, spec: str, kind: str, description: str, impl: str | None = None) -> Target:
        return cls(server.host, server.port, server.log, spec, kind, description, impl, server)

    def restart(self) -> Target:
        """Restart the server gearspec started (same command); the returned target points at it."""
        if self.server is None:
            raise TargetError(f"{self.address} was not started by gearspec: it cannot be restarted")
        self.server.restart()
        return replace(self, host=self.server.host, port=self.server.port)


def target_is_address(spec: str) -> bool:
    """True when `spec` names a running server (HOST:PORT), not one to start."""
    kind, sep, _ = spec.partition(":")
    return not sep or kind not in ("docker", "impl", "local")


def _note(message: str) -> None:
    print(f"gearspec: {message}", file=sys.stderr, flush=True)


def _server_entry(registry: Registry, name: str) -> Implementation:
    try:
        impl = registry[name]
    except KeyError as exc:
        raise TargetError(str(exc.args[0])) from None
    if "server" not in impl.roles:
        servers = ", ".join(i.name for i in registry.with_role("server"))
        raise TargetError(f"{name} is not a server (servers: {servers})")
    return impl


def server_available(name: str, registry: Registry | None = None) -> bool:
    """True when the registry's server (or variant) `name` can run as a local process here."""
    registry = registry if registry is not None else load_registry()
    try:
        impl, _ = registry.local_server(name)
    except KeyError:
        return False
    return impl.local_available()


def start_server(name: str, *, host: str = "127.0.0.1", timeout: float = 15.0,
                 registry: Registry | None = None) -> RunningServer:
    """Start the registry's server (or variant) `name` as a local process on an ephemeral port."""
    registry = registry if registry is not None else load_registry()
    try:
        impl, argv = registry.local_server(name)
    except KeyError as exc:
        raise LaunchError(str(exc.args[0])) from None
    if not impl.local_available():
        raise LaunchError(f"{name} is not installed here ({argv[0]} not found)")
    return start_local(argv, name=name, host=host, timeout=timeout)


@contextlib.contextmanager
def _docker(image: str, spec: str, host: str, registry: Registry, build: bool) -> Iterator[Target]:
    from gearspec.conformance.servers import docker as launcher

    impl = registry.by_image(image)
    if impl is None and image in registry.impls:
        impl = _server_entry(registry, image)
    with launcher.sigterm_as_interrupt():
        client = launcher.connect()
        if impl is not None:
            running: Any = launcher.start_server(impl, host=host, build=build, client=client)
            label = f"{impl.name} (Docker image {impl.image_ref})"
        else:
            running = launcher.start_container(image, None, name="image", host=host, client=client)
            label = f"Docker image {image}"
        try:
            yield Target.of(running, spec, "docker", label, impl.name if impl else None)
        finally:
            running.stop()


@contextlib.contextmanager
def _local(argv: list[str], spec: str, host: str, name: str, impl: str | None) -> Iterator[Target]:
    server = start_local(argv, name=name, host=host)
    try:
        yield Target.of(server, spec, "local", f"{name} (started on {server.address})", impl)
    finally:
        server.stop()


@contextlib.contextmanager
def open_server(
    impl: Implementation,
    mode: str = "auto",
    *,
    spec: str | None = None,
    host: str = "127.0.0.1",
    build: bool = True,
    registry: Registry | None = None,
    note: Callable[[str], None] = _note,
    extra_args: Sequence[str] = (),
) -> Iterator[Target]:
    """Start `impl`'s server: in Docker (mode "docker"), as a local process ("local"), or in
    Docker when an engine answers and the image exists or builds, else locally ("auto").

    In "auto", why Docker was not used goes to `note` (stderr by default). `extra_args` go
    after the local command (a TLS interop matrix's certificate flags); local mode only.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    if extra_args and mode != "local":
        raise LaunchError(f"extra server flags ({' '.join(extra_args)}) need a local server: use --mode local")
    spec = spec or f"impl:{impl.name}"
    if "server" not in impl.roles:
        raise TargetError(f"{impl.name} is not a server")
    why_not_docker = None
    if mode != "local":
        if impl.image and impl.command:
            from gearspec.conformance.servers import docker as launcher

            try:
                opened = _docker(impl.image_ref or impl.name, spec, host, registry or load_registry(), build)
                target = opened.__enter__()
            except (launcher.DockerUnavailable, launcher.ImageBuildError) as exc:
                if mode == "docker":
                    raise
                why_not_docker = str(exc)
            else:
                with contextlib.ExitStack() as stack:
                    stack.push(opened)
                    yield target
                return
        elif mode == "docker":
            raise LaunchError(f"{impl.name} has no Docker image and command in the registry")
        else:
            why_not_docker = f"{impl.name} has no Docker image in the registry"
    if not impl.local_available():
        missing = f"not installed here ({impl.local_argv()[0]} not found)" if impl.local else "has no local command"
        prefix = f"cannot start {impl.name}: {why_not_docker}; and as a local process it is" if why_not_docker else (
            f"cannot start {impl.name}: it is")
        raise TargetError(f"{prefix} {missing}")
    if why_not_docker is not None:
        note(f"Docker not used ({why_not_docker.splitlines()[0]}); starting {impl.name} as a local process instead")
    with _local([*impl.local_argv(), *extra_args], spec, host, impl.name, impl.name) as target:
        yield target


@contextlib.contextmanager
def open_target(
    spec: str,
    *,
    registry: Registry | None = None,
    host: str = "127.0.0.1",
    build: bool = True,
) -> Iterator[Target]:
    """Yield a `Target` for `spec` (see the module docstring), cleaning up afterwards.

    Raises `TargetError` (a `LaunchError`) with a message naming what is missing when the
    target cannot be reached or started; `docker.DockerUnavailable` and
    `docker.ImageBuildError` are `LaunchError`s too.
    """
    if target_is_address(spec):
        yield Target.parse(spec)
        return
    kind, _, rest = spec.partition(":")
    if not rest.strip():
        raise TargetError(f"{spec!r}: name an image or implementation after '{kind}:'")
    registry = registry if registry is not None else load_registry()
    rest = rest.strip()
    if kind == "docker":
        with _docker(rest, spec, host, registry, build) as target:
            yield target
        return
    if kind == "local":
        try:
            impl, argv = registry.local_server(rest)
        except KeyError:
            argv, name, impl_name = shlex.split(rest), "local", None
            if len(argv) == 1 and not shutil.which(argv[0]):
                raise TargetError(f"unknown server {rest!r}; known: {', '.join(registry.local_servers())}") from None
        else:
            if not impl.local_available():
                raise TargetError(f"{rest} is not installed here ({argv[0]} not found)")
            name, impl_name = rest, impl.name
        with _local(argv, spec, host, name, impl_name) as target:
            yield target
        return
    with open_server(_server_entry(registry, rest), "auto", spec=spec, host=host, build=build,
                     registry=registry) as target:
        yield target
