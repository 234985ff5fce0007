"""Every Gearman implementation gearspec knows, one folder each, read through one loader.

Each folder under ``conformance/impls/`` holds everything known about one implementation:

- ``impl.toml``: how to start its server locally and in Docker, its version command, its
  driver (client/worker library), its fuzz-model options (``[fuzz]``) and the interop rows
  known not to work with it (``[[expected]]``, each with its reason);
- ``expectations.toml``: its known deviations from the conformance suite, with reasons
  (`gearspec test --profile NAME`);
- ``driver-expectations.toml``: its driver's known deviations under the scripted server of
  `gearspec test --role client|worker --profile DRIVER`, in the same format;
- ``Dockerfile`` and any file its commands name through ``{here}``.

Everything else (the targets, ``gearspec test --server/--impl/--profile``, the interop matrix,
the compatibility table, the fuzz profiles, the image builder) reads them through
`load_registry`. More folders (or a folder of folders), and TOML files of ``[[impl]]`` and
``[[expected]]`` tables, come from ``GEARSPEC_IMPLS`` (``os.pathsep``-separated) or `extra`;
a later entry with the same name replaces an earlier one. docs/architecture.md lists the fields.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gearspec.errors import GearspecError

if TYPE_CHECKING:
    from gearspec.conformance.harness import Outcome
    from gearspec.conformance.runner import Deviation

__all__ = [
    "IMPLS_DIR",
    "NODE_MODULES",
    "PEERS_DIR",
    "ROLES",
    "DriverSpec",
    "Expected",
    "Implementation",
    "Registry",
    "RegistryError",
    "load_registry",
]

ROLES = frozenset({"server", "client", "worker"})
IMPLS_DIR = Path(__file__).resolve().parent
IMPL_FILE = "impl.toml"
EXPECTATIONS_FILE = "expectations.toml"
DRIVER_EXPECTATIONS_FILE = "driver-expectations.toml"
_CONTEXTS = frozenset({"none", "source", "peers"})
# Peers that no system package provides live in the checkout's git-ignored .peers/
# (scripts/install-peers.sh: npm packages in .peers/node, cargo builds in .peers/cargo/bin),
# or where GEARSPEC_PEERS and GEARSPEC_NODE_MODULES say: {peers} and {node_modules} in commands.
PEERS_DIR = Path(os.environ.get("GEARSPEC_PEERS", IMPLS_DIR.parent.parent / ".peers"))
NODE_MODULES = Path(os.environ.get("GEARSPEC_NODE_MODULES", PEERS_DIR / "node" / "node_modules"))


class RegistryError(GearspecError, ValueError):
    """An implementation's folder or an implementations file is missing or malformed."""


@dataclass(frozen=True, slots=True)
class DriverSpec:
    """An implementation's client/worker driver (its ``[driver]`` table); see conformance/drivers."""

    name: str
    language: str
    library: str
    argv: tuple[str, ...]  # the command prefix; "client ..." or "worker ..." follows
    check: tuple[str, ...] = ()  # one word: that program must exist; more: exits 0 when usable
    version: tuple[str, ...] = ()  # prints the library's version (default: the implementation's)
    install: str = ""  # how to install the library
    env: tuple[tuple[str, str], ...] = ()
    limitations: tuple[tuple[str, str], ...] = ()  # feature -> why the library cannot
    probes: Path | None = None  # a Python file with version() and/or found_limitations()


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
    label: str = ""  # how tables name it (the compatibility table's column)
    variants: tuple[tuple[str, tuple[str, ...]], ...] = ()  # other local commands, by name
    tls: tuple[str, ...] = ()  # flags that make the local server serve TLS ({cert} {key} {ca}); () none
    # Interop: start it afresh for each client's row, when jobs an earlier row left behind change
    # what a later row sees (rustygeard joins every job without a unique id to the first one).
    fresh_server_per_client: bool = False
    fuzz: tuple[tuple[str, object], ...] = ()  # fuzz-model options; None: no profile
    has_fuzz: bool = False
    driver_spec: DriverSpec | None = None  # its [driver] table, when it defines a driver
    directory: Path | None = None  # its folder (None for an entry of a TOML file)
    source: str = ""

    @property
    def dockerfile_path(self) -> Path | None:
        if self.dockerfile is None:
            return None
        path = Path(self.dockerfile)
        return path if path.is_absolute() or self.directory is None else self.directory / path

    @property
    def expectations(self) -> Path | None:
        """Its known deviations (the `--profile NAME` file), when its folder has them."""
        path = self.directory / EXPECTATIONS_FILE if self.directory is not None else None
        return path if path is not None and path.is_file() else None

    @property
    def driver_expectations(self) -> Path | None:
        """Its driver's known deviations under `gearspec test --role` (same format), when its folder has them."""
        path = self.directory / DRIVER_EXPECTATIONS_FILE if self.directory is not None else None
        return path if path is not None and path.is_file() else None

    @property
    def title(self) -> str:
        return self.label or self.name

    @property
    def image_ref(self) -> str | None:
        """The image name with a tag (``:latest`` unless the entry names one)."""
        if self.image is None:
            return None
        return self.image if ":" in self.image.rsplit("/", 1)[-1] else f"{self.image}:latest"

    def local_argv(self, variant: str | None = None) -> list[str]:
        """The local server command (or a variant's), {python}, {here}, {peers} and {node_modules} filled in."""
        argv = self.local if variant is None or variant == self.name else dict(self.variants)[variant]
        return fill(argv, python=sys.executable, here=self.directory or "", peers=PEERS_DIR, node_modules=NODE_MODULES)

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
        argv = fill(self.version, python=sys.executable, here=self.directory or "", peers=PEERS_DIR, node_modules=NODE_MODULES)
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        text = (done.stdout or done.stderr).strip()
        return text.splitlines()[0] if done.returncode == 0 and text else None


@dataclass(frozen=True, slots=True)
class Expected:
    """A known failure: which clients, servers and scenarios (lists of globs), why, and the
    outcomes it ends in (harness.Outcome; the suite's default when the row lists none)."""

    client: tuple[str, ...]
    server: tuple[str, ...]
    scenario: tuple[str, ...]
    reason: str
    outcomes: frozenset[Outcome] = frozenset()

    def matches(self, client: str, server: str, scenario: str) -> bool:
        return all(
            any(fnmatch.fnmatchcase(value, glob) for glob in globs)
            for value, globs in ((client, self.client), (server, self.server), (scenario, self.scenario))
        )

    def deviation(self, case_id: str) -> Deviation:
        """This row as the suite's known deviation of one interop cell (`case_id`), so the
        suite's verdict rules grade it (runner.Result.verdict)."""
        from gearspec.conformance.runner import Deviation, deviation_outcomes

        return Deviation(case_id, self.outcomes or deviation_outcomes(None), self.reason)


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

    def local_server(self, name: str) -> tuple[Implementation, list[str]]:
        """The server `name` (an implementation or one of its variants) and its local argv."""
        for impl in self.with_role("server"):
            if (impl.local and name == impl.name) or name in dict(impl.variants):
                return impl, impl.local_argv(name)
        raise KeyError(f"unknown local server {name!r}; known: {', '.join(self.local_servers())}")

    def local_servers(self) -> list[str]:
        """Names `local_server` accepts: servers with a local command, then their variants."""
        impls = [i for i in self.with_role("server") if i.local]
        return [i.name for i in impls] + [v for i in impls for v, _ in i.variants]

    def profiles(self) -> dict[str, Path]:
        """Expectations files by implementation name (`gearspec test --profile NAME`)."""
        return dict(sorted((i.name, i.expectations) for i in self.impls.values() if i.expectations))

    def driver_profiles(self) -> dict[str, Path]:
        """Driver expectations by driver name (`gearspec test --role ... --profile NAME`)."""
        return dict(sorted(
            (spec.name, impl.driver_expectations) for impl, spec in self.drivers() if impl.driver_expectations
        ))

    def drivers(self) -> list[tuple[Implementation, DriverSpec]]:
        """The implementations that define a driver ([driver] table), with it."""
        return [(i, i.driver_spec) for i in self.impls.values() if i.driver_spec is not None]

    def fuzz_options(self) -> dict[str, dict[str, object]]:
        """The fuzz model's option overrides by implementation name (those with a [fuzz] table)."""
        return {i.name: dict(i.fuzz) for i in self.impls.values() if i.has_fuzz}


def _optional_string(data: Mapping[str, object], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise RegistryError(f"{where}: {key} must be a string")
    return value


def _strings(value: object, where: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RegistryError(f"{where}: {key} must be a list of strings")
    return tuple(value)


_FIELDS = frozenset({
    "name", "description", "label", "roles", "version", "local", "variants", "image", "dockerfile", "context",
    "command", "driver", "driver_image", "fuzz", "tls", "fresh_server_per_client",
})
_DRIVER_FIELDS = frozenset({"name", "language", "library", "argv", "check", "version", "install", "env", "limitations", "probes"})


def _flag(data: Mapping[str, object], key: str, where: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise RegistryError(f"{where}: {key} must be true or false, not {value!r}")
    return value


def _pairs(value: object, where: str, key: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise RegistryError(f"{where}: {key} must be a table of strings")
    return tuple((str(k), v) for k, v in value.items())


def parse_driver(data: object, where: str, directory: Path | None, default_name: str) -> DriverSpec:
    """Validate a ``[driver]`` table; {here} in its commands is the implementation's folder."""
    if not isinstance(data, dict):
        raise RegistryError(f"{where}: driver must be a name or a [driver] table")
    unknown = sorted(set(data) - _DRIVER_FIELDS)
    if unknown:
        raise RegistryError(f"{where}: unknown [driver] field(s) {', '.join(unknown)}; known: {', '.join(sorted(_DRIVER_FIELDS))}")
    here = directory or ""
    argv = fill(_strings(data.get("argv", []), where, "driver.argv"), here=here)
    if not argv:
        raise RegistryError(f"{where}: [driver] needs argv (the command before 'client ...' or 'worker ...')")
    texts = {}
    for key in ("name", "language", "library", "install", "probes"):
        value = data.get(key, "")
        if not isinstance(value, str):
            raise RegistryError(f"{where}: driver.{key} must be a string")
        texts[key] = value
    probes = None
    if texts["probes"]:
        probes = Path(texts["probes"]) if directory is None else directory / texts["probes"]
    return DriverSpec(
        name=texts["name"] or default_name, language=texts["language"], library=texts["library"],
        argv=tuple(argv), check=tuple(fill(_strings(data.get("check", []), where, "driver.check"), here=here)),
        version=tuple(fill(_strings(data.get("version", []), where, "driver.version"), here=here)),
        install=texts["install"], env=_pairs(data.get("env", {}), where, "driver.env"),
        limitations=_pairs(data.get("limitations", {}), where, "driver.limitations"), probes=probes,
    )


def parse_impl(
    data: Mapping[str, object], where: str, *, directory: Path | None = None, known: Registry | None = None
) -> Implementation:
    """Validate one implementation: an ``impl.toml`` (name defaults to its folder's) or an ``[[impl]]`` table."""
    unknown = sorted(set(data) - _FIELDS - ({"expected"} if directory is not None else set()))
    if unknown:
        raise RegistryError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_FIELDS))}")
    name = data.get("name", directory.name if directory is not None else None)
    if not isinstance(name, str) or not name or any(c.isspace() or c in ":," for c in name):
        raise RegistryError(f"{where}: name must be a non-empty word without spaces, ':' or ','")
    where = f"{where} ({name})"
    roles = frozenset(_strings(data.get("roles", []), where, "roles"))
    if roles - ROLES:
        raise RegistryError(f"{where}: unknown role(s) {', '.join(sorted(roles - ROLES))}; roles are {', '.join(sorted(ROLES))}")
    local = data.get("local", ())
    if isinstance(local, str):
        # The name of another implementation: use its local command.
        if known is None or local not in known or not known[local].local:
            raise RegistryError(f"{where}: local {local!r} is not a known server with a local command; give an argv list")
        local_argv = known[local].local
    else:
        local_argv = _strings(local, where, "local")
    variants = data.get("variants", {})
    if not isinstance(variants, dict):
        raise RegistryError(f"{where}: variants must be a table of NAME = argv")
    fuzz = data.get("fuzz", {})
    if not isinstance(fuzz, dict):
        raise RegistryError(f"{where}: fuzz must be a table of fuzz-model options")
    context = data.get("context", "none")
    if context not in _CONTEXTS:
        raise RegistryError(f"{where}: context must be one of {', '.join(sorted(_CONTEXTS))}")
    driver_spec = None
    if isinstance(data.get("driver"), dict):
        driver_spec = parse_driver(data["driver"], where, directory, name)
    strings = {key: _optional_string(data, key, where) for key in ("description", "label", "image", "dockerfile", "driver_image")}
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
        driver=driver_spec.name if driver_spec is not None else _optional_string(data, "driver", where),
        driver_image=strings["driver_image"],
        label=strings["label"] or "",
        variants=tuple((str(k), _strings(v, where, f"variants.{k}")) for k, v in variants.items()),
        tls=_strings(data.get("tls", []), where, "tls"),
        fresh_server_per_client=_flag(data, "fresh_server_per_client", where),
        fuzz=tuple((str(k), tuple(v) if isinstance(v, list) else v) for k, v in fuzz.items()),
        has_fuzz="fuzz" in data,
        driver_spec=driver_spec,
        directory=directory,
        source=where,
    )
    if "server" in roles and not (impl.local or (impl.image and impl.command)):
        raise RegistryError(f"{where}: a server needs `local` or `image` and `command`")
    if impl.command and "{port}" not in " ".join(impl.command):
        raise RegistryError(f"{where}: command must pass {{port}} (the launcher binds port 0 and reads it back)")
    for argv in (impl.local, *(v for _, v in impl.variants)):
        if argv and not any(("{port}" in a or "=0" in a or a == "0") for a in argv):
            raise RegistryError(f"{where}: local commands must pass {{port}} or port 0")
    if (roles & {"client", "worker"}) and not impl.driver:
        raise RegistryError(f"{where}: a client or worker needs `driver` (a name in gearspec.conformance.drivers)")
    if impl.dockerfile and not impl.image:
        raise RegistryError(f"{where}: dockerfile given without image")
    # A missing Dockerfile is reported when an image is built, so that an install without
    # the Dockerfiles can still use the local commands.
    return impl


def parse_expected(data: Mapping[str, object], where: str, *, server: str = "*") -> Expected:
    """Validate one ``[[expected]]`` row (client/server/scenario: a glob or a list of globs).

    In an implementation's own impl.toml, `server` defaults to that implementation.
    """
    extra = set(data) - {"client", "server", "scenario", "reason", "outcomes", "outcome"}
    if extra:
        raise RegistryError(f"{where}: unknown field(s) {', '.join(sorted(extra))} in [[expected]]")
    reason = data.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise RegistryError(f"{where}: [[expected]] needs a reason")
    defaults = {"client": "*", "server": server, "scenario": "*"}
    globs = {key: _strings(data.get(key, default), where, key) for key, default in defaults.items()}
    if not all(globs.values()):
        raise RegistryError(f"{where}: an empty list in [[expected]] matches nothing")
    if "outcomes" in data and "outcome" in data:
        raise RegistryError(f"{where}: [[expected]] has both outcomes and outcome; use outcomes")
    from gearspec.conformance.runner import deviation_outcomes  # runner -> servers -> this module

    # `outcome` is the expectations files' spelling of the same list.
    try:
        outcomes = deviation_outcomes(data.get("outcomes", data.get("outcome")))
    except ValueError as exc:
        raise RegistryError(f"{where}: [[expected]] outcomes: {exc}") from None
    return Expected(globs["client"], globs["server"], globs["scenario"], reason, outcomes)


def _extra_sources() -> list[Path]:
    return [Path(p) for p in os.environ.get("GEARSPEC_IMPLS", "").split(os.pathsep) if p]


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise RegistryError(f"cannot read implementations file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{path}: not valid TOML: {exc}") from None


def _load_folder(registry: Registry, folder: Path) -> None:
    """One implementation's folder (holding impl.toml)."""
    path = folder / IMPL_FILE
    data = _read_toml(path)
    impl = parse_impl(data, str(path), directory=folder, known=registry)
    registry.impls[impl.name] = impl
    rows = data.get("expected", [])
    if not isinstance(rows, list):
        raise RegistryError(f"{path}: expected must be [[expected]] tables")
    for i, row in enumerate(rows):
        registry.expected.append(parse_expected(row, f"{path} expected #{i + 1}", server=impl.name))


def _load_file(registry: Registry, path: Path) -> None:
    """A TOML file of [[impl]] and [[expected]] tables (a user's extension file)."""
    data = _read_toml(path)
    unknown = set(data) - {"impl", "expected"}
    if unknown:
        raise RegistryError(f"{path}: unknown table(s) {', '.join(sorted(unknown))}; use [[impl]] and [[expected]]")
    for i, row in enumerate(data.get("impl", [])):
        impl = parse_impl(row, f"{path} impl #{i + 1}", known=registry)
        if impl.dockerfile and not Path(impl.dockerfile).is_absolute():
            impl = replace(impl, dockerfile=str(path.parent / impl.dockerfile))  # beside the file
        registry.impls[impl.name] = impl
    for i, row in enumerate(data.get("expected", [])):
        registry.expected.append(parse_expected(row, f"{path} expected #{i + 1}"))


def _load(registry: Registry, source: Path) -> None:
    if source.is_dir():
        if (source / IMPL_FILE).is_file():
            _load_folder(registry, source)
            return
        folders = sorted(p for p in source.iterdir() if (p / IMPL_FILE).is_file())
        if not folders:
            raise RegistryError(f"{source}: no {IMPL_FILE} in it nor in any folder inside it")
        for folder in folders:
            _load_folder(registry, folder)
        return
    _load_file(registry, source)


def load_registry(extra: Iterable[Path | str] = (), *, include_default: bool = True) -> Registry:
    """Read the shipped folders, then ``GEARSPEC_IMPLS`` sources, then `extra` sources.

    A source is an implementation's folder, a folder of such folders, or a TOML file of
    ``[[impl]]`` and ``[[expected]]`` tables.
    """
    registry = Registry()
    sources: list[Path] = [IMPLS_DIR] if include_default else []
    for source in [*sources, *_extra_sources(), *(Path(p) for p in extra)]:
        _load(registry, source)
    return registry


def fill(argv: Sequence[str], **values: object) -> list[str]:
    """Fill {host}/{port}/{dir}/{log}/{python}/{here}/{peers}/{node_modules} placeholders (unknown braces stay as they are)."""
    out = []
    for arg in argv:
        for key, value in values.items():
            arg = arg.replace("{" + key + "}", str(value))
        out.append(arg)
    return out
