"""The `gearspec` command: a thin dispatcher.

Each subcommand lives in the package that owns it and is imported only when it runs, so
`gearspec spec` never pays for asyncio, pytest or docker. A subcommand module defines
`configure_<name>(parser)` and `run_<name>(args) -> int` (dashes in names become `_`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from gearspec import __version__

# name -> (module, one-line summary)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "test": ("gearspec.conformance.cli", "run the conformance suite against a job server"),
    "serve": ("gearspec.reference.server_cli", "run the reference job server"),
    "submit": ("gearspec.reference.client_cli", "submit a job (like gearman's client mode)"),
    "work": ("gearspec.reference.client_cli", "run a worker that pipes jobs through a command"),
    "admin": ("gearspec.reference.client_cli", "send admin commands (like gearadmin)"),
    "fuzz": ("gearspec.fuzz.cli", "fuzz a job server over the network"),
    "diff": ("gearspec.conformance.diff", "run the same scripts against several servers and print the differences"),
    "interop": ("gearspec.conformance.interop", "run every client against every server"),
    "dissect": ("gearspec.wire.cli", "decode Gearman traffic in a pcap file"),
    "proxy": ("gearspec.wire.cli", "a validating proxy between Gearman peers"),
    "spec": ("gearspec.tools", "print the protocol tables (or --json)"),
    "decode": ("gearspec.tools", "decode raw Gearman bytes to JSON lines"),
}


def _usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = [
        "usage: gearspec [--version] COMMAND [ARGS...]",
        "",
        "The Gearman protocol as a spec: codecs, a reference server, a conformance suite, fuzzers.",
        "",
        "commands:",
    ]
    lines += [f"  {name.ljust(width)}  {summary}" for name, (_, summary) in SUBCOMMANDS.items()]
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
    if name not in SUBCOMMANDS:
        print(f"gearspec: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, summary = SUBCOMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        print(f"gearspec {name}: cannot load {module_name}: {exc}", file=sys.stderr)
        return 2
    attr = name.replace("-", "_")
    parser = argparse.ArgumentParser(prog=f"gearspec {name}", description=summary)
    getattr(module, f"configure_{attr}")(parser)
    options = parser.parse_args(args[1:])
    try:
        return int(getattr(module, f"run_{attr}")(options) or 0)
    except KeyboardInterrupt:
        print(f"gearspec {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as Unix tools do.
        sys.stderr.close()
        return 0
