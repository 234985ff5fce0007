"""The core stays small and sans-IO: what it may import, checked two ways."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import gearspec

CORE_MODULES = [
    "gearspec", "gearspec.spec", "gearspec.codec", "gearspec.errors", "gearspec.admin", "gearspec.export",
    "gearspec.tools", "gearspec.cli", "gearspec.vectors",
]
NO_IO = ("asyncio", "socket", "time", "selectors", "threading", "subprocess", "ssl")
NOT_CORE = ("gearspec.reference", "gearspec.conformance", "gearspec.fuzz")

# Run in a fresh interpreter: forget what start-up already loaded (the interpreter itself
# imports `time`), then refuse any import of a forbidden module while the core loads.
_PROBE = """
import importlib, importlib.abc, sys
forbidden = sys.argv[1].split(",")
def banned(name):
    return any(name == f or name.startswith(f + ".") for f in forbidden)
for name in list(sys.modules):
    if banned(name):
        del sys.modules[name]
class Wall(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if banned(name):
            raise ImportError("the core imported " + name)
        return None
sys.meta_path.insert(0, Wall())
for module in sys.argv[2:]:
    importlib.import_module(module)
print("clean")
"""


def test_core_imports_no_io_and_no_outer_packages() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(NO_IO + NOT_CORE), *CORE_MODULES],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0 and result.stdout.strip() == "clean", result.stderr[-2000:]


def test_the_probe_can_fail() -> None:
    """The wall really stops an import (a test that cannot fail is a defect)."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, "struct", "gearspec.codec"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and "the core imported struct" in result.stderr


def test_core_sources_name_no_forbidden_import() -> None:
    """Static check, including imports inside functions (the cli imports subcommands lazily by name)."""
    package = Path(gearspec.__file__).parent
    files = [*package.glob("*.py"), *(package / "vectors").glob("*.py")]
    assert len(files) >= 10
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if path.name != "strategies.py":  # strategies is test tooling built on Hypothesis
                    assert top not in NO_IO, f"{path.name} imports {name}"
                assert not name.startswith(NOT_CORE), f"{path.name} imports {name}"
                assert top not in ("reference", "conformance", "fuzz"), f"{path.name} imports {name}"


def test_core_cli_finds_outer_commands_by_entry_point() -> None:
    """The dispatcher names no outer module (not even as a string to import lazily): the
    outer packages register their commands in the `gearspec.commands` entry-point group."""
    from gearspec.cli import ENTRY_POINT_GROUP, commands

    package = Path(gearspec.__file__).parent
    for path in [*package.glob("*.py"), *(package / "wire").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not node.value.startswith(NOT_CORE), f"{path.name} names {node.value!r}"
    found = commands()
    assert found["test"] == "gearspec.conformance.cli" and found["serve"] == "gearspec.reference.server_cli"
    assert found["fuzz"] == "gearspec.fuzz.cli" and found["spec"] == "gearspec.tools"
    assert ENTRY_POINT_GROUP == "gearspec.commands"
