"""The `gearspec` command: a thin dispatcher.

Each subcommand lives in the package that owns it and is imported only when it runs, so
`gearspec spec` never pays for asyncio, pytest or docker. A subcommand module defines
`configure_<name>(parser)` and `run_<name>(args) -> int` (dashes in names become `_`) and
`SUMMARIES` (name -> one line for `gearspec --help`). The core's own commands are listed
here; the outer packages' commands are found through the ``gearspec.commands`` entry-point
group (pyproject.toml), so the core never names reference, conformance or fuzz.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from gearspec import __version__
from gearspec.errors import GearspecError

ENTRY_POINT_GROUP = "gearspec.commands"

# The core's own commands: name -> (module, one-line summary).
CORE_COMMANDS: dict[str, tuple[str, str]] = {
    "dissect": ("gearspec.wire.cli", "decode Gearman traffic in a pcap file"),
    "proxy": ("gearspec.wire.cli", "a validating proxy between Gearman peers"),
    "spec": ("gearspec.tools", "print the protocol tables (or --json)"),
    "decode": ("gearspec.tools", "decode raw Gearman bytes to JSON lines"),
}


def commands() -> dict[str, str]:
    """Every command: name -> module. Installed packages' entry points first, then the core's."""
    from importlib import metadata  # imported here: it loads threading, which `import gearspec` avoids

    found = {ep.name: ep.value.partition(":")[0] for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    return {**found, **{name: module for name, (module, _) in CORE_COMMANDS.items()}}


def _summary(name: str, module_name: str) -> str:
    if name in CORE_COMMANDS:
        return CORE_COMMANDS[name][1]
    try:
        return str(importlib.import_module(module_name).SUMMARIES[name])
    except Exception as exc:  # a broken plugin must not break --help
        return f"(cannot load {module_name}: {exc})"


def add_json_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``--json [FILE]``: write `what` as JSON to FILE, or to stdout when FILE is ``-`` or left out.

    Every command's --json means "JSON to FILE"; commands whose JSON is their whole output
    (spec, admin, dissect) also take it without FILE, for stdout.
    """
    parser.add_argument("--json", nargs="?", const="-", metavar="FILE",
                        help=f"write {what} as JSON to FILE (stdout when FILE is '-' or omitted)")


def write_json(destination: str, data: object, indent: int | None = None) -> None:
    """`data` as JSON (one document and a newline) to the file `destination`, or stdout for ``-``."""
    text = json.dumps(data, indent=indent) + "\n"
    if destination == "-":
        sys.stdout.write(text)
    else:
        with open(destination, "w") as out:
            out.write(text)


def unwritable(path: str) -> str | None:
    """Why a report file cannot be written at `path`, or None when it can.

    Subcommands call this for every output path before they start work, so a run is never
    spent only to lose its report to a typo in the folder name. The check opens the file for
    appending (removing it again if it did not exist): only the system knows for sure.
    """
    target = Path(path)
    if target.is_dir():
        return f"cannot write {path}: it is a folder"
    if not target.parent.is_dir():
        return f"cannot write {path}: no folder {str(target.parent)!r}"
    existed = target.exists()
    try:
        with open(target, "ab"):
            pass
    except OSError as exc:
        return f"cannot write {path}: {(exc.strerror or str(exc)).lower()}"
    if not existed:
        with contextlib.suppress(OSError):
            target.unlink()
    return None


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the cause and where to look, not the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def _usage() -> str:
    found = commands()
    width = max(map(len, found))
    lines = [
        "usage: gearspec [--version] COMMAND [ARGS...]",
        "",
        "The Gearman protocol as a spec: codecs, a reference server, a conformance suite, fuzzers.",
        "",
        "commands:",
    ]
    lines += [f"  {name.ljust(width)}  {_summary(name, module)}" for name, module in found.items()]
    lines += ["", "Run 'gearspec COMMAND --help' for a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if args else 2
    if args[0] == "--version":
        print(f"gearspec {__version__}")
        return 0
    name = args[0]
    found = commands()
    if name not in found:
        print(f"gearspec: unknown command {name!r}; commands: {', '.join(found)} (see 'gearspec --help')", file=sys.stderr)
        return 2
    module_name = found[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        print(f"gearspec {name}: cannot load {module_name}: {exc}", file=sys.stderr)
        return 2
    attr = name.replace("-", "_")
    # Raw text: each command's epilog lists examples and exit codes, one per line.
    parser = _Parser(prog=f"gearspec {name}", description=_summary(name, module_name),
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    try:
        getattr(module, f"configure_{attr}")(parser)
        options = parser.parse_args(args[1:])
        return int(getattr(module, f"run_{attr}")(options) or 0)
    except GearspecError as exc:  # what a command did not handle itself: one line, not a traceback
        print(f"gearspec {name}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gearspec {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as Unix tools do.
        sys.stderr.close()
        return 0
