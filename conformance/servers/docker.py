"""Start job servers (and the shared client/worker "peers" image) in Docker containers.

Containers use host networking, so a server binds the loopback address of this machine;
each server is told to bind port 0 and the port it chose is read back from the kernel (the
container's processes are ordinary processes here: /proc/PID), never guessed. Readiness is a
TCP connect to that port. Logs are captured for reports. Containers are always removed:
leaving the `with` block, an exception, Ctrl-C and SIGTERM all end in ``remove(force=True)``;
every container carries the label ``gearspec=1`` so ``python -m gearspec.conformance.servers.docker
clean`` finds any left behind by a killed process.

Errors name what is missing: the ``docker`` Python package, the engine (with the address
tried: ``DOCKER_HOST`` or the default socket), the base image an image builds FROM, or the
step of a Dockerfile that failed.

``python -m gearspec.conformance.servers.docker build [NAME...]`` builds images from the registry.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import signal
import socket
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gearspec.conformance.impls import Implementation, Registry, RegistryError, fill, load_registry
from gearspec.conformance.servers.local import LaunchError, listening_ports

from gearspec.address import format_address

__all__ = [
    "BASE_IMAGE",
    "LABEL",
    "DockerUnavailable",
    "ImageBuildError",
    "RunningContainer",
    "build_image",
    "connect",
    "ensure_image",
    "remove_leftovers",
    "start_container",
    "start_server",
]

BASE_IMAGE = os.environ.get("GEARSPEC_BASE_IMAGE", "gearspec-base:bookworm")
LABEL = "gearspec"
SOURCE_ROOT = Path(__file__).resolve().parents[2]
# What a "source" build context holds: enough to `pip install` gearspec.
_SOURCE_ITEMS = ("gearspec", "reference", "conformance", "fuzz", "setup.py", "pyproject.toml", "README.md")
_SKIP_PARTS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", "node_modules"}
# What a "peers" build context holds: the programs scripts/install-peers.sh built in the
# checkout's .peers/ (e.g. .peers/cargo/bin/rustygeard), for servers no Debian image can build.
_PEERS_ITEMS = (".peers/cargo/bin",)


class DockerUnavailable(LaunchError):
    """The Docker SDK is missing or no engine answers; the message says which and where."""


class ImageBuildError(LaunchError):
    """An image could not be built (or pulled); the message names the missing piece."""


def engine_address() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock (the default; set DOCKER_HOST to change it)"


def connect(timeout: float = 120.0) -> Any:
    """A connected ``docker.DockerClient``, or `DockerUnavailable` naming what is missing.

    The API timeout is long: with the vfs storage driver, creating a container copies its
    whole image, which takes seconds on a busy disk.
    """
    try:
        import docker  # the optional dependency: pip install 'gearspec[docker]'
        import docker.errors
    except ImportError:
        raise DockerUnavailable(
            "the docker Python package is not installed (pip install 'gearspec[docker]')"
        ) from None
    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except docker.errors.DockerException as exc:
        host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        if host.startswith("unix://") and not Path(host[len("unix://"):]).exists():
            reason = f"the socket {host[len('unix://'):]} does not exist"
        else:
            reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise DockerUnavailable(
            f"no Docker engine answers at {engine_address()}: {reason}. Start one "
            f"(e.g. `dockerd --storage-driver=vfs --iptables=false --bridge=none`, see scripts/docker-ci.sh) "
            f"or use a local process (--impl NAME falls back to one when it is installed)"
        ) from None
    return client


# -- images -------------------------------------------------------------------------------


def _context_tar(impl: Implementation) -> io.BytesIO:
    """A build context (tar) holding the Dockerfile and, for "source", the gearspec sources
    (for "peers", the programs built in .peers/)."""
    path = impl.dockerfile_path
    assert path is not None
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        if impl.context in ("source", "peers"):
            items = _SOURCE_ITEMS if impl.context == "source" else _PEERS_ITEMS
            for item in items:
                top = SOURCE_ROOT / item
                if not top.exists():
                    continue
                paths = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
                for p in paths:
                    rel = p.relative_to(SOURCE_ROOT)
                    if _SKIP_PARTS & set(rel.parts) or p.suffix in (".pyc", ".pyo"):
                        continue
                    tar.add(p, arcname=str(rel))
        info = tarfile.TarInfo("Dockerfile.gearspec")
        data = path.read_bytes()
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def _image_exists(client: Any, ref: str) -> bool:
    import docker.errors

    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def build_image(impl: Implementation, client: Any | None = None, *, echo: bool = False) -> str:
    """Build `impl`'s image from its Dockerfile with host networking; return the image ref."""
    import docker.errors

    if impl.image_ref is None or impl.dockerfile_path is None:
        raise ImageBuildError(f"{impl.name} has no image and Dockerfile in the registry")
    if not impl.dockerfile_path.is_file():
        raise ImageBuildError(f"cannot build {impl.image_ref}: its Dockerfile {impl.dockerfile_path} does not exist")
    if impl.context == "peers" and not any((SOURCE_ROOT / item).exists() for item in _PEERS_ITEMS):
        raise ImageBuildError(
            f"cannot build {impl.image_ref}: its Dockerfile copies programs from {SOURCE_ROOT / '.peers'}, "
            f"which holds none; run scripts/install-peers.sh first"
        )
    client = client or connect()
    if not _image_exists(client, BASE_IMAGE):
        raise ImageBuildError(
            f"cannot build {impl.image_ref}: its base image {BASE_IMAGE} is missing; "
            f"build it with scripts/docker-base.sh (debootstrap from this machine's apt mirror)"
        )
    started = time.monotonic()
    tail: list[str] = []
    try:
        stream = client.api.build(
            fileobj=_context_tar(impl), custom_context=True, dockerfile="Dockerfile.gearspec",
            tag=impl.image_ref, network_mode="host", rm=True, forcerm=True, decode=True,
            buildargs={"BASE": BASE_IMAGE},  # no labels: with vfs every extra step copies the image
        )
        for chunk in stream:
            if "error" in chunk:
                raise ImageBuildError(
                    f"cannot build {impl.image_ref} from {impl.dockerfile_path}: {chunk['error'].strip()}\n"
                    + "".join(tail[-15:])
                )
            text = chunk.get("stream", "")
            if text:
                tail.append(text)
                if echo and text.startswith("Step "):
                    print(f"  {impl.image_ref}: {text.strip()}", file=sys.stderr)
    except docker.errors.APIError as exc:
        raise ImageBuildError(f"cannot build {impl.image_ref}: {exc.explanation or exc}") from None
    if echo:
        print(f"built {impl.image_ref} in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return impl.image_ref


def ensure_image(impl: Implementation, client: Any | None = None, *, build: bool = True) -> str:
    """The image ref for `impl`, building it first when it is missing and `build` is set."""
    client = client or connect()
    ref = impl.image_ref
    if ref is None:
        raise ImageBuildError(f"{impl.name} has no Docker image in the registry")
    if _image_exists(client, ref):
        return ref
    if not build or impl.dockerfile_path is None:
        raise ImageBuildError(f"image {ref} is not present and {'building is off' if not build else 'has no Dockerfile'}")
    return build_image(impl, client)


# -- containers ---------------------------------------------------------------------------


@dataclass
class RunningContainer:
    """A started container; `stop()` (or leaving a `with` block) removes it."""

    name: str
    image: str
    host: str
    port: int
    container: Any
    _logs: str = field(default="", repr=False)
    _removed: bool = field(default=False, repr=False)

    @property
    def address(self) -> str:
        return format_address(self.host, self.port)

    def logs(self) -> str:
        """Everything the container wrote to stdout and stderr so far (kept after removal)."""
        if not self._removed:
            with contextlib.suppress(Exception):
                self._logs = self.container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
        return self._logs

    def log(self) -> str:  # the name RunningServer uses
        return self.logs()

    def alive(self) -> bool:
        if self._removed:
            return False
        try:
            self.container.reload()
        except Exception:
            return False
        return bool(self.container.status == "running")

    def pid(self) -> int:
        self.container.reload()
        return int(self.container.attrs["State"]["Pid"])

    def exec(self, argv: Sequence[str]) -> tuple[int, str]:
        """Run argv inside; a container that stopped meanwhile gives (-1, the engine's reason)."""
        import docker.errors

        try:
            code, output = self.container.exec_run(list(argv), demux=False)
        except docker.errors.APIError as exc:
            return -1, str(exc)
        return int(code), (output or b"").decode("utf-8", "replace")

    def restart(self, timeout: float = 60.0) -> None:
        """Restart the container (same command) and wait until it listens again.

        The command binds port 0, so the server may come back on another port: `port`
        is updated (a `Target` opened on this container follows it).
        """
        self.container.restart(timeout=5)
        self.port = _wait_for_port(self, self.host, timeout, self.name)

    def stop(self) -> None:
        if self._removed:
            return
        self.logs()
        _remove(self.container.client, self.name)
        self._removed = True

    def __enter__(self) -> RunningContainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _remove(client: Any, name: str) -> None:
    import docker.errors

    with contextlib.suppress(docker.errors.NotFound):
        client.api.remove_container(name, force=True, v=True)


def _remove_when_created(client: Any, name: str, wait: float = 60.0) -> None:
    """After a create request timed out: remove the container once the engine has made it."""
    import docker.errors

    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            client.api.remove_container(name, force=True, v=True)
            return
        except docker.errors.NotFound:
            time.sleep(0.5)  # the engine gives no event for a create it is still running
        except docker.errors.APIError:
            time.sleep(0.5)  # e.g. "removal already in progress"


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises KeyboardInterrupt (so `finally` blocks remove containers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _container_ports(running: RunningContainer, host: str) -> list[int]:
    """Listening ports of the container's processes: via /proc here, else by asking inside."""
    pid = running.pid()
    if not pid:
        return []  # not running (it exited, or not yet started): the caller checks which
    if Path(f"/proc/{pid}").exists():
        return listening_ports(pid, host)
    # A remote engine: list socket inodes of the container's processes and the TCP table.
    code, out = running.exec(["sh", "-c", "ls -l /proc/[0-9]*/fd 2>/dev/null; echo ==; cat /proc/net/tcp"])
    if code != 0 or "==" not in out:
        return []
    fds, _, table = out.partition("==")
    inodes = {part.split("socket:[")[1].rstrip("]") for part in fds.split() if part.startswith("socket:[")}
    want = socket.inet_aton(host)[::-1].hex().upper()
    ports = []
    for line in table.splitlines()[1:]:
        cols = line.split()
        if len(cols) > 9 and cols[3] == "0A" and cols[9] in inodes:
            addr, port_hex = cols[1].split(":")
            if addr in (want, "00000000"):
                ports.append(int(port_hex, 16))
    return ports


def _connectable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _wait_for_port(running: RunningContainer, host: str, timeout: float, name: str) -> int:
    container = running.container
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        container.reload()
        if container.status in ("exited", "dead"):
            code = container.attrs["State"].get("ExitCode")
            raise LaunchError(f"{name} ({running.image}) exited with status {code} before listening:\n{running.logs()[-2000:]}")
        ports = _container_ports(running, host)
        if ports and _connectable(host, ports[0]):
            return ports[0]
        if time.monotonic() > deadline:
            raise LaunchError(f"{name} ({running.image}) did not listen on {host} within {timeout:.0f}s:\n{running.logs()[-2000:]}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def start_container(
    image: str,
    command: Sequence[str] | None = None,
    *,
    name: str = "server",
    host: str = "127.0.0.1",
    timeout: float = 60.0,
    client: Any | None = None,
    wait_for_port: bool = True,
) -> RunningContainer:
    """Run `image` with host networking and wait until it listens; see the module docstring.

    `command` placeholders: {host}, {port} (0: the port is read back), {dir} (/tmp),
    {log} (/dev/stderr). With `wait_for_port` false the container is only started (for the
    peers image, whose drivers run with `exec`).
    """
    import docker.errors

    client = client or connect()
    container_name = f"gearspec-{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    argv = fill(command, host=host, port=0, dir="/tmp", log="/dev/stderr", python="python3") if command else None
    running: RunningContainer | None = None
    try:
        try:
            container = client.containers.create(
                image, argv, name=container_name, network_mode="host", labels={LABEL: "1"},
                detach=True, stdin_open=False, tty=False, init=True,
            )
        except docker.errors.ImageNotFound:
            raise ImageBuildError(f"image {image} is not present (build it: python -m gearspec.conformance.servers.docker build)") from None
        except docker.errors.APIError as exc:
            raise LaunchError(f"cannot create a container from {image}: {exc.explanation or exc}") from None
        except Exception as exc:  # e.g. a read timeout: the engine may still create it later
            _remove_when_created(client, container_name)
            raise LaunchError(f"cannot create a container from {image}: {type(exc).__name__}: {exc}") from None
        running = RunningContainer(container_name, image, host, 0, container)
        try:
            container.start()
        except docker.errors.APIError as exc:
            raise LaunchError(f"cannot start {image}: {exc.explanation or exc}") from None
        if not wait_for_port:
            return running
        running.port = _wait_for_port(running, host, timeout, name)
        return running
    except BaseException:
        # Including KeyboardInterrupt: the container must not outlive a failed start.
        if running is not None:
            running.stop()
        else:
            _remove(client, container_name)
        raise


def start_server(impl: Implementation, *, host: str = "127.0.0.1", build: bool = True,
                 timeout: float = 60.0, client: Any | None = None) -> RunningContainer:
    """Start `impl`'s server image (building it if needed) and wait until it listens."""
    if "server" not in impl.roles or not impl.command:
        raise LaunchError(f"{impl.name} has no server command for Docker in the registry")
    client = client or connect()
    image = ensure_image(impl, client, build=build)
    return start_container(image, impl.command, name=impl.name, host=host, timeout=timeout, client=client)


def remove_leftovers(client: Any | None = None) -> int:
    """Remove every container labelled by gearspec (left by a killed run); return how many."""
    client = client or connect()
    containers = client.containers.list(all=True, filters={"label": f"{LABEL}=1"})
    for container in containers:
        _remove(client, container.name)
    return len(containers)


# -- command line -------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gearspec.conformance.servers.docker", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build images from the registry (all when no NAME is given)")
    build.add_argument("names", nargs="*", metavar="NAME")
    build.add_argument("--force", action="store_true", help="rebuild images that exist")
    build.add_argument("--impls", action="append", default=[], metavar="PATH", help="an extra implementation folder, folder of folders, or TOML file")
    sub.add_parser("clean", help="remove containers a killed run left behind")
    sub.add_parser("list", help="list the registry's images and whether they exist")
    args = parser.parse_args(argv)
    try:
        client = connect()
        if args.command == "clean":
            print(f"removed {remove_leftovers(client)} container(s)")
            return 0
        registry: Registry = load_registry(args.impls if args.command == "build" else ())
        impls = [i for i in registry.impls.values() if i.dockerfile]
        if args.command == "list":
            for impl in impls:
                present = "present" if _image_exists(client, impl.image_ref or "") else "missing"
                print(f"{impl.name:12} {impl.image_ref:28} {present}")
            return 0
        if args.names:
            impls = [registry[n] for n in args.names]
        for impl in impls:
            if args.force or not _image_exists(client, impl.image_ref or ""):
                build_image(impl, client, echo=True)
            else:
                print(f"{impl.image_ref} exists", file=sys.stderr)
        return 0
    except (LaunchError, KeyError, RegistryError) as exc:
        print(f"gearspec docker: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
