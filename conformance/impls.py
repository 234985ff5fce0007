"""The registry of Gearman implementations gearspec can start: data, not code.

Entries live in ``impls.toml`` next to this module (one ``[[impl]]`` table each) and in any
extra TOML files named by ``GEARSPEC_IMPLS`` (``os.pathsep``-separated) or passed to
`load_registry`. A later entry with the same name replaces an earlier one, so a user can
override a shipped entry as well as add one. ``[[expected]]`` rows record client/server
pairs (and scenarios) known not to work, each with its reason, for the interop matrix.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gearspec.conformance.launch import PEER_COMMANDS

__all__ = [
    "DOCKERFILES",
    "ROLES",
    "Expected",
    "Implementation",
    "Registry",
    "RegistryError",
    "load_registry",
]

ROLES = frozenset({"server", "client", "worker"})
DOCKERFILES = Path(__file__).with_name("dockerfiles")
DEFAULT_REGISTRY = Path(__file__).with_name("impls.toml")
_CONTEXTS = frozenset({"none", "source"})
_PLACEHOLDERS = ("{host}", "{port}", "{dir}", "{log}", "{python}")


class RegistryError(ValueError):
    """An entry in an implementations file is malformed."""


@dataclass(frozen=True, slots=True)
class Implementation:
    """One Gearman implementation and how to start each of its roles."""

    name: str
    description: str = ""
    roles: frozenset[str] = frozenset()
    version: tuple[str, ...] = ()
    local: tuple[str, ...] = ()
    image: str | None = None
    dockerfile: str | None = None
    context: str = "none"
    command: tuple[str, ...] = ()
    driver: str | None = None
    driver_image: str | None = None
    source: str = ""

    @property
    def dockerfile_path(self) -> Path | None:
        if self.dockerfile is None:
            return None
        path = Path(self.dockerfile)
        return path if path.is_absolute() else DOCKERFILES / path

    @property
    def image_ref(self) -> str | None:
        """The image name with a tag (``:latest`` unless the entry names one)."""
        if self.image is None:
            return None
        return self.image if ":" in self.image.rsplit("/", 1)[-1] else f"{self.image}:latest"

    def local_argv(self) -> list[str]:
        """The local server command template (placeholders not yet filled)."""
        return [a.replace("{python}", sys.executable) for a in self.local]

    def local_available(self) -> bool:
        """True when the local server program is installed on this machine."""
        if not self.local:
            return False
        program = self.local_argv()[0]
        return shutil.which(program) is not None or Path(program).exists()

    def probe_version(self, timeout: float = 10.0) -> str | None:
        """Run the version probe locally; None if it is absent or fails."""
        if not self.version:
            return None
        argv = [a.replace("{python}", sys.executable) for a in self.version]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        text = (done.stdout or done.stderr).strip()
        return text.splitlines()[0] if done.returncode == 0 and text else None


@dataclass(frozen=True, slots=True)
class Expected:
    """A known failure: which clients, servers and scenarios (lists of globs) and why."""

    client: tuple[str, ...]
    server: tuple[str, ...]
    scenario: tuple[str, ...]
    reason: str

    def matches(self, client: str, server: str, scenario: str) -> bool:
        return all(
            any(fnmatch.fnmatchcase(value, glob) for glob in globs)
            for value, globs in ((client, self.client), (server, self.server), (scenario, self.scenario))
        )


@dataclass
class Registry:
    """Implementations by name, plus the known failures."""

    impls: dict[str, Implementation] = field(default_factory=dict)
    expected: list[Expected] = field(default_factory=list)

    def __getitem__(self, name: str) -> Implementation:
        try:
            return self.impls[name]
        except KeyError:
            raise KeyError(f"unknown implementation {name!r}; known: {', '.join(sorted(self.impls))}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.impls

    def with_role(self, role: str) -> list[Implementation]:
        return [impl for impl in self.impls.values() if role in impl.roles]

    def by_image(self, image: str) -> Implementation | None:
        """The entry whose image (or name) is `image`, with or without a tag."""
        bare = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
        for impl in self.impls.values():
            if impl.image is not None and (image == impl.image_ref or bare == impl.image):
                return impl
        return None

    def expected_failure(self, client: str, server: str, scenario: str) -> Expected | None:
        for row in self.expected:
            if row.matches(client, server, scenario):
                return row
        return None


def _strings(value: object, where: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RegistryError(f"{where}: {key} must be a list of strings")
    return tuple(value)


def parse_impl(data: Mapping[str, object], where: str) -> Implementation:
    """Validate one ``[[impl]]`` table."""
    known = set(Implementation.__slots__) - {"source"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise RegistryError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    name = data.get("name")
    if not isinstance(name, str) or not name or any(c.isspace() or c in ":," for c in name):
        raise RegistryError(f"{where}: name must be a non-empty word without spaces, ':' or ','")
    where = f"{where} ({name})"
    roles = frozenset(_strings(data.get("roles", []), where, "roles"))
    if roles - ROLES:
        raise RegistryError(f"{where}: unknown role(s) {', '.join(sorted(roles - ROLES))}; roles are {', '.join(sorted(ROLES))}")
    local = data.get("local", ())
    if isinstance(local, str):
        if local not in PEER_COMMANDS:
            raise RegistryError(f"{where}: local {local!r} is not a known server ({', '.join(PEER_COMMANDS)}); give an argv list")
        local_argv = tuple(PEER_COMMANDS[local])
    else:
        local_argv = _strings(local, where, "local")
    context = data.get("context", "none")
    if context not in _CONTEXTS:
        raise RegistryError(f"{where}: context must be one of {', '.join(sorted(_CONTEXTS))}")
    strings = {}
    for key in ("description", "image", "dockerfile", "driver", "driver_image"):
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise RegistryError(f"{where}: {key} must be a string")
        strings[key] = value
    impl = Implementation(
        name=name,
        description=strings["description"] or "",
        roles=roles,
        version=_strings(data.get("version", []), where, "version"),
        local=local_argv,
        image=strings["image"],
        dockerfile=strings["dockerfile"],
        context=str(context),
        command=_strings(data.get("command", []), where, "command"),
        driver=strings["driver"],
        driver_image=strings["driver_image"],
        source=where,
    )
    if "server" in roles and not (impl.local or (impl.image and impl.command)):
        raise RegistryError(f"{where}: a server needs `local` or `image` and `command`")
    if impl.command and "{port}" not in " ".join(impl.command):
        raise RegistryError(f"{where}: command must pass {{port}} (the launcher binds port 0 and reads it back)")
    if impl.local and not any(("{port}" in a or "=0" in a or a == "0") for a in impl.local):
        raise RegistryError(f"{where}: local must pass {{port}} or port 0")
    if (roles & {"client", "worker"}) and not impl.driver:
        raise RegistryError(f"{where}: a client or worker needs `driver` (a name in gearspec.conformance.drivers)")
    if impl.dockerfile and not impl.image:
        raise RegistryError(f"{where}: dockerfile given without image")
    # A missing Dockerfile is reported when an image is built, so that an install without
    # the Dockerfiles can still use the local commands.
    return impl


def parse_expected(data: Mapping[str, object], where: str) -> Expected:
    """Validate one ``[[expected]]`` row (client/server/scenario: a glob or a list of globs)."""
    extra = set(data) - {"client", "server", "scenario", "reason"}
    if extra:
        raise RegistryError(f"{where}: unknown field(s) {', '.join(sorted(extra))} in [[expected]]")
    reason = data.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise RegistryError(f"{where}: [[expected]] needs a reason")
    globs = {key: _strings(data.get(key, "*"), where, key) for key in ("client", "server", "scenario")}
    if not all(globs.values()):
        raise RegistryError(f"{where}: an empty list in [[expected]] matches nothing")
    return Expected(globs["client"], globs["server"], globs["scenario"], reason)


def _extra_files() -> list[Path]:
    return [Path(p) for p in os.environ.get("GEARSPEC_IMPLS", "").split(os.pathsep) if p]


def load_registry(extra: Iterable[Path | str] = (), *, include_default: bool = True) -> Registry:
    """Read the shipped registry, then ``GEARSPEC_IMPLS`` files, then `extra` files."""
    registry = Registry()
    files: list[Path] = [DEFAULT_REGISTRY] if include_default else []
    files += _extra_files() + [Path(p) for p in extra]
    for path in files:
        try:
            data = tomllib.loads(path.read_text())
        except OSError as exc:
            raise RegistryError(f"cannot read implementations file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise RegistryError(f"{path}: not valid TOML: {exc}") from None
        unknown = set(data) - {"impl", "expected"}
        if unknown:
            raise RegistryError(f"{path}: unknown table(s) {', '.join(sorted(unknown))}; use [[impl]] and [[expected]]")
        for i, row in enumerate(data.get("impl", [])):
            impl = parse_impl(row, f"{path} impl #{i + 1}")
            registry.impls[impl.name] = impl
        for i, row in enumerate(data.get("expected", [])):
            registry.expected.append(parse_expected(row, f"{path} expected #{i + 1}"))
    return registry


def fill(argv: Sequence[str], **values: object) -> list[str]:
    """Fill {host}/{port}/{dir}/{log}/{python} placeholders (unknown braces stay as they are)."""
    out = []
    for arg in argv:
        for key, value in values.items():
            arg = arg.replace("{" + key + "}", str(value))
        out.append(arg)
    return out
