"""Access control for the reference server: which certificate may do what to which function.

An ACL is data the broker is given (`Broker(acl=...)`); the server names each connection by
its client certificate's subject common name when the session is created. Deny by default:
a connection may register (CAN_DO, CAN_DO_TIMEOUT), submit (SUBMIT_*) or administer (admin
commands that change a function or the server) only what an entry for its subject grants.
The file format is in docs/server.md ("Access control").

In the spirit of python gear's geard (gear/acl.py `ACL`, `ACLEntry`: one entry per certificate
common name, deny by default, permissions `register`, `invoke`, `grant`), with two
differences: patterns are shell globs matched against the whole name (geard uses regular
expressions matched at the start), and the third permission administers functions instead of
granting ACL entries at run time.
"""

from __future__ import annotations

import configparser
import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["PERMISSIONS", "SERVER_WIDE", "Acl", "AclError", "load_acl", "parse_acl"]

# What an entry can grant, each a list of glob patterns over function names.
PERMISSIONS = ("register", "submit", "admin")
# The pattern an `admin` entry needs for commands that act on the whole server (shutdown).
SERVER_WIDE = "*"


class AclError(ValueError):
    """An ACL file that cannot be used; the message names the file, the entry and the problem."""


@dataclass(frozen=True)
class _Entry:
    patterns: Mapping[str, tuple[str, ...]]  # permission -> glob patterns
    matchers: Mapping[str, re.Pattern[str] | None]  # permission -> one compiled alternation


class Acl:
    """Per-subject permissions. `allows(subject, permission, name)` is the only question."""

    def __init__(self, entries: Mapping[str, Mapping[str, tuple[str, ...]]]) -> None:
        self._entries: dict[str, _Entry] = {}
        for subject, granted in entries.items():
            unknown = set(granted) - set(PERMISSIONS)
            if unknown:
                raise AclError(f"entry [{subject}]: unknown permission {sorted(unknown)[0]!r} "
                               f"(known: {', '.join(PERMISSIONS)})")
            patterns = {p: tuple(granted.get(p, ())) for p in PERMISSIONS}
            matchers = {
                p: re.compile("|".join(fnmatch.translate(g) for g in globs)) if globs else None
                for p, globs in patterns.items()
            }
            self._entries[subject] = _Entry(patterns, matchers)

    @property
    def subjects(self) -> list[str]:
        return sorted(self._entries)

    def patterns(self, subject: str, permission: str) -> tuple[str, ...]:
        entry = self._entries.get(subject)
        return entry.patterns[permission] if entry is not None else ()

    def allows(self, subject: str | None, permission: str, name: bytes | None) -> bool:
        """Whether `subject` may `permission` the function `name` (None: the whole server)."""
        entry = self._entries.get(subject) if subject is not None else None
        if entry is None:
            return False
        if name is None:
            return SERVER_WIDE in entry.patterns[permission]
        matcher = entry.matchers[permission]
        # Function names are bytes; surrogateescape keeps every byte matchable by `*` and `?`.
        return matcher is not None and matcher.fullmatch(name.decode("utf-8", "surrogateescape")) is not None


def parse_acl(text: str, source: str = "ACL") -> Acl:
    """An ACL from INI text: one `[subject]` section per certificate, keys from PERMISSIONS."""
    parser = configparser.ConfigParser(interpolation=None, default_section="\0none", inline_comment_prefixes=("#",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys as written
    try:
        parser.read_string(text, source=source)
    except configparser.Error as exc:
        raise AclError(f"{source}: {' '.join(str(exc).split())}") from None
    entries: dict[str, dict[str, tuple[str, ...]]] = {}
    for subject in parser.sections():
        granted = {key: tuple(value.split()) for key, value in parser[subject].items()}
        try:
            Acl({subject: granted})
        except AclError as exc:
            raise AclError(f"{source}: {exc}") from None
        entries[subject] = granted
    return Acl(entries)


def load_acl(path: str) -> Acl:
    """Read and parse an ACL file; AclError (one line) when it cannot be read or parsed."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise AclError(f"cannot read ACL file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise AclError(f"ACL file {path} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    return parse_acl(text, path)
