"""Open a conformance target from a spec string, starting a server when the spec asks for one.

Spec strings:

- ``HOST:PORT`` (or ``HOST``, port 4730; ``[v6addr]:PORT``): a server already running.
- ``docker:IMAGE``: run IMAGE with host networking. When IMAGE (or a registry name, e.g.
  ``docker:gearmand``) is in the implementations registry, its command is used and the image
  is built from its Dockerfile if missing; otherwise the image's own command runs.
- ``impl:NAME`` (what ``--impl NAME`` means): the registry's server NAME, in Docker when an
  engine answers and the image exists or builds, else as a local process when it is installed
  here (the reason for the fallback is printed to stderr).
- ``local:NAME``: the registry's server NAME as a local process; ``local:ARGV...`` any command
  line (placeholders {host}, {port} = 0, {dir}, {log}; the port it binds is read back).

`open_target` is a context manager yielding a `Target`; the server it started (process or
container) is stopped and removed when the block ends, whatever the reason.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from gearspec.conformance.impls import Implementation, Registry, load_registry
from gearspec.conformance.launch import LaunchError, RunningServer, start_local

__all__ = ["DEFAULT_PORT", "Target", "TargetError", "open_target", "parse_address"]

DEFAULT_PORT = 4730


class TargetError(LaunchError):
    """A target spec is malformed, or its server cannot be started (the message says why)."""


def _no_logs() -> str:
    return ""


@dataclass
class Target:
    """Where the suite connects, and the server's logs when gearspec started it."""

    spec: str
    host: str
    port: int
    kind: str  # "address", "docker" or "local"
    description: str
    logs: Callable[[], str] = field(default=_no_logs, repr=False)
    impl: str | None = None

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``HOST`` or ``[V6]:PORT`` → (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise TargetError(f"bad address {text!r}: expected [IPV6]:PORT")
        port_text = rest[1:] if rest else str(DEFAULT_PORT)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    elif ":" in text:
        raise TargetError(f"bad address {text!r}: write an IPv6 address as [ADDR]:PORT")
    else:
        host, port_text = text, str(DEFAULT_PORT)
    if not host:
        raise TargetError(f"bad address {text!r}: no host (try 127.0.0.1:{port_text or DEFAULT_PORT})")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise TargetError(f"bad address {text!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


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


@contextlib.contextmanager
def _local(impl_or_argv: Implementation | list[str], spec: str, host: str) -> Iterator[Target]:
    if isinstance(impl_or_argv, Implementation):
        impl = impl_or_argv
        if not impl.local:
            raise TargetError(f"{impl.name} has no local command in the registry")
        if not impl.local_available():
            raise TargetError(f"{impl.name} is not installed here ({impl.local_argv()[0]} not found)")
        argv, name = [a.replace("{port}", "0") for a in impl.local_argv()], impl.name
    else:
        impl, argv, name = None, [a.replace("{port}", "0") for a in impl_or_argv], "local"
    server: RunningServer = start_local(argv, name=name, host=host)
    try:
        yield Target(spec, server.host, server.port, "local", f"{name} (local process {argv[0]})",
                     server.log, impl.name if impl else None)
    finally:
        server.stop()


@contextlib.contextmanager
def _docker(image: str, spec: str, host: str, registry: Registry, build: bool) -> Iterator[Target]:
    from gearspec.conformance import docker as launcher

    impl = registry.by_image(image)
    if impl is None and image in registry.impls:
        impl = _server_entry(registry, image)
    with launcher.sigterm_as_interrupt():
        client = launcher.connect()
        if impl is not None:
            running = launcher.start_server(impl, host=host, build=build, client=client)
            label = f"{impl.name} (Docker image {impl.image_ref})"
        else:
            running = launcher.start_container(image, None, name="image", host=host, client=client)
            label = f"Docker image {image}"
        try:
            yield Target(spec, running.host, running.port, "docker", label, running.logs,
                         impl.name if impl else None)
        finally:
            running.stop()


@contextlib.contextmanager
def open_target(
    spec: str,
    *,
    registry: Registry | None = None,
    host: str = "127.0.0.1",
    build: bool = True,
    fallback: bool = True,
) -> Iterator[Target]:
    """Yield a `Target` for `spec` (see the module docstring), cleaning up afterwards.

    Raises `TargetError` (a `LaunchError`) with a message naming what is missing when the
    target cannot be reached or started; `docker.DockerUnavailable` and
    `docker.ImageBuildError` are `LaunchError`s too.
    """
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in ("docker", "impl", "local"):
        address_host, port = parse_address(spec)
        yield Target(spec, address_host, port, "address", f"server at {spec}")
        return
    if not rest.strip():
        raise TargetError(f"{spec!r}: name an image or implementation after '{kind}:'")
    registry = registry if registry is not None else load_registry()
    rest = rest.strip()
    if kind == "docker":
        with _docker(rest, spec, host, registry, build) as target:
            yield target
        return
    if kind == "local":
        with _local(registry[rest] if rest in registry else shlex.split(rest), spec, host) as target:
            yield target
        return
    impl = _server_entry(registry, rest)
    why_not_docker = None
    if impl.image and impl.command:
        from gearspec.conformance import docker as launcher

        try:
            opened = _docker(impl.image_ref or impl.name, spec, host, registry, build)
            target = opened.__enter__()
        except (launcher.DockerUnavailable, launcher.ImageBuildError) as exc:
            why_not_docker = str(exc)
        else:
            with contextlib.ExitStack() as stack:
                stack.push(opened)
                yield target
            return
    else:
        why_not_docker = f"{impl.name} has no Docker image in the registry"
    if not fallback or not impl.local_available():
        missing = f"not installed here ({impl.local_argv()[0]} not found)" if impl.local else "has no local command"
        raise TargetError(f"cannot start {impl.name}: {why_not_docker}; and as a local process it is {missing}")
    _note(f"{why_not_docker}\ngearspec: starting {impl.name} as a local process instead")
    with _local(impl, spec, host) as target:
        yield target
