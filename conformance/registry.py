"""The case registry: every conformance case, its stable ID and what it checks.

A case is a plain function taking a `gearspec.conformance.harness.Session`, registered with
the `case` decorator:

    @case(
        "framing/magic/1",
        "A request with RES magic is answered with ERROR or the connection is closed",
        level=MUST,
        packets=["ECHO_REQ", "ERROR"],
        source="PROTOCOL (Binary Packet); gearmand libgearman-server/io.cc",
    )
    def response_magic_refused(s: Session) -> None:
        ...

IDs are hierarchical (`area/topic/N`) and never reused for another meaning; they are what
`--select`, expectation files and reports use. The first path segment is the case's area.
"""

from __future__ import annotations

import enum
import fnmatch
import importlib
import pkgutil
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gearspec.admin import ADMIN_COMMANDS, admin_command
from gearspec.spec import PACKETS, PacketType, packet_spec

if TYPE_CHECKING:
    from gearspec.conformance.harness import Session

__all__ = [
    "CASE_MODULES_PACKAGE",
    "EXTENSION",
    "INFO",
    "MUST",
    "SHOULD",
    "Case",
    "Level",
    "all_cases",
    "case",
    "get_case",
    "select_cases",
    "uncovered",
]

CASE_MODULES_PACKAGE = "gearspec.conformance.cases"


class Level(enum.Enum):
    """How binding a case's requirement is."""

    MUST = "MUST"  # core protocol; a failure fails the run
    SHOULD = "SHOULD"  # good behaviour; a failure fails the run only with --strict
    EXTENSION = "EXTENSION"  # a gearmand extension: absent -> unsupported, present but wrong -> fail
    INFO = "INFO"  # behaviour worth recording (limits, versions); never graded

    @property
    def counts(self) -> bool:
        """Whether a failure at this level fails the run without --strict."""
        return self in (Level.MUST, Level.EXTENSION)


MUST, SHOULD, EXTENSION, INFO = Level.MUST, Level.SHOULD, Level.EXTENSION, Level.INFO

_ID = re.compile(r"[a-z0-9_]+(/[a-z0-9_]+)+/[0-9]+\Z")

CaseFunction = Callable[["Session"], None]


@dataclass(frozen=True, slots=True)
class Case:
    """One registered case: metadata plus the function that runs it."""

    id: str
    requirement: str
    level: Level
    packets: tuple[PacketType, ...]
    admin: tuple[str, ...]
    source: str
    alternatives: dict[str, str]
    func: CaseFunction = field(compare=False, repr=False)
    timeout: float | None = None  # overrides the run's per-case timeout when longer
    destructive: bool = False  # may stop or disturb the target: runs only when asked
    serial: bool = False  # looks at server-wide state that other cases disturb

    @property
    def area(self) -> str:
        return self.id.split("/", 1)[0]

    @property
    def module(self) -> str:
        return self.func.__module__

    @property
    def sort_key(self) -> tuple[object, ...]:
        return tuple(int(p) if p.isdigit() else p for p in self.id.split("/"))

    def describe(self) -> str:
        return f"{self.id} [{self.level.value}] {self.requirement}"


_REGISTRY: dict[str, Case] = {}


def case(
    id: str,
    requirement: str,
    *,
    level: Level = MUST,
    packets: Iterable[str | PacketType] = (),
    admin: Iterable[str] = (),
    source: str,
    alternatives: dict[str, str] | None = None,
    timeout: float | None = None,
    destructive: bool = False,
    serial: bool = False,
) -> Callable[[CaseFunction], CaseFunction]:
    """Register a case function under a stable hierarchical ID.

    - `requirement`: one line saying what the target must do, as the report shows it.
    - `packets`: packet types the case sends or expects (spec rows it exercises).
    - `admin`: admin commands it exercises, by their words ("show jobs").
    - `source`: where the rule comes from (PROTOCOL section, gearmand file + function).
    - `alternatives`: tolerated behaviours other than the preferred one, name -> description;
      the case reports one with `session.non_strict(name, detail)`.
    """
    if not _ID.match(id):
        raise ValueError(f"case id {id!r} must look like 'area/topic/N' (lowercase, digits last)")
    if not requirement or "\n" in requirement:
        raise ValueError(f"case {id}: the requirement must be one non-empty line")
    pkt = tuple(PacketType(packet_spec(p).code) for p in packets)
    adm = tuple(admin_command(a).name for a in admin)

    def register(func: CaseFunction) -> CaseFunction:
        old = _REGISTRY.get(id)
        if old is not None and (old.func.__module__, old.func.__qualname__) != (func.__module__, func.__qualname__):
            raise ValueError(f"case id {id} registered twice ({old.func.__qualname__} and {func.__qualname__})")
        _REGISTRY[id] = Case(
            id, requirement, level, pkt, adm, source, dict(alternatives or {}), func, timeout, destructive, serial
        )
        func.case_id = id  # type: ignore[attr-defined]
        return func

    return register


class CaseModuleError(RuntimeError):
    """A case module failed to import (a bug in the suite, reported without a traceback)."""


def _load_case_modules() -> None:
    package = importlib.import_module(CASE_MODULES_PACKAGE)
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            name = f"{CASE_MODULES_PACKAGE}.{info.name}"
            try:
                importlib.import_module(name)
            except Exception as exc:
                raise CaseModuleError(f"cannot load case module {name}: {type(exc).__name__}: {exc}") from exc


def all_cases() -> list[Case]:
    """Every case of every module in gearspec.conformance.cases, sorted by ID."""
    _load_case_modules()
    return sorted(_REGISTRY.values(), key=lambda c: c.sort_key)


def get_case(case_id: str) -> Case:
    _load_case_modules()
    try:
        return _REGISTRY[case_id]
    except KeyError:
        raise KeyError(f"no conformance case {case_id!r}") from None


def _matches(case_id: str, pattern: str) -> bool:
    # "submit" selects the area, "submit/coalesce" a topic; globs work on the whole id.
    return fnmatch.fnmatchcase(case_id, pattern) or case_id.startswith(pattern.rstrip("/") + "/")


def select_cases(
    cases: Sequence[Case], include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> list[Case]:
    """Cases whose ID matches any `include` glob (all when empty) and no `exclude` glob."""
    out = []
    for c in cases:
        if include and not any(_matches(c.id, p) for p in include):
            continue
        if any(_matches(c.id, p) for p in exclude):
            continue
        out.append(c)
    return out


def uncovered(cases: Sequence[Case]) -> tuple[list[str], list[str]]:
    """Packet type names and admin commands of the spec tables that no case exercises."""
    seen_packets = {p for c in cases for p in c.packets}
    seen_admin = {a for c in cases for a in c.admin}
    packets = [row.name for row in PACKETS if not row.reserved and PacketType(row.code) not in seen_packets]
    admin = [cmd.name for cmd in ADMIN_COMMANDS if cmd.name not in seen_admin]
    return packets, admin
